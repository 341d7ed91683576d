"""The post-processing rule (rf8hw.format.postproc) against an oracle of plain Python integers and
Fractions written from docs/accelerator.md, exhaustive over the shifts and the rounding ties."""

import math
from fractions import Fraction

import numpy as np
import oracles
import pytest

from rf8hw.format import postproc


def oracle_value(acc: int, bias: int, mult: int, shift: int, out_bits: int) -> int:
    """Steps 2-5 of the rule, worded as in the docs: exact rational, round half up, clamp."""
    x = Fraction((acc + bias) * mult, 2 ** shift)
    r = math.floor(x + Fraction(1, 2))
    lo, hi = -(2 ** (out_bits - 1)), 2 ** (out_bits - 1) - 1
    return min(max(r, lo), hi)


@pytest.mark.parametrize("out_bits", [8, 32])
def test_every_shift_and_tie_equals_the_oracle(out_bits):
    """All 64 shifts x products at and next to every rounding tie (``p = odd * 2**(shift-1)``,
    reached with a power-of-two multiplier where the 46-bit accumulator alone cannot) x signs,
    plus the extreme accumulators at every shift."""
    half = 1 << 45
    accs, mults, shifts = [], [], []
    for s in range(postproc.SHIFT_MAX + 1):
        for a in (-half, half - 1, -1, 0, 1):
            accs.append(a), mults.append((1 << 16) - 1), shifts.append(s)
        if s - 1 > 43 + 15:            # |p| < 2**61: no tie exists at shifts 60..63
            continue
        mult = 1 << min(15, max(s - 1, 0))
        for odd in (-3, -1, 1, 3):
            base = odd * (1 << max(s - 1 - 15, 0))
            for d in (-1, 0, 1):
                accs.append(base + d), mults.append(mult), shifts.append(s)
    acc = np.array(accs, dtype=np.int64)[None, :]
    got = postproc.postprocess(acc, 0, np.array(mults), np.array(shifts), acc_bits=46,
                               out_bits=out_bits)
    want = [oracle_value(a, 0, m, s, out_bits) for a, m, s in zip(accs, mults, shifts)]
    assert got[0].tolist() == want
    assert len(want) > 1000


def test_ties_round_up():
    # 5/2 -> 3, -5/2 -> -2, -3/2 -> -1 (half up, toward +inf)
    got = postproc.postprocess(np.array([[5, -5, -3, 3]]), 0, 1, 1, out_bits=32)
    assert got.tolist() == [[3, -2, -1, 2]]


@pytest.mark.parametrize("acc_bits", [27, 40, 46])
@pytest.mark.parametrize("out_bits", [8, 32])
def test_random_extremes_equal_the_oracle(acc_bits, out_bits):
    rng = np.random.default_rng(acc_bits * 10 + out_bits)
    half = 1 << (acc_bits - 1)
    M, N = 40, 50
    acc = rng.integers(-half, half, size=(M, N), dtype=np.int64)
    acc[0, :] = -half
    acc[1, :] = half - 1
    bias = rng.integers(-half, half, size=N, dtype=np.int64)
    bias[:2] = (-half, half - 1)
    mult = rng.integers(0, 1 << 16, size=N, dtype=np.int64)
    mult[:3] = (0, 1, (1 << 16) - 1)
    shift = rng.integers(0, 64, size=N, dtype=np.int64)
    got = postproc.postprocess(acc, bias, mult, shift, acc_bits=acc_bits, out_bits=out_bits)
    want = [[oracle_value(int(acc[m, n]), int(bias[n]), int(mult[n]), int(shift[n]), out_bits)
             for n in range(N)] for m in range(M)]
    assert got.tolist() == want
    assert (got == (1 << (out_bits - 1)) - 1).any() and (got == -(1 << (out_bits - 1))).any()


def test_max_k_is_the_exact_bound():
    for act_bits, acc_bits in [(8, 40), (8, 27), (4, 30), (16, 46), (2, 21)]:
        k = postproc.max_k(act_bits, acc_bits)
        worst = 2 ** (act_bits - 1) * 24 * 2 ** 14          # |x| * |W| at their largest
        assert k * worst <= 2 ** (acc_bits - 1) - 1 < (k + 1) * worst
    assert postproc.max_k(8, 40) == 10922


def test_gemm_at_max_k_extremes_equals_plain_integers():
    """K = max_k with every product at its largest: the exact sum just fits."""
    act_bits, acc_bits = 8, 27 + 3
    K = postproc.max_k(act_bits, acc_bits)
    codes = np.full((K, 3), 0xF9, dtype=np.uint8)       # -1.5 * 2**0: W = -393216
    a = np.full((2, K), -128, dtype=np.int64)
    got = postproc.gemm(a, codes, 0, 1, 0, act_bits=act_bits, acc_bits=acc_bits, out_bits=32)
    exact = oracles.matmul(a.tolist(), codes.tolist(), 64, "wrap")
    assert np.array_equal(got, np.clip(exact, -2**31, 2**31 - 1))
    assert exact[0, 0] == K * 128 * 393216
    with pytest.raises(ValueError, match=rf"^K must be an integer in 1\.\.{K}"):
        postproc.gemm(np.zeros((1, K + 1), np.int64), np.zeros((K + 1, 1), np.uint8),
                      act_bits=act_bits, acc_bits=acc_bits)


def test_fixed_point_is_nearest_with_ties_to_even():
    rng = np.random.default_rng(3)
    for f in list(rng.uniform(1e-9, 1e3, 500)) + [1.0, 0.5, 2.0 ** -40, 65535.5 / 2 ** 20]:
        mult, s = postproc.fixed_point(f)
        assert 2 ** 15 <= mult < 2 ** 16 and 0 <= s <= 63
        err = abs(Fraction(mult, 2 ** s) - Fraction(f))
        assert err <= Fraction(1, 2 ** (s + 1))
    # a tie: 65535.5 * 2**-20 lies halfway between 65535 and 65536 (* 2**-20); even wins: 2**15 * 2**-19
    assert postproc.fixed_point(65535.5 / 2 ** 20) == (2 ** 15, 19)
    assert postproc.fixed_point(0) == (0, 0)
    with pytest.raises(ValueError, match=r"^factor 1e\+30 needs a right shift of -84;"):
        postproc.fixed_point(1e30)
    with pytest.raises(ValueError, match=r"^factor must be a finite number >= 0, not -1"):
        postproc.fixed_point(-1)


def test_requant_params_put_the_rf8_exponent_in_the_shift():
    m0, s0 = postproc.requant_params(0, 0.02, 0.1, 0.7)
    m1, s1 = postproc.requant_params(5, 0.02, 0.1, 0.7)
    assert m0[0] == m1[0] and s0[0] - s1[0] == 5
    f = Fraction(0.02) * Fraction(0.7) / Fraction(0.1) * Fraction(1, 2 ** 18)
    assert abs(Fraction(int(m0[0]), 2 ** int(s0[0])) - f) <= Fraction(1, 2 ** (int(s0[0]) + 1))


def test_bias_int_rounds_into_accumulator_units():
    b = postproc.bias_int([1.0, -0.25], [0, 2], 0.5)
    assert b.tolist() == [2 * 2 ** 18, -(2 ** 18) // 8]
    with pytest.raises(ValueError, match=r"^bias\[0\] = 1e\+20 is"):
        postproc.bias_int([1e20], 0, 1.0)


@pytest.mark.parametrize("kwargs, message", [
    (dict(mult=1 << 16), r"^mult\[0\] must be in 0\.\.65535, not 65536$"),
    (dict(shift=64), r"^shift\[0\] must be in 0\.\.63, not 64$"),
    (dict(shift=[0, 1]), r"^shift must be an integer or 3 integers"),
    (dict(bias=1 << 39), r"^bias\[0\] must be in -549755813888\.\.549755813887, not 549755813888$"),
    (dict(out_bits=16), r"^out_bits must be one of 8, 32, not 16$"),
    (dict(acc_bits=47), r"^acc_bits must be an integer in 2\.\.46, not 47$"),
])
def test_bad_parameters_are_one_line_naming_the_value(kwargs, message):
    with pytest.raises(ValueError, match=message):
        postproc.postprocess(np.zeros((1, 3), np.int64), **kwargs)
