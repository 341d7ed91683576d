"""The accelerator's post-processing rule, bit for bit: exact K sums -> bias -> fixed-point scale
-> INT8 or INT32 (``docs/accelerator.md``, "Post-processing rule").  numpy only.

For one output value ``y[m, n]`` of a GEMM ``a[M, K] @ W(codes[K, N])``:

1. ``acc = sum_k P(a[m, k], codes[k, n])``, exact: the accumulator is ``acc_bits`` wide and the
   accelerator accepts ``K <= max_k(act_bits, acc_bits)``, so no sum overflows
   (``golden.matmul`` in ``wrap`` mode returns it);
2. ``v = acc + bias[n]``, ``bias`` a signed ``acc_bits``-bit integer in accumulator units;
3. ``p = v * mult[n]``, ``mult`` an unsigned :data:`MULT_BITS`-bit integer;
4. ``r = floor((p + 2**(shift[n]-1)) / 2**shift[n])`` (``r = p`` when ``shift[n] = 0``):
   a right shift by ``0 .. SHIFT_MAX`` that rounds half up (ties toward +inf);
5. ``y = clamp(r, -2**(out_bits-1), 2**(out_bits-1) - 1)`` with ``out_bits`` 8 or 32 (saturation,
   no zero point: symmetric quantization).

``mult * 2**-shift`` is the column's requantization factor ``2**(X[n]-18) * act_scale * c[n] /
out_scale``: RF8's power-of-two shared exponent ``X[n]`` moves only ``shift`` (exactly, no
rounding), the per-channel scale ``c[n]`` and the activation scales are the fixed-point
significand ``mult`` (:func:`fixed_point`, rounded to nearest, ties to even).
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np

from rf8hw import checks
from rf8hw.format import spec

__all__ = ["MULT_BITS", "SHIFT_BITS", "SHIFT_MAX", "OUT_BITS", "ACC_BITS_MAX", "max_k",
           "check_params", "round_shift", "postprocess", "fixed_point", "requant_params",
           "bias_int", "gemm"]

MULT_BITS = 16        #: width of the unsigned per-column multiplier ``mult``
SHIFT_BITS = 6        #: width of the per-column right shift ``shift``
SHIFT_MAX = (1 << SHIFT_BITS) - 1   #: largest right shift, 63
OUT_BITS = (8, 32)    #: output widths: INT8 for the next layer, INT32 for the host
#: Widest accumulator the rule accepts: ``(acc + bias) * mult`` plus the rounding constant then
#: stays inside int64 (``acc_bits + MULT_BITS <= 62``), so the numpy implementation is exact.
ACC_BITS_MAX = 62 - MULT_BITS


def max_k(act_bits: int, acc_bits: int) -> int:
    """Largest K for which every sum of K products fits a signed ``acc_bits`` accumulator.

    The largest product magnitude is ``2**(act_bits-1) * max_abs_weight_int()`` (reached with a
    positive sign: ``x = -2**(act_bits-1)`` times the most negative weight), so the bound is
    ``floor((2**(acc_bits-1) - 1) / (2**(act_bits-1) * 393216))``: 10,922 for 8-bit activations
    and a 40-bit accumulator.
    """
    act_bits = spec.check_act_bits(act_bits)
    acc_bits = spec.check_acc_bits(acc_bits, act_bits)
    return ((1 << (acc_bits - 1)) - 1) // ((1 << (act_bits - 1)) * spec.max_abs_weight_int())


def _column_array(name, value, n, lo, hi):
    arr = np.asarray(value)
    if arr.ndim == 0:
        arr = np.full(n, arr)
    if arr.shape != (n,) or not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"{name} must be an integer or {n} integers (one per output column), "
                         f"not {value!r}")
    arr = arr.astype(np.int64)
    bad = np.flatnonzero((arr < lo) | (arr > hi))
    if bad.size:
        raise ValueError(f"{name}[{bad[0]}] must be in {lo}..{hi}, not {int(arr[bad[0]])}")
    return arr


def check_params(n: int, bias, mult, shift, acc_bits: int, out_bits: int):
    """``(bias, mult, shift, acc_bits, out_bits)`` for ``n`` output columns, each checked: bias a
    signed ``acc_bits``-bit integer, ``mult`` in ``0 .. 2**MULT_BITS - 1``, ``shift`` in
    ``0 .. SHIFT_MAX``, ``acc_bits`` up to :data:`ACC_BITS_MAX`, ``out_bits`` in :data:`OUT_BITS`.
    A scalar applies to every column (per-tensor)."""
    acc_bits = checks.integer("acc_bits", acc_bits, 2, ACC_BITS_MAX)
    if out_bits not in OUT_BITS or isinstance(out_bits, bool):
        raise ValueError(f"out_bits must be one of {', '.join(map(str, OUT_BITS))}, not {out_bits!r}")
    half = 1 << (acc_bits - 1)
    return (_column_array("bias", bias, n, -half, half - 1),
            _column_array("mult", mult, n, 0, (1 << MULT_BITS) - 1),
            _column_array("shift", shift, n, 0, SHIFT_MAX), acc_bits, int(out_bits))


def round_shift(p, shift):
    """``floor((p + 2**(shift-1)) / 2**shift)`` for ``shift >= 1``, ``p`` for ``shift == 0``
    (int64 arrays, broadcast): the rounding right shift of step 4, ties toward +inf."""
    p = np.asarray(p, dtype=np.int64)
    shift = np.asarray(shift, dtype=np.int64)
    half = np.where(shift > 0, np.left_shift(np.int64(1), np.maximum(shift - 1, 0)), 0)
    return np.right_shift(p + half, shift)      # arithmetic shift on int64 = floor division


def postprocess(acc, bias=0, mult=1, shift=0, *, acc_bits: int = 40, out_bits: int = 8) -> np.ndarray:
    """Steps 2-5 on exact sums ``acc[M, N]`` (int64, each a signed ``acc_bits``-bit integer).

    ``bias``, ``mult``, ``shift``: one integer per output column ``n`` (or one for all).
    Returns int64 ``[M, N]`` in the ``out_bits`` range.
    """
    acc = np.asarray(acc)
    if acc.ndim != 2 or not np.issubdtype(acc.dtype, np.integer):
        raise ValueError(f"acc must be a 2-D integer array [M, N], not {acc.dtype} {acc.shape}")
    bias, mult, shift, acc_bits, out_bits = check_params(acc.shape[1], bias, mult, shift,
                                                         acc_bits, out_bits)
    acc = acc.astype(np.int64)
    half = 1 << (acc_bits - 1)
    if acc.size and (acc.min() < -half or acc.max() >= half):
        raise ValueError(f"acc must hold signed {acc_bits}-bit integers, found "
                         f"{int(acc.min())}..{int(acc.max())}")
    r = round_shift((acc + bias) * mult, shift)
    lo, hi = -(1 << (out_bits - 1)), (1 << (out_bits - 1)) - 1
    return np.clip(r, lo, hi)


def _round_half_even(q: Fraction) -> int:
    return round(q)      # Fraction.__round__ rounds half to even


def fixed_point(factor) -> tuple[int, int]:
    """``(mult, shift)`` with ``mult * 2**-shift`` nearest to ``factor`` (>= 0, finite), ``mult``
    normalised into ``2**(MULT_BITS-1) .. 2**MULT_BITS - 1`` (full precision), rounded to
    nearest, ties to even; ``(0, 0)`` for 0.  ``ValueError`` when the shift would leave
    ``0 .. SHIFT_MAX`` (the factor is too large or too small for the rule)."""
    try:
        f = Fraction(factor)
    except (TypeError, ValueError):
        raise ValueError(f"factor must be a finite number >= 0, not {factor!r}") from None
    if f < 0:
        raise ValueError(f"factor must be a finite number >= 0, not {factor!r}")
    if f == 0:
        return 0, 0
    # shift s such that 2**(MULT_BITS-1) <= f * 2**s < 2**MULT_BITS
    s = MULT_BITS - 1 - (f.numerator.bit_length() - f.denominator.bit_length())
    while f * 2 ** s >= 1 << MULT_BITS:
        s -= 1
    while f * 2 ** s < 1 << (MULT_BITS - 1):
        s += 1
    mult = _round_half_even(f * Fraction(2) ** s)
    if mult == 1 << MULT_BITS:             # rounded up to the next power of two
        mult, s = mult >> 1, s - 1
    if not 0 <= s <= SHIFT_MAX:
        raise ValueError(f"factor {factor!r} needs a right shift of {s}; the rule allows "
                         f"0..{SHIFT_MAX} with a {MULT_BITS}-bit multiplier")
    return mult, s


def requant_params(X, act_scale, out_scale, channel_scale=1.0) -> tuple[np.ndarray, np.ndarray]:
    """Per-column ``(mult, shift)`` for INT8 output: the factor ``2**(X[n] - 18) * act_scale *
    channel_scale[n] / out_scale`` (exact rationals of the given floats) through
    :func:`fixed_point`.  ``X``: the RF8 shared exponents (one per column, or one for all);
    a per-tensor output scale ``out_scale`` (or one per column)."""
    X = np.atleast_1d(np.asarray(X))
    n = max(X.size, np.size(channel_scale), np.size(out_scale))
    X = np.broadcast_to(X, (n,))
    cs = np.broadcast_to(np.asarray(channel_scale, dtype=np.float64), (n,))
    os_ = np.broadcast_to(np.asarray(out_scale, dtype=np.float64), (n,))
    mult, shift = np.zeros(n, np.int64), np.zeros(n, np.int64)
    for i in range(n):
        x = checks.integer(f"X[{i}]", X[i], spec.X_MIN, spec.X_MAX)
        if not os_[i] > 0:
            raise ValueError(f"out_scale must be > 0, not {float(os_[i])!r}")
        f = (Fraction(float(act_scale)) * Fraction(float(cs[i])) / Fraction(float(os_[i]))
             * Fraction(2) ** (x - spec.PRODUCT_SHIFT))
        mult[i], shift[i] = fixed_point(f)
    return mult, shift


def bias_int(bias, X, act_scale, channel_scale=1.0, *, acc_bits: int = 40) -> np.ndarray:
    """A float bias per column in accumulator units: ``bias[n] / (2**(X[n]-18) * act_scale *
    channel_scale[n])`` rounded to nearest (ties to even); ``ValueError`` if it does not fit
    a signed ``acc_bits``-bit integer."""
    bias = np.atleast_1d(np.asarray(bias, dtype=np.float64))
    n = bias.size
    X = np.broadcast_to(np.atleast_1d(np.asarray(X)), (n,))
    cs = np.broadcast_to(np.asarray(channel_scale, dtype=np.float64), (n,))
    out = np.zeros(n, np.int64)
    half = 1 << (acc_bits - 1)
    for i in range(n):
        unit = Fraction(float(act_scale)) * Fraction(float(cs[i])) * Fraction(2) ** (
            int(X[i]) - spec.PRODUCT_SHIFT)
        q = _round_half_even(Fraction(float(bias[i])) / unit)
        if not -half <= q < half:
            raise ValueError(f"bias[{i}] = {float(bias[i])!r} is {q} accumulator units, outside "
                             f"a signed {acc_bits}-bit integer")
        out[i] = q
    return out


def gemm(a, codes, bias=0, mult=1, shift=0, *, act_bits: int = 8, acc_bits: int = 40,
         out_bits: int = 8) -> np.ndarray:
    """The accelerator's whole result: exact sums (``golden.matmul``, refused when ``K >
    max_k(act_bits, acc_bits)``) followed by :func:`postprocess`."""
    from rf8hw.format import golden  # numba: loaded only for a whole GEMM

    K = np.shape(codes)[0]
    limit = max_k(act_bits, acc_bits)
    checks.integer("K", K, 1, limit, f" for act_bits={act_bits}, acc_bits={acc_bits} (exact sums)")
    acc = golden.matmul(a, codes, acc_bits, "wrap", act_bits)
    return postprocess(acc, bias, mult, shift, acc_bits=acc_bits, out_bits=out_bits)
