"""Files of quantized models: :func:`save_quantized` / :func:`load_quantized` (safetensors plus a
JSON sidecar, format ``rf8hw-quantized-model`` version :data:`FILE_VERSION`; never unpickles), and
:func:`mark_hf_configs`, which makes a quantized Hugging Face model saveable with ``save_pretrained``
and loadable with ``from_pretrained`` (:mod:`rf8hw.nn.quant.hf`).
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import torch
import torch.nn as nn

from rf8hw.files import sha256_file, write_files
from rf8hw.nn.quant.layer import QuantLinear
from rf8hw.nn.quant.layout import check_layer_meta, check_values, quantized_skeleton
from rf8hw.nn.quant.whole_model import quant_layers

FILE_FORMAT = "rf8hw-quantized-model"
#: 2: tensors_sha256, aliases, layer metadata in the tensor file's header; 3: channel_scale
FILE_VERSION = 3


def is_hf_model(m: nn.Module) -> bool:
    """Whether ``m`` is a Hugging Face ``PreTrainedModel`` (by its classes' names, so that rf8hw
    does not import transformers) with a config (``to_json_string``, ``model_type``).  A
    ``SentenceTransformer`` is not one; its transformer (``model[0].model``) is."""
    cfg = getattr(m, "config", None)
    return (any(c.__name__ == "PreTrainedModel" for c in type(m).__mro__)
            and callable(getattr(cfg, "to_json_string", None)) and hasattr(cfg, "model_type"))


def mark_hf_configs(model: nn.Module) -> None:
    """Give every outermost Hugging Face model inside ``model`` that holds a
    :class:`~rf8hw.nn.quant.QuantLinear` the RF8 quantization config and quantizer
    (:func:`rf8hw.nn.quant.hf.attach`): ``save_pretrained`` (and ``SentenceTransformer.save``) then
    write a checkpoint that ``from_pretrained`` loads into ``QuantLinear`` layers where rf8hw is
    imported, and refuses loudly where it is not.  A ``quantization_config`` the model already had
    (e.g. the GGUF loader's, which describes the file it was read from, not these weights) is
    replaced.  transformers is imported only when such a model is found (it is loaded already)."""
    targets, inside = [], set()
    for name, m in model.named_modules():
        if any(p == "" or name.startswith(p + ".") for p in inside):
            continue                     # inside a model already marked (e.g. LlamaForCausalLM.model)
        if is_hf_model(m) and any(isinstance(x, QuantLinear) for x in m.modules()):
            targets.append(m)
            inside.add(name)
    if targets:
        from rf8hw.nn.quant.hf import attach

        for m in targets:
            attach(m)


# ----------------------------------------------------------------------------------- export / import

def _shared_names(state: dict) -> dict:
    """``{alias: name}`` for state-dict entries that are the very tensor of an earlier entry (tied
    weights, one ``QuantLinear`` under two names): safetensors stores each tensor once."""
    seen, aliases = {}, {}
    for name, t in state.items():
        if t.numel() == 0:
            continue
        key = (t.data_ptr(), t.dtype, tuple(t.shape), t.stride())
        if key in seen:
            aliases[name] = seen[key]
        else:
            seen[key] = name
    return aliases


def save_quantized(qmodel: nn.Module, path, model_info: dict | None = None) -> None:
    """Write ``path`` (safetensors: codes, exponents/scales, all float parameters and buffers) and
    its sidecar ``path`` with suffix ``.json`` (format, version, per-layer metadata, the SHA-256 of
    the tensor file, ``model_info``).

    ``path`` must not end in ``.json``: the sidecar would be the tensor file itself, so such a name
    is refused (a ``ValueError``), never derived into another name.  Tensors shared by several
    state-dict names (tied weights) are stored once and listed as ``aliases``.  The per-layer
    metadata is also written into the tensor file's own header, so a sidecar whose layers disagree
    with its tensors (e.g. ``"fmt"`` relabelled) is refused on load.  The two files are written as
    one unit (:func:`rf8hw.files.write_files`: both to temporary files, then renamed, tensors
    first): a failure (a full disk) leaves any old pair as it was and no temporary file, and is an
    :class:`OSError` naming the file that could not be written; a run killed between the two
    renames leaves a pair whose hash does not match, which :func:`load_quantized` refuses.  Both
    files get the mode of any new file (``0o666`` less the umask, usually ``0o644``).
    """
    import hashlib

    from safetensors.torch import save

    path = _file_name("save_quantized path", path)
    if not isinstance(qmodel, nn.Module):
        raise ValueError(f"save_quantized needs a quantized torch.nn.Module, not {type(qmodel).__name__}")
    if path.suffix == ".json":
        raise ValueError(f"save_quantized path {str(path)!r} ends in .json, the suffix of its sidecar "
                         "(the sidecar would overwrite the tensors); give a .safetensors name")
    if path.is_dir():
        raise ValueError(f"save_quantized path {str(path)!r} is a directory; give a .safetensors file name")
    if not path.parent.is_dir():
        raise ValueError(f"save_quantized path {str(path)!r}: {str(path.parent)!r} is not a directory")
    if path.with_suffix(".json").is_dir():
        raise ValueError(f"save_quantized path {str(path)!r}: its sidecar {str(path.with_suffix('.json'))!r} "
                         "is a directory")
    if model_info is not None and not isinstance(model_info, dict):
        raise ValueError(f"save_quantized model_info must be a dict or None, not {type(model_info).__name__}")
    layers = {n: q.layer_meta() for n, q in quant_layers(qmodel).items()}
    if not layers:
        raise ValueError("model has no QuantLinear layer; call rf8hw.quantize(model, ...) first")
    try:
        json.dumps(model_info, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"save_quantized model_info must hold JSON values only (no NaN or "
                         f"Infinity): {exc}") from None
    full = qmodel.state_dict()
    aliases = _shared_names(full)
    state = {k: v.detach().contiguous() for k, v in full.items() if k not in aliases}
    tensors = save(state, metadata={"format": FILE_FORMAT, "layers": json.dumps(layers, sort_keys=True),
                                    "aliases": json.dumps(aliases, sort_keys=True)})
    meta = {"format": FILE_FORMAT, "version": FILE_VERSION,
            "tensors_sha256": hashlib.sha256(tensors).hexdigest(),
            "layers": layers, "aliases": aliases, "model": model_info or {}}
    write_files({path: tensors, path.with_suffix(".json"): json.dumps(meta, indent=2) + "\n"})


def _file_name(what: str, path) -> Path:
    """``path`` as a :class:`~pathlib.Path` if it is a str or path-like."""
    import os

    if not isinstance(path, (str, os.PathLike)):
        raise ValueError(f"{what} must be a file name (str or pathlib.Path), not {type(path).__name__}")
    return Path(path)


def load_quantized(path, model: nn.Module | None = None) -> nn.Module:
    """Rebuild a quantized model written by :func:`save_quantized`. Never unpickles.

    ``model``: a float model of the same architecture (left unchanged; its linear-like layers named
    in the sidecar -- ``nn.Linear`` and subclasses, Hugging Face ``Conv1D`` -- are replaced, their
    weights discarded).  When None, the model is rebuilt from the sidecar's ``model`` entry
    (``{"name": ..., "config": {...}}``, a model of the zoo ``models/``), on the ``meta`` device
    first, so that sizes in the sidecar are checked against the tensors before anything is allocated.

    Checked, each a ``ValueError`` naming the file, the layer and what is allowed: the sidecar's
    structure (a JSON object of this format and version; each layer's fields and their types), the
    SHA-256 of the tensor file against the sidecar, the layer metadata in the tensor file's header
    against the sidecar's, every tensor's name, dtype and shape against the model's layout (per
    format: ``codes`` uint8 [K, N]; ``exponent`` int32 or ``scale`` float32 of [N] or [1] by
    granularity; ``smooth`` float32 [K] and ``channel_scale`` float32 [N] where the sidecar says
    the layer has them), and the values (:func:`rf8hw.nn.quant.layout.check_values`).
    """
    from safetensors import safe_open

    from rf8hw.nn.checkpoint import build_model, check_tensors, read_json, read_safetensors

    path = _file_name("quantized model file", path)
    if path.suffix == ".json":
        raise ValueError(f"quantized model file {str(path)!r} is the sidecar; give the .safetensors file "
                         "next to it")
    sidecar = path.with_suffix(".json")
    where = f"quantized model sidecar {sidecar}"
    meta = read_json(sidecar, "quantized model sidecar")
    if meta.get("format") != FILE_FORMAT or meta.get("version") != FILE_VERSION:
        raise ValueError(f"{where} is not an {FILE_FORMAT} v{FILE_VERSION} sidecar "
                         f"(format={meta.get('format')!r}, version={meta.get('version')!r})")
    for key, kind in (("tensors_sha256", str), ("layers", dict), ("aliases", dict), ("model", dict)):
        if not isinstance(meta.get(key), kind):
            raise ValueError(f"malformed {where}: {key!r} must be a JSON "
                             f"{'string' if kind is str else 'object'}, not {meta.get(key)!r:.60}")
    layers = {name: check_layer_meta(name, lm, where) for name, lm in meta["layers"].items()}
    if not layers:
        raise ValueError(f"malformed {where}: no layers")
    aliases = meta["aliases"]
    state = read_safetensors(path, "quantized model file")
    digest = sha256_file(path)
    if digest != meta["tensors_sha256"]:
        raise ValueError(f"quantized model file {path}: its SHA-256 {digest[:16]}... is not the sidecar's "
                         f"tensors_sha256 {meta['tensors_sha256'][:16]!s}...: the tensors were changed "
                         "or belong to another sidecar")
    with safe_open(str(path), "pt") as f:
        header = f.metadata() or {}
    try:
        same = (json.loads(header.get("layers", "null")) == layers
                and json.loads(header.get("aliases", "{}")) == aliases)
    except json.JSONDecodeError:
        same = False
    if not same:
        raise ValueError(f"{where}: its layers (or aliases) disagree with those recorded in {path}")
    for alias, name in aliases.items():
        if not isinstance(name, str) or name not in state:
            raise ValueError(f"malformed {where}: alias {alias!r} names {name!r}, which is not in {path}")
        state[alias] = state[name]
    if model is None:
        info = meta["model"]
        if "name" not in info:
            raise ValueError(f"{where} names no zoo model; pass the float model as model=")
        config = info.get("config", {})
        shapes = build_model(info["name"], config, where, meta=True)
        with torch.device("meta"):
            shapes = quantized_skeleton(shapes, layers, where)
        check_tensors(shapes.state_dict(), state, path, "quantized model file")
        model = build_model(info["name"], config, where)
    elif not isinstance(model, nn.Module):
        raise ValueError(f"model must be a torch.nn.Module or None, not {type(model).__name__}")
    else:
        model = copy.deepcopy(model)
    model = quantized_skeleton(model, layers, where)
    check_tensors(model.state_dict(), state, path, "quantized model file")
    model.load_state_dict(state, strict=True)
    for name, q in quant_layers(model).items():
        check_values(name, q, str(path))
    mark_hf_configs(model)
    return model
