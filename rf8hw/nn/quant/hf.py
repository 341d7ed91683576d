"""Hugging Face transformers integration: RF8 checkpoints through ``save_pretrained`` /
``from_pretrained``.

An rf8hw-quantized Hugging Face model (``quantize_`` or ``load_quantized`` of a ``PreTrainedModel``,
or of a ``SentenceTransformer``, whose transformer is one) carries :class:`RF8Config` as
``config.quantization_config`` and :class:`RF8HfQuantizer` as ``hf_quantizer`` (:func:`attach`).

* ``save_pretrained(dir)`` writes ``config.json`` with ``quantization_config = {"quant_method":
  "rf8hw", "format": "rf8hw-hf-checkpoint", "version": 1, "layers": {name: layer metadata}}``
  (the fields of :data:`rf8hw.nn.quant.layout.LAYER_FIELDS`) and ``model.safetensors`` with every
  ``QuantLinear``'s ``codes`` (uint8 ``[K, N]``), ``exponent`` (int32) or ``scale`` (float32),
  ``smooth`` / ``channel_scale`` where used, ``bias``, the float parameters of everything else,
  and one **guard** per quantized layer: ``<layer>.weight``, an empty uint8 tensor.
* ``from_pretrained(dir)`` where rf8hw is imported (:func:`register` has run: ``import rf8hw``
  arranges it, see ``rf8hw/__init__.py``) builds the float architecture on the ``meta`` device,
  replaces each listed layer with a ``QuantLinear`` skeleton of that metadata
  (:func:`rf8hw.nn.quant.layout.quantized_skeleton`), checks the checkpoint's header (every
  ``QuantLinear`` tensor present with its dtype and shape) before any weight is read, loads the
  tensors and checks their values (:func:`rf8hw.nn.quant.layout.check_values`).  The guards are
  ignored.
* A loader without rf8hw (stock transformers) does not know ``quant_method`` ``"rf8hw"``: it warns
  and builds the float model, and then finds each guard ``<layer>.weight`` with shape ``[0]``
  where the float model has ``[N, K]``: a size mismatch, which transformers refuses
  (``RuntimeError``) instead of initialising the weights randomly.

This module imports transformers at its top: it is imported only when transformers is loaded
already (by :func:`rf8hw.nn.quant.mark_hf_configs` on a model that has a Hugging Face config, or by
``rf8hw``'s import hook when transformers loads its quantizers).
"""

from __future__ import annotations

import re

import torch
import torch.nn as nn
from transformers.quantizers.auto import (
                                          AUTO_QUANTIZATION_CONFIG_MAPPING,
                                          AUTO_QUANTIZER_MAPPING,
                                          register_quantization_config,
                                          register_quantizer,
)
from transformers.quantizers.base import HfQuantizer
from transformers.utils.quantization_config import QuantizationConfigMixin

from rf8hw.nn.quant.layer import QuantLinear
from rf8hw.nn.quant.layout import check_layer_meta, check_values, quantized_skeleton

#: ``quant_method`` of rf8hw's checkpoints in ``config.json``
QUANT_METHOD = "rf8hw"
HF_FORMAT = "rf8hw-hf-checkpoint"
HF_VERSION = 1
#: safetensors dtype names of the tensors a ``QuantLinear`` stores
_ST_DTYPES = {torch.uint8: "U8", torch.int32: "I32", torch.float32: "F32", torch.bfloat16: "BF16",
              torch.float16: "F16", torch.float64: "F64"}
_WHERE = "rf8hw quantization_config (config.json)"


def hf_layers(model: nn.Module) -> dict:
    """``{name: layer metadata}`` of every ``QuantLinear`` of ``model`` under every name it has (a
    layer shared by two names is listed twice and stored twice)."""
    return {n: m.layer_meta() for n, m in model.named_modules(remove_duplicate=False)
            if isinstance(m, QuantLinear)}


class RF8Config(QuantizationConfigMixin):
    """``config.quantization_config`` of an rf8hw-quantized Hugging Face model.

    ``layers``: ``{layer name (relative to the model that owns the config): layer metadata}``, each
    entry checked as a sidecar's layer is (:func:`rf8hw.nn.quant.layout.check_layer_meta`);
    ``format`` / ``version`` must be :data:`HF_FORMAT` / :data:`HF_VERSION`.  Unknown keys are
    refused, naming them."""

    def __init__(self, layers: dict | None = None, format: str = HF_FORMAT, version: int = HF_VERSION,
                 **kwargs):
        kwargs.pop("quant_method", None)
        if kwargs:
            raise ValueError(f"{_WHERE}: unknown keys {', '.join(sorted(kwargs))} (it has quant_method, "
                             "format, version, layers)")
        if format != HF_FORMAT or version != HF_VERSION:
            raise ValueError(f"{_WHERE} is not an {HF_FORMAT} v{HF_VERSION} config "
                             f"(format={format!r}, version={version!r})")
        if not isinstance(layers, dict) or not layers:
            raise ValueError(f"{_WHERE}: layers must be a non-empty JSON object, not {layers!r:.60}")
        self.quant_method = QUANT_METHOD
        self.format, self.version = format, version
        self.layers = {n: check_layer_meta(n, lm, _WHERE) for n, lm in layers.items()}


def _checkpoint_header(files) -> dict:
    """``{name: (safetensors dtype, shape)}`` of the tensors in the checkpoint files (headers only)."""
    from safetensors import safe_open

    out = {}
    for f in files or ():
        if not str(f).endswith(".safetensors"):
            raise ValueError(f"rf8hw checkpoint file {f}: only safetensors files are read (never pickles)")
        with safe_open(str(f), "pt") as fh:
            for k in fh.keys():
                s = fh.get_slice(k)
                out[k] = (s.get_dtype(), tuple(s.get_shape()))
    return out


class RF8HfQuantizer(HfQuantizer):
    """Loads (and saves) rf8hw checkpoints in ``from_pretrained`` / ``save_pretrained``; it does not
    quantize float weights while loading (``requires_calibration``: quantize with
    :func:`rf8hw.quantize_`, then ``save_pretrained``)."""

    requires_calibration = True

    def update_dtype(self, dtype):
        if dtype is not None and dtype != torch.float32:
            raise ValueError(f"an rf8hw checkpoint loads in float32 (QuantLinear computes in float32 and "
                             f"keeps its biases in float32), not dtype {dtype}; leave dtype out or give "
                             "torch.float32")
        return torch.float32

    def _model_layers(self, model) -> dict:
        """``{checkpoint name: name in model}`` of the config's layers.  A checkpoint written by a
        model with a head (``GPT2LMHeadModel``: ``transformer.h.0...``, ``lm_head``) loaded into
        its base model (``AutoModel``: ``h.0...``) loses the ``base_model_prefix`` and its head
        layers, as transformers maps the weights; the other way round, the prefix is added."""
        prefix = getattr(model, "base_model_prefix", "")
        names = {n for n, _ in model.named_modules()}
        out = {}
        for name in self.quantization_config.layers:
            if name in names:
                out[name] = name
            elif prefix and name.startswith(prefix + ".") and prefix not in names:
                if name[len(prefix) + 1:] in names:
                    out[name] = name[len(prefix) + 1:]
            elif prefix and f"{prefix}.{name}" in names:
                out[name] = f"{prefix}.{name}"
            elif not (prefix and prefix not in names):
                out[name] = name         # quantized_skeleton names it as missing
        return out

    def _process_model_before_weight_loading(self, model, checkpoint_files=None, **kwargs):
        mapping = self._model_layers(model)
        self.layer_names = list(mapping.values())
        quantized_skeleton(model, {mapping[n]: lm for n, lm in self.quantization_config.layers.items()
                                   if n in mapping}, _WHERE)
        header = _checkpoint_header(checkpoint_files)
        for name, inside in mapping.items():
            for key, t in model.get_submodule(inside).state_dict().items():
                full = f"{name}.{key}"
                want = (_ST_DTYPES.get(t.dtype, str(t.dtype)), tuple(t.shape))
                if full not in header:
                    raise ValueError(f"rf8hw checkpoint: {full} ({want[0]} {list(want[1])}) is not in "
                                     f"{', '.join(str(f) for f in checkpoint_files or ())}; layer {name!r} "
                                     "would be left without its codes")
                if header[full] != want:
                    have = header[full]
                    raise ValueError(f"rf8hw checkpoint: {full} is {have[0]} {list(have[1])}, "
                                     f"layer {name!r} needs {want[0]} {list(want[1])}")
        guards = {"(^|\\.)" + re.escape(n) + r"\.weight$" for n in mapping.values()}
        ignored = set(model._keys_to_ignore_on_load_unexpected or ())
        model._keys_to_ignore_on_load_unexpected = ignored | guards
        return model

    def _process_model_after_weight_loading(self, model, **kwargs):
        for name in self.layer_names:
            check_values(name, model.get_submodule(name), "rf8hw checkpoint")
        self.quantization_config.layers = hf_layers(model)      # names in this model (AutoModel: no prefix)
        return model

    def get_state_dict_and_metadata(self, model):
        """The state dict with a copy of each tensor that another name shares (safetensors stores
        each once) and one empty uint8 guard ``<layer>.weight`` per quantized layer."""
        state, seen = {}, set()
        for k, v in model.state_dict().items():
            key = (v.data_ptr(), v.dtype, tuple(v.shape), v.stride()) if v.numel() else None
            state[k] = v.detach().clone() if key in seen else v
            seen.add(key)
        for name in hf_layers(model):
            state[f"{name}.weight"] = torch.zeros(0, dtype=torch.uint8)
        return state, {}

    def is_serializable(self):
        return True

    @property
    def is_trainable(self) -> bool:
        return False


def register() -> None:
    """Register :class:`RF8Config` and :class:`RF8HfQuantizer` with transformers under
    :data:`QUANT_METHOD` (idempotent; a different class already registered under that name is an
    error)."""
    for mapping, cls, reg in ((AUTO_QUANTIZATION_CONFIG_MAPPING, RF8Config, register_quantization_config),
                              (AUTO_QUANTIZER_MAPPING, RF8HfQuantizer, register_quantizer)):
        if QUANT_METHOD not in mapping:
            reg(QUANT_METHOD)(cls)
        elif mapping[QUANT_METHOD] is not cls:
            raise ValueError(f"transformers already has a {QUANT_METHOD!r} quantization method "
                             f"({mapping[QUANT_METHOD].__module__}.{mapping[QUANT_METHOD].__name__}), "
                             "not rf8hw's")


def attach(model: nn.Module) -> None:
    """Give the Hugging Face model ``model`` (holding ``QuantLinear`` layers) an :class:`RF8Config`
    of its layers as ``config.quantization_config`` (replacing any earlier one) and an
    :class:`RF8HfQuantizer` as ``hf_quantizer``, and :func:`register` them."""
    register()
    cfg = RF8Config(layers=hf_layers(model))
    model.config.quantization_config = cfg
    model.hf_quantizer = RF8HfQuantizer(cfg, pre_quantized=True)


# ------------------------------------------------------------------------------ plain float export

#: dtypes of :func:`export_float`'s quantized weights
EXPORT_DTYPES = {"bfloat16": torch.bfloat16, "float32": torch.float32}


def _inexact_reason(q: QuantLinear) -> str:
    if q.channel_scale is not None:
        return "its per-column scale (scale search) is not a power of two"
    if q.fmt != "rf8":
        return f"its {q.fmt} scale is not a power of two"
    return "its values underflow bfloat16"


def dequantized_weight(q: QuantLinear) -> torch.Tensor:
    """The float32 weight ``[out_features, in_features]`` that an ``nn.Linear`` needs to compute
    what ``q`` computes in fake-quant: the decoded weight (times ``channel_scale``), divided by the
    power-of-two ``smooth`` factors of its inputs (exact)."""
    w = q.weight_kn()
    if q.smooth is not None:
        w = w / q.smooth[:, None]
    return w.T.contiguous()


def export_float(qmodel: nn.Module, out, dtype: str = "bfloat16", extra_files: dict | None = None) -> dict:
    """Write ``out/config.json`` and ``out/model.safetensors``: a plain transformers checkpoint of the
    quantized Hugging Face model ``qmodel`` whose quantized layers are ordinary linear layers
    (``nn.Linear``, or ``Conv1D`` where the architecture has one) holding the dequantized weights
    (:func:`dequantized_weight`) in ``dtype``; every other tensor keeps its dtype, the config has no
    ``quantization_config`` and ``dtype`` float32.  It loads with stock transformers (no rf8hw)
    and computes what ``qmodel`` computes in fake-quant.

    ``dtype="bfloat16"`` is checked value by value: every RF8 value has at most 5 significant bits,
    so RF8 weights with power-of-two exponents are exact in bfloat16; a layer with a value that is
    not (a per-column scale from the scale search, an INT8 / FP8 / APoT scale) is refused, naming
    it and the number of such values; ``"float32"`` is always exact.  ``extra_files``
    (``{name: bytes}``, e.g. the tokenizer's files) are written beside.  All files are written as
    one unit (:func:`rf8hw.files.write_files`).  Returns ``{"layers", "weights", "dtype", "files"}``."""
    import copy
    from pathlib import Path

    from safetensors.torch import save

    from rf8hw import checks
    from rf8hw.files import write_files
    from rf8hw.nn.quant.layer import is_conv1d

    checks.choice("dtype", dtype, tuple(EXPORT_DTYPES))
    target = EXPORT_DTYPES[dtype]
    layers = {n: m for n, m in qmodel.named_modules(remove_duplicate=False) if isinstance(m, QuantLinear)}
    if not layers or not hasattr(qmodel, "config"):
        raise ValueError(f"export needs a quantized Hugging Face model (QuantLinear layers and a config), "
                         f"not a {type(qmodel).__name__} with {len(layers)} QuantLinear layers")
    out = Path(checks.output_dir("export output directory", out))
    cfg = copy.deepcopy(qmodel.config)
    if hasattr(cfg, "quantization_config"):
        del cfg.quantization_config
    cfg.dtype = torch.float32
    with torch.device("meta"):
        skeleton = type(qmodel)(cfg)
    expected = skeleton.state_dict()
    state = {k: v for k, v in qmodel.state_dict().items()
             if not any(k.startswith(n + ".") for n in layers)}
    count = 0
    for name, q in layers.items():
        w = dequantized_weight(q)
        w_t = w.to(target)
        bad = w_t.float() != w
        if bad.any():
            n, k = (int(i) for i in torch.nonzero(bad)[0])
            raise ValueError(f"layer {name!r}: {int(bad.sum())} of {w.numel()} dequantized weights are not "
                             f"exact in {dtype} (first [{n}, {k}] = {float(w[n, k])!r}): "
                             f"{_inexact_reason(q)}; export in float32 (dtype 'float32', --dtype float32)")
        orig = skeleton.get_submodule(name)
        state[f"{name}.weight"] = (w_t.T if is_conv1d(orig) else w_t).contiguous()
        if q.bias is not None:
            state[f"{name}.bias"] = q.bias.detach()
        count += w.numel()
    unknown = sorted(set(state) - set(expected))
    absent = sorted(set(expected) - set(state))
    if unknown or absent:
        raise ValueError(f"export of {type(qmodel).__name__}: the state dict does not match the float "
                         f"architecture (unexpected {unknown[:3]}, missing {absent[:3]})")
    for k, v in state.items():
        if tuple(v.shape) != tuple(expected[k].shape):
            raise ValueError(f"export of {type(qmodel).__name__}: {k} is {list(v.shape)}, the float "
                             f"architecture has {list(expected[k].shape)}")
    kept, seen = {}, {}
    tied = bool(getattr(cfg, "tie_word_embeddings", False))
    for k, v in state.items():
        key = (v.data_ptr(), v.dtype, tuple(v.shape)) if v.numel() else None
        if key is not None and key in seen:
            if tied:
                continue                 # tied (lm_head to the embedding): transformers ties it on load
            v = v.clone()
        seen.setdefault(key, k)
        kept[k] = v.detach().contiguous()
    files = {out / name: data for name, data in (extra_files or {}).items()}
    files[out / "config.json"] = cfg.to_json_string(use_diff=True)
    files[out / "model.safetensors"] = save(kept, metadata={"format": "pt"})
    out.mkdir(parents=True, exist_ok=True)
    write_files(files)
    return {"layers": len(layers), "weights": count, "dtype": dtype, "files": sorted(p.name for p in files)}


register()        # importing this module registers rf8hw with transformers
