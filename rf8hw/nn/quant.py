"""Weight-only quantization of ``nn.Linear`` layers: RF8 and the INT8 / FP8 E4M3 / APoT baselines.

``quantize(model, fmt=...)`` returns a copy of the model whose ``nn.Linear`` layers (except those
matched by ``skip``) are :class:`QuantLinear`: they hold **packed 8-bit codes and their exponents or
scales only**, never a float copy of the weight, and run fake-quant in float (the weight is decoded
on every forward pass).  Activations stay float, as in the paper.

Storage of one layer with ``in_features = K`` and ``out_features = N`` (buffers, exported as is):

* ``codes``: ``uint8 [K, N]``, the transpose of ``nn.Linear.weight``; this is the ``[K, N]`` weight
  operand of :func:`rf8hw.format.golden.matmul`, so ``y = x @ decode(codes)``.
* ``rf8``: ``exponent``, ``int32 [N]`` (``granularity="channel"``: one shared exponent X per output
  channel = per column of ``codes``) or ``[1]`` (``"tensor"``).  Codes and X follow
  ``docs/rf8-format.md`` exactly (:mod:`rf8hw.format.codec` encodes and decodes; nothing is re-implemented).
  X is the absmax rule of :func:`rf8hw.format.codec.shared_exponent`, so no weight saturates.
* ``int8``: ``scale``, ``float32 [N]`` or ``[1]``; codes are two's complement bytes of
  ``q = round_half_even(w / scale)`` with ``scale = max|w| / 127`` (symmetric; -128 never used).
* ``fp8_e4m3``: ``scale``, ``float32 [1]`` or ``[N]``; codes are the bits of ``torch.float8_e4m3fn``
  of ``w / scale`` with ``scale = max|w| / 448`` (round to nearest even, done by torch's cast).
* ``apot``: ``scale``, ``float32 [N]`` or ``[1]``; code ``s iiii jjj`` means
  ``(-1)**s * scale * (P1[i] + P2[j])`` with ``P1 = (0, 2**0, 2**-2, ..., 2**-28)`` (even powers) and
  ``P2 = (0, 2**-1, 2**-3, ..., 2**-13)`` (odd powers): two additive power-of-two terms (APoT, Li et
  al., ICLR 2020) in 1 + 4 + 3 bits.  The 128 sums are distinct (binary digits of disjoint
  positions); the largest is 1.5, so ``scale = max|w| / 1.5``.  Encoding picks the nearest level,
  ties to the smaller magnitude.

A layer whose weights are all zero gets ``scale = 1`` / ``X = 0`` (zeros encode exactly).

``mode``: ``"fake"`` (decode to float, ``F.linear``) or ``"bitexact"`` (RF8 only, :mod:`rf8hw.nn.bitexact`):
``x`` is quantized to signed integers ``a`` with a scale ``act_scale`` and, per output column n,
``golden.matmul(a, codes) * 2**(exponent[n] - spec.PRODUCT_SHIFT) * act_scale`` is computed.
Each layer owns the :class:`~rf8hw.hdl.config.ArrayConfig` whose arithmetic it models
(``QuantLinear.array``), its static activation clipping level (``act_absmax``) and its
:class:`~rf8hw.nn.bitexact.OverflowStats` (``overflow_stats``).  The whole-model functions of the
bit-exact path are here: :func:`set_mode`, :func:`calibrate`, :func:`overflow_report`,
:func:`reset_stats` (and :func:`rf8_layers`).
"""

from __future__ import annotations

import copy
import fnmatch
import json
import math
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from rf8hw.format import codec
from rf8hw.hdl.config import ArrayConfig
from rf8hw.nn import bitexact
from rf8hw.nn.bitexact import OverflowStats
from rf8hw.nn.params import non_negative

FORMATS = ("rf8", "int8", "fp8_e4m3", "apot")
ROUNDINGS = ("paper", "nearest")        # RF8 only; the baselines always round to nearest
GRANULARITIES = ("tensor", "channel")
MODES = ("fake", "bitexact")   # "bitexact": RF8 only, see rf8hw.nn.bitexact
#: the granularity each format gets when ``granularity=None``
DEFAULT_GRANULARITY = {"rf8": "channel", "int8": "channel", "fp8_e4m3": "tensor", "apot": "channel"}
FILE_FORMAT = "rf8hw-quantized-model"
FILE_VERSION = 1

INT8_MAX = 127
FP8_E4M3_MAX = 448.0
APOT_P1 = tuple([0.0] + [2.0 ** (-2 * i) for i in range(15)])     # 4 bits: 0, 1, 2^-2 ... 2^-28
APOT_P2 = tuple([0.0] + [2.0 ** (-2 * j - 1) for j in range(7)])   # 3 bits: 0, 2^-1 ... 2^-13
#: magnitude of code bits 6..0 (``iiii jjj``): ``P1[i] + P2[j]``, exact in float32
APOT_LEVELS = np.array([APOT_P1[c >> 3] + APOT_P2[c & 7] for c in range(128)], dtype=np.float32)
APOT_MAX = float(APOT_LEVELS.max())     # 1.5


def _check_choice(name, value, allowed):
    if value not in allowed:
        raise ValueError(f"unknown {name} {value!r}; choose one of {', '.join(allowed)}")


def _check_array(array) -> ArrayConfig:
    """``array`` (default ``ArrayConfig()``) if it is an :class:`ArrayConfig` of an RF8 PE kind."""
    if array is None:
        return ArrayConfig()
    if not isinstance(array, ArrayConfig):
        raise ValueError(f"array must be an rf8hw.hdl.config.ArrayConfig or None, "
                         f"not {type(array).__name__}")
    if not array.pe_kind.is_rf8:
        raise ValueError(f"array.pe must be an RF8 PE kind (the bit-exact path multiplies RF8 codes), "
                         f"not {array.pe!r}, which multiplies {array.pe_kind.weight_format} weights")
    return array


def _check_absmax(name: str, absmax) -> float | None:
    return None if absmax is None else non_negative(name, absmax)


# --------------------------------------------------------------------------- encode / decode per format

def _absmax(w: np.ndarray, granularity: str) -> np.ndarray:
    """max|w| over K per output column of ``w [K, N]`` -> [N], or over everything -> [1]."""
    a = np.abs(w).max(axis=0) if granularity == "channel" else np.abs(w).max(keepdims=True).reshape(1)
    return a.astype(np.float32)


def _apot_encode(u: np.ndarray) -> np.ndarray:
    """Nearest APoT code (ties to the smaller magnitude) of ``u`` in units of ``scale``."""
    order = np.argsort(APOT_LEVELS, kind="stable")
    levels = APOT_LEVELS[order].astype(np.float64)
    mids = (levels[:-1] + levels[1:]) / 2
    idx = np.searchsorted(mids, np.abs(u).astype(np.float64), side="left")   # |u| == mid -> lower level
    return (order[idx].astype(np.uint8) | np.where(u < 0, 0x80, 0).astype(np.uint8)).astype(np.uint8)


def encode_weight(w_kn: np.ndarray, fmt: str, granularity: str, rounding: str = "nearest"):
    """Encode a ``[K, N]`` float32 weight; returns ``(codes uint8 [K, N], params dict of arrays)``.

    ``params`` holds ``exponent`` (int32, RF8) or ``scale`` (float32, the baselines), shape ``[N]``
    or ``[1]``.
    """
    _check_choice("format", fmt, FORMATS)
    _check_choice("granularity", granularity, GRANULARITIES)
    _check_choice("rounding", rounding, ROUNDINGS)
    w = np.ascontiguousarray(w_kn, dtype=np.float32)
    if not np.isfinite(w).all():
        k, n = (int(i) for i in np.argwhere(~np.isfinite(w))[0])
        raise ValueError(f"weight contains NaN/Inf (first {float(w[k, n])!r} at out-feature {n}, "
                         f"in-feature {k}); quantization needs finite weights")
    if fmt == "rf8":
        X = codec.shared_exponent(w, axis=0 if granularity == "channel" else None)
        X = np.asarray(X, dtype=np.int32).reshape(-1)
        codes = codec.encode(w, _rf8_exponent_arg(X), rounding=rounding, on_saturate="error")
        return codes, {"exponent": X}
    scale = _absmax(w, granularity)
    top = {"int8": INT8_MAX, "fp8_e4m3": FP8_E4M3_MAX, "apot": APOT_MAX}[fmt]
    scale = np.where(scale > 0, scale / np.float32(top), np.float32(1)).astype(np.float32)
    u = w / scale                                                   # [K, N] / [N] or [1]
    if fmt == "int8":
        codes = np.clip(np.rint(u), -INT8_MAX, INT8_MAX).astype(np.int8).view(np.uint8)
    elif fmt == "fp8_e4m3":
        # |u| <= 448 up to one float32 rounding of the division; the clip only absorbs that ulp
        t = torch.from_numpy(np.clip(u, -FP8_E4M3_MAX, FP8_E4M3_MAX))
        codes = t.to(torch.float8_e4m3fn).view(torch.uint8).numpy()
    else:
        codes = _apot_encode(u)
    return np.ascontiguousarray(codes), {"scale": scale}


def _rf8_exponent_arg(X: np.ndarray):
    return int(X[0]) if X.size == 1 else X.astype(np.int64)


def decode_weight(codes: torch.Tensor, fmt: str, params: dict) -> torch.Tensor:
    """Float32 ``[K, N]`` weight from the stored codes and ``exponent``/``scale`` buffers."""
    if fmt == "rf8":
        X = params["exponent"].numpy()
        return torch.from_numpy(codec.decode(codes.numpy(), _rf8_exponent_arg(X)))
    scale = params["scale"]
    if fmt == "int8":
        return codes.view(torch.int8).to(torch.float32) * scale
    if fmt == "fp8_e4m3":
        return codes.view(torch.float8_e4m3fn).to(torch.float32) * scale
    if fmt == "apot":
        mag = torch.from_numpy(APOT_LEVELS)[(codes & 0x7F).long()]
        return torch.where(codes >= 0x80, -mag, mag) * scale
    raise ValueError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")


# ------------------------------------------------------------------------------------------ the layer

class QuantLinear(nn.Module):
    """A ``nn.Linear`` whose weight is stored as packed 8-bit codes (see the module docstring).

    Parameters
    ----------
    in_features, out_features : int
    fmt : {"rf8", "int8", "fp8_e4m3", "apot"}
    granularity : {"tensor", "channel"}
    rounding : {"paper", "nearest"}
        RF8 rounding rule (ignored by the baselines, recorded anyway).
    bias : bool
    mode : {"fake", "bitexact"}
        ``"fake"``: decode the codes to float32 and run ``F.linear``.  ``"bitexact"`` (RF8 only):
        INT8 activations through the array's integer model, :func:`rf8hw.nn.bitexact.linear`.
    array : ArrayConfig, optional
        The MAC array the bit-exact path models; its ``act_bits``, ``acc_bits`` and ``overflow``
        set the arithmetic, its ``pe`` must be an RF8 kind.  Default ``ArrayConfig()`` (8-bit
        activations, 40-bit wrapping accumulator).  Used only in ``mode="bitexact"``.
    act_absmax : float or None
        Static activation clipping level of the bit-exact path (:func:`calibrate`); None: the
        per-call ``max|x|``.

    Attributes
    ----------
    codes : torch.Tensor, uint8 [in_features, out_features]
    exponent : torch.Tensor, int32 [out_features] or [1] (RF8 only)
    scale : torch.Tensor, float32 [out_features] or [1] (baselines only)
    bias : torch.nn.Parameter or None, float32 [out_features] (kept in float)
    array : ArrayConfig
    act_absmax : float or None
    overflow_stats : rf8hw.nn.bitexact.OverflowStats
        What the bit-exact path saw since the last :func:`set_mode` / :func:`reset_stats`.

    ``array``, ``act_absmax`` and ``overflow_stats`` are plain attributes, not part of the state
    dict (:func:`save_quantized` does not store them; :func:`set_mode` sets them per model).
    """

    def __init__(self, in_features: int, out_features: int, fmt: str = "rf8",
                 granularity: str = "channel", rounding: str = "nearest", bias: bool = True,
                 mode: str = "fake", array: ArrayConfig | None = None, act_absmax: float | None = None):
        super().__init__()
        _check_choice("format", fmt, FORMATS)
        _check_choice("granularity", granularity, GRANULARITIES)
        _check_choice("rounding", rounding, ROUNDINGS)
        _check_choice("mode", mode, MODES)
        if mode == "bitexact" and fmt != "rf8":
            raise ValueError(f"mode 'bitexact' needs fmt='rf8', not {fmt!r}")
        self.in_features, self.out_features = in_features, out_features
        self.fmt, self.granularity, self.rounding, self.mode = fmt, granularity, rounding, mode
        self.array: ArrayConfig = _check_array(array)
        self.act_absmax: float | None = _check_absmax("act_absmax", act_absmax)
        self.overflow_stats = OverflowStats()
        n = out_features if granularity == "channel" else 1
        self.register_buffer("codes", torch.zeros(in_features, out_features, dtype=torch.uint8))
        if fmt == "rf8":
            self.register_buffer("exponent", torch.zeros(n, dtype=torch.int32))
        else:
            self.register_buffer("scale", torch.ones(n, dtype=torch.float32))
        self.bias = nn.Parameter(torch.zeros(out_features)) if bias else None

    @classmethod
    def from_linear(cls, linear: nn.Linear, fmt: str = "rf8", granularity: str = "channel",
                    rounding: str = "nearest", mode: str = "fake",
                    array: ArrayConfig | None = None) -> "QuantLinear":
        """Quantize the weight of ``linear`` (which is left unchanged)."""
        q = cls(linear.in_features, linear.out_features, fmt, granularity, rounding,
                bias=linear.bias is not None, mode=mode, array=array)
        codes, params = encode_weight(linear.weight.detach().cpu().numpy().T, fmt, granularity, rounding)
        q.codes.copy_(torch.from_numpy(codes))
        for name, value in params.items():
            getattr(q, name).copy_(torch.from_numpy(value))
        if linear.bias is not None:
            q.bias.data.copy_(linear.bias.detach())
        return q

    def params(self) -> dict:
        return {"exponent": self.exponent} if self.fmt == "rf8" else {"scale": self.scale}

    def weight_kn(self) -> torch.Tensor:
        """The decoded weight, float32 ``[in_features, out_features]``."""
        return decode_weight(self.codes, self.fmt, self.params())

    def forward(self, x):
        if self.mode == "bitexact":
            if self.fmt != "rf8":
                raise ValueError(f"mode 'bitexact' needs an RF8 layer, this one is {self.fmt!r}; "
                                 "quantize with fmt='rf8'")
            return bitexact.linear(x, self.codes, self.exponent, self.bias, self.array,
                                   self.act_absmax, self.overflow_stats)
        return F.linear(x, self.weight_kn().T, self.bias)       # fake-quant

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, fmt={self.fmt}, "
                f"granularity={self.granularity}, rounding={self.rounding}, mode={self.mode}")

    def layer_meta(self) -> dict:
        return {"in_features": self.in_features, "out_features": self.out_features, "fmt": self.fmt,
                "granularity": self.granularity, "rounding": self.rounding,
                "bias": self.bias is not None, "mode": self.mode}


# --------------------------------------------------------------------------------------- whole model

def _set_child(model: nn.Module, name: str, new: nn.Module) -> None:
    parent, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, child, new)


def quantize(model: nn.Module, fmt: str = "rf8", rounding: str = "nearest", granularity: str | None = None,
             skip=(), mode: str = "fake") -> nn.Module:
    """A copy of ``model`` with every ``nn.Linear`` replaced by a :class:`QuantLinear`.

    Parameters
    ----------
    model : torch.nn.Module
        Left unchanged.
    fmt : {"rf8", "int8", "fp8_e4m3", "apot"}
    rounding : {"paper", "nearest"}
        RF8 rounding rule (``docs/rf8-format.md``).
    granularity : {"tensor", "channel"} or None
        One scale/exponent per layer or per output channel; None: ``DEFAULT_GRANULARITY[fmt]``.
    skip : sequence of str
        Module names (``fnmatch`` patterns, e.g. ``"lm_head"`` or ``"blocks.0.*"``) left in float.
        A pattern that matches no ``nn.Linear`` is an error.
    mode : {"fake", "bitexact"}

    Returns
    -------
    torch.nn.Module
    """
    _check_choice("format", fmt, FORMATS)
    _check_choice("rounding", rounding, ROUNDINGS)
    granularity = DEFAULT_GRANULARITY[fmt] if granularity is None else granularity
    _check_choice("granularity", granularity, GRANULARITIES)
    _check_choice("mode", mode, MODES)
    if isinstance(skip, str):
        skip = [skip]
    linears = [n for n, m in model.named_modules() if type(m) is nn.Linear]
    for pattern in skip:
        if not any(fnmatch.fnmatchcase(n, pattern) for n in linears):
            raise ValueError(f"skip pattern {pattern!r} matches no nn.Linear; linear layers are: "
                             f"{', '.join(linears) or '(none)'}")
    qmodel = copy.deepcopy(model)
    for name in linears:
        if any(fnmatch.fnmatchcase(name, p) for p in skip):
            continue
        try:
            q = QuantLinear.from_linear(qmodel.get_submodule(name), fmt, granularity, rounding, mode)
        except ValueError as exc:
            raise ValueError(f"layer {name!r}: {exc}") from exc
        _set_child(qmodel, name, q)
    return qmodel


def quant_layers(model: nn.Module) -> dict[str, QuantLinear]:
    return {n: m for n, m in model.named_modules() if isinstance(m, QuantLinear)}


def sqnr_db(model: nn.Module, qmodel: nn.Module) -> float:
    """Weight SQNR in dB, ``10 log10(sum w^2 / sum (w - w_hat)^2)``, pooled over the quantized layers."""
    sig = err = 0.0
    for name, q in quant_layers(qmodel).items():
        w = model.get_submodule(name).weight.detach().double().T
        w_hat = q.weight_kn().double()
        sig += float((w ** 2).sum())
        err += float(((w - w_hat) ** 2).sum())
    return math.inf if err == 0 else 10 * math.log10(sig / err)


# ------------------------------------------------------------------------- bit-exact, whole model

def rf8_layers(model: nn.Module) -> dict[str, QuantLinear]:
    """The RF8 :class:`QuantLinear` layers of ``model`` by name; refuses a model without any."""
    layers = {n: m for n, m in model.named_modules() if isinstance(m, QuantLinear) and m.fmt == "rf8"}
    if not layers:
        raise ValueError("model has no RF8 QuantLinear layer; call rf8hw.quantize(model, fmt='rf8') first")
    return layers


def set_mode(model: nn.Module, mode: str = "bitexact", array: ArrayConfig | None = None,
             absmax: dict | None = None) -> nn.Module:
    """Switch every RF8 ``QuantLinear`` of ``model`` to ``mode`` (in place) and reset its counters.

    Parameters
    ----------
    model : torch.nn.Module
        A model returned by ``rf8hw.quantize(model, fmt="rf8")``.
    mode : {"bitexact", "fake"}
    array : ArrayConfig, optional
        The array every layer's bit-exact arithmetic follows (``act_bits``, ``acc_bits``,
        ``overflow``; ``pe`` must be an RF8 kind).  Default ``ArrayConfig()``: 8-bit activations,
        40-bit wrapping accumulator.
    absmax : dict of str to float, optional
        Static activation clipping levels per layer name (:func:`calibrate`); layers not named
        keep per-call absmax.  A name that is not an RF8 layer is an error.

    Returns
    -------
    torch.nn.Module
        ``model`` itself.
    """
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; choose one of {', '.join(MODES)}")
    array = _check_array(array)
    layers = rf8_layers(model)
    absmax = absmax or {}
    unknown = sorted(set(absmax) - set(layers))
    if unknown:
        raise ValueError(f"absmax names {unknown} which are not RF8 layers; layers are: {', '.join(layers)}")
    levels = {name: _check_absmax(f"absmax[{name!r}]", absmax.get(name)) for name in layers}
    for name, layer in layers.items():
        layer.mode = mode
        layer.array = array
        layer.act_absmax = levels[name]
        layer.overflow_stats = OverflowStats()
    return model


@torch.no_grad()
def calibrate(model: nn.Module, batches) -> dict:
    """Static activation ranges: ``max|x|`` at the input of every RF8 layer over ``batches``.

    Parameters
    ----------
    model : torch.nn.Module
        A quantized model; it runs in whatever mode its layers are in (use ``"fake"`` to calibrate
        on the float path, as a deployment flow would).
    batches : iterable
        Each item is passed to ``model`` (a tuple is unpacked as positional arguments).

    Returns
    -------
    dict of str to float
        Layer name -> absmax; pass it to :func:`set_mode` as ``absmax=``.
    """
    layers = rf8_layers(model)
    seen = {name: 0.0 for name in layers}
    hooks = [layer.register_forward_pre_hook(
        lambda mod, args, name=name: seen.__setitem__(name, max(seen[name], float(args[0].abs().max()))))
        for name, layer in layers.items()]
    n = 0
    try:
        for batch in batches:
            model(*batch) if isinstance(batch, tuple) else model(batch)
            n += 1
    finally:
        for h in hooks:
            h.remove()
    if n == 0:
        raise ValueError("calibrate got no batches")
    return seen


def overflow_report(model: nn.Module) -> dict:
    """Per-layer :class:`~rf8hw.nn.bitexact.OverflowStats` as dicts (``OverflowStats.as_dict``),
    plus ``"total"`` (sums; max of ``max_abs_sum`` and the ``acc_bits_needed`` of that)."""
    out = {name: layer.overflow_stats.as_dict() for name, layer in rf8_layers(model).items()}
    keys = ("calls", "outputs", "events", "clipped_acts", "acts")
    total = {k: sum(v[k] for v in out.values()) for k in keys}
    total["max_abs_sum"] = max(v["max_abs_sum"] for v in out.values())
    total["acc_bits_needed"] = total["max_abs_sum"].bit_length() + 1
    out["total"] = total
    return out


def reset_stats(model: nn.Module) -> None:
    """Zero the overflow counters of every RF8 layer."""
    for layer in rf8_layers(model).values():
        layer.overflow_stats = OverflowStats()


# ----------------------------------------------------------------------------------- export / import

def save_quantized(qmodel: nn.Module, path, model_info: dict | None = None) -> None:
    """Write ``path`` (safetensors: codes, exponents/scales, all float parameters and buffers) and
    ``path`` with suffix ``.json`` (format, version, per-layer metadata, ``model_info``)."""
    from safetensors.torch import save_file

    path = Path(path)
    layers = {n: q.layer_meta() for n, q in quant_layers(qmodel).items()}
    if not layers:
        raise ValueError("model has no QuantLinear layer; call rf8hw.quantize(model, ...) first")
    state = {k: v.detach().contiguous() for k, v in qmodel.state_dict().items()}
    save_file(state, str(path), metadata={"format": FILE_FORMAT})
    meta = {"format": FILE_FORMAT, "version": FILE_VERSION, "layers": layers, "model": model_info or {}}
    path.with_suffix(".json").write_text(json.dumps(meta, indent=2) + "\n")


def load_quantized(path, model: nn.Module | None = None) -> nn.Module:
    """Rebuild a quantized model written by :func:`save_quantized`. Never unpickles.

    ``model``: a float model of the same architecture (its Linear weights are discarded).  When None,
    the model is rebuilt from the sidecar's ``model`` entry (``{"name": ..., "config": {...}}``, a
    model of the zoo ``models/``).
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    sidecar = path.with_suffix(".json")
    for p in (path, sidecar):
        if not p.exists():
            raise FileNotFoundError(f"quantized model file {str(p)!r} does not exist")
    try:
        meta = json.loads(sidecar.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"malformed sidecar {str(sidecar)!r}: not JSON ({exc})") from exc
    if not isinstance(meta, dict) or meta.get("format") != FILE_FORMAT or meta.get("version") != FILE_VERSION:
        raise ValueError(f"{str(sidecar)!r} is not an {FILE_FORMAT} v{FILE_VERSION} sidecar "
                         f"(format={meta.get('format') if isinstance(meta, dict) else None!r})")
    if model is None:
        import models

        info = meta.get("model") or {}
        if "name" not in info:
            raise ValueError(f"{str(sidecar)!r} names no zoo model; pass the float model as model=")
        mod = models.get(info["name"])
        model = mod.build(mod.CONFIG(**info.get("config", {})))
    model = copy.deepcopy(model)
    for name, lm in meta["layers"].items():
        try:
            old = model.get_submodule(name)
        except AttributeError as exc:
            raise ValueError(f"layer {name!r} of {str(sidecar)!r} is not in the model") from exc
        if not isinstance(old, nn.Linear) or (old.in_features, old.out_features) != (lm["in_features"], lm["out_features"]):
            raise ValueError(f"layer {name!r}: file has a {lm['in_features']}x{lm['out_features']} "
                             f"QuantLinear, the model has {old!r}")
        _set_child(model, name, QuantLinear(lm["in_features"], lm["out_features"], lm["fmt"],
                                            lm["granularity"], lm["rounding"], lm["bias"], lm["mode"]))
    try:
        state = load_file(str(path))
    except SafetensorError as exc:
        raise ValueError(f"malformed safetensors file {str(path)!r}: {exc}") from exc
    expected = model.state_dict()
    for key, value in state.items():
        if key in expected and value.dtype != expected[key].dtype:
            raise ValueError(f"tensor {key!r} in {str(path)!r} has dtype {value.dtype}, "
                             f"expected {expected[key].dtype}")
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise ValueError(f"{str(path)!r} does not match the model: {exc}") from exc
    return model
