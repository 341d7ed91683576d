"""RF8 encode/decode/shared exponent against the independent oracles in tests/format/oracles.py."""

from __future__ import annotations

import warnings
from fractions import Fraction

import numpy as np
import oracles
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rf8hw.format import codec, spec

ALL_CODES = np.arange(256, dtype=np.uint8)
MODES = ("nearest", "paper")


# ---- decode -----------------------------------------------------------------------------------

@pytest.mark.parametrize("X", [spec.X_MIN, -20, -3, 0, 5, spec.X_MAX])
def test_decode_all_256_codes(X):
    got = codec.decode(ALL_CODES, X)
    assert got.dtype == np.float32
    for c in range(256):
        assert Fraction(float(got[c])) == oracles.code_value(c, X), f"code {c:#04x}"


def test_decoded_values_are_float32_normals():
    for X in (spec.X_MIN, spec.X_MAX):
        v = np.abs(codec.decode(ALL_CODES, X))
        nz = v[v != 0]
        assert np.all(nz >= np.finfo(np.float32).tiny) and np.all(np.isfinite(nz))


def test_spec_tables_match_contract_wording():
    assert spec.M_TABLE == tuple(oracles.significand16(r) for r in range(8))
    assert codec.MAX_CODE == 0x79 and codec.MIN_CODE == 0x0D
    assert sum(spec.is_canonical(c) for c in range(256)) == 213
    assert len(oracles.representable_magnitudes(0)) == 107     # 106 non-zero magnitudes + zero


def test_decode_per_channel_exponents():
    rng = np.random.default_rng(0)
    codes = rng.integers(0, 256, (7, 5)).astype(np.uint8)
    Xc = np.array([-4, 0, 3, 9, -11])
    got = codec.decode(codes, Xc)
    for k in range(7):
        for n in range(5):
            assert Fraction(float(got[k, n])) == oracles.code_value(int(codes[k, n]), int(Xc[n]))
    Xr = np.array([[2], [-1], [0], [5], [1], [7], [-3]])       # one exponent per row
    assert np.array_equal(codec.decode(codes, Xr), np.stack(
        [codec.decode(codes[k], int(Xr[k, 0])) for k in range(7)]))


# ---- canonical round trip ---------------------------------------------------------------------

@pytest.mark.parametrize("rounding", MODES)
@pytest.mark.parametrize("X", [-30, 0, 17])
def test_encode_decode_roundtrip_gives_canonical_code(rounding, X):
    values = codec.decode(ALL_CODES, X)
    again = codec.encode(values, X, rounding)
    for c in range(256):
        if spec.is_canonical(c):
            assert again[c] == c, f"code {c:#04x} re-encoded as {again[c]:#04x}"
        else:
            assert spec.is_canonical(int(again[c]))
            assert oracles.code_value(int(again[c]), X) == oracles.code_value(c, X), f"{c:#04x}"


# ---- paper rounding ---------------------------------------------------------------------------

def _check_values(codes, X, expected):
    got = codec.decode(codes, X).astype(np.float64)
    bad = np.flatnonzero(got != expected)
    assert bad.size == 0, (f"{bad.size} mismatches, first at {bad[0]}: got {got[bad[0]]!r}, "
                           f"expected {expected[bad[0]]!r}")


@pytest.mark.parametrize("shape", [0.5, 1.0, 1.6, 2.0, 2.5])
def test_paper_equals_float64_oracle_on_gg_samples(shape):
    rng = np.random.default_rng(int(shape * 10))
    w = oracles.gg_samples(rng, 250_000, shape, scale=10.0 ** rng.uniform(-4, 1))
    X = codec.shared_exponent(w)
    for x in (X, X - 2, X + 6):        # normal, saturating, heavily flushing
        codes = codec.encode(w, x, "paper", on_saturate="ignore")
        _check_values(codes, x, oracles.paper_float64(w, x))


def test_paper_equals_float64_oracle_on_every_float32_significand():
    # every float32 in [1, 2): both e1 choices and every residual gap occur in one octave
    w = np.arange(np.float32(1.0).view(np.uint32), np.float32(2.0).view(np.uint32),
                  dtype=np.uint32).view(np.float32)
    for X in (0, 1, 15):               # saturation edge inside; plain; flush edge inside
        codes = codec.encode(w, X, "paper", on_saturate="ignore")
        _check_values(codes, X, oracles.paper_float64(w, X))


def _neighbours32(points):
    p = np.asarray(points, dtype=np.float64)
    c = p.astype(np.float32)
    up = np.nextafter(c, np.float32(np.inf))
    dn = np.nextafter(c, np.float32(0))
    return np.concatenate([c, up, dn])


def _paper_boundaries(X):
    k = np.arange(X - 18, X + 3, dtype=np.float64)
    pts = [2 ** (k + 0.5)]                                         # e1 decision
    for d in range(1, 6):                                          # residual gap decisions
        pts.append(2 ** k + 2 ** (k - d - 0.5))
        pts.append(2 ** (k + 1) - 2 ** (k - d - 0.5))
    pts += [[1.5 * 2.0 ** X, (2 - 2 ** -1.5) * 2.0 ** X,           # saturation edge
             1.5 * 2.0 ** (X - 15), (1 + 2 ** -1.5) * 2.0 ** (X - 15)]]  # flush edge
    return _neighbours32(np.concatenate([np.ravel(p) for p in pts]))


@pytest.mark.parametrize("X", [-40, 0, 3])
def test_paper_at_saturation_flush_and_rounding_boundaries(X):
    w = _paper_boundaries(X)
    w = np.concatenate([w, -w])
    codes = codec.encode(w, X, "paper", on_saturate="ignore")
    _check_values(codes, X, oracles.paper_float64(w, X))
    exact = np.array([float(oracles.paper_exact(float(v), X)) for v in w])
    _check_values(codes, X, exact)


def test_paper_saturation_and_flush_thresholds():
    X = 0
    top = (2 - 2 ** -1.5)
    below, above = np.nextafter(top, 0), np.nextafter(top, 2)
    got = codec.decode(codec.encode(np.array([below, above, 1.5, 1e9]), X, "paper",
                                on_saturate="ignore"), X)
    assert got.tolist() == [1.5, 1.5, 1.5, 1.5]
    edge = (1 + 2 ** -1.5) * 2.0 ** -15
    got = codec.decode(codec.encode(np.array([np.nextafter(edge, 0), np.nextafter(edge, 1)]), X,
                                "paper"), X)
    assert got.tolist() == [0.0, 1.5 * 2.0 ** -15]


def test_paper_exact_where_float64_log2_ties():
    # Large float64 values within a few ulps of the residual thresholds 2^k +- 2^(k-d-1/2): there
    # np.log2 of the residual returns exactly an integer + 0.5 and rint rounds that half to even.
    # The exact rule decides by the true value (checked against the Fraction oracle).
    X = 40
    cands = []
    for k in range(30, 40):
        for d in range(1, 6):
            for c in (2.0 ** k + 2.0 ** (k - d - 0.5), 2.0 ** (k + 1) - 2.0 ** (k - d - 0.5),
                      2.0 ** (k + 0.5)):
                for _ in range(4):
                    c = np.nextafter(c, 0)
                for _ in range(9):
                    cands.append(c)
                    c = np.nextafter(c, np.inf)
    w = np.array(cands)
    codes = codec.encode(w, X, "paper")
    exact = np.array([float(oracles.paper_exact(float(v), X)) for v in w])
    _check_values(codes, X, exact)
    naive = oracles.paper_float64(w, X)
    assert np.any(naive != exact), "expected log2 to misround at least one float64 near-tie"


def test_paper_keeps_smallest_magnitude_from_e1_below_range():
    # q = 1.5 * 2^(X-15) arises with e1 = X - 15 (E = 0) but is the smallest representable value
    X = 0
    w = np.array([1.4 * 2.0 ** -15])
    assert codec.encode(w, X, "paper")[0] == codec.MIN_CODE


# ---- nearest rounding -------------------------------------------------------------------------

@pytest.mark.parametrize("shape", [0.5, 1.0, 2.0])
def test_nearest_equals_bruteforce_on_gg_samples(shape):
    rng = np.random.default_rng(100 + int(shape * 10))
    w = oracles.gg_samples(rng, 350_000, shape, scale=10.0 ** rng.uniform(-3, 2))
    X = codec.shared_exponent(w)
    for x in (X, X - 2, X + 6):
        codes = codec.encode(w, x, "nearest", on_saturate="ignore")
        _check_values(codes, x, oracles.nearest_bruteforce(w, x))


def test_nearest_equals_bruteforce_on_float64_inputs():
    rng = np.random.default_rng(7)
    w = rng.standard_normal(200_000) * 2.0 ** rng.integers(-20, 4, 200_000)
    codes = codec.encode(w, 0, "nearest", on_saturate="ignore")
    _check_values(codes, 0, oracles.nearest_bruteforce(w, 0))


def _midpoints(X):
    mags = oracles.representable_magnitudes(X)
    return [(lo, hi, (lo + hi) / 2) for lo, hi in zip(mags[:-1], mags[1:])]


def _tie_rule_name(lo: Fraction, hi: Fraction) -> str:
    if lo == 0:
        return "zero_vs_smallest_goes_to_zero"
    scale = Fraction(2) ** (lo.numerator.bit_length() - lo.denominator.bit_length())
    a, b = lo / scale, hi / scale
    if a >= 2:
        a, b = a / 2, b / 2
    if a < 1:
        a, b = a * 2, b * 2
    win = "up" if oracles.trailing_zeros(hi) > oracles.trailing_zeros(lo) else "down"
    return f"{int(a * 16)}_vs_{int(b * 16)}_over_16_goes_{win}"


TIE_RULES = sorted({_tie_rule_name(lo, hi) for lo, hi, _ in _midpoints(0)})


def test_tie_rules_are_the_eight_documented_ones():
    assert TIE_RULES == sorted([
        "16_vs_17_over_16_goes_down", "17_vs_18_over_16_goes_up", "18_vs_20_over_16_goes_up",
        "20_vs_24_over_16_goes_up", "24_vs_28_over_16_goes_down", "28_vs_30_over_16_goes_down",
        "30_vs_32_over_16_goes_up", "zero_vs_smallest_goes_to_zero"])


@pytest.mark.parametrize("rule", TIE_RULES)
@pytest.mark.parametrize("X", [-7, 0, 11])
def test_nearest_ties(rule, X):
    cases = [(lo, hi, mid) for lo, hi, mid in _midpoints(X) if _tie_rule_name(lo, hi) == rule]
    assert cases
    for lo, hi, mid in cases:
        expect = hi if rule.endswith("up") else lo
        for sign in (1, -1):
            for dtype in (np.float32, np.float64):
                w = np.array([sign * float(mid)], dtype=dtype)
                assert Fraction(float(w[0])) == sign * mid          # midpoints are exact
                got = Fraction(float(codec.decode(codec.encode(w, X, "nearest"), X)[0]))
                assert got == sign * expect, f"tie at {float(mid)!r} ({rule})"


def test_nearest_saturates_everything_above_max_and_flushes_half_min():
    X = 2
    big = np.array([1.5 * 4, 1.6 * 4, 1e30], dtype=np.float32)
    with pytest.warns(RuntimeWarning, match=r"^2 of 3 values exceed the largest RF8 magnitude"):
        codes = codec.encode(big, X)
    assert (codes == codec.MAX_CODE).all()
    half_min = 0.75 * 2.0 ** (X - 15)
    w = np.array([half_min, np.nextafter(half_min, 1), 0.0, -0.0, 1e-45], dtype=np.float64)
    assert codec.encode(w, X).tolist() == [0, codec.MIN_CODE, 0, 0, 0]


# ---- statistics, errors -----------------------------------------------------------------------

def test_encode_stats_count_saturated_and_flushed():
    w = np.array([0.0, 1e-9, 2.0, 100.0, -100.0, 0.5], dtype=np.float32)
    codes, stats = codec.encode(w, 0, return_stats=True, on_saturate="ignore")
    assert (stats.size, stats.saturated, stats.flushed) == (6, 3, 1)


def test_encode_rejects_nan_and_inf_naming_count_and_first_index():
    w = np.zeros((3, 4), dtype=np.float32)
    w[1, 2] = np.nan
    w[2, 0] = np.inf
    with pytest.raises(ValueError, match=r"^w contains 2 non-finite value\(s\) \(NaN/Inf\); the "
                                         r"first is .*nan.* at index \(1, 2\)"):
        codec.encode(w, 0)
    with pytest.raises(ValueError, match=r"non-finite"):
        codec.encode(w, np.zeros(4, dtype=int))
    with pytest.raises(ValueError, match=r"^w contains 2 non-finite"):
        codec.shared_exponent(w)


def test_encode_rejects_bad_arguments():
    w = np.ones((2, 3), dtype=np.float32)
    with pytest.raises(TypeError, match=r"^w must be a float32 or float64 array, not int64"):
        codec.encode(np.ones(3, dtype=np.int64), 0)
    with pytest.raises(ValueError, match=r"^rounding must be one of 'nearest', 'paper', not 'up'$"):
        codec.encode(w, 0, "up")
    with pytest.raises(ValueError, match=r"^on_saturate must be one of 'warn', 'error', 'ignore', "
                                         r"not 'clip'$"):
        codec.encode(w, 0, on_saturate="clip")
    out_of_range = (r"^shared exponent X must be an integer in -110\.\.127 \(every code must decode "
                    r"to a float32 normal\), not 128$")
    with pytest.raises(ValueError, match=out_of_range):
        codec.encode(w, 128)
    with pytest.raises(ValueError, match=out_of_range):                  # same words per channel
        codec.encode(w, np.array([0, 128, 0]))
    with pytest.raises(ValueError, match=out_of_range):
        codec.decode(np.zeros(3, np.uint8), np.array([0, 128, 0]))
    with pytest.raises(ValueError, match=r"^shared exponent X of shape \(2,\) does not broadcast"):
        codec.encode(w, np.array([0, 1]))
    with pytest.raises(ValueError, match=r"^shared exponent X must be an integer in -110\.\.127 "
                                         r".*, not 1\.5$"):
        codec.encode(w, 1.5)
    with pytest.raises(ValueError, match=r"^shared exponent X must be an integer .*, not True$"):
        codec.encode(w, True)
    with pytest.raises(TypeError, match=r"^shared exponent X must be integer, not an array of dtype "
                                        r"float64"):
        codec.encode(w, np.array([0.0, 1.0, 2.0]))
    with pytest.raises(ValueError, match=r"exceed the largest RF8 magnitude"):
        codec.encode(w * 4, 0, on_saturate="error")
    with pytest.raises(TypeError, match=r"^codes must be a uint8 array, not int32"):
        codec.decode(np.zeros(3, dtype=np.int32), 0)


# ---- shared exponent --------------------------------------------------------------------------

def test_shared_exponent_absmax_rule():
    rng = np.random.default_rng(3)
    w = rng.standard_normal((40, 9)) * 2.0 ** rng.integers(-30, 30, (1, 9))
    Xc = codec.shared_exponent(w, axis=0)
    for n in range(9):
        assert Xc[n] == oracles._log2_round_exact(Fraction(float(np.abs(w[:, n]).max())))
    assert codec.shared_exponent(w) == oracles._log2_round_exact(Fraction(float(np.abs(w).max())))
    # the largest weight never saturates, in either mode
    for mode in MODES:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            codec.encode(w, Xc, mode)


def test_shared_exponent_boundaries_and_zero():
    s2 = np.sqrt(2.0)                      # float64(sqrt 2) lies above the real sqrt 2
    assert codec.shared_exponent(np.array([s2])) == 1
    assert codec.shared_exponent(np.array([np.nextafter(s2, 0)])) == 0
    assert codec.shared_exponent(np.zeros(5, dtype=np.float32)) == 0
    w = np.zeros((3, 2), dtype=np.float32)
    w[:, 1] = 8.0
    assert codec.shared_exponent(w, axis=0).tolist() == [0, 3]
    with pytest.raises(ValueError, match=r"^max\|w\| needs shared exponent X=-133"):
        codec.shared_exponent(np.array([1e-40]))


# ---- properties -------------------------------------------------------------------------------

finite32 = st.floats(min_value=-3e4, max_value=3e4, allow_nan=False, width=32)


@settings(max_examples=200, deadline=None)
@given(st.lists(finite32, min_size=2, max_size=64), st.integers(-20, 16),
       st.sampled_from(MODES))
def test_encode_is_monotonic(ws, X, mode):
    w = np.sort(np.array(ws, dtype=np.float32))
    v = codec.decode(codec.encode(w, X, mode, on_saturate="ignore"), X)
    assert np.all(np.diff(v) >= 0)


@settings(max_examples=200, deadline=None)
@given(st.lists(finite32, min_size=1, max_size=64), st.integers(-20, 16),
       st.sampled_from(MODES))
def test_encode_sign_symmetry_and_idempotence(ws, X, mode):
    w = np.array(ws, dtype=np.float32)
    c = codec.encode(w, X, mode, on_saturate="ignore")
    cn = codec.encode(-w, X, mode, on_saturate="ignore")
    assert np.array_equal(np.where(c == 0, 0, c ^ 0x80), cn)
    assert np.array_equal(codec.encode(codec.decode(c, X), X, mode), c)


@pytest.mark.parametrize("axis", ["0", 2, -3, (0, 0), 1.0, True, [0]])
def test_shared_exponent_rejects_bad_axis_naming_it(axis):
    w = np.ones((3, 4), np.float32)
    with pytest.raises(ValueError, match=r"^axis must be None, an integer or a tuple of distinct "
                                         r"integers in -2\.\.1 \(w has 2 dimensions\), not "):
        codec.shared_exponent(w, axis=axis)
