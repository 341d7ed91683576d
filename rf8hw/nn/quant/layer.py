"""The layer of :mod:`rf8hw.nn.quant`: :class:`QuantLinear`, a linear layer stored as packed 8-bit
codes and their exponents or scales only (never a float copy of the weight), and what counts as a
linear-like module (``nn.Linear`` and subclasses, Hugging Face ``Conv1D``).

Buffers of one layer with ``in_features = K`` and ``out_features = N`` (exported as is): ``codes``
``uint8 [K, N]`` and ``exponent`` (RF8) or ``scale`` (the baselines), as
:mod:`rf8hw.nn.quant.formats` describes; optionally ``smooth float32 [K]``
(:func:`~rf8hw.nn.quant.quantize_` ``smooth=``) and ``channel_scale float32 [N]``
(``QuantConfig(scale_search=True)``: a real per-column factor applied after the array; with
``QuantConfig(gptq=True)`` the codes come from error-compensated rounding, :mod:`rf8hw.nn.gptq`).

``mode``: ``"fake"`` (decode to float, ``F.linear``) or ``"bitexact"`` (RF8 only,
:mod:`rf8hw.nn.bitexact`): ``x`` is quantized to signed integers ``a`` with a scale ``act_scale``
and, per output column n, ``golden.matmul(a, codes) * 2**(exponent[n] - spec.PRODUCT_SHIFT) *
act_scale`` is computed.  Each layer owns the :class:`~rf8hw.arch.ArrayConfig` whose arithmetic
it models (``QuantLinear.array``), its static activation clipping level (``act_absmax``) and its
:class:`~rf8hw.nn.bitexact.OverflowStats` (``overflow_stats``); the whole-model functions that
set them are in :mod:`rf8hw.nn.quant.whole_model`.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from rf8hw import checks
from rf8hw.arch import ArrayConfig
from rf8hw.nn import bitexact
from rf8hw.nn.bitexact import ACT_DYNAMIC, OverflowStats
from rf8hw.nn.params import non_negative
from rf8hw.nn.quant.formats import FORMATS, GRANULARITIES, ROUNDINGS, decode_weight, encode_weight

MODES = ("fake", "bitexact")   # "bitexact": RF8, INT8, FP8-E4M3, see rf8hw.nn.bitexact
#: the formats with a bit-exact path (a MAC array of that weight format)
BITEXACT_FORMATS = ("rf8", "int8", "fp8_e4m3")


def check_mode(mode: str, fmt: str, where: str = "") -> str:
    """``mode`` if it is one of :data:`MODES` and usable with format ``fmt`` (``"bitexact"``
    multiplies RF8, INT8 or FP8-E4M3 codes on an array of that format; APoT has no array);
    ``where`` prefixes the message (e.g. a file and a layer name)."""
    checks.choice(f"{where}mode", mode, MODES)
    if mode == "bitexact" and fmt not in BITEXACT_FORMATS:
        raise ValueError(f"{where}mode 'bitexact' needs fmt {' or '.join(map(repr, BITEXACT_FORMATS))} "
                         f"(a MAC array of that weight format), not {fmt!r}")
    return mode


#: the PE kind a baseline-format layer's bit-exact arithmetic names by default
BASELINE_PE = {"int8": "int8", "fp8_e4m3": "fp8_e4m3"}


def check_array(array, fmt: str = "rf8") -> ArrayConfig:
    """``array`` (default ``ArrayConfig()`` for RF8, ``ArrayConfig(pe=BASELINE_PE[fmt])`` for INT8 /
    FP8-E4M3) if it is an :class:`ArrayConfig` whose PE kind multiplies ``fmt`` weights."""
    if array is None:
        return ArrayConfig() if fmt not in BASELINE_PE else ArrayConfig(pe=BASELINE_PE[fmt])
    if not isinstance(array, ArrayConfig):
        raise ValueError(f"array must be an rf8hw.arch.ArrayConfig or None, "
                         f"not {type(array).__name__}")
    if fmt == "rf8" and not array.pe_kind.is_rf8:
        raise ValueError(f"array.pe must be an RF8 PE kind (the bit-exact path multiplies RF8 codes), "
                         f"not {array.pe!r}, which multiplies {array.pe_kind.weight_format} weights")
    if fmt in BASELINE_PE and array.pe_kind.weight_format != fmt:
        raise ValueError(f"array.pe must be a {fmt} PE kind for a {fmt} layer, not {array.pe!r}, which "
                         f"multiplies {array.pe_kind.weight_format} weights")
    return array


def array_for(array: ArrayConfig, fmt: str) -> ArrayConfig:
    """The array a ``fmt`` layer's bit-exact path follows when a model is switched to an RF8 array
    ``array`` (:func:`~rf8hw.nn.quant.set_mode`): ``array`` itself for RF8; for INT8 / FP8-E4M3 the
    same array (rows, cols, ``act_bits``, ``acc_bits``, ``overflow``) with the PE kind
    :data:`BASELINE_PE` of ``fmt``: the baseline array a like-for-like comparison needs."""
    import dataclasses

    return array if fmt == "rf8" else dataclasses.replace(array, pe=BASELINE_PE[fmt])


def check_absmax(name: str, absmax) -> float | None:
    """``absmax`` (a static activation clipping level) if it is None or a number >= 0."""
    return None if absmax is None else non_negative(name, absmax)


# ------------------------------------------------------------------------------- linear-like modules

def is_conv1d(m: nn.Module) -> bool:
    """A Hugging Face ``Conv1D`` (GPT-2 style linear layer, weight ``[in, out]``), recognised by
    class name and shape so that rf8hw does not import transformers."""
    return (type(m).__name__ == "Conv1D" and hasattr(m, "nf")
            and isinstance(getattr(m, "weight", None), torch.Tensor)
            and m.weight.dim() == 2 and m.weight.shape[1] == m.nf)


def weight_kn_of(m: nn.Module) -> torch.Tensor:
    """The weight of linear-like ``m`` as ``[in_features, out_features]`` (a view, not a copy)."""
    if is_conv1d(m):
        return m.weight
    if isinstance(m, nn.Linear):
        return m.weight.T
    raise ValueError(f"cannot quantize a {type(m).__name__}: only nn.Linear (and subclasses) and "
                     "Hugging Face Conv1D are supported")


def is_linear_like(m: nn.Module) -> bool:
    """``nn.Linear`` or a subclass, or a Hugging Face ``Conv1D``."""
    return isinstance(m, nn.Linear) or is_conv1d(m)


def set_child(model: nn.Module, name: str, new: nn.Module) -> None:
    """Put ``new`` in place of the submodule ``name`` (dotted) of ``model``."""
    parent, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, child, new)


# ------------------------------------------------------------------------------------------ the layer

class QuantLinear(nn.Module):
    """A ``nn.Linear`` whose weight is stored as packed 8-bit codes (see the module docstring and
    :mod:`rf8hw.nn.quant.formats`).

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
        Static activation clipping level of the bit-exact path (:func:`~rf8hw.nn.quant.calibrate`);
        None: dynamic scales of ``act_granularity``.
    act_granularity : {"token", "tensor"}
        Dynamic activation scales of the bit-exact path: per token (``max|x|`` of each row, the
        default) or per tensor (``max|x|`` of the call).  Ignored while ``act_absmax`` is set.

    Compute dtype: float32.  A float16 / bfloat16 / float64 input is computed from its float32
    values and the result is cast back to the input's dtype; weights of such a model are rounded to
    float32 before encoding (exact for fp16/bf16; for fp64 the RF8 code is that of the float32
    value, which differs from the fp64 nearest code only at ties closer than one float32 ulp).

    Per-column scale: ``channel_scale`` (float32 ``[out_features]`` or None, the default) is a
    real-valued factor per output column applied after the array, in the dequantization stage
    (:class:`~rf8hw.nn.quant.QuantConfig` ``scale_search``): fake-quant uses ``float32(decode(codes) *
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
        What the bit-exact path saw since the last :func:`~rf8hw.nn.quant.set_mode` /
        :func:`~rf8hw.nn.quant.reset_stats`.
    out_bits, out_absmax : int or None, float or None
        The accelerator's post-processing in ``mode="bitexact"`` (:meth:`set_postprocess`; RF8
        only): None (off), 8 (INT8 at ``float32(out_absmax / 127)``) or 32 (INT32).

    ``array``, ``act_absmax``, ``out_bits``, ``out_absmax`` and ``overflow_stats`` are plain
    attributes, not part of the state
    dict (:func:`~rf8hw.nn.quant.save_quantized` does not store them; :func:`~rf8hw.nn.quant.set_mode`
    sets them per model).
    """

    def __init__(self, in_features: int, out_features: int, fmt: str = "rf8",
                 granularity: str = "channel", rounding: str = "nearest", bias: bool = True,
                 mode: str = "fake", array: ArrayConfig | None = None, act_absmax: float | None = None,
                 act_granularity: str = "token"):
        super().__init__()
        checks.choice("fmt", fmt, FORMATS)
        checks.choice("granularity", granularity, GRANULARITIES)
        checks.choice("rounding", rounding, ROUNDINGS)
        check_mode(mode, fmt)
        self.in_features, self.out_features = in_features, out_features
        self.fmt, self.granularity, self.rounding, self.mode = fmt, granularity, rounding, mode
        self.array: ArrayConfig = check_array(array, fmt)
        self.act_absmax: float | None = check_absmax("act_absmax", act_absmax)
        checks.choice("act_granularity", act_granularity, ACT_DYNAMIC)
        self.act_granularity = act_granularity
        self.overflow_stats = OverflowStats()
        #: the accelerator's post-processing in ``mode="bitexact"`` (:meth:`set_postprocess`):
        #: None (off: rule 3 of rf8hw.nn.bitexact), or 8 / 32 (INT8 / INT32 output)
        self.out_bits: int | None = None
        self.out_absmax: float | None = None
        self._cache: dict = {}
        n = out_features if granularity == "channel" else 1
        self.register_buffer("codes", torch.zeros(in_features, out_features, dtype=torch.uint8))
        if fmt == "rf8":
            self.register_buffer("exponent", torch.zeros(n, dtype=torch.int32))
        else:
            self.register_buffer("scale", torch.ones(n, dtype=torch.float32))
        self.bias = nn.Parameter(torch.zeros(out_features)) if bias else None
        #: per-input-channel smoothing (powers of two, :func:`~rf8hw.nn.quant.quantize_` ``smooth=``): the
        #: layer computes ``(x / smooth) @ decode(codes)`` with codes of ``diag(smooth) W``; None: off
        self.register_buffer("smooth", None)
        #: per-output-column real scale after the array (:class:`~rf8hw.nn.quant.QuantConfig`
        #: ``scale_search``); None: off
        self.register_buffer("channel_scale", None)

    @classmethod
    def from_linear(cls, linear: nn.Linear, fmt: str = "rf8", granularity: str = "channel",
                    rounding: str = "nearest", mode: str = "fake",
                    array: ArrayConfig | None = None) -> QuantLinear:
        """Quantize the weight of ``linear`` (which is left unchanged): an ``nn.Linear`` (or a
        subclass; weight ``[N, K]``) or a Hugging Face ``Conv1D`` (weight ``[K, N]``)."""
        w_kn = weight_kn_of(linear)
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

    @property
    def weight(self) -> torch.Tensor:
        """The decoded weight as ``nn.Linear`` holds it, float32 ``[out_features, in_features]``: a
        new tensor at each access (the layer stores codes only; writing to it changes nothing).
        For code that reads ``layer.weight`` of every linear layer, e.g. Hugging Face weight
        initialisation of a loaded model (``init.normal_(module.c_proj.weight)`` in GPT-2)."""
        return self._weight_nk().clone()

    def _weight_nk(self) -> torch.Tensor:
        return self._cached("weight_nk", lambda: self.weight_kn().T.contiguous())

    def _weight_int(self):
        def build():
            if self.fmt == "rf8":
                w = bitexact.weight_f64(self.codes)
            else:
                w = torch.from_numpy(bitexact.baseline_weight_int(self.codes.cpu().numpy(), self.fmt)
                                     .astype("float64"))
            return w, int(w.abs().max()) if w.numel() else 0
        return self._cached("weight_f64", build)

    def forward(self, x):
        dtype = x.dtype
        if self.smooth is not None:      # exact: division by powers of two
            x = x.float() / self.smooth
        if self.mode == "bitexact":
            check_mode(self.mode, self.fmt)
            w_f64, w_absmax = self._weight_int()
            if self.fmt != "rf8":
                y = bitexact.baseline_linear(x, self.codes, self.fmt, self.scale, self.bias, self.array,
                                             self.act_absmax, self.overflow_stats, self.act_granularity,
                                             w_f64)
                return y if dtype == torch.float32 or not dtype.is_floating_point else y.to(dtype)
            if self.out_bits is not None:
                y = bitexact.accel_linear(x, self.codes, self.exponent, self.bias, self.array,
                                          self.act_absmax, self.out_bits, self.out_absmax,
                                          self.overflow_stats, w_f64, w_absmax, self.channel_scale)
                return y if dtype == torch.float32 or not dtype.is_floating_point else y.to(dtype)
            y = bitexact.linear(x, self.codes, self.exponent, self.bias, self.array,
                                self.act_absmax, self.overflow_stats, self.act_granularity,
                                w_f64, w_absmax, self.channel_scale)
        else:
            xf = x if dtype == torch.float32 else x.float()
            y = F.linear(xf, self._weight_nk(), self.bias)       # fake-quant
        return y if dtype == torch.float32 or not dtype.is_floating_point else y.to(dtype)

    def set_postprocess(self, out_bits: int | None = 8, out_absmax: float | None = None) -> None:
        """Make ``mode="bitexact"`` compute this RF8 layer as the accelerator does, post-processing
        included (:func:`rf8hw.nn.bitexact.accel_linear`): one activation scale for the input (the
        static ``act_absmax``, else per-tensor dynamic, whatever ``act_granularity`` says), the
        output saturated to INT8 at scale ``float32(out_absmax / 127)`` (``out_absmax`` required)
        or to INT32 (``out_absmax`` refused).  ``out_bits=None``: off again."""
        if out_bits is None:
            if out_absmax is not None:
                raise ValueError(f"out_absmax={out_absmax!r} without out_bits")
            self.out_bits = self.out_absmax = None
            return
        if self.fmt != "rf8":
            raise ValueError(f"the accelerator's post-processing is for RF8 layers, not fmt "
                             f"{self.fmt!r}")
        if out_bits not in bitexact.OUT_BITS or isinstance(out_bits, bool):
            raise ValueError(f"out_bits must be one of {', '.join(map(str, bitexact.OUT_BITS))} "
                             f"or None, not {out_bits!r}")
        if out_bits == 8:
            if out_absmax is None:
                raise ValueError("INT8 output needs out_absmax (a static clipping level of the "
                                 "layer's output)")
            out_absmax = check_absmax("out_absmax", out_absmax)
        elif out_absmax is not None:
            raise ValueError(f"INT32 output takes no out_absmax (it is acc + bias), not "
                             f"{out_absmax!r}")
        self.out_bits, self.out_absmax = int(out_bits), out_absmax

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
                error_msgs.append(f"QuantLinear {layer!r}: the state dict has no "
                                  f"{', '.join(prefix + k for k in absent)} "
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
