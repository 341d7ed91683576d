"""Golden model of the RF8 MAC array's arithmetic, bit for bit.

The RTL (``rf8hw.hdl``) and the co-simulation (``sim/``) are checked against this module; the rules
are written in ``docs/rf8-format.md`` ("Integer product" and "Accumulator").

* ``P(x, code) = (-1)**s * x * M(R) * 2**(E-1)`` (zero when ``E == 0``) for a signed integer
  activation ``x`` of ``act_bits`` bits.  The model multiplies by the integer weight
  ``W(code) = (-1)**s * M(R) * 2**(E-1)``; the hardware uses two shifts and an add.
* ``acc[m, n] = sum_k P(a[m, k], codes[k, n])`` in an ``acc_bits``-wide two's complement register:
  ``overflow="wrap"`` keeps the sum modulo ``2**acc_bits``; ``overflow="saturate"`` clamps to
  ``[-2**(acc_bits-1), 2**(acc_bits-1) - 1]`` after every addition, in k order ``0..K-1`` (the
  order in which partial sums flow down the array).

Three implementations, chosen by ``impl`` (all equal; the tests check each against a plain-Python
oracle):

``"int8"`` (wrap, activations that fit int8)
    Every weight is the sum of two signed powers of two, ``W = s*2**(E+3) + s*rsign*2**(E+3-d)``,
    with exponents in ``0..18``.  Sorting the terms by exponent into three bands of seven
    (``0..6``, ``7..13``, ``14..20``) gives three int8 matrices ``P_g`` with ``|P_g| <= 64 + 32``
    and ``W = P_0 + 2**7 P_1 + 2**14 P_2``.  Each ``a @ P_g`` is an int8 x int8 -> int32 GEMM
    (``torch._int_mm``); no int32 sum can overflow while ``K * max|a| * 96 < 2**31``, which is
    checked.  The three int32 results are combined in int64, then reduced modulo ``2**acc_bits``.
``"f64"`` (wrap)
    ``a @ W`` as a float64 GEMM.  Exact: every product and partial sum, in whatever order BLAS adds
    them (FMA included), is an integer of magnitude at most ``K * max|a| * max|W|``; below ``2**53``
    every float64 operation on such integers is exact.  The bound is checked on the data.
``"loop"``
    A sequential Numba loop in int64, k order 0..K-1, one output row per thread.  The only path for
    ``saturate``, and the fallback when neither bound above holds.

``impl="auto"`` picks the first that applies, in that order.
"""

from __future__ import annotations

import numba as nb
import numpy as np

from rf8hw import checks
from rf8hw.format import spec

__all__ = ["WEIGHT_INT", "IMPLS", "weight_int", "product", "matmul"]


def _weight_table() -> np.ndarray:
    s, E, R = spec.split_codes(np.arange(256))
    M = np.array(spec.M_TABLE, dtype=np.int64)[R]
    w = (1 - 2 * s) * (M << np.maximum(E - 1, 0))
    return np.where(E == 0, 0, w).astype(np.int64)


#: ``W(code) = (-1)**s * M(R) * 2**(E-1)`` (0 for E == 0) for every code byte; int64[256].
WEIGHT_INT: np.ndarray = _weight_table()
WEIGHT_INT.setflags(write=False)

#: The ``impl`` choices of :func:`matmul` (``"auto"`` picks the first that applies, in this order).
IMPLS = ("auto", "int8", "f64", "loop")

_PLANE_BAND = 7        # exponent band per int8 plane: 2**6 + 2**5 = 96 fits int8


def _plane_table() -> np.ndarray:
    """int8 planes [3, 256]: the two power-of-two terms of each code, sorted into exponent bands."""
    planes = np.zeros((3, 256), dtype=np.int64)
    for code in range(256):
        f = spec.fields(code)
        if f.is_zero:
            continue
        sign = 1 - 2 * f.s
        lead = f.E - 1 + spec.FRAC_BITS                      # 2**(E-1) * 16
        terms = [(sign, lead)] + ([(sign * f.rsign, lead - f.gap)] if f.R else [])
        for t_sign, t_exp in terms:
            planes[t_exp // _PLANE_BAND, code] += t_sign << (t_exp % _PLANE_BAND)
    assert (sum(p << (_PLANE_BAND * g) for g, p in enumerate(planes)) == WEIGHT_INT).all()
    return planes.astype(np.int8)


_PLANES = _plane_table()
_PLANE_MAX = int(np.abs(_PLANES.astype(np.int64)).max())     # 96
_INT32_LIMIT = 1 << 31
_F64_EXACT_LIMIT = 1 << 53


def weight_int(codes) -> np.ndarray:
    """Integer weights ``W(code)`` of a uint8 code array (int64, same shape)."""
    codes = _check_codes(codes, "codes")
    return WEIGHT_INT[codes]


def _check_codes(codes, name):
    codes = np.asarray(codes)
    if codes.dtype != np.uint8:
        raise TypeError(f"{name} must be a uint8 array of RF8 codes, not {codes.dtype}")
    return codes


def _check_act(a, act_bits: int, name: str = "a") -> np.ndarray:
    act_bits = spec.check_act_bits(act_bits)
    a = np.asarray(a)
    if not np.issubdtype(a.dtype, np.integer):
        raise TypeError(f"{name} must be an integer array (signed {act_bits}-bit activations), "
                        f"not {a.dtype}")
    lo, hi = -(1 << (act_bits - 1)), (1 << (act_bits - 1)) - 1
    if a.size:
        bad = (a < lo) | (a > hi)
        if bad.any():
            first = tuple(int(i) for i in np.argwhere(bad)[0])
            raise ValueError(f"{name} has {int(bad.sum())} value(s) outside the signed {act_bits}-bit "
                             f"range {lo}..{hi}; the first is {int(a[first])} at index {first}")
    return a


def product(x, code, act_bits: int = 8) -> np.ndarray:
    """Elementwise integer product ``P(x, code)`` (int64), broadcasting ``x`` against ``code``."""
    x = _check_act(x, act_bits, "x").astype(np.int64)
    code = _check_codes(code, "code")
    return x * WEIGHT_INT[code]


def _wrap(s: np.ndarray, acc_bits: int) -> np.ndarray:
    """Reduce int64 values (exact, or already modulo 2**64) to acc_bits two's complement."""
    if acc_bits == 64:
        return s
    sh = np.uint64(64 - acc_bits)
    return (s.view(np.uint64) << sh).view(np.int64) >> np.int64(64 - acc_bits)


@nb.njit(cache=True, parallel=True)
def _matmul_loop(a, w, saturate, lo, hi, out):
    M, K = a.shape
    N = w.shape[1]
    for m in nb.prange(M):
        acc = np.zeros(N, dtype=np.int64)
        for k in range(K):
            x = a[m, k]
            if x == 0:
                continue
            for n in range(N):
                p = x * w[k, n]
                t = acc[n] + p          # int64 arithmetic wraps modulo 2**64
                if saturate:
                    # clamp without ever forming an overflowed sum: compare against hi - p / lo - p
                    if p >= 0:
                        t = hi if acc[n] > hi - p else t
                    else:
                        t = lo if acc[n] < lo - p else t
                acc[n] = t
        out[m, :] = acc


def matmul(a, codes, acc_bits: int = 40, overflow: str = "wrap", act_bits: int = 8,
           impl: str = "auto") -> np.ndarray:
    """Bit-exact ``acc = a @ W(codes)`` as the MAC array computes it.

    Parameters
    ----------
    a : integer array [M, K]
        Signed activations, each in ``-2**(act_bits-1) .. 2**(act_bits-1) - 1``.
    codes : uint8 array [K, N]
        RF8 weight codes (rows = reduction dimension, as loaded into the array).
    acc_bits : int
        Accumulator width, ``spec.min_acc_bits(act_bits) .. 64``.
    overflow : {"wrap", "saturate"}
    act_bits : int
        Declared signed activation width, ``spec.ACT_BITS_MIN .. spec.ACT_BITS_MAX``.
    impl : {"auto", "int8", "f64", "loop"}
        See the module docstring.  Naming a path whose exactness condition does not hold raises.

    Returns
    -------
    numpy.ndarray of int64 [M, N]: the accumulator contents as signed integers.
    """
    act_bits, acc_bits, overflow = spec.check_mac(act_bits, acc_bits, overflow)
    checks.choice("impl", impl, IMPLS)
    a = _check_act(a, act_bits)
    codes = _check_codes(codes, "codes")
    if a.ndim != 2 or codes.ndim != 2:
        raise ValueError(f"a must be 2-D [M, K] and codes 2-D [K, N]; got shapes {a.shape} and "
                         f"{codes.shape}")
    if a.shape[1] != codes.shape[0]:
        raise ValueError(f"inner dimensions differ: a is {a.shape} but codes is {codes.shape} "
                         "(a[M, K] @ codes[K, N])")
    if impl in ("int8", "f64") and overflow != "wrap":
        raise ValueError(f"impl={impl!r} computes the wrap mode only; saturate needs impl='loop'")

    M, K = a.shape
    N = codes.shape[1]
    if M == 0 or N == 0 or K == 0:
        return np.zeros((M, N), dtype=np.int64)
    amax = max(-int(a.min()), int(a.max()))      # not np.abs: abs(int8 -128) overflows
    int8_ok = int(a.min()) >= -128 and int(a.max()) <= 127 and K * amax * _PLANE_MAX < _INT32_LIMIT
    f64_ok = K * amax * spec.max_abs_weight_int() < _F64_EXACT_LIMIT
    if impl == "int8" and not int8_ok:
        raise ValueError("impl='int8' needs int8-range activations and K * max|a| * "
                         f"{_PLANE_MAX} < 2**31; here K={K}, max|a|={amax}")
    if impl == "f64" and not f64_ok:
        raise ValueError(f"impl='f64' is not exact here: K * max|a| * max|W| >= 2**53 (K={K}, "
                         f"max|a|={amax})")
    if overflow == "wrap" and impl in ("auto", "int8") and int8_ok:
        return _matmul_int8_planes(a, codes, acc_bits)
    if overflow == "wrap" and impl in ("auto", "f64") and f64_ok:
        s = (a.astype(np.float64) @ WEIGHT_INT[codes].astype(np.float64)).astype(np.int64)
        return _wrap(s, acc_bits)
    lo, hi = -(1 << (acc_bits - 1)), (1 << (acc_bits - 1)) - 1
    out = np.empty((M, N), dtype=np.int64)
    _matmul_loop(np.ascontiguousarray(a, dtype=np.int64), np.ascontiguousarray(WEIGHT_INT[codes]),
                 overflow == "saturate", lo, hi, out)
    return out if overflow == "saturate" else _wrap(out, acc_bits)


@nb.njit(cache=True, parallel=True)
def _gather_planes(codes, planes, out):
    """out[g] = planes[g][codes] for the three bands, in one pass over the codes."""
    K, N = codes.shape
    for k in nb.prange(K):
        for n in range(N):
            c = codes[k, n]
            out[0, k, n] = planes[0, c]
            out[1, k, n] = planes[1, c]
            out[2, k, n] = planes[2, c]


@nb.njit(cache=True, parallel=True)
def _combine_wrap(r0, r1, r2, sh, out):
    """out = wrap(r0 + (r1 << 7) + (r2 << 14)) in int64 (int32 GEMM results of the three bands)."""
    M, N = out.shape
    for m in nb.prange(M):
        for n in range(N):
            v = (np.int64(r0[m, n]) + (np.int64(r1[m, n]) << _PLANE_BAND)
                 + (np.int64(r2[m, n]) << (2 * _PLANE_BAND)))
            # two's complement wrap to 64 - sh bits: shift left as unsigned, back as signed
            out[m, n] = np.int64(np.uint64(v) << np.uint64(sh)) >> sh


def _matmul_int8_planes(a: np.ndarray, codes: np.ndarray, acc_bits: int) -> np.ndarray:
    import torch  # deferred: only this path needs it

    M, N = a.shape[0], codes.shape[1]
    at = torch.from_numpy(np.ascontiguousarray(a, dtype=np.int8))
    cc = np.ascontiguousarray(codes)
    planes = np.empty((3,) + cc.shape, dtype=np.int8)
    _gather_planes(cc, _PLANES, planes)
    # trained weights often leave whole exponent bands empty: skip those GEMMs
    present = np.bincount(cc.reshape(-1), minlength=256) > 0
    use = [bool((_PLANES[g][present] != 0).any()) for g in range(3)]
    results = [torch._int_mm(at, torch.from_numpy(planes[g])).numpy() if use[g]
               else np.zeros((M, N), dtype=np.int32) for g in range(3)]
    out = np.empty((M, N), dtype=np.int64)
    _combine_wrap(*results, 64 - acc_bits, out)
    return out
