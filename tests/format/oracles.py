"""Independent oracles for the RF8 contract (docs/rf8-format.md), written differently from the kernels.

Nothing here imports rf8hw's kernels or tables: values come from the contract's formulas written out
with ``fractions.Fraction`` and plain Python integers, or from plain float64 numpy.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np


def significand16(R: int) -> int:
    """M(R) exactly as the contract words it: R=0 -> 16; R=1..4 -> 16 + 2^(4-R); R=5..7 -> 16 - 2^(7-R)."""
    if R == 0:
        return 16
    if 1 <= R <= 4:
        return 16 + 2 ** (4 - R)
    return 16 - 2 ** (7 - R)


def code_value(code: int, X: int = 0) -> Fraction:
    s, E, R = code >> 7, (code >> 3) & 15, code & 7
    if E == 0:
        return Fraction(0)
    return (-1) ** s * Fraction(significand16(R), 16) * Fraction(2) ** (E - 15 + X)


def product(x: int, code: int) -> int:
    """P(x, code) from the value definition: x * value(code, X) * 2^(18 - X) (X cancels)."""
    p = x * code_value(code, 0) * 2 ** 18
    assert p.denominator == 1
    return int(p)


def matmul(a, codes, acc_bits: int, overflow: str) -> np.ndarray:
    """Plain-Python-integer MAC loop, k order 0..K-1."""
    M, K = len(a), len(a[0])
    N = len(codes[0])
    lo, hi = -(2 ** (acc_bits - 1)), 2 ** (acc_bits - 1) - 1
    out = np.zeros((M, N), dtype=np.int64)
    for m in range(M):
        for n in range(N):
            acc = 0
            for k in range(K):
                acc += product(int(a[m][k]), int(codes[k][n]))
                if overflow == "saturate":
                    acc = min(max(acc, lo), hi)
            if overflow == "wrap":
                acc = (acc - lo) % 2 ** acc_bits + lo
            out[m, n] = acc
    return out


def representable_magnitudes(X: int) -> list[Fraction]:
    """Sorted distinct non-negative values of all 256 codes."""
    return sorted({abs(code_value(c, X)) for c in range(256)})


def paper_float64(w: np.ndarray, X: int) -> np.ndarray:
    """The authors' rule as plain float64 numpy (log2 + rint), then the range rules (section 3.3)."""
    w = np.asarray(w, dtype=np.float64)
    a = np.abs(w)
    with np.errstate(divide="ignore", invalid="ignore"):
        e1 = np.rint(np.log2(a))
        r = a - np.exp2(e1)
        e2 = np.rint(np.log2(np.abs(r)))
        keep = (r != 0) & (e1 - e2 <= 4)
        q = np.exp2(e1) + np.where(keep, np.sign(r) * np.exp2(np.where(keep, e2, 0)), 0.0)
    q = np.where(a == 0, 0.0, q)
    big, small = 1.5 * 2.0 ** X, 1.5 * 2.0 ** (X - 15)
    q = np.where(q > big, big, q)
    q = np.where(q < small, 0.0, q)
    return np.sign(w) * q


def _log2_round_exact(v: Fraction) -> int:
    """round(log2 v) for v > 0, exactly: k such that 2^(k - 1/2) <= v < 2^(k + 1/2)."""
    k = v.numerator.bit_length() - v.denominator.bit_length()
    while Fraction(2) ** (2 * k - 1) > v * v:
        k -= 1
    while Fraction(2) ** (2 * k + 1) <= v * v:
        k += 1
    return k


def paper_exact(w: float, X: int) -> Fraction:
    """The authors' rule with exact rational arithmetic (no log2 at all)."""
    v = Fraction(w)
    a = abs(v)
    if a == 0:
        return Fraction(0)
    e1 = _log2_round_exact(a)
    r = a - Fraction(2) ** e1
    q = Fraction(2) ** e1
    if r != 0:
        e2 = _log2_round_exact(abs(r))
        if e1 - e2 <= 4:
            q += (1 if r > 0 else -1) * Fraction(2) ** e2
    big, small = Fraction(3, 2) * Fraction(2) ** X, Fraction(3, 2) * Fraction(2) ** (X - 15)
    q = min(q, big)
    if q < small:
        q = Fraction(0)
    return q if v > 0 else -q


def trailing_zeros(v: Fraction) -> float:
    """2-adic valuation of a dyadic rational (inf for zero): the tie-break key of 'nearest'."""
    if v == 0:
        return float("inf")
    n, d = v.numerator, v.denominator
    tz = 0
    while n % 2 == 0:
        n //= 2
        tz += 1
    return tz - (d.bit_length() - 1)


def nearest_bruteforce(w: np.ndarray, X: int) -> np.ndarray:
    """Nearest representable value by searching the sorted value set (float64), ties broken by
    trailing zeros (computed from the Fractions)."""
    mags = representable_magnitudes(X)
    grid = np.array([float(m) for m in mags])
    tz = np.array([trailing_zeros(m) for m in mags])
    w = np.asarray(w, dtype=np.float64)
    a = np.abs(w)
    hi = np.clip(np.searchsorted(grid, a, side="left"), 1, len(grid) - 1)
    lo = hi - 1
    d_lo, d_hi = a - grid[lo], grid[hi] - a
    pick_hi = (d_hi < d_lo) | ((d_hi == d_lo) & (tz[hi] > tz[lo]))
    q = np.where(pick_hi, grid[hi], grid[lo])
    q = np.where(a >= grid[-1], grid[-1], q)
    return np.sign(w) * q


def gg_samples(rng: np.random.Generator, n: int, shape: float, scale: float) -> np.ndarray:
    """Generalized-Gaussian samples: |x| = scale * G^(1/shape), G ~ Gamma(1/shape)."""
    g = rng.gamma(1.0 / shape, 1.0, size=n)
    return (scale * g ** (1.0 / shape) * rng.choice([-1.0, 1.0], size=n)).astype(np.float32)
