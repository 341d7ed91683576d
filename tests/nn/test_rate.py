"""Rate measurement against plain-Python oracles: bit strings, Counter ranks, scipy entropy."""

import math
from collections import Counter

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from rf8hw.nn import gg, rate

# The standard order-0 Exp-Golomb table (H.264 ue(v)), written out by hand.
KNOWN_CODES = {0: "1", 1: "010", 2: "011", 3: "00100", 4: "00101", 5: "00110", 6: "00111",
               7: "0001000", 8: "0001001", 14: "0001111", 15: "000010000"}


def test_encoder_matches_known_table():
    for k, code in KNOWN_CODES.items():
        assert rate.exp_golomb_encode([k]) == code


def test_lengths_and_round_trip_exhaustive_below_4096():
    ks = list(range(4096))
    lengths = rate.exp_golomb_length(np.array(ks))
    for k, n in zip(ks, lengths):
        assert len(rate.exp_golomb_encode([k])) == n == 2 * int(math.floor(math.log2(k + 1))) + 1
    assert rate.exp_golomb_decode(rate.exp_golomb_encode(ks)) == ks


def test_lengths_at_powers_of_two_boundaries():
    ks = np.array([2 ** m - 2 for m in range(1, 54)] + [2 ** m - 1 for m in range(1, 53)] + [2 ** 53 - 1])
    expected = [len(rate.exp_golomb_encode([int(k)])) for k in ks]     # python ints: exact
    assert rate.exp_golomb_length(ks).tolist() == expected


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(min_value=-(2 ** 51), max_value=2 ** 51), max_size=50))
def test_zigzag_exp_golomb_round_trip_any_ints(ints):
    zz = rate.zigzag(np.array(ints, dtype=np.int64))
    bits = rate.exp_golomb_encode(zz.tolist())
    assert len(bits) == int(rate.exp_golomb_length(zz).sum())
    assert rate.unzigzag(np.array(rate.exp_golomb_decode(bits), dtype=np.int64)).tolist() == ints


def test_zigzag_order_and_inverse():
    assert rate.zigzag([0, -1, 1, -2, 2, -3]).tolist() == [0, 1, 2, 3, 4, 5]
    q = np.arange(-1000, 1001)
    assert np.array_equal(rate.unzigzag(rate.zigzag(q)), q)


def oracle_rank_code(ints):
    """Plain-Python authors' scheme: rank by frequency (ties by value), encode the whole stream."""
    counts = Counter(ints)
    ranked = sorted(counts, key=lambda v: (-counts[v], v))
    rank = {v: i for i, v in enumerate(ranked)}
    payload = rate.exp_golomb_encode(rank[v] for v in ints)
    zz = [2 * v if v >= 0 else -2 * v - 1 for v in ranked]
    table = rate.exp_golomb_encode([len(ranked)] + zz)
    return payload, table, ranked


@pytest.mark.parametrize("nu, step", [(0.5, 0.01), (1.0, 0.05), (2.0, 0.2), (2.0, 3.0)])
def test_rank_coding_matches_bit_string_oracle(nu, step):
    w = gg.sample(5000, nu, 0.1, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    ints = [int(round(x / step)) for x in w.tolist()]        # python round: ties to even, like rint
    payload, table, ranked = oracle_rank_code(ints)
    assert rate.exp_golomb_bits(w, step) == len(payload)
    assert rate.rank_table_bits(w, step) == len(table)
    # the decoder gets the stream back from payload + table
    dec = rate.exp_golomb_decode(table)
    values = [z // 2 if z % 2 == 0 else -(z + 1) // 2 for z in dec[1:]]
    assert dec[0] == len(values) and values == ranked
    assert [values[k] for k in rate.exp_golomb_decode(payload)] == ints
    zz_stream = rate.exp_golomb_encode(2 * v if v >= 0 else -2 * v - 1 for v in ints)
    assert rate.zigzag_exp_golomb_bits(w, step) == len(zz_stream)


def test_quantize_rounds_half_to_even():
    assert rate.quantize([0.5, 1.5, 2.5, -0.5, -1.5, 0.49], 1.0).tolist() == [0, 2, 2, 0, -2, 0]


def test_entropy_matches_scipy_and_bounds_both_codes():
    w = gg.sample(100_000, 0.7, 0.02, generator=torch.Generator().manual_seed(4))
    step = 2 ** -8
    q = rate.quantize(w, step)
    _, counts = np.unique(q, return_counts=True)
    assert rate.entropy_bits(w, step) == pytest.approx(q.size * stats.entropy(counts, base=2), rel=1e-12)
    assert rate.entropy_bits(w, step) <= rate.exp_golomb_bits(w, step)
    assert rate.entropy_bits(w, step) <= rate.zigzag_exp_golomb_bits(w, step)


def test_rank_code_beats_zigzag_on_skewed_values():
    """Frequency ranking puts the common values first whatever their sign/offset."""
    w = np.array([7.0] * 900 + [-3.0] * 90 + [0.0] * 10)
    assert rate.exp_golomb_bits(w, 1.0) == 900 * 1 + 90 * 3 + 10 * 3
    assert rate.zigzag_exp_golomb_bits(w, 1.0) == 900 * 7 + 90 * 5 + 10 * 1


def test_report_fields_and_pooling():
    a = np.array([0.0, 0.0, 1.0, -1.0, 2.0])
    b = torch.tensor([[0.0, 3.0], [0.0, 0.0]])
    r = rate.report([a, b], 1.0)
    pooled = np.concatenate([a, b.numpy().ravel()])
    assert r["n_params"] == 9 and r["distinct_values"] == 5
    assert r["zero_fraction"] == pytest.approx(5 / 9)
    assert r["exp_golomb_bits"] == rate.exp_golomb_bits(pooled, 1.0)
    assert r["rank_table_bits"] == rate.rank_table_bits(pooled, 1.0)
    assert r["zigzag_bits"] == rate.zigzag_exp_golomb_bits(pooled, 1.0)
    assert r["exp_golomb_bpp"] == pytest.approx(r["exp_golomb_bits"] / 9)
    assert r["exp_golomb_with_table_bpp"] == pytest.approx((r["exp_golomb_bits"] + r["rank_table_bits"]) / 9)
    assert r["entropy_bpp"] <= r["exp_golomb_bpp"]
    module = torch.nn.Linear(3, 2)
    assert rate.report(module, 0.1)["n_params"] == 8
    assert rate.report(module.parameters(), 0.1) == rate.report(module, 0.1)


@pytest.mark.parametrize("step, msg", [
    (0.0, r"quantization step must be a finite number > 0, not 0\.0"),
    (-1, r"quantization step must be a finite number > 0, not -1"),
    (float("nan"), r"quantization step must be a finite number > 0, not nan"),
    ("0.1", r"quantization step must be a finite number > 0, not '0\.1'"),
    (1e-300, r"step 1e-300 is too small for these weights: level .* is beyond the 2\*\*52 levels"),
])
def test_bad_step(step, msg):
    with pytest.raises(ValueError, match=msg):
        rate.exp_golomb_bits([0.5, 1.0], step)


@pytest.mark.parametrize("w, msg", [
    ([], r"weights is empty"),
    ([0.1, float("inf")], r"weights contains 1 non-finite value"),
    (torch.tensor([float("nan")]), r"weights contains 1 non-finite value"),
])
def test_bad_weights(w, msg):
    with pytest.raises(ValueError, match=msg):
        rate.report(w, 0.1)


def test_coder_rejects_negative_and_broken_streams():
    with pytest.raises(ValueError, match=r"Exp-Golomb codes non-negative integers; got -1 \(zig-zag first\)"):
        rate.exp_golomb_encode([3, -1])
    with pytest.raises(ValueError, match=r"Exp-Golomb codes non-negative integers; got -2"):
        rate.exp_golomb_length([-2])
    with pytest.raises(ValueError, match=r"Exp-Golomb length supports k < 2\*\*53, got 9007199254740992"):
        rate.exp_golomb_length([2 ** 53])
    with pytest.raises(ValueError, match=r"truncated Exp-Golomb code at bit 1: need 5 bits, 3 left"):
        rate.exp_golomb_decode("1001")
    with pytest.raises(ValueError, match=r"bit string may only contain '0' and '1', got \['2'\]"):
        rate.exp_golomb_decode("0120")
