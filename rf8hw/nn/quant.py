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

Optional buffers: ``smooth float32 [K]`` (:func:`quantize_` ``smooth=``) and ``channel_scale float32
[N]`` (``QuantConfig(scale_search=True)``: a real per-column factor applied after the array; with
``QuantConfig(gptq=True)`` the codes come from error-compensated rounding, :mod:`rf8hw.nn.gptq`).

``mode``: ``"fake"`` (decode to float, ``F.linear``) or ``"bitexact"`` (RF8 only, :mod:`rf8hw.nn.bitexact`):
``x`` is quantized to signed integers ``a`` with a scale ``act_scale`` and, per output column n,
``golden.matmul(a, codes) * 2**(exponent[n] - spec.PRODUCT_SHIFT) * act_scale`` is computed.
Each layer owns the :class:`~rf8hw.arch.ArrayConfig` whose arithmetic it models
(``QuantLinear.array``), its static activation clipping level (``act_absmax``) and its
:class:`~rf8hw.nn.bitexact.OverflowStats` (``overflow_stats``).  The whole-model functions of the
bit-exact path are here: :func:`set_mode`, :func:`calibrate`, :func:`overflow_report`,
:func:`reset_stats` (and :func:`rf8_layers`).
"""

from __future__ import annotations

import copy
import fnmatch
from dataclasses import dataclass
import json
import math
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from rf8hw import checks
from rf8hw.files import sha256_file
from rf8hw.format import codec, spec
from rf8hw.arch import ArrayConfig
from rf8hw.nn import bitexact
from rf8hw.nn.bitexact import OverflowStats
from rf8hw.nn.gptq import ORDERS as GPTQ_ORDERS
from rf8hw.nn.gptq import gptq as gptq_round
from rf8hw.nn.gptq import hessians
from rf8hw.nn.grid import DEFAULT_FACTORS, INT8_MAX, absmax_scale, fit_grid, int8_round, search_scale
from rf8hw.nn.params import non_negative, positive

FORMATS = ("rf8", "int8", "fp8_e4m3", "apot")
ROUNDINGS = ("paper", "nearest")        # RF8 only; the baselines always round to nearest
GRANULARITIES = ("tensor", "channel")
MODES = ("fake", "bitexact")   # "bitexact": RF8 only, see rf8hw.nn.bitexact
#: dynamic activation-scale granularities of the bit-exact path (static: ``act_absmax`` / calibrate)
ACT_DYNAMIC = ("token", "tensor")
#: the granularity each format gets when ``granularity=None``
DEFAULT_GRANULARITY = {"rf8": "channel", "int8": "channel", "fp8_e4m3": "tensor", "apot": "channel"}
FILE_FORMAT = "rf8hw-quantized-model"
FILE_VERSION = 3      # 2: tensors_sha256, aliases, layer metadata in the tensor file's header; 3: channel_scale
#: what the per-column scale search of :class:`QuantConfig` minimises (``scale_objective``)
SCALE_OBJECTIVES = ("weight", "hessian")

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
        raise ValueError(f"array must be an rf8hw.arch.ArrayConfig or None, "
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
    top = {"int8": INT8_MAX, "fp8_e4m3": FP8_E4M3_MAX, "apot": APOT_MAX}[fmt]
    scale = absmax_scale(_absmax(w, granularity), top)
    u = w / scale                                                   # [K, N] / [N] or [1]
    if fmt == "int8":
        codes = int8_round(u)[0].view(np.uint8)
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
    """Float32 ``[K, N]`` weight from the stored codes and ``exponent``/``scale`` buffers; a
    ``channel_scale`` entry (float32 ``[N]``) multiplies each column, rounded once to float32."""
    if "channel_scale" in params:
        rest = {k: v for k, v in params.items() if k != "channel_scale"}
        return decode_weight(codes, fmt, rest) * params["channel_scale"]
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
        Static activation clipping level of the bit-exact path (:func:`calibrate`); None: dynamic
        scales of ``act_granularity``.
    act_granularity : {"token", "tensor"}
        Dynamic activation scales of the bit-exact path: per token (``max|x|`` of each row, the
        default) or per tensor (``max|x|`` of the call).  Ignored while ``act_absmax`` is set.

    Compute dtype: float32.  A float16 / bfloat16 / float64 input is computed from its float32
    values and the result is cast back to the input's dtype; weights of such a model are rounded to
    float32 before encoding (exact for fp16/bf16; for fp64 the RF8 code is that of the float32
    value, which differs from the fp64 nearest code only at ties closer than one float32 ulp).

    Per-column scale: ``channel_scale`` (float32 ``[out_features]`` or None, the default) is a
    real-valued factor per output column applied after the array, in the dequantization stage
    (:class:`QuantConfig` ``scale_search``): fake-quant uses ``float32(decode(codes) *
    channel_scale)``, the bit-exact path multiplies it into the dequantization scale
    (:func:`rf8hw.nn.bitexact.rf8_gemm`, rounded once).

    Caches: the decoded float32 weight (fake-quant) and the float64 integer weights (bit-exact) are
    built on first use and kept; they are rebuilt when ``codes`` / ``exponent`` / ``scale`` /
    ``channel_scale`` change (any in-place write, ``load_state_dict`` included, bumps the tensors'
    version counters; assigning another tensor or None changes the key too).

    Attributes
    ----------
    codes : torch.Tensor, uint8 [in_features, out_features]
    exponent : torch.Tensor, int32 [out_features] or [1] (RF8 only)
    scale : torch.Tensor, float32 [out_features] or [1] (baselines only)
    channel_scale : torch.Tensor, float32 [out_features], or None
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
                 mode: str = "fake", array: ArrayConfig | None = None, act_absmax: float | None = None,
                 act_granularity: str = "token"):
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
        _check_choice("activation granularity", act_granularity, ACT_DYNAMIC)
        self.act_granularity = act_granularity
        self.overflow_stats = OverflowStats()
        self._cache: dict = {}
        n = out_features if granularity == "channel" else 1
        self.register_buffer("codes", torch.zeros(in_features, out_features, dtype=torch.uint8))
        if fmt == "rf8":
            self.register_buffer("exponent", torch.zeros(n, dtype=torch.int32))
        else:
            self.register_buffer("scale", torch.ones(n, dtype=torch.float32))
        self.bias = nn.Parameter(torch.zeros(out_features)) if bias else None
        #: per-input-channel smoothing (powers of two, :func:`quantize_` ``smooth=``): the layer
        #: computes ``(x / smooth) @ decode(codes)`` with codes of ``diag(smooth) W``; None: off
        self.register_buffer("smooth", None)
        #: per-output-column real scale after the array (:class:`QuantConfig` ``scale_search``); None: off
        self.register_buffer("channel_scale", None)

    @classmethod
    def from_linear(cls, linear: nn.Linear, fmt: str = "rf8", granularity: str = "channel",
                    rounding: str = "nearest", mode: str = "fake",
                    array: ArrayConfig | None = None) -> "QuantLinear":
        """Quantize the weight of ``linear`` (which is left unchanged): an ``nn.Linear`` (or a
        subclass; weight ``[N, K]``) or a Hugging Face ``Conv1D`` (weight ``[K, N]``)."""
        w_kn = _weight_kn_of(linear)
        K, N = w_kn.shape
        q = cls(K, N, fmt, granularity, rounding, bias=linear.bias is not None, mode=mode, array=array)
        codes, params = encode_weight(w_kn.detach().cpu().float().numpy(), fmt, granularity, rounding)
        q.codes.copy_(torch.from_numpy(codes))
        for name, value in params.items():
            getattr(q, name).copy_(torch.from_numpy(value))
        if linear.bias is not None:
            q.bias.data.copy_(linear.bias.detach().float())
        return q.to(linear.weight.device)

    def params(self) -> dict:
        """The buffers the weight is decoded from besides ``codes``: ``exponent`` or ``scale``, and
        ``channel_scale`` when set."""
        p = {"exponent": self.exponent} if self.fmt == "rf8" else {"scale": self.scale}
        if self.channel_scale is not None:
            p["channel_scale"] = self.channel_scale
        return p

    def _key(self) -> tuple:
        ts = (self.codes, *self.params().values())
        return tuple(self.params()) + tuple((t.data_ptr(), t._version, tuple(t.shape), t.device) for t in ts)

    def _cached(self, what: str, build):
        key = self._key()
        hit = self._cache.get(what)
        if hit is None or hit[0] != key:
            hit = (key, build())
            self._cache[what] = hit
        return hit[1]

    def weight_kn(self) -> torch.Tensor:
        """The decoded weight, float32 ``[in_features, out_features]`` (cached; do not modify)."""
        return self._cached("weight_kn", lambda: decode_weight(self.codes.cpu(), self.fmt,
                                                               {k: v.cpu() for k, v in self.params().items()}
                                                               ).to(self.codes.device))

    def _weight_nk(self) -> torch.Tensor:
        return self._cached("weight_nk", lambda: self.weight_kn().T.contiguous())

    def _weight_int(self):
        def build():
            w = bitexact.weight_f64(self.codes)
            return w, int(w.abs().max()) if w.numel() else 0
        return self._cached("weight_f64", build)

    def forward(self, x):
        dtype = x.dtype
        if self.smooth is not None:      # exact: division by powers of two
            x = x.float() / self.smooth
        if self.mode == "bitexact":
            if self.fmt != "rf8":
                raise ValueError(f"mode 'bitexact' needs an RF8 layer, this one is {self.fmt!r}; "
                                 "quantize with fmt='rf8'")
            w_f64, w_absmax = self._weight_int()
            y = bitexact.linear(x, self.codes, self.exponent, self.bias, self.array,
                                self.act_absmax, self.overflow_stats, self.act_granularity,
                                w_f64, w_absmax, self.channel_scale)
        else:
            xf = x if dtype == torch.float32 else x.float()
            y = F.linear(xf, self._weight_nk(), self.bias)       # fake-quant
        return y if dtype == torch.float32 or not dtype.is_floating_point else y.to(dtype)

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys,
                              unexpected_keys, error_msgs):
        """Refuse, whatever ``strict`` says, a state dict that would leave this layer's weights at
        their zero initial value: a float layer's (``weight``, no ``codes``) or one without the codes
        and exponents/scales.  ``load_state_dict`` raises a ``RuntimeError`` with this message."""
        mine = ["codes", *self.params()]
        absent = [k for k in mine if prefix + k not in state_dict]
        if absent:
            layer = prefix[:-1] or "(top level)"
            if prefix + "weight" in state_dict:
                error_msgs.append(f"QuantLinear {layer!r}: the state dict has a float {prefix}weight and no "
                                  f"{prefix}codes: it is a float model's; load it into the float model, "
                                  "then quantize (rf8hw.quantize_), or use rf8hw.nn.quant.load_quantized")
            else:
                error_msgs.append(f"QuantLinear {layer!r}: the state dict has no {', '.join(prefix + k for k in absent)} "
                                  "(loading it would leave the layer's weights all zero)")
            return
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys,
                                      unexpected_keys, error_msgs)

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, fmt={self.fmt}, "
                f"granularity={self.granularity}, rounding={self.rounding}, mode={self.mode}"
                + (", channel_scale=True" if self.channel_scale is not None else ""))

    def layer_meta(self) -> dict:
        return {"in_features": self.in_features, "out_features": self.out_features, "fmt": self.fmt,
                "granularity": self.granularity, "rounding": self.rounding,
                "bias": self.bias is not None, "mode": self.mode, "smooth": self.smooth is not None,
                "channel_scale": self.channel_scale is not None}


# --------------------------------------------------------------------------------------- whole model

def is_conv1d(m: nn.Module) -> bool:
    """A Hugging Face ``Conv1D`` (GPT-2 style linear layer, weight ``[in, out]``), recognised by
    class name and shape so that rf8hw does not import transformers."""
    return (type(m).__name__ == "Conv1D" and hasattr(m, "nf") and isinstance(getattr(m, "weight", None), torch.Tensor)
            and m.weight.dim() == 2 and m.weight.shape[1] == m.nf)


def _weight_kn_of(m: nn.Module) -> torch.Tensor:
    if is_conv1d(m):
        return m.weight
    if isinstance(m, nn.Linear):
        return m.weight.T
    raise ValueError(f"cannot quantize a {type(m).__name__}: only nn.Linear (and subclasses) and "
                     "Hugging Face Conv1D are supported")


def is_linear_like(m: nn.Module) -> bool:
    """``nn.Linear`` or a subclass, or a Hugging Face ``Conv1D``."""
    return isinstance(m, nn.Linear) or is_conv1d(m)


def _tied_to_embedding(model: nn.Module) -> set[str]:
    """Names of linear-like modules whose weight is the very tensor of an ``nn.Embedding``."""
    emb = {id(m.weight) for m in model.modules() if isinstance(m, nn.Embedding)}
    return {n for n, m in model.named_modules() if is_linear_like(m) and id(m.weight) in emb}


def _mha_projections(model: nn.Module) -> set[str]:
    """``out_proj`` of every ``nn.MultiheadAttention``: its forward reads the weight tensors itself."""
    return {f"{n}.out_proj" if n else "out_proj" for n, m in model.named_modules()
            if isinstance(m, nn.MultiheadAttention)}


@dataclass(frozen=True)
class QuantConfig:
    """What :func:`quantize_` makes of each selected layer (see :func:`quantize` for ``fmt``,
    ``rounding``, ``granularity``, ``mode``; ``docs/quantization.md``, "Per-column scale search
    and GPTQ rounding", for the rest).

    Post-training options beyond nearest rounding (per output channel, ``rounding="nearest"``):

    * ``scale_search`` (RF8 only): a real per-output-column factor ``channel_scale[n]`` among
      ``DEFAULT_FACTORS`` (one octave, 32 points) minimising the column's squared weight error
      (:func:`rf8hw.nn.grid.search_scale`); ``scale_objective="hessian"`` weights each input
      feature by the diagonal of the layer's input Hessian (needs ``calibrate``);
      ``scale_sample_rows`` measures the error on that many sampled input features (None: all).
    * ``gptq`` (RF8 and INT8): error-compensated rounding onto the layer's grid
      (:func:`rf8hw.nn.gptq.gptq`) with the input Hessian measured by :func:`quantize_`'s
      ``calibrate``; ``gptq_damp`` (fraction of the mean Hessian diagonal added to it),
      ``gptq_block`` (columns per lazy block) and ``gptq_order`` (``"natural"`` input order or
      ``"act"``, decreasing Hessian diagonal).
    """

    fmt: str = "rf8"
    rounding: str = "nearest"
    granularity: str | None = None
    mode: str = "fake"
    act_granularity: str = "token"
    scale_search: bool = False
    scale_objective: str = "weight"
    scale_sample_rows: int | None = None
    gptq: bool = False
    gptq_damp: float = 0.01
    gptq_block: int = 128
    gptq_order: str = "natural"

    def __post_init__(self):
        _check_choice("format", self.fmt, FORMATS)
        _check_choice("rounding", self.rounding, ROUNDINGS)
        if self.granularity is not None:
            _check_choice("granularity", self.granularity, GRANULARITIES)
        _check_choice("mode", self.mode, MODES)
        _check_choice("activation granularity", self.act_granularity, ACT_DYNAMIC)
        if self.mode == "bitexact" and self.fmt != "rf8":
            raise ValueError(f"mode 'bitexact' needs fmt='rf8', not {self.fmt!r}")
        for name in ("scale_search", "gptq"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be True or False, not {getattr(self, name)!r}")
        checks.choice("scale_objective", self.scale_objective, SCALE_OBJECTIVES)
        if self.scale_sample_rows is not None:
            checks.integer("scale_sample_rows", self.scale_sample_rows, 1)
        non_negative("gptq_damp", self.gptq_damp)
        checks.integer("gptq_block", self.gptq_block, 1)
        checks.choice("gptq_order", self.gptq_order, GPTQ_ORDERS)
        if self.gptq_order != GPTQ_ORDERS[0] and not self.gptq:
            raise ValueError(f"gptq_order {self.gptq_order!r} orders GPTQ rounding; it needs gptq=True")
        if self.scale_search and self.fmt != "rf8":
            raise ValueError(f"scale_search is an RF8 option (the other formats' scales are already "
                             f"real-valued), not for fmt={self.fmt!r}")
        if self.gptq and self.fmt not in ("rf8", "int8"):
            raise ValueError(f"gptq rounds onto the rf8 or int8 grid, not fmt={self.fmt!r}")
        if self.refined and (self.rounding != "nearest" or self.granularity == "tensor"):
            raise ValueError(f"scale_search / gptq work per output channel with rounding='nearest', "
                             f"not granularity={self.granularity!r}, rounding={self.rounding!r}")

    @property
    def refined(self) -> bool:
        """Whether codes come from the scale search or GPTQ rather than plain nearest rounding."""
        return self.scale_search or self.gptq

    @property
    def needs_calibration(self) -> bool:
        """Whether :func:`quantize_` needs ``calibrate`` (input Hessians) for this config."""
        return self.gptq or (self.scale_search and self.scale_objective == "hessian")


def _refine(q: "QuantLinear", w_kn: np.ndarray, config: QuantConfig, H) -> int:
    """Re-derive ``q``'s codes (and exponent/scale, ``channel_scale``) from its float weight
    ``w_kn [K, N]`` by ``config``'s scale search and/or GPTQ with input Hessian ``H``; returns how
    many values GPTQ moved beyond the grid (rounded to its largest magnitude)."""
    s = None
    if config.scale_search:
        imp = np.diag(np.asarray(H, dtype=np.float64)).copy() if config.scale_objective == "hessian" else None
        s = search_scale(w_kn, DEFAULT_FACTORS, imp, config.scale_sample_rows)
    grid = fit_grid(w_kn, config.fmt, s)
    if config.gptq:
        res = gptq_round(w_kn, H, grid, config.gptq_damp, config.gptq_block, config.gptq_order)
        codes, saturated = res.codes, res.saturated
    else:
        codes, _, saturated = grid.round(w_kn)
    dev = q.codes.device
    q.codes.copy_(torch.from_numpy(codes))
    if config.fmt == "rf8":
        q.exponent.copy_(torch.from_numpy(grid.exponent))
    else:
        q.scale.copy_(torch.from_numpy(grid.scale))
    if s is not None:
        q.channel_scale = torch.from_numpy(s).to(dev)
    return saturated


def default_filter(module: nn.Module, fqn: str) -> bool:
    """The default layer selection of :func:`quantize_`: every linear-like layer."""
    return is_linear_like(module)


def _input_absmax(model: nn.Module, names, run) -> dict:
    """Per-input-channel ``max|x|`` at the input of each named module over ``run(model)``."""
    seen = {}

    def hook(name):
        def f(mod, args):
            a = args[0].detach().abs().reshape(-1, args[0].shape[-1]).amax(0).float().cpu()
            seen[name] = a if name not in seen else torch.maximum(seen[name], a)
        return f

    hooks = [model.get_submodule(n).register_forward_pre_hook(hook(n)) for n in names]
    try:
        with torch.no_grad():
            run(model)
    finally:
        for h in hooks:
            h.remove()
    return seen


def smoothing_factors(act_absmax: torch.Tensor, w_kn: torch.Tensor, alpha: float = 0.5) -> torch.Tensor:
    """SmoothQuant-style per-input-channel factors (Xiao et al. 2023), rounded to powers of two:
    ``s_k = 2**round(log2(max|x_k|**alpha / max_n |W[k, n]|**(1 - alpha)))``; 1 where either is 0.
    Powers of two make the rescaling ``(x / s) @ (diag(s) W) = x @ W`` exact in float (barring
    under/overflow) and a shift in hardware."""
    a = act_absmax.double()
    w = w_kn.detach().abs().amax(1).double().cpu()
    ok = (a > 0) & (w > 0)
    raw = torch.where(ok, a.clamp_min(1e-30) ** alpha / w.clamp_min(1e-30) ** (1 - alpha), torch.ones_like(a))
    return torch.exp2(torch.round(torch.log2(raw))).float()


def quantize_(model: nn.Module, config: QuantConfig | None = None, filter_fn=None, *,
              quantize_tied_lm_head: bool = False, warn: bool = True, smooth=None,
              smooth_alpha: float = 0.5, calibrate=None) -> nn.Module:
    """Quantize ``model`` **in place** (torchao style): every layer selected by ``filter_fn``
    becomes a :class:`QuantLinear` of ``config``.

    Parameters
    ----------
    model : torch.nn.Module
        Any model (a Hugging Face transformer, a ``SentenceTransformer``, a zoo model).
    config : QuantConfig, optional
        Format, rounding, granularity, mode (default ``QuantConfig()``: RF8, nearest, per channel,
        fake-quant).
    filter_fn : callable ``(module, fqn) -> bool``, optional
        Which modules to quantize; only linear-like ones can be (``nn.Linear`` and subclasses, HF
        ``Conv1D``).  Default :func:`default_filter`: all of them, except (1) a layer whose weight
        is tied to an ``nn.Embedding`` (the LM head of most causal LMs; ``quantize_tied_lm_head=True``
        quantizes it, the embedding stays float and the tie is broken: ``config.tie_word_embeddings``
        is set False so that ``tie_weights()`` does not re-attach the float weight) and (2) the
        ``out_proj`` of ``nn.MultiheadAttention`` (its forward reads the weights directly).
    warn : bool
        Warn (``UserWarning``) naming every linear-like layer left in float and why.
    smooth : callable ``run(model)``, optional
        SmoothQuant-style smoothing: ``run`` is called once on the float model to measure each
        layer's per-input-channel activation range; each layer then stores power-of-two factors
        ``smooth`` (:func:`smoothing_factors`, ``smooth_alpha``), encodes ``diag(smooth) W`` and
        divides its input by ``smooth`` (exact) before quantizing it.  In hardware the division is
        a shift in the activation quantizer (or folds into a preceding LayerNorm's gain).
    calibrate : callable ``run(model)`` or dict, optional
        Calibration data for ``config.gptq`` / a Hessian-weighted scale search (required then,
        refused otherwise): ``run`` is called once on the float model (before any layer is
        replaced) and must run held-in data only, never evaluation data; each selected layer's
        input Hessian ``H = 2 X^T X / M`` is measured (:func:`rf8hw.nn.gptq.hessians`).  A dict
        ``{layer name: H}`` (what ``hessians`` returns) reuses an earlier measurement.  With
        ``smooth``, the Hessian of the smoothed input ``x / smooth`` is used.  Values GPTQ moves
        beyond the grid are rounded to its largest magnitude and reported in the warning.

    Returns ``model``.  Errors: a model already holding a :class:`QuantLinear` (re-quantizing an
    already quantized model is refused), a ``filter_fn`` that selects a module that is not
    linear-like, or nothing selected at all.  Layers sharing one weight tensor share one
    ``QuantLinear``.
    """
    import warnings

    config = QuantConfig() if config is None else config
    if not isinstance(config, QuantConfig):
        raise ValueError(f"config must be an rf8hw.nn.quant.QuantConfig or None, not {type(config).__name__}")
    already = [n for n, m in model.named_modules() if isinstance(m, QuantLinear)]
    if already:
        raise ValueError(f"model is already quantized ({len(already)} QuantLinear layers, first "
                         f"{already[0]!r}); re-quantizing is not supported: quantize the float model")
    granularity = DEFAULT_GRANULARITY[config.fmt] if config.granularity is None else config.granularity
    tied = _tied_to_embedding(model)
    mha = _mha_projections(model)
    chosen, left = [], {}
    for name, m in model.named_modules():
        if not name:
            continue
        if filter_fn is not None:
            if not filter_fn(m, name):
                if is_linear_like(m):
                    left[name] = "excluded by filter_fn"
                continue
            if not is_linear_like(m):
                raise ValueError(f"filter_fn selected {name!r}, a {type(m).__name__}; only nn.Linear "
                                 "(and subclasses) and Hugging Face Conv1D can be quantized")
        elif not is_linear_like(m):
            continue
        if name in mha:
            left[name] = "out_proj of nn.MultiheadAttention (its forward reads the weight directly)"
        elif name in tied and not quantize_tied_lm_head:
            left[name] = "weight tied to an nn.Embedding (quantize_tied_lm_head=True to quantize it)"
        else:
            chosen.append(name)
    if not chosen:
        kinds = sorted({type(m).__name__ for m in model.modules()})
        raise ValueError(f"nothing to quantize in {type(model).__name__}: no selected nn.Linear / "
                         f"Conv1D layer (module types present: {', '.join(kinds)})")
    if config.needs_calibration and calibrate is None:
        raise ValueError("QuantConfig(gptq=True) / scale_objective='hessian' needs calibrate=run, a "
                         "callable running the model on held-in calibration data (or a dict of "
                         "Hessians from rf8hw.nn.gptq.hessians)")
    if calibrate is not None and not config.needs_calibration:
        raise ValueError("calibrate= is used only by QuantConfig(gptq=True) or "
                         "scale_objective='hessian'; this config needs no calibration data")
    H = {}
    if config.needs_calibration:
        if isinstance(calibrate, dict):
            missing = [n for n in chosen if n not in calibrate]
            if missing:
                raise ValueError(f"calibrate (a dict of Hessians) has no entry for {len(missing)} "
                                 f"selected layer(s), first {missing[0]!r}")
            H = calibrate
        elif callable(calibrate):
            H = hessians(model, chosen, calibrate)
        else:
            raise ValueError(f"calibrate must be a callable run(model) or a dict of Hessians, "
                             f"not {type(calibrate).__name__}")
    factors = {}
    if smooth is not None:
        non_negative("smooth_alpha", smooth_alpha)
        ranges = _input_absmax(model, chosen, smooth)
        factors = {n: smoothing_factors(r, _weight_kn_of(model.get_submodule(n)), smooth_alpha)
                   for n, r in ranges.items()}
    shared: dict[int, QuantLinear] = {}
    saturated = {}
    for name in chosen:
        old = model.get_submodule(name)
        if not old.weight.dtype.is_floating_point:
            raise ValueError(f"layer {name!r}: weight dtype {old.weight.dtype} is not floating point")
        key = id(old.weight)
        if key in shared and shared[key].bias is None and old.bias is None:
            q = shared[key]
        else:
            try:
                src = old
                if name in factors:
                    src = copy.deepcopy(old)
                    with torch.no_grad():
                        fac = factors[name].to(src.weight.device, src.weight.dtype)
                        if is_conv1d(src):
                            src.weight.mul_(fac[:, None])
                        else:
                            src.weight.mul_(fac[None, :])
                q = QuantLinear.from_linear(src, config.fmt, granularity, config.rounding, config.mode)
                if name in factors:
                    q.smooth = factors[name].to(q.codes.device)
                if config.refined:
                    h = H.get(name)
                    if h is not None and name in factors:      # Hessian of x / smooth
                        f = factors[name].double()
                        h = torch.as_tensor(h, dtype=torch.float64) / (f[:, None] * f[None, :])
                    w_kn = _weight_kn_of(src).detach().cpu().float().numpy()
                    n_sat = _refine(q, w_kn, config, h)
                    if n_sat:
                        saturated[name] = n_sat
            except ValueError as exc:
                raise ValueError(f"layer {name!r} ({old.weight.dtype}): {exc}") from exc
            q.act_granularity = config.act_granularity
            shared.setdefault(key, q)
        _set_child(model, name, q)
    if quantize_tied_lm_head and any(n in tied for n in chosen):
        cfg = getattr(model, "config", None)
        if cfg is not None and hasattr(cfg, "tie_word_embeddings"):
            cfg.tie_word_embeddings = False
    mark_hf_configs(model)
    # modules with weights that are not linear-like: named in the warning too
    other = sorted({type(m).__name__ for m in model.modules()
                    if not isinstance(m, (QuantLinear, nn.Embedding, nn.LayerNorm)) and not is_linear_like(m)
                    and isinstance(getattr(m, "weight", None), torch.Tensor) and m.weight.dim() >= 2})
    if warn and (left or other):
        parts = [f"{n} ({why})" for n, why in left.items()]
        if other:
            parts.append(f"modules of type {', '.join(other)} (not linear-like)")
        warnings.warn(f"rf8hw.quantize_: left in float: {'; '.join(parts)}", UserWarning, stacklevel=2)
    if warn and saturated:
        warnings.warn(f"rf8hw.quantize_: GPTQ moved {sum(saturated.values())} weight(s) beyond the grid "
                      f"in {len(saturated)} layer(s) (first {next(iter(saturated))!r}); they were rounded "
                      "to the grid's largest magnitude", UserWarning, stacklevel=2)
    return model


#: what :func:`mark_hf_configs` stores as ``config.quantization_config``: a dict without
#: ``quant_method``, which Hugging Face ``from_pretrained`` refuses with a ``ValueError`` (transformers
#: 5.24; an unknown ``quant_method`` would only be warned about and skipped, loading random weights)
HF_MARKER = {"rf8hw": "quantized by rf8hw: QuantLinear codes, no float weights. from_pretrained "
                      "cannot load it; build the float model, then rf8hw.nn.quant.load_quantized(path, "
                      "model=float_model) on a file written by rf8hw.nn.quant.save_quantized",
             "format": FILE_FORMAT}


def mark_hf_configs(model: nn.Module) -> None:
    """Mark the Hugging Face config of every module holding a :class:`QuantLinear` (``config`` with
    ``to_json_string`` and ``model_type``) with :data:`HF_MARKER` as ``quantization_config``, so that
    a quantized model written by ``save_pretrained`` / ``SentenceTransformer.save`` fails loudly when
    ``from_pretrained`` reads it back instead of coming back with random float weights.  A config
    that already has a ``quantization_config`` is left alone."""
    for m in model.modules():
        cfg = getattr(m, "config", None)
        if (callable(getattr(cfg, "to_json_string", None)) and hasattr(cfg, "model_type")
                and getattr(cfg, "quantization_config", None) is None
                and any(isinstance(x, QuantLinear) for x in m.modules())):
            cfg.quantization_config = dict(HF_MARKER)


def _set_child(model: nn.Module, name: str, new: nn.Module) -> None:
    parent, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, child, new)


def quantize(model: nn.Module, fmt: str = "rf8", rounding: str = "nearest", granularity: str | None = None,
             skip=(), mode: str = "fake") -> nn.Module:
    """A copy of ``model`` with every exact ``nn.Linear`` replaced by a :class:`QuantLinear`.

    The zoo's function (kept for its models and checkpoints): it selects ``type(m) is nn.Linear``
    only (no subclasses, no HF ``Conv1D``), never warns and ignores weight tying.  For any other
    model use :func:`quantize_` (in place, ``filter_fn``, warnings, tied weights); ``quantize`` is
    ``quantize_`` of a deep copy with a filter of exact ``nn.Linear`` minus ``skip`` semantically,
    apart from those checks.

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
             absmax: dict | None = None, act_granularity: str = "token") -> nn.Module:
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
        keep dynamic scales.  A name that is not an RF8 layer is an error.
    act_granularity : {"token", "tensor"}
        Dynamic activation scales of the layers without a static level: per token (the default)
        or per tensor (:mod:`rf8hw.nn.bitexact`, rule 1).

    Returns
    -------
    torch.nn.Module
        ``model`` itself.
    """
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; choose one of {', '.join(MODES)}")
    array = _check_array(array)
    _check_choice("activation granularity", act_granularity, ACT_DYNAMIC)
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
        layer.act_granularity = act_granularity
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
    batches : iterable or callable
        Each item is passed to ``model`` (a tuple is unpacked as positional arguments, a dict as
        keyword arguments); or a callable ``run(model)`` that runs the model on the user's own
        batches in whatever format it takes (e.g. ``lambda m: m.encode(sentences)``).

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
        if callable(batches) and not isinstance(batches, nn.Module):
            batches(model)
            n = 1
        else:
            for batch in batches:
                if isinstance(batch, tuple):
                    model(*batch)
                elif isinstance(batch, dict):
                    model(**batch)
                else:
                    model(batch)
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

#: the keys of one layer's sidecar entry (:meth:`QuantLinear.layer_meta`) and their rules
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
    with its tensors (e.g. ``"fmt"`` relabelled) is refused on load.  Both files are written
    atomically (temporary file, then rename; tensors first): a run killed between the two renames
    leaves a pair whose hash does not match, which :func:`load_quantized` refuses.
    """
    import os

    from safetensors.torch import save_file

    path = Path(path)
    if path.suffix == ".json":
        raise ValueError(f"save_quantized path {str(path)!r} ends in .json, the suffix of its sidecar "
                         "(the sidecar would overwrite the tensors); give a .safetensors name")
    if path.is_dir():
        raise ValueError(f"save_quantized path {str(path)!r} is a directory; give a .safetensors file name")
    if not path.parent.is_dir():
        raise ValueError(f"save_quantized path {str(path)!r}: {str(path.parent)!r} is not a directory")
    layers = {n: q.layer_meta() for n, q in quant_layers(qmodel).items()}
    if not layers:
        raise ValueError("model has no QuantLinear layer; call rf8hw.quantize(model, ...) first")
    full = qmodel.state_dict()
    aliases = _shared_names(full)
    state = {k: v.detach().contiguous() for k, v in full.items() if k not in aliases}
    sidecar = path.with_suffix(".json")
    tmp_t = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp_j = sidecar.with_name(f".{sidecar.name}.{os.getpid()}.tmp")
    try:
        save_file(state, str(tmp_t), metadata={"format": FILE_FORMAT, "layers": json.dumps(layers, sort_keys=True),
                                               "aliases": json.dumps(aliases, sort_keys=True)})
        meta = {"format": FILE_FORMAT, "version": FILE_VERSION, "tensors_sha256": sha256_file(tmp_t),
                "layers": layers, "aliases": aliases, "model": model_info or {}}
        tmp_j.write_text(json.dumps(meta, indent=2) + "\n")
        os.replace(tmp_t, path)
        os.replace(tmp_j, sidecar)
    finally:
        tmp_t.unlink(missing_ok=True)
        tmp_j.unlink(missing_ok=True)


def _layer_meta(name: str, lm, where: str) -> dict:
    """A sidecar's entry for layer ``name``, checked field by field."""
    at = f"{where}: layer {name!r}"
    if not isinstance(lm, dict):
        raise ValueError(f"{at} must be a JSON object, not {type(lm).__name__}")
    missing = [k for k in LAYER_FIELDS if k not in lm]
    unknown = sorted(set(lm) - set(LAYER_FIELDS))
    if missing or unknown:
        raise ValueError(f"{at}: " + "; ".join(
            ([f"missing {', '.join(missing)}"] if missing else []) + ([f"unknown {', '.join(unknown)}"] if unknown else []))
            + f" (a layer has {', '.join(LAYER_FIELDS)})")
    for key, rule in LAYER_FIELDS.items():
        if rule == "size":
            checks.integer(f"{at}: {key}", lm[key], 1)
        elif rule is bool:
            if not isinstance(lm[key], bool):
                raise ValueError(f"{at}: {key} must be true or false, not {lm[key]!r}")
        else:
            checks.choice(f"{at}: {key}", lm[key], rule)
    if lm["mode"] == "bitexact" and lm["fmt"] != "rf8":
        raise ValueError(f"{at}: mode 'bitexact' needs fmt 'rf8', not {lm['fmt']!r}")
    return lm


def _first_bad(mask: torch.Tensor) -> tuple:
    return tuple(int(i) for i in torch.nonzero(mask)[0])


def _check_values(name: str, q: "QuantLinear", where: str) -> None:
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
    """``model`` (changed in place) with a :class:`QuantLinear` of each sidecar layer in place of
    the linear-like module of that name, whose shape must agree."""
    for name, lm in layers.items():
        try:
            old = model.get_submodule(name)
        except AttributeError:
            raise ValueError(f"{where}: layer {name!r} is not in the model") from None
        if not is_linear_like(old):
            raise ValueError(f"{where}: layer {name!r} is a {lm['in_features']}x{lm['out_features']} "
                             f"QuantLinear; the model's {name!r} is a {type(old).__name__}, not linear-like")
        K, N = _weight_kn_of(old).shape
        if (K, N) != (lm["in_features"], lm["out_features"]):
            raise ValueError(f"{where}: layer {name!r} is {lm['in_features']}x{lm['out_features']} "
                             f"(in x out), the model's is {K}x{N}")
        ql = QuantLinear(lm["in_features"], lm["out_features"], lm["fmt"], lm["granularity"],
                         lm["rounding"], lm["bias"], lm["mode"])
        if lm["smooth"]:
            ql.smooth = torch.ones(lm["in_features"])
        if lm["channel_scale"]:
            ql.channel_scale = torch.ones(lm["out_features"])
        _set_child(model, name, ql)
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

    path = Path(path)
    if path.suffix == ".json":
        raise ValueError(f"quantized model file {str(path)!r} is the sidecar; give the .safetensors file next to it")
    sidecar = path.with_suffix(".json")
    where = f"quantized model sidecar {sidecar}"
    meta = read_json(sidecar, "quantized model sidecar")
    if meta.get("format") != FILE_FORMAT or meta.get("version") != FILE_VERSION:
        raise ValueError(f"{where} is not an {FILE_FORMAT} v{FILE_VERSION} sidecar "
                         f"(format={meta.get('format')!r}, version={meta.get('version')!r})")
    for key, kind in (("tensors_sha256", str), ("layers", dict), ("aliases", dict), ("model", dict)):
        if not isinstance(meta.get(key), kind):
            raise ValueError(f"malformed {where}: {key!r} must be a JSON {'string' if kind is str else 'object'}, "
                             f"not {meta.get(key)!r:.60}")
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
        same = json.loads(header.get("layers", "null")) == layers and json.loads(header.get("aliases", "{}")) == aliases
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
