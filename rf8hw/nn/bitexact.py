"""Bit-exact hardware arithmetic of an RF8 :class:`~rf8hw.nn.quant.QuantLinear` (``mode="bitexact"``).

This module holds the per-layer math only: activation quantization, the array's integer GEMM, the
bit-exact forward of one layer and its :class:`OverflowStats`.  It never imports
:mod:`rf8hw.nn.quant`; the layer (``QuantLinear``) owns its array configuration, static clipping
level and counters and calls :func:`linear`, and the model-level functions (``set_mode``,
``calibrate``, ``overflow_report``, ``reset_stats``) live in :mod:`rf8hw.nn.quant`.

The arithmetic parameters are those of an :class:`~rf8hw.arch.ArrayConfig`: ``act_bits``,
``acc_bits`` and ``overflow``.  Its ``rows``/``cols`` do not change any number here (see the tiling
note below) and its ``pe`` must be a kind of the layer's weight format.  The INT8 / FP8-E4M3
baselines (:func:`baseline_gemm`, W8A8) follow rules 1-3 with their own integer weights
(``rf8hw.format.baselines``: the INT8 byte, the FP8 value times ``2**9``) and dequantize as
``acc * ((act_scale * scale) * 2**-s)``, ``s`` = 0 (INT8) or 9 (FP8), rounded once.

What one layer computes, step by step (``docs/estimates.md`` has the same rules in prose):

1. **Activations to integers.**  The input ``x [..., K]`` is flattened to ``[M, K]`` and quantized to
   signed ``act_bits`` integers, symmetric, no zero point::

       qmax      = 2**(act_bits - 1) - 1                        (127 for 8 bits; -128 is never used)
       act_scale = float32(absmax / qmax)                       (1.0 when absmax == 0)
       a         = clip(round_half_even(x / act_scale), -qmax, qmax)

   ``absmax`` is chosen by the activation granularity (``act_granularity`` of the layer):

   * ``"token"`` (the default of the bit-exact path): per-token dynamic, ``max_k |x[m, k]|`` of
     each row ``m`` (one token of a transformer), so ``act_scale`` is a vector ``[M]``;
   * ``"tensor"``: per-tensor dynamic, ``max|x|`` of this call's whole tensor (one scalar; the
     result then depends on what else is in the batch);
   * ``"static"``: a fixed value found by :func:`rf8hw.nn.quant.calibrate` (inputs beyond it are
     clipped and counted).

   Every scale, per row or per tensor, multiplies the accumulator *after* the array (step 3): the
   array itself only ever sees integers, whatever the granularity.
2. **Integer GEMM on the array.**  ``acc = golden.matmul(a, codes, acc_bits, overflow, act_bits)``:
   exactly what the RF8 MAC array returns (``docs/rf8-format.md`` sections 4-5).
3. **Dequantize** on the host, in float64, rounded once to float32, then the float32 bias::

       y[m, n] = float32(acc[m, n] * 2**(X[n] - spec.PRODUCT_SHIFT) * (act_scale[m] * s[n])) + bias[n]

   ``X`` is the layer's shared exponent (per output channel or per tensor); ``s`` its optional
   real per-column scale (``QuantLinear.channel_scale``, float32 ``[N]``; 1 when absent).
   ``acc * 2**(X-18)`` is exact in float64 (``|acc| < 2**53`` for ``acc_bits <= 53``; wider
   accumulators round once), and so is ``act_scale[m] * s[n]`` (two float32 values: 48
   significant bits), so the only roundings are one float64 product and the float32 result.  In
   hardware ``act_scale * s`` is the per-column dequantization multiplier (``docs/quantization.md``).

**The accelerator's post-processing** (``docs/accelerator.md``, "Post-processing rule";
:func:`accel_linear`, a ``QuantLinear`` with :meth:`~rf8hw.nn.quant.QuantLinear.set_postprocess`)
replaces rule 3 with what ``RF8Accelerator`` does on chip: with one activation scale for the
whole input (static, or per-tensor dynamic), the bias in accumulator units, a 16-bit fixed-point
multiplier and a rounding right shift carrying RF8's exponent, saturated to INT8 (the output's
scale ``out_scale``) or INT32 (``acc + bias``, dequantized on the host)::

    bias_int, mult, shift = postproc.bias_int(...), postproc.requant_params(...)   (INT8)
    y_int[m, n] = clamp(round_half_up((acc[m, n] + bias_int[n]) * mult[n] / 2**shift[n]))
    y[m, n]     = float32(y_int * out_scale)                      (INT8)
                = float32(y_int * 2**(X[n]-18) * (act_scale * s[n]))   (INT32)

The integer steps are computed here in torch int64 (:func:`postprocess`), independently of the
numpy rule :func:`rf8hw.format.postproc.postprocess`; the parameters come from that module's
derivations (never retyped).  So the RTL's integers and this layer's are the same numbers.

Bias, activation functions, LayerNorm, softmax, attention score matmuls and everything outside
the ``QuantLinear`` layers stay in float32.

**Speed.**  :func:`linear` takes the layer's integer weights ``W(codes)`` as a cached float64
matrix (``weight_f64``, built once per layer by ``QuantLinear`` and rebuilt only when its codes
change).  While ``K * max|a| * max|W| < 2**53`` the float64 GEMM ``a @ W`` is the exact sum (every
product and partial sum is an integer below ``2**53``; the argument of ``golden.matmul``'s ``"f64"``
path), and while ``K * max|a| * max|W| < 2**(acc_bits-1)`` no partial sum can leave the
accumulator, so the exact sum *is* the accumulator result; only when that bound fails does the
array model :func:`rf8hw.format.golden.matmul` run (wrap or saturate, as configured).

**Overflow events.**  Each call also computes the exact sum ``golden.matmul(..., acc_bits=64)``
(no product sum of a real layer comes near ``2**63``).  When ``K * max|a| * max|W| <
2**(acc_bits-1)`` no partial sum can leave the accumulator's range, so step 2's result *is* the
exact sum and the second GEMM is skipped.  An *overflow event* is one output
accumulation ``(m, n)`` whose ``acc_bits`` result differs from that exact sum.  In ``wrap`` mode this
is exactly "the exact sum lies outside ``[-2**(acc_bits-1), 2**(acc_bits-1) - 1]``" (wrapping is
order-independent); in ``saturate`` mode it also counts sums that saturated on the way (in k order)
and came back into range with a wrong value.  Events are counted per layer in
:class:`OverflowStats` (``QuantLinear.overflow_stats``).

Tiling note: the array has ``rows`` PE rows, so a layer with ``K > rows`` runs as several k-tiles
whose results the host adds.  In ``wrap`` mode any such split gives the same result as one
``golden.matmul`` over all of K.  In ``saturate`` mode the result also depends on how the host
combines tile results; this module follows the contract of ``docs/rf8-format.md`` (one saturating
accumulator over k = 0..K-1).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch

from rf8hw import checks
from rf8hw.arch import ArrayConfig
from rf8hw.format import baselines, golden, postproc, spec
from rf8hw.nn.params import non_negative

__all__ = ["OverflowStats", "ACT_DYNAMIC", "ACT_GRANULARITIES", "act_qmax", "quantize_activations",
           "rf8_gemm", "weight_f64", "linear", "BASELINE_FORMATS", "WEIGHT_SHIFT", "baseline_weight_int",
           "baseline_gemm", "baseline_linear", "OUT_BITS", "postprocess", "out_scale_of",
           "accel_params", "accel_gemm", "accel_output", "accel_linear"]

#: dynamic activation scale granularities of the bit-exact path (module docstring, rule 1)
ACT_DYNAMIC = ("token", "tensor")
#: every activation scale granularity of the bit-exact path: the dynamic ones and a static level
ACT_GRANULARITIES = (*ACT_DYNAMIC, "static")
_F64_EXACT = 1 << 53


def act_qmax(act_bits: int) -> int:
    """Largest activation magnitude used with ``act_bits``-bit signed activations:
    ``2**(act_bits-1) - 1`` (127 for 8 bits; ``-2**(act_bits-1)`` is never used).

    Raises :class:`ValueError` unless ``act_bits`` is in ``spec.ACT_BITS_MIN .. spec.ACT_BITS_MAX``.
    """
    return (1 << (spec.check_act_bits(act_bits) - 1)) - 1


@dataclass
class OverflowStats:
    """What the bit-exact path of one layer saw since its counters were last reset
    (:func:`rf8hw.nn.quant.set_mode`, :func:`rf8hw.nn.quant.reset_stats`).

    Attributes
    ----------
    calls : int
        Forward calls.
    outputs : int
        Output accumulations computed (``M * N`` per call).
    events : int
        Overflow events: outputs whose ``acc_bits`` result differs from the exact sum.
    max_abs_sum : int
        Largest ``|exact sum|`` seen; ``bit_length() + 1`` is the accumulator width this layer needed.
    clipped_acts : int
        Activations clipped to ``+-qmax`` by a static scale (always 0 with dynamic scales).
    acts : int
        Activations quantized.
    """

    calls: int = 0
    outputs: int = 0
    events: int = 0
    max_abs_sum: int = 0
    clipped_acts: int = 0
    acts: int = 0

    def record(self, acc: np.ndarray, exact: np.ndarray, clipped: int, acts: int) -> None:
        """Add one call: its accumulator results ``acc``, exact sums ``exact`` (as returned by
        :func:`rf8_gemm`), clipped activations and activations quantized."""
        self.calls += 1
        self.outputs += acc.size
        self.events += int((acc != exact).sum())
        if exact.size:
            self.max_abs_sum = max(self.max_abs_sum, int(np.abs(exact).max()))
        self.clipped_acts += clipped
        self.acts += acts

    def as_dict(self) -> dict:
        d = asdict(self)
        d["acc_bits_needed"] = self.max_abs_sum.bit_length() + 1
        return d


def quantize_activations(x: np.ndarray, act_bits: int = 8, absmax: float | None = None,
                         granularity: str = "tensor"):
    """Signed symmetric integer activations of a float array (rule 1 of the module docstring).

    Parameters
    ----------
    x : numpy.ndarray, float
        Any shape (``granularity="token"``: the last axis is K, every other index is one token).
    act_bits : int
        Signed integer width; values lie in ``-(2**(act_bits-1) - 1) .. 2**(act_bits-1) - 1``.
    absmax : float or None
        Static clipping level (from :func:`rf8hw.nn.quant.calibrate`); when given, ``granularity``
        is ignored.  None: dynamic.
    granularity : {"tensor", "token"}
        Dynamic scales: one for the whole array, or one per token (per row of the last axis).

    Returns
    -------
    a : numpy.ndarray of int64, same shape as ``x``
    act_scale : float, or numpy.ndarray of float64 ``x.shape[:-1] + (1,)`` for ``"token"``
        ``float32(absmax / qmax)`` (1.0 where absmax is 0); ``x ~ a * act_scale``.
    clipped : int
        How many ``|x / act_scale|`` exceeded ``qmax`` (0 for dynamic scales).
    """
    qmax = act_qmax(act_bits)
    checks.choice("granularity", granularity, ACT_DYNAMIC)
    x = np.asarray(x)
    if not np.isfinite(x).all():
        raise ValueError(f"activations contain {int((~np.isfinite(x)).sum())} NaN/Inf value(s); "
                         "the bit-exact path needs finite inputs")
    if absmax is None and granularity == "token" and x.ndim >= 1:
        am = np.abs(x).max(axis=-1, keepdims=True) if x.size else np.zeros(x.shape[:-1] + (1,))
        scale = (am.astype(np.float64) / qmax).astype(np.float32).astype(np.float64)
        scale[(am <= 0) | (scale == 0.0)] = 1.0     # all-zero token, or absmax / qmax underflows
        u = np.rint(x.astype(np.float64) / scale)
        return np.clip(u, -qmax, qmax).astype(np.int64), scale, 0
    if absmax is None:
        absmax = float(np.abs(x).max()) if x.size else 0.0
    else:
        absmax = non_negative("static absmax", absmax)
    scale = float(np.float32(absmax / qmax)) if absmax > 0 else 1.0
    if scale == 0.0:              # absmax / qmax underflows float32: treat as all-zero input
        scale = 1.0
    u = np.rint(x.astype(np.float64) / scale)
    clipped = int((np.abs(u) > qmax).sum())
    return np.clip(u, -qmax, qmax).astype(np.int64), scale, clipped


def weight_f64(codes) -> torch.Tensor:
    """The integer weights ``W(codes)`` of a ``[K, N]`` code matrix as a float64 tensor (exact:
    ``|W| < 2**53``), the cached operand of :func:`rf8_gemm`'s fast exact path."""
    c = codes.cpu().numpy() if isinstance(codes, torch.Tensor) else np.asarray(codes)
    return torch.from_numpy(golden.weight_int(c).astype(np.float64))


def rf8_gemm(a: np.ndarray, act_scale, codes: np.ndarray, exponent: np.ndarray,
             array: ArrayConfig | None = None, w_f64: torch.Tensor | None = None,
             w_absmax: int | None = None, channel_scale: np.ndarray | None = None):
    """Run ``a @ codes`` on the array model and dequantize (rules 2-3 of the module docstring).

    Parameters
    ----------
    a : int array [M, K]
        Signed ``array.act_bits`` activations.
    act_scale : float or float array [M, 1]
        Per-tensor or per-row (token) activation scale.
    codes : uint8 array [K, N]
        RF8 codes (``QuantLinear.codes``).
    exponent : int array [N] or [1]
        Shared exponents X (``QuantLinear.exponent``).
    array : ArrayConfig, optional
        Its ``act_bits``, ``acc_bits`` and ``overflow`` (default ``ArrayConfig()``: 8-bit
        activations, 40-bit wrapping accumulator).
    w_f64, w_absmax : optional
        ``weight_f64(codes)`` and ``max|W(codes)|``, cached by the caller (computed when None).
    channel_scale : float32 array [N], optional
        Real per-column scale ``s`` (None: 1).

    Returns
    -------
    y : numpy.ndarray of float64 [M, N]
        ``acc * 2**(X - 18) * (act_scale * s)`` (no bias; one float64 rounding).
    acc : numpy.ndarray of int64 [M, N]
        The accumulator contents (``acc_bits`` two's complement, as signed integers).
    exact : numpy.ndarray of int64 [M, N]
        The exact sums (64-bit accumulation).
    """
    array = ArrayConfig() if array is None else array
    if w_absmax is None:
        w_absmax = int(np.abs(golden.weight_int(codes)).max()) if codes.size else 0
    amax = int(np.abs(a).max()) if a.size else 0
    bound = a.shape[1] * amax * w_absmax
    if bound < _F64_EXACT and a.size and codes.size:
        if w_f64 is None:
            w_f64 = weight_f64(codes)
        # exact: integers below 2**53 whatever the summation order (golden.matmul's "f64" argument)
        exact = (torch.from_numpy(a.astype(np.float64)) @ w_f64).numpy().astype(np.int64)
    else:
        exact = golden.matmul(a, codes, acc_bits=spec.ACC_BITS_MAX, overflow="wrap",
                              act_bits=array.act_bits)
    if bound < (1 << (array.acc_bits - 1)):
        acc = exact          # no partial or final sum leaves the range: every overflow rule is the identity
    else:
        acc = golden.matmul(a, codes, acc_bits=array.acc_bits, overflow=array.overflow,
                            act_bits=array.act_bits)
    step = np.ldexp(1.0, np.asarray(exponent, dtype=np.int64).reshape(-1) - spec.PRODUCT_SHIFT)
    scale = np.asarray(act_scale, dtype=np.float64)
    if channel_scale is not None:     # exact: a product of two float32 values fits float64
        scale = scale * np.asarray(channel_scale, dtype=np.float32).astype(np.float64).reshape(-1)
    y = (acc.astype(np.float64) * step) * scale
    return y, acc, exact


def linear(x: torch.Tensor, codes: torch.Tensor, exponent: torch.Tensor,
           bias: torch.Tensor | None = None, array: ArrayConfig | None = None,
           absmax: float | None = None, stats: OverflowStats | None = None,
           granularity: str = "token", w_f64: torch.Tensor | None = None,
           w_absmax: int | None = None, channel_scale: torch.Tensor | None = None) -> torch.Tensor:
    """Bit-exact forward of one RF8 layer (``QuantLinear.forward`` in ``mode="bitexact"``).

    Parameters
    ----------
    x : torch.Tensor [..., K]
        Any float dtype; computed from its float32 values, returned as float32.
    codes : torch.Tensor, uint8 [K, N]
    exponent : torch.Tensor, int [N] or [1]
    bias : torch.Tensor [N] or None
        Added in float32 after dequantization.
    array : ArrayConfig, optional
        Arithmetic of the array (default ``ArrayConfig()``).
    absmax : float or None
        Static activation clipping level; None: dynamic scales of ``granularity``.
    stats : OverflowStats, optional
        Updated with this call (:meth:`OverflowStats.record`).
    granularity : {"token", "tensor"}
        Dynamic activation scales per token (row) or per tensor (ignored when ``absmax`` is given).
    w_f64, w_absmax : optional
        Cached :func:`weight_f64` of ``codes`` and ``max|W|`` (see :func:`rf8_gemm`).
    channel_scale : torch.Tensor, float32 [N], optional
        Real per-column scale, multiplied into the dequantization scale (rule 3, rounded once).

    Returns
    -------
    torch.Tensor, float32 [..., N], on ``x``'s device
        Inference only: the result carries no gradient.
    """
    array = ArrayConfig() if array is None else array
    cs = None if channel_scale is None else channel_scale.detach().cpu().numpy()
    return _through_array(x, array, absmax, granularity, stats, bias, lambda a, scale: rf8_gemm(
        a, scale, codes.cpu().numpy(), exponent.cpu().numpy(), array, w_f64, w_absmax, cs))


def _through_array(x, array, absmax, granularity, stats, bias, gemm) -> torch.Tensor:
    """The frame every bit-exact layer shares: quantize ``x``'s activations (rule 1), ``gemm(a,
    act_scale) -> (y, acc, exact)``, record the overflow statistics, float32 result + bias (rule 3)."""
    lead = x.shape[:-1]
    x2 = x.detach().reshape(-1, x.shape[-1]).to(torch.float32).cpu().numpy()
    a, act_scale, clipped = quantize_activations(x2, array.act_bits, absmax, granularity)
    y, acc, exact = gemm(a, act_scale)
    if stats is not None:
        stats.record(acc, exact, clipped, a.size)
    out = torch.from_numpy(y.astype(np.float32)).reshape(*lead, y.shape[1]).to(x.device)
    if bias is not None:
        out = out + bias.detach().to(out.dtype)
    return out


# ------------------------------------------------------- the accelerator's post-processing

#: output widths of the accelerator's post-processing (:data:`rf8hw.format.postproc.OUT_BITS`)
OUT_BITS = postproc.OUT_BITS


def postprocess(acc: torch.Tensor, bias=0, mult=1, shift=0, *, acc_bits: int = 40,
                out_bits: int = 8) -> torch.Tensor:
    """Steps 2-5 of the accelerator's rule on exact sums ``acc [M, N]`` in torch int64: ``clamp(
    floor(((acc + bias) * mult + 2**(shift-1)) / 2**shift))`` (no rounding constant for ``shift
    = 0``), clamped to signed ``out_bits``.  ``bias``/``mult``/``shift``: one integer per column
    or one for all, checked as :func:`rf8hw.format.postproc.check_params` checks them; ``acc``
    must hold signed ``acc_bits``-bit integers.  Exact: every intermediate fits int64
    (``acc_bits <= postproc.ACC_BITS_MAX``)."""
    acc = torch.as_tensor(acc)
    if acc.dim() != 2 or acc.dtype.is_floating_point or acc.dtype == torch.bool:
        raise ValueError(f"acc must be a 2-D integer tensor [M, N], not {acc.dtype} "
                         f"{tuple(acc.shape)}")
    bias, mult, shift, acc_bits, out_bits = postproc.check_params(acc.shape[1], bias, mult, shift,
                                                                  acc_bits, out_bits)
    acc = acc.to(torch.int64)
    half = 1 << (acc_bits - 1)
    if acc.numel() and (int(acc.min()) < -half or int(acc.max()) >= half):
        raise ValueError(f"acc must hold signed {acc_bits}-bit integers, found "
                         f"{int(acc.min())}..{int(acc.max())}")
    b, m, s = (torch.from_numpy(v).to(acc.device) for v in (bias, mult, shift))
    p = (acc + b) * m
    one = torch.ones_like(s)
    rounding = torch.where(s > 0, one << (s - 1).clamp(min=0), torch.zeros_like(s))
    r = (p + rounding) >> s                  # arithmetic shift of int64: floor division
    return r.clamp(-(1 << (out_bits - 1)), (1 << (out_bits - 1)) - 1)


def out_scale_of(out_absmax: float) -> float:
    """The INT8 output's scale for a clipping level: ``float32(out_absmax / 127)`` (the rule of
    the activations, :func:`quantize_activations`); 1.0 for ``out_absmax = 0``."""
    out_absmax = non_negative("out_absmax", out_absmax)
    scale = float(np.float32(out_absmax / act_qmax(8))) if out_absmax > 0 else 1.0
    return scale if scale > 0 else 1.0


def accel_params(exponent, act_scale: float, n: int, bias=None, out_scale: float | None = None,
                 channel_scale=None, *, acc_bits: int = 40, out_bits: int = 8):
    """The parameter stream of one command: ``(bias_int, mult, shift)`` (int64 ``[n]`` each).

    ``bias_int``: :func:`rf8hw.format.postproc.bias_int` of the float bias (zeros without one);
    INT8: ``(mult, shift)`` of :func:`rf8hw.format.postproc.requant_params` for ``out_scale``;
    INT32: ``mult = 1, shift = 0`` (the sum and bias, exact)."""
    if out_bits not in OUT_BITS or isinstance(out_bits, bool):
        raise ValueError(f"out_bits must be one of {', '.join(map(str, OUT_BITS))}, not {out_bits!r}")
    X = np.broadcast_to(np.asarray(exponent, dtype=np.int64).reshape(-1), (n,))
    cs = 1.0 if channel_scale is None else np.asarray(channel_scale, dtype=np.float32).reshape(-1)
    if bias is None:
        b = np.zeros(n, np.int64)
    else:
        b = postproc.bias_int(np.asarray(bias, dtype=np.float32).reshape(-1), X, act_scale, cs,
                              acc_bits=acc_bits)
    if out_bits == 32:
        return b, np.ones(n, np.int64), np.zeros(n, np.int64)
    if out_scale is None:
        raise ValueError("INT8 output needs an output scale (out_absmax: a static clipping level "
                         "of the layer's output)")
    mult, shift = postproc.requant_params(X, act_scale, out_scale, cs)
    return b, mult, shift


def accel_gemm(a: np.ndarray, act_scale: float, codes: np.ndarray, exponent: np.ndarray,
               bias=None, out_scale: float | None = None, array: ArrayConfig | None = None,
               out_bits: int = 8, channel_scale=None, w_f64: torch.Tensor | None = None,
               w_absmax: int | None = None) -> dict:
    """One layer's GEMM as the accelerator computes it (module docstring, "The accelerator's
    post-processing"): exact sums (``K <= postproc.max_k``, else ``ValueError``), then
    :func:`postprocess` with :func:`accel_params`.

    Returns a dict: ``y`` (float32 ``[M, N]``, the layer's output), ``y_int`` (int64 ``[M, N]``,
    what leaves the accelerator), ``acc`` and ``exact`` (as :func:`rf8_gemm`), ``bias``,
    ``mult``, ``shift`` (the parameter stream), ``act_scale``, ``out_scale``."""
    array = ArrayConfig() if array is None else array
    act_scale = np.asarray(act_scale, dtype=np.float64)
    if act_scale.size != 1:
        raise ValueError(f"the accelerator's post-processing takes one activation scale for the "
                         f"whole input (static, or per-tensor dynamic), not {act_scale.size} "
                         f"(per-token scales)")
    act_scale = float(act_scale.reshape(-1)[0])
    K, N = np.shape(codes)
    limit = postproc.max_k(array.act_bits, array.acc_bits)
    checks.integer("K", K, 1, limit, f" for the accelerator's exact sums (act_bits="
                                     f"{array.act_bits}, acc_bits={array.acc_bits})")
    _, acc, exact = rf8_gemm(a, act_scale, codes, exponent, array, w_f64, w_absmax, channel_scale)
    b, mult, shift = accel_params(exponent, act_scale, N, bias, out_scale, channel_scale,
                                  acc_bits=array.acc_bits, out_bits=out_bits)
    y_int = postprocess(torch.from_numpy(exact), b, mult, shift, acc_bits=array.acc_bits,
                        out_bits=out_bits).numpy()
    y = accel_output(y_int, exponent, act_scale, out_scale, out_bits, channel_scale)
    return {"y": y, "y_int": y_int, "acc": acc, "exact": exact, "bias": b, "mult": mult,
            "shift": shift, "act_scale": act_scale, "out_scale": out_scale}


def accel_output(y_int: np.ndarray, exponent, act_scale: float, out_scale: float | None,
                 out_bits: int = 8, channel_scale=None) -> np.ndarray:
    """The layer's float32 output ``[M, N]`` from the integers ``y_int`` that leave the
    accelerator (module docstring): ``float32(y_int * out_scale)`` (INT8) or
    ``float32(y_int * 2**(X[n]-18) * (act_scale * s[n]))`` (INT32, dequantized on the host).
    :func:`accel_gemm` uses it on its own integers, ``rf8hw cosim --model`` on the RTL's."""
    y_int = np.asarray(y_int)
    if out_bits == 8:
        return (y_int.astype(np.float64) * out_scale).astype(np.float32)
    step = np.ldexp(1.0, np.asarray(exponent, dtype=np.int64).reshape(-1) - spec.PRODUCT_SHIFT)
    cs = 1.0 if channel_scale is None else np.asarray(channel_scale, np.float32).astype(np.float64)
    return ((y_int.astype(np.float64) * step) * (act_scale * cs)).astype(np.float32)


def accel_linear(x: torch.Tensor, codes: torch.Tensor, exponent: torch.Tensor,
                 bias: torch.Tensor | None = None, array: ArrayConfig | None = None,
                 absmax: float | None = None, out_bits: int = 8, out_absmax: float | None = None,
                 stats: OverflowStats | None = None, w_f64: torch.Tensor | None = None,
                 w_absmax: int | None = None, channel_scale: torch.Tensor | None = None,
                 details: list | None = None) -> torch.Tensor:
    """Bit-exact forward of one RF8 layer through the accelerator's post-processing
    (:func:`accel_gemm`): activations with one scale (``absmax`` static, else per-tensor
    dynamic), INT8 output at ``out_scale_of(out_absmax)`` or INT32 output dequantized on the
    host.  ``details``: if a list, :func:`accel_gemm`'s dict (with ``a``) is appended."""
    array = ArrayConfig() if array is None else array
    if out_bits == 8 and out_absmax is None:
        raise ValueError("INT8 output needs out_absmax (a static clipping level of the layer's "
                         "output); INT32 output needs none")
    lead = x.shape[:-1]
    x2 = x.detach().reshape(-1, x.shape[-1]).to(torch.float32).cpu().numpy()
    a, scale, clipped = quantize_activations(x2, array.act_bits, absmax, "tensor")
    cs = None if channel_scale is None else channel_scale.detach().cpu().numpy()
    b = None if bias is None else bias.detach().cpu().numpy()
    got = accel_gemm(a, scale, codes.cpu().numpy(), exponent.cpu().numpy(), b,
                     None if out_absmax is None else out_scale_of(out_absmax),
                     array, out_bits, cs, w_f64, w_absmax)
    if stats is not None:
        stats.record(got["acc"], got["exact"], clipped, a.size)
    if details is not None:
        details.append({**got, "a": a})
    return torch.from_numpy(got["y"]).reshape(*lead, got["y"].shape[1]).to(x.device)


# ------------------------------------------------------------------ the baselines: INT8 and FP8-E4M3

#: weight formats of the baseline arrays this module models besides RF8 (``rf8hw.format.baselines``)
BASELINE_FORMATS = baselines.FORMATS


def baseline_weight_int(codes, fmt: str) -> np.ndarray:
    """Integer weights ``W(code)`` of a baseline PE (``rf8hw.format.baselines``: the INT8 byte, or the
    FP8-E4M3 value times ``2**9``) of a uint8 code array, int64, same shape."""
    checks.choice("baseline weight format", fmt, BASELINE_FORMATS)
    table = np.array([baselines.WEIGHT_INT_FUNCS[fmt](c) for c in range(256)], dtype=np.int64)
    return table[np.asarray(codes, dtype=np.uint8)]


#: ``W(code) = value * 2**WEIGHT_SHIFT[fmt]``
WEIGHT_SHIFT = {"int8": 0, "fp8_e4m3": baselines.FP8_E4M3_SCALE_BITS}


def _accumulate(a: np.ndarray, w: np.ndarray, array: ArrayConfig, w_f64=None):
    """``(acc, exact)`` of the integer GEMM ``a @ w`` (int64 ``[M, K]`` by ``[K, N]``) in an
    ``array.acc_bits`` accumulator with ``array.overflow``, adding in k order (the rule of
    :func:`rf8hw.format.golden.matmul`, for any integer weights)."""
    amax = int(np.abs(a).max()) if a.size else 0
    wmax = int(np.abs(w).max()) if w.size else 0
    bound = a.shape[1] * amax * wmax
    if bound < _F64_EXACT:
        wf = torch.from_numpy(w.astype(np.float64)) if w_f64 is None else w_f64
        exact = (torch.from_numpy(a.astype(np.float64)) @ wf).numpy().astype(np.int64)
    else:
        exact = a.astype(np.int64) @ w.astype(np.int64)
    half = 1 << (array.acc_bits - 1)
    if bound < half:
        return exact, exact
    if array.overflow == "wrap":           # wrapping every partial sum = wrapping the total
        return ((exact + half) % (2 * half)) - half, exact
    acc = np.zeros((a.shape[0], w.shape[1]), dtype=np.int64)
    for k in range(a.shape[1]):            # saturate: every partial sum, in k order
        acc = np.clip(acc + a[:, k:k + 1] * w[k][None, :], -half, half - 1)
    return acc, exact


def baseline_gemm(a: np.ndarray, act_scale, codes: np.ndarray, fmt: str, scale: np.ndarray,
                  array: ArrayConfig | None = None, w_f64: torch.Tensor | None = None):
    """The INT8 / FP8-E4M3 array's GEMM and its dequantization (W8A8 with the same activations as
    the RF8 path, rules 1-2 of the module docstring)::

        acc     = sum_k a[m, k] * W(codes[k, n])      (acc_bits accumulator, wrap or saturate)
        y[m, n] = acc[m, n] * ((act_scale[m] * scale[n]) * 2**-WEIGHT_SHIFT[fmt])

    ``act_scale[m] * scale[n]`` (two float32 values) and the power of two are exact in float64,
    so ``y`` is rounded once (float64), like the RF8 path's rule 3.  Returns ``(y, acc, exact)``
    as :func:`rf8_gemm`."""
    array = ArrayConfig() if array is None else array
    w = baseline_weight_int(codes, fmt)
    acc, exact = _accumulate(np.asarray(a, dtype=np.int64), w, array, w_f64)
    s = (np.asarray(act_scale, dtype=np.float64)
         * np.asarray(scale, dtype=np.float32).astype(np.float64).reshape(-1))
    y = acc.astype(np.float64) * (s * np.ldexp(1.0, -WEIGHT_SHIFT[fmt]))
    return y, acc, exact


def baseline_linear(x: torch.Tensor, codes: torch.Tensor, fmt: str, scale: torch.Tensor,
                    bias: torch.Tensor | None = None, array: ArrayConfig | None = None,
                    absmax: float | None = None, stats: OverflowStats | None = None,
                    granularity: str = "token", w_f64: torch.Tensor | None = None) -> torch.Tensor:
    """Bit-exact forward of one INT8 / FP8-E4M3 layer (``QuantLinear`` of that ``fmt`` in
    ``mode="bitexact"``): :func:`linear` with :func:`baseline_gemm` in place of :func:`rf8_gemm`;
    the activations are quantized by the same rule 1, the float32 result and bias as rule 3."""
    array = ArrayConfig() if array is None else array
    w_scale = scale.detach().cpu().numpy()
    return _through_array(x, array, absmax, granularity, stats, bias, lambda a, act_scale: baseline_gemm(
        a, act_scale, codes.cpu().numpy(), fmt, w_scale, array, w_f64))
