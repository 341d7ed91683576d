"""Files of quantized models: :func:`save_quantized` / :func:`load_quantized` (safetensors plus a
JSON sidecar, format ``rf8hw-quantized-model`` version :data:`FILE_VERSION`; never unpickles), and
the marker (:func:`mark_hf_configs`) that makes a quantized Hugging Face model written by another
saver fail loudly when read back.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import torch
import torch.nn as nn

from rf8hw import checks
from rf8hw.files import sha256_file, write_files
from rf8hw.format import spec
from rf8hw.nn.grid import INT8_MAX
from rf8hw.nn.params import positive
from rf8hw.nn.quant.formats import FORMATS, GRANULARITIES, ROUNDINGS
from rf8hw.nn.quant.layer import MODES, QuantLinear, check_mode, is_linear_like, set_child, weight_kn_of
from rf8hw.nn.quant.whole_model import quant_layers

FILE_FORMAT = "rf8hw-quantized-model"
#: 2: tensors_sha256, aliases, layer metadata in the tensor file's header; 3: channel_scale
FILE_VERSION = 3


#: what :func:`mark_hf_configs` stores as ``config.quantization_config``: a dict without
#: ``quant_method``, which Hugging Face ``from_pretrained`` refuses with a ``ValueError`` (transformers
#: 5.24; an unknown ``quant_method`` would only be warned about and skipped, loading random weights)
HF_MARKER = {"rf8hw": "quantized by rf8hw: QuantLinear codes, no float weights. from_pretrained "
                      "cannot load it; build the float model, then rf8hw.nn.quant.load_quantized(path, "
                      "model=float_model) on a file written by rf8hw.nn.quant.save_quantized",
             "format": FILE_FORMAT}


def mark_hf_configs(model: nn.Module) -> None:
    """Mark the Hugging Face config of every module holding a :class:`~rf8hw.nn.quant.QuantLinear`
    (``config`` with ``to_json_string`` and ``model_type``) with :data:`HF_MARKER` as
    ``quantization_config``, so that a quantized model written by ``save_pretrained`` /
    ``SentenceTransformer.save`` fails loudly when ``from_pretrained`` reads it back instead of
    coming back with random float weights.  A config that already has a ``quantization_config`` is
    left alone."""
    for m in model.modules():
        cfg = getattr(m, "config", None)
        if (callable(getattr(cfg, "to_json_string", None)) and hasattr(cfg, "model_type")
                and getattr(cfg, "quantization_config", None) is None
                and any(isinstance(x, QuantLinear) for x in m.modules())):
            cfg.quantization_config = dict(HF_MARKER)


# ----------------------------------------------------------------------------------- export / import

#: the keys of one layer's sidecar entry (:meth:`~rf8hw.nn.quant.QuantLinear.layer_meta`) and their rules
LAYER_FIELDS = {"in_features": "size", "out_features": "size", "fmt": FORMATS,
                "granularity": GRANULARITIES, "rounding": ROUNDINGS, "bias": bool, "mode": MODES,
                "smooth": bool, "channel_scale": bool}


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


def _layer_meta(name: str, lm, where: str) -> dict:
    """A sidecar's entry for layer ``name``, checked field by field."""
    at = f"{where}: layer {name!r}"
    if not isinstance(lm, dict):
        raise ValueError(f"{at} must be a JSON object, not {type(lm).__name__}")
    missing = [k for k in LAYER_FIELDS if k not in lm]
    unknown = sorted(set(lm) - set(LAYER_FIELDS))
    if missing or unknown:
        parts = ([f"missing {', '.join(missing)}"] if missing else []) + (
            [f"unknown {', '.join(unknown)}"] if unknown else [])
        raise ValueError(f"{at}: {'; '.join(parts)} (a layer has {', '.join(LAYER_FIELDS)})")
    for key, rule in LAYER_FIELDS.items():
        if rule == "size":
            checks.integer(f"{at}: {key}", lm[key], 1)
        elif rule is bool:
            if not isinstance(lm[key], bool):
                raise ValueError(f"{at}: {key} must be true or false, not {lm[key]!r}")
        else:
            checks.choice(f"{at}: {key}", lm[key], rule)
    check_mode(lm["mode"], lm["fmt"], f"{at}: ")
    return lm


def _first_bad(mask: torch.Tensor) -> tuple:
    return tuple(int(i) for i in torch.nonzero(mask)[0])


def _check_values(name: str, q: QuantLinear, where: str) -> None:
    """Refuse stored values no encoder writes: RF8 exponents outside ``spec.X_MIN..X_MAX``, scales
    that are not finite and > 0, the INT8 code -128, FP8-E4M3 NaN codes, smoothing factors that are
    not positive powers of two, per-column scales that are not finite and > 0."""
    at = f"{where}: layer {name!r}"
    if q.fmt == "rf8":
        bad = (q.exponent < spec.X_MIN) | (q.exponent > spec.X_MAX)
        if bad.any():
            i = _first_bad(bad)[0]
            checks.integer(f"{at}: exponent[{i}]", int(q.exponent[i]), spec.X_MIN, spec.X_MAX)
    else:
        bad = ~torch.isfinite(q.scale) | (q.scale <= 0)
        if bad.any():
            i = _first_bad(bad)[0]
            positive(f"{at}: scale[{i}]", float(q.scale[i]))
    if q.fmt == "int8" and (q.codes == 0x80).any():
        k, n = _first_bad(q.codes == 0x80)
        raise ValueError(f"{at}: code 0x80 (-128) at [{k}, {n}] is not an INT8 weight code "
                         f"(the symmetric format uses -{INT8_MAX}..{INT8_MAX})")
    if q.fmt == "fp8_e4m3":
        nan = q.codes.view(torch.float8_e4m3fn).float().isnan()
        if nan.any():
            k, n = _first_bad(nan)
            raise ValueError(f"{at}: code 0x{int(q.codes[k, n]):02x} at [{k}, {n}] is an FP8-E4M3 NaN, "
                             "not a weight (codes encode finite values)")
    if q.smooth is not None:
        s = q.smooth
        bad = ~torch.isfinite(s) | (s <= 0)
        bad |= ~bad & (s != torch.exp2(torch.round(torch.log2(s.abs().clamp_min(1e-45)))))
        if bad.any():
            i = _first_bad(bad)[0]
            raise ValueError(f"{at}: smooth[{i}] must be a positive power of two, not {float(s[i])!r}")
    if q.channel_scale is not None:
        bad = ~torch.isfinite(q.channel_scale) | (q.channel_scale <= 0)
        if bad.any():
            i = _first_bad(bad)[0]
            positive(f"{at}: channel_scale[{i}]", float(q.channel_scale[i]))


def _quantized_skeleton(model: nn.Module, layers: dict, where: str) -> nn.Module:
    """``model`` (changed in place) with a :class:`~rf8hw.nn.quant.QuantLinear` of each sidecar
    layer in place of the linear-like module of that name, whose shape must agree."""
    for name, lm in layers.items():
        try:
            old = model.get_submodule(name)
        except AttributeError:
            raise ValueError(f"{where}: layer {name!r} is not in the model") from None
        if not is_linear_like(old):
            raise ValueError(f"{where}: layer {name!r} is a {lm['in_features']}x{lm['out_features']} "
                             f"QuantLinear; the model's {name!r} is a {type(old).__name__}, not linear-like")
        K, N = weight_kn_of(old).shape
        if (K, N) != (lm["in_features"], lm["out_features"]):
            raise ValueError(f"{where}: layer {name!r} is {lm['in_features']}x{lm['out_features']} "
                             f"(in x out), the model's is {K}x{N}")
        ql = QuantLinear(lm["in_features"], lm["out_features"], lm["fmt"], lm["granularity"],
                         lm["rounding"], lm["bias"], lm["mode"])
        if lm["smooth"]:
            ql.smooth = torch.ones(lm["in_features"])
        if lm["channel_scale"]:
            ql.channel_scale = torch.ones(lm["out_features"])
        set_child(model, name, ql)
    return model


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
    the layer has them), and the values (:func:`_check_values`).
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
    layers = {name: _layer_meta(name, lm, where) for name, lm in meta["layers"].items()}
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
            shapes = _quantized_skeleton(shapes, layers, where)
        check_tensors(shapes.state_dict(), state, path, "quantized model file")
        model = build_model(info["name"], config, where)
    elif not isinstance(model, nn.Module):
        raise ValueError(f"model must be a torch.nn.Module or None, not {type(model).__name__}")
    else:
        model = copy.deepcopy(model)
    model = _quantized_skeleton(model, layers, where)
    check_tensors(model.state_dict(), state, path, "quantized model file")
    model.load_state_dict(state, strict=True)
    for name, q in quant_layers(model).items():
        _check_values(name, q, str(path))
    mark_hf_configs(model)
    return model
