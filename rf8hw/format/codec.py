"""RF8 encode, decode and shared exponent: the bit-exact numeric model of the format.

The rules are written in ``docs/rf8-format.md``; the constants come from :mod:`rf8hw.format.spec`.
Each rule is implemented exactly once, in the Numba kernels below, on the integer fields of the
IEEE-754 input (no ``log2``, no floating-point rounding inside the rounding decisions):

* the input is widened to float64 fields ``(s, j, f)`` with ``|w| = (1 + f / 2**52) * 2**j``
  (float32 inputs are widened exactly by integer shifts);
* the significand ``f`` is compared with integer thresholds; the thresholds of the ``"paper"`` mode
  sit at irrational points ``2**(k + 1/2)`` and are computed exactly with ``math.isqrt``.

Public API::

    codes = encode(w, X, rounding="nearest")   # float32/float64 -> uint8, same shape
    w_hat = decode(codes, X)                   # uint8 -> float32
    X     = shared_exponent(w, axis=None)      # int, or int array over the remaining axes
"""

from __future__ import annotations

import math
import numbers
import warnings
from dataclasses import dataclass

import numba as nb
import numpy as np

from rf8hw import checks
from rf8hw.format import spec

__all__ = ["encode", "decode", "shared_exponent", "EncodeStats", "value_table", "MAX_CODE",
           "MIN_CODE"]

_F = 52                      # fraction bits of the float64 fields the kernels work on
_ONE = 1 << _F               # the implicit leading one

# Spec constants bound once: Numba freezes module globals when it compiles a kernel, so the kernels
# read these names and never retype a number of the format.
_SIGN_BIT = spec.SIGN_BIT
_RES_BITS = spec.RES_BITS
_RES_MASK = spec.RES_MASK
_EXP_BIAS = spec.EXP_BIAS
_EXP_MAX = spec.EXP_MAX
_MAX_GAP = spec.MAX_GAP
_UNIT = 1 << spec.FRAC_BITS  # M = _UNIT is the significand 1.0

_NIBBLE = 4                  # table entries are residual fields packed 4 bits apart
assert _RES_MASK < 1 << _NIBBLE


def _pack_nibbles(values) -> int:
    """Small lookup tables as one integer, read with a variable shift (vectorises, unlike a gather)."""
    return sum(v << (_NIBBLE * i) for i, v in enumerate(values))


def _canonical(v: int) -> tuple[int, int]:
    """A significand ``v / _UNIT`` in ``[1, 2]`` at exponent j -> ``(off, R)``: the code's leading
    exponent is ``j + off``.  The larger exponent wins when both represent ``v`` (the paper's
    ``e1 = round(log2|w|)``), so ``1.5 * 2**j`` is ``(j + 1, R=5)``, never ``(j, R=1)``."""
    if v % 2 == 0 and v // 2 in spec.M_TABLE:
        return 1, spec.M_TABLE.index(v // 2)
    return 0, spec.M_TABLE.index(v)


def _normalised(M: int, E: int) -> tuple[int, int]:
    """Magnitude of the code (E, R with M(R) = M) as the kernels see an input: ``(Ej, f)`` with
    ``|value| = (1 + f / 2**52) * 2**(Ej - EXP_BIAS + X)``."""
    k = M.bit_length() - 1
    return E + k - spec.FRAC_BITS, (M - (1 << k)) << (_F - k)


# ---- "nearest": the midpoints of one octave [1, 2) -----------------------------------------------
# Representable significands in an octave (in units of 1/16): the M(R) >= 16 at exponent j and the
# 2 * M(R) of the M(R) < 16 at exponent j + 1, i.e. 1, 17/16, 18/16, 20/16, 24/16, 28/16, 30/16 and
# 2 (= next octave).  Midpoints in units of 1/32 above 1: 1, 3, 6, 12, 20, 26, 30.  At a tie the
# neighbour with more trailing zero bits in its numerator (over 16) wins -- the "ties to even" of
# IEEE, generalised:
#   33/32: 16 vs 17 -> 16 (down)   35/32: 17 vs 18 -> 18 (up)    38/32: 18 vs 20 -> 20 (up)
#   44/32: 20 vs 24 -> 24 (up)     52/32: 24 vs 28 -> 24 (down)  58/32: 28 vs 30 -> 28 (down)
#   62/32: 30 vs 32 -> 32 (up)
# A tie going up is "f >= midpoint", a tie going down "f > midpoint", i.e. "f >= midpoint + 1".
assert all(_UNIT // 2 <= M < 2 * _UNIT for M in spec.M_TABLE)
_OCTAVE = tuple(sorted({M for M in spec.M_TABLE if M >= _UNIT}
                       | {2 * M for M in spec.M_TABLE if M < _UNIT} | {2 * _UNIT}))
assert _OCTAVE == (16, 17, 18, 20, 24, 28, 30, 32)


def _trailing_zeros(v: int) -> int:
    return (v & -v).bit_length() - 1


_MIDPOINTS = tuple(a + b - 2 * _UNIT for a, b in zip(_OCTAVE, _OCTAVE[1:]))   # units of 1/32
_TIES_UP = tuple(_trailing_zeros(b) > _trailing_zeros(a) for a, b in zip(_OCTAVE, _OCTAVE[1:]))
assert _MIDPOINTS == (1, 3, 6, 12, 20, 26, 30)
assert _TIES_UP == (False, True, True, True, False, False, True)
assert all(_trailing_zeros(a) != _trailing_zeros(b) for a, b in zip(_OCTAVE, _OCTAVE[1:]))
_MID = 1 << (_F - 1 - spec.FRAC_BITS)                 # 1/32 as a 52-bit fraction
#: ``f >= t`` for each midpoint ``t``: the number reached is the index of the chosen significand.
_NEAREST_T = tuple(m * _MID + (0 if up else 1) for m, up in zip(_MIDPOINTS, _TIES_UP))
_NEAREST_OFF, _NEAREST_RS = zip(*(_canonical(v) for v in _OCTAVE))
# index of the chosen significand (0..7) -> residual field R; from index _NEAREST_UP on the code
# belongs to the next octave (leading exponent j + 1)
_NEAREST_UP = _NEAREST_OFF.index(1)
assert _NEAREST_OFF == (0,) * _NEAREST_UP + (1,) * (len(_OCTAVE) - _NEAREST_UP)
assert (_NEAREST_UP, _NEAREST_RS) == (4, (0, 4, 3, 2, 5, 6, 7, 0))
_NEAREST_R = _pack_nibbles(_NEAREST_RS)

# ---- "paper": log-domain thresholds ---------------------------------------------------------------
# e1 = round(log2|w|) is j + 1 exactly when 1 + f/2**52 >= sqrt(2), i.e. (2**52 + f)**2 >= 2**105.
# sqrt(2**105) is irrational, so there are no ties and the threshold is an exact integer.
_SQRT2 = math.isqrt(1 << (2 * _F + 1)) + 1 - _ONE
# The residual term is kept with gap d = e1 - e2 = -round(log2(rho)) where rho = |r| / 2**j.  rho lies
# at or above 2**-(k + 1/2) exactly when (rho * 2**52)**2 >= 2**(103 - 2k): thresholds for
# k = 1..MAX_GAP (a larger gap drops the residual term).
_PAPER_T = tuple(math.isqrt(1 << (2 * _F - 1 - 2 * k)) + 1 for k in range(1, _MAX_GAP + 1))


def _paper_table(sign: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """L = number of thresholds reached (0..MAX_GAP) -> (off, R) for a residual of ``sign``: the
    gap is ``MAX_GAP + 1 - L`` above e1 = j (positive residual) and one more below e1 = j + 1
    (negative residual); a gap above MAX_GAP keeps the leading power alone."""
    below = int(sign < 0)
    rows = []
    for L in range(_MAX_GAP + 1):
        d = _MAX_GAP + 1 - L + below
        v = _UNIT << below                    # the leading power, in units of 1/16 at exponent j
        if d <= _MAX_GAP:
            v += sign * (_UNIT << below >> d)
        rows.append(_canonical(v))
    off, rs = zip(*rows)
    return off, rs


# positive residual (e1 = j):      L=0 none, 1 -> +2^-4 (R4), 2 -> +2^-3 (R3), 3 -> +2^-2 (R2),
#                                  4 -> +2^-1, m = 1.5, emitted canonically as (j+1, R5)
# negative residual (e1 = j + 1):  L<=1 none (gap >= 5), 2 -> R7, 3 -> R6, 4 -> R5
_PAPER_POS_OFF, _PAPER_POS_RS = _paper_table(+1)
_PAPER_NEG_OFF, _PAPER_NEG_RS = _paper_table(-1)
assert (_PAPER_POS_RS, _PAPER_NEG_RS) == ((0, 4, 3, 2, 5), (0, 0, 7, 6, 5))
assert _PAPER_POS_OFF == (0,) * _MAX_GAP + (1,) and _PAPER_NEG_OFF == (1,) * (_MAX_GAP + 1)
_PAPER_POS_R = _pack_nibbles(_PAPER_POS_RS)
_PAPER_NEG_R = _pack_nibbles(_PAPER_NEG_RS)

#: Largest magnitude, ``1.5 * 2**X``: E = 15, R = 1 (the only canonical R = 1 code).
MAX_CODE = spec.make_code(0, _EXP_MAX, spec.M_TABLE.index(max(spec.M_TABLE)))
#: Smallest non-zero magnitude, ``0.75 * 2**(1 - 15 + X) = 1.5 * 2**(X - 15)``: E = 1, R = 5.
MIN_CODE = spec.make_code(0, 1, spec.M_TABLE.index(min(spec.M_TABLE)))
assert (MAX_CODE, MIN_CODE) == (0x79, 0x0D)
# |w| > largest magnitude: Ej > _SAT_EJ, or Ej == _SAT_EJ and f > _SAT_F (with Ej = j - X + 15)
_SAT_EJ, _SAT_F = _normalised(max(spec.M_TABLE), _EXP_MAX)
# |w| > half the smallest magnitude ("nearest" rounds it up to MIN_CODE, a tie goes to zero)
_HALF_MIN_EJ, _HALF_MIN_F = _normalised(min(spec.M_TABLE), 1)
_HALF_MIN_EJ -= 1
assert (_SAT_EJ, _SAT_F, _HALF_MIN_EJ, _HALF_MIN_F) == (15, 1 << (_F - 1), -1, 1 << (_F - 1))


# ---------------------------------------------------------------------------------------------------
# Kernels.  Written without data-dependent branches or table gathers so that LLVM vectorises them.
# ---------------------------------------------------------------------------------------------------

@nb.njit(cache=True, inline="always")
def _fields(b, is64):
    """Float bits -> (sign, unbiased exponent j, 52-bit fraction f, biased-exponent kind):
    kind 0 normal, 1 zero or subnormal, 2 Inf/NaN.  float32 fields are widened exactly."""
    bi = np.int64(b)
    if is64:
        s = (bi >> 63) & 1
        be = (bi >> 52) & 0x7FF
        f = bi & ((1 << 52) - 1)
        j = be - 1023
        kind = np.int64(be == 0) + 2 * np.int64(be == 0x7FF)
    else:
        s = (bi >> 31) & 1
        be = (bi >> 23) & 0xFF
        f = (bi & ((1 << 23) - 1)) << 29
        j = be - 127
        kind = np.int64(be == 0) + 2 * np.int64(be == 0xFF)
    return s, j, f, kind


@nb.njit(cache=True, inline="always")
def _encode_one(b, is64, X, paper):
    """One value -> (code, saturated, flushed, special).  The single implementation of both modes."""
    s, j, f, kind = _fields(b, is64)
    # nearest in value: index of the chosen significand among 1, 17/16, ..., 30/16, 2
    idx = np.int64(0)
    for t in _NEAREST_T:
        idx += np.int64(f >= t)
    off_n = np.int64(idx >= _NEAREST_UP)
    r_n = (_NEAREST_R >> (_NIBBLE * idx)) & _RES_MASK
    # paper: e1 = j (positive residual) or j + 1 (negative residual), then the residual's gap
    pos = f < _SQRT2
    n = f if pos else _ONE - f
    L = np.int64(0)
    for t in _PAPER_T:
        L += np.int64(n >= t)
    off_p = np.int64(L == _MAX_GAP) if pos else np.int64(1)
    r_p = ((_PAPER_POS_R if pos else _PAPER_NEG_R) >> (_NIBBLE * L)) & _RES_MASK
    off = off_p if paper else off_n
    R = r_p if paper else r_n
    # range rules (docs/rf8-format.md section 3.3)
    E = j + off - X + _EXP_BIAS
    Ej = j - X + _EXP_BIAS
    normal = kind == 0
    low = E <= 0
    up_to_min = (not paper) and (Ej > _HALF_MIN_EJ or (Ej == _HALF_MIN_EJ and f > _HALF_MIN_F))
    sign = s << _SIGN_BIT
    code = sign | (E << _RES_BITS) | R
    code = sign | MAX_CODE if E > _EXP_MAX else code
    code = ((sign | MIN_CODE) if up_to_min else 0) if low else code
    code = code if normal else 0
    sat = np.int64(normal and (Ej > _SAT_EJ or (Ej == _SAT_EJ and f > _SAT_F)))   # |w| > max
    flushed = np.int64((normal and low and not up_to_min) or (kind == 1 and f != 0))
    return code, sat, flushed, np.int64(kind == 2)


_CHUNK = 1 << 16          # values per parallel task; the three counts of a chunk fit in 21 bits


@nb.njit(cache=True)
def _encode_run(bits, is64, X, paper, out, lo, hi):
    """Serial loop over bits[lo:hi] (hi - lo <= _CHUNK).  Returns the (saturated, flushed,
    special) counts packed in one integer, 21 bits each: LLVM vectorises a loop with one
    reduction, not with three."""
    src = bits[lo:hi]       # a loop over range(lo, hi) does not vectorise; one over a slice does
    dst = out[lo:hi]
    packed = 0
    for i in range(src.size):
        c, sa, fl, sp = _encode_one(src[i], is64, X, paper)
        dst[i] = c
        packed += sa | (fl << 21) | (sp << 42)
    return packed


@nb.njit(cache=True, parallel=True)
def _encode_flat(bits, is64, X, paper, out):
    n = bits.size
    nchunks = (n + _CHUNK - 1) // _CHUNK
    packed = np.zeros(nchunks, dtype=np.int64)
    for ch in nb.prange(nchunks):
        lo = ch * _CHUNK
        packed[ch] = _encode_run(bits, is64, X, paper, out, lo, min(lo + _CHUNK, n))
    mask = (1 << 21) - 1
    return (packed & mask).sum(), ((packed >> 21) & mask).sum(), (packed >> 42).sum()


@nb.njit(cache=True, parallel=True)
def _encode_2d(bits, is64, X2, paper, out):
    rows, cols = bits.shape
    xr = 1 if X2.shape[0] > 1 else 0
    xc = 1 if X2.shape[1] > 1 else 0
    n_sat = 0
    n_flush = 0
    n_special = 0
    for r in nb.prange(rows):
        for c in range(cols):
            code, sa, fl, sp = _encode_one(bits[r, c], is64, X2[r * xr, c * xc], paper)
            out[r, c] = code
            n_sat += sa
            n_flush += fl
            n_special += sp
    return n_sat, n_flush, n_special


@nb.njit(cache=True, parallel=True)
def _decode_flat(codes, lut, out):
    for i in nb.prange(codes.size):
        out[i] = lut[codes[i]]


@nb.njit(cache=True, parallel=True)
def _decode_2d(codes, lut, X2, out):
    rows, cols = codes.shape
    xr = 1 if X2.shape[0] > 1 else 0
    xc = 1 if X2.shape[1] > 1 else 0
    for r in nb.prange(rows):
        for c in range(cols):
            out[r, c] = lut[codes[r, c]] * np.float32(math.ldexp(1.0, X2[r * xr, c * xc]))


# ---------------------------------------------------------------------------------------------------
# Tables
# ---------------------------------------------------------------------------------------------------

def value_table(X: int = 0) -> np.ndarray:
    """Decoded value of every code 0..255 as float32 (exact), for one shared exponent ``X``."""
    X = _check_scalar_exponent(X)
    m = np.array(spec.M_TABLE, dtype=np.float64) / (1 << spec.FRAC_BITS)
    s, E, R = spec.split_codes(np.arange(256))
    v = np.where(E == 0, 0.0, (1 - 2 * s) * np.ldexp(m[R], E - spec.EXP_BIAS + X))
    return v.astype(np.float32)


# ---------------------------------------------------------------------------------------------------
# Validation helpers
# ---------------------------------------------------------------------------------------------------

_X_WHY = " (every code must decode to a float32 normal)"
_ON_SATURATE = ("warn", "error", "ignore")


def _check_scalar_exponent(X) -> int:
    return checks.integer("shared exponent X", X, spec.X_MIN, spec.X_MAX, _X_WHY)


def _exponent_operand(X, shape: tuple[int, ...]):
    """Validate X against the data shape.  Returns an int (uniform X) or a 2-D int64 array that
    broadcasts against the data viewed as ``(prod(shape[:-1]), shape[-1])``."""
    if np.ndim(X) == 0:
        return _check_scalar_exponent(X.item() if isinstance(X, np.ndarray) else X)
    Xa = np.asarray(X)
    if not np.issubdtype(Xa.dtype, np.integer):
        raise TypeError(f"shared exponent X must be integer, not an array of dtype {Xa.dtype}")
    try:
        full = np.broadcast_shapes(Xa.shape, shape)
    except ValueError:
        full = None
    if full != tuple(shape):
        raise ValueError(f"shared exponent X of shape {Xa.shape} does not broadcast to the data "
                         f"shape {tuple(shape)}")
    lo, hi = int(Xa.min()), int(Xa.max())
    if lo < spec.X_MIN or hi > spec.X_MAX:
        _check_scalar_exponent(int(Xa[(Xa < spec.X_MIN) | (Xa > spec.X_MAX)].flat[0]))
    if lo == hi:
        return lo
    Xa = Xa.reshape((1,) * (len(shape) - Xa.ndim) + Xa.shape).astype(np.int64)
    last = Xa.shape[-1]
    if all(d == 1 for d in Xa.shape[:-1]):
        return Xa.reshape(1, last)
    return np.ascontiguousarray(np.broadcast_to(Xa, shape[:-1] + (last,))).reshape(-1, last)


def _as_2d(a: np.ndarray) -> np.ndarray:
    return a.reshape(-1, a.shape[-1]) if a.ndim >= 1 else a.reshape(1, 1)


def _first_index(mask: np.ndarray):
    idx = np.unravel_index(int(np.flatnonzero(mask)[0]), mask.shape)
    return tuple(int(i) for i in idx)


_LUT0 = value_table(0)


# ---------------------------------------------------------------------------------------------------
# Public API
# ---------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class EncodeStats:
    """What the range limits did during one :func:`encode` call."""

    size: int        #: number of values encoded
    saturated: int   #: values with |w| > 1.5 * 2**X, clamped to the largest magnitude
    flushed: int     #: non-zero values that encoded to zero (below the flush threshold)


def encode(w, X, rounding: str = "nearest", *, on_saturate: str = "warn",
           return_stats: bool = False):
    """Encode float weights as RF8 code bytes.

    Parameters
    ----------
    w : numpy.ndarray of float32 or float64
        Weights, any shape.  NaN and Inf are rejected.
    X : int or integer array
        Shared exponent: one integer, or an array broadcastable to ``w.shape`` (e.g. shape ``(N,)``
        for one exponent per output channel of a ``[K, N]`` weight).  Range ``spec.X_MIN..X_MAX``.
    rounding : {"nearest", "paper"}
        ``"nearest"``: nearest representable value, ties to the neighbour with more trailing zero bits.
        ``"paper"``: the authors' log-domain two-term rule.  See ``docs/rf8-format.md``.
    on_saturate : {"warn", "error", "ignore"}
        What to do when some ``|w| > 1.5 * 2**X`` (those values are clamped to the largest magnitude).
    return_stats : bool
        Also return an :class:`EncodeStats`.

    Returns
    -------
    numpy.ndarray of uint8, same shape as ``w`` (and the stats when asked for).
    """
    w = np.asarray(w)
    if w.dtype not in (np.float32, np.float64):
        raise TypeError(f"w must be a float32 or float64 array, not {w.dtype}; convert it first "
                        "(e.g. w.astype(np.float32))")
    checks.choice("rounding", rounding, spec.ROUNDING_MODES)
    checks.choice("on_saturate", on_saturate, _ON_SATURATE)
    Xop = _exponent_operand(X, w.shape)
    paper = rounding == "paper"
    is64 = w.dtype == np.float64
    wc = np.ascontiguousarray(w)
    bits = wc.view(np.uint64 if is64 else np.uint32)
    out = np.empty(w.shape, dtype=np.uint8)
    if w.size == 0:
        n_sat = n_flush = n_special = 0
    elif isinstance(Xop, int) and w.size <= _CHUNK:   # small: one serial run, no thread start-up
        packed = _encode_run(bits.reshape(-1), is64, Xop, paper, out.reshape(-1), 0, w.size)
        mask = (1 << 21) - 1
        n_sat, n_flush, n_special = packed & mask, (packed >> 21) & mask, packed >> 42
    elif isinstance(Xop, int):
        n_sat, n_flush, n_special = _encode_flat(bits.reshape(-1), is64, Xop, paper,
                                                 out.reshape(-1))
    else:
        n_sat, n_flush, n_special = _encode_2d(_as_2d(bits), is64, Xop, paper, _as_2d(out))
    if n_special:
        bad = ~np.isfinite(w)
        first = _first_index(bad)
        raise ValueError(f"w contains {int(n_special)} non-finite value(s) (NaN/Inf); the first is "
                         f"{w[first]!r} at index {first}. RF8 has no NaN/Inf codes: replace them "
                         "before encoding")
    if n_sat and on_saturate != "ignore":
        lim = np.ldexp(float(_LUT0[MAX_CODE]), np.broadcast_to(np.asarray(X), w.shape).astype(np.int64))
        first = _first_index(np.abs(w) > lim)
        msg = (f"{int(n_sat)} of {w.size} values exceed the largest RF8 magnitude 1.5*2**X and were "
               f"saturated to it (first: {w[first]!r} at index {first}); choose a larger X, e.g. "
               "codec.shared_exponent(w)")
        if on_saturate == "error":
            raise ValueError(msg)
        warnings.warn(msg, RuntimeWarning, stacklevel=2)
    if return_stats:
        return out, EncodeStats(size=int(w.size), saturated=int(n_sat), flushed=int(n_flush))
    return out


def decode(codes, X) -> np.ndarray:
    """Decode RF8 code bytes to float32 values (exact).

    Parameters
    ----------
    codes : numpy.ndarray of uint8
        Any shape.  Every byte is a valid code (non-canonical codes decode to their value too).
    X : int or integer array broadcastable to ``codes.shape``
        The shared exponent(s) the codes were encoded with.
    """
    codes = np.asarray(codes)
    if codes.dtype != np.uint8:
        raise TypeError(f"codes must be a uint8 array, not {codes.dtype}")
    Xop = _exponent_operand(X, codes.shape)
    out = np.empty(codes.shape, dtype=np.float32)
    if codes.size == 0:
        return out
    cc = np.ascontiguousarray(codes)
    if isinstance(Xop, int):
        _decode_flat(cc.reshape(-1), value_table(Xop), out.reshape(-1))
    else:
        _decode_2d(_as_2d(cc), _LUT0, Xop, _as_2d(out))
    return out


def _check_axis(axis, ndim: int) -> None:
    """``axis`` of :func:`shared_exponent`: None, an integer or a tuple of distinct integers."""
    items = axis if isinstance(axis, tuple) else (axis,)
    ok = axis is None or (all(
        isinstance(a, numbers.Integral) and not isinstance(a, bool) and -ndim <= a < ndim
        for a in items) and len(set(items)) == len(items))
    if not ok:
        raise ValueError(f"axis must be None, an integer or a tuple of distinct integers in "
                         f"{-ndim}..{ndim - 1} (w has {ndim} dimensions), not {axis!r}")


def shared_exponent(w, axis=None):
    """Shared exponent by the absmax rule: ``X = round(log2(max|w|))``.

    ``round`` is to the nearest integer; ``log2`` of a binary float is never exactly half-way
    between integers, so there are no ties, and the result is computed exactly from the float's
    fields (``max|w| >= sqrt(2) * 2**(e-1)`` decides between ``e - 1`` and ``e``).  With this X the
    largest weight never saturates (``max|w| < sqrt(2) * 2**X < 1.5 * 2**X``).

    An all-zero input (or slice) gets ``X = 0``: zeros encode exactly under every exponent.

    Parameters
    ----------
    w : array of float32/float64
    axis : None, int or tuple of int
        Axes to reduce.  ``None`` returns one Python int; otherwise an int64 array over the remaining
        axes (e.g. ``axis=0`` on a ``[K, N]`` weight gives one exponent per output column, which
        broadcasts over the last axis as :func:`encode` expects).
    """
    w = np.asarray(w)
    if w.dtype not in (np.float32, np.float64):
        raise TypeError(f"w must be a float32 or float64 array, not {w.dtype}")
    if w.size == 0:
        raise ValueError("shared_exponent of an empty array is undefined")
    _check_axis(axis, w.ndim)
    bad = ~np.isfinite(w)
    if bad.any():
        first = _first_index(bad)
        raise ValueError(f"w contains {int(bad.sum())} non-finite value(s) (NaN/Inf); the first is "
                         f"{w[first]!r} at index {first}")
    amax = np.max(np.abs(w), axis=axis).astype(np.float64)
    mant, e = np.frexp(amax)                   # amax = mant * 2**e, mant in [0.5, 1)
    # float64(sqrt(0.5)) lies above the real sqrt(0.5), so ">=" is exact for every float64 mant.
    X = np.where(mant >= np.sqrt(0.5), e, e - 1).astype(np.int64)
    X = np.where(amax == 0, 0, X)
    if X.min() < spec.X_MIN or X.max() > spec.X_MAX:
        bad_x = X[(X < spec.X_MIN) | (X > spec.X_MAX)].flat[0]
        raise ValueError(f"max|w| needs shared exponent X={int(bad_x)}, outside the allowed range "
                         f"{spec.X_MIN}..{spec.X_MAX}; rescale the tensor first")
    return int(X) if axis is None else X
