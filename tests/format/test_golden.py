"""golden.matmul / golden.product against plain-Python-integer oracles (tests/format/oracles.py)."""

from __future__ import annotations

import numpy as np
import oracles
import pytest

from rf8hw.format import golden, spec

IMPLS_WRAP = ("auto", "int8", "f64", "loop")


def test_product_all_65536_act_code_pairs():
    x = np.arange(-128, 128, dtype=np.int8)[:, None]
    c = np.arange(256, dtype=np.uint8)[None, :]
    got = golden.product(x, c)
    assert got.shape == (256, 256) and got.dtype == np.int64
    for xi in range(-128, 128):
        row = got[xi + 128]
        for code in range(256):
            assert row[code] == oracles.product(xi, code), f"x={xi} code={code:#04x}"


def test_weight_table_is_two_shifts_and_an_add():
    for code in range(256):
        f = spec.fields(code)
        if f.is_zero:
            assert golden.WEIGHT_INT[code] == 0
            continue
        mag = (1 << 4) + (f.rsign << (4 - f.gap) if f.R else 0)
        assert golden.WEIGHT_INT[code] == (-1) ** f.s * (mag << (f.E - 1))


def test_min_acc_bits_is_tight():
    for b in (2, 8, 16):
        big = 2 ** (b - 1) * 24 * 2 ** 14
        n = spec.min_acc_bits(b)
        assert n == b + 19
        assert -(2 ** (n - 1)) <= -big and big <= 2 ** (n - 1) - 1
        assert big > 2 ** (n - 2) - 1        # one bit fewer cannot hold it


def _random_case(rng, M, K, N, act_bits=8):
    lo, hi = -(1 << (act_bits - 1)), 1 << (act_bits - 1)
    a = rng.integers(lo, hi, (M, K)).astype(np.int16 if act_bits > 8 else np.int8)
    codes = rng.integers(0, 256, (K, N)).astype(np.uint8)
    return a, codes


@pytest.mark.parametrize("overflow", ["wrap", "saturate"])
@pytest.mark.parametrize("acc_bits", [27, 29, 40, 64])
@pytest.mark.parametrize("shape", [(1, 1, 1), (3, 17, 5), (8, 64, 3), (2, 130, 9)])
def test_matmul_equals_python_loop(shape, acc_bits, overflow):
    rng = np.random.default_rng(hash((shape, acc_bits, overflow)) % 2 ** 32)
    a, codes = _random_case(rng, *shape)
    expect = oracles.matmul(a.tolist(), codes.tolist(), acc_bits, overflow)
    impls = IMPLS_WRAP if overflow == "wrap" else ("auto", "loop")
    for impl in impls:
        got = golden.matmul(a, codes, acc_bits=acc_bits, overflow=overflow, impl=impl)
        assert got.dtype == np.int64
        assert np.array_equal(got, expect), impl


@pytest.mark.parametrize("overflow", ["wrap", "saturate"])
def test_matmul_overflowing_accumulator(overflow):
    # Large same-sign products overflow a 27-bit accumulator within a couple of terms.
    K = 40
    a = np.full((2, K), -128, dtype=np.int8)
    a[1, ::3] = 127
    codes = np.full((K, 3), 0x7C, dtype=np.uint8)                  # E=15, R=4: +17 * 2^14
    codes[::2, 1] = 0xFC                                           # negative weights in column 1
    codes[5:, 2] = 0x00
    expect = oracles.matmul(a.tolist(), codes.tolist(), 27, overflow)
    unclamped = oracles.matmul(a.tolist(), codes.tolist(), 64, "wrap")
    assert not np.array_equal(expect, unclamped), "the case must actually overflow"
    for impl in (IMPLS_WRAP if overflow == "wrap" else ("loop",)):
        assert np.array_equal(golden.matmul(a, codes, 27, overflow, impl=impl), expect)
    if overflow == "saturate":
        assert expect.max() == 2 ** 26 - 1 or expect.min() == -(2 ** 26)


def test_saturate_order_matters_and_follows_k():
    # p, p, -p with 2p below the 27-bit range: clamped after k=1, so the result is lo - p, not p
    codes = np.array([[0x7C], [0x7C], [0xFC]], dtype=np.uint8)    # +17*2^14, +17*2^14, -17*2^14
    a = np.array([[-128, -128, -128]], dtype=np.int8)
    p = oracles.product(-128, 0x7C)
    lo = -(2 ** 26)
    assert 2 * p < lo
    assert golden.matmul(a, codes, 27, "saturate")[0, 0] == lo - p
    assert golden.matmul(a, codes, 27, "wrap")[0, 0] == p         # wrap is order-independent


def test_matmul_wide_activations_use_exact_paths():
    rng = np.random.default_rng(5)
    a, codes = _random_case(rng, 4, 50, 6, act_bits=16)
    expect = oracles.matmul(a.tolist(), codes.tolist(), 40, "wrap")
    assert np.array_equal(golden.matmul(a, codes, 40, "wrap", act_bits=16), expect)
    assert np.array_equal(golden.matmul(a, codes, 40, "wrap", act_bits=16, impl="f64"), expect)
    with pytest.raises(ValueError, match=r"^impl='int8' needs int8-range activations"):
        golden.matmul(a, codes, 40, "wrap", act_bits=16, impl="int8")


def test_matmul_rejects_bad_inputs():
    a = np.zeros((2, 3), dtype=np.int8)
    c = np.zeros((3, 4), dtype=np.uint8)
    with pytest.raises(ValueError, match=r"^a has 1 value\(s\) outside the signed 8-bit range "
                                         r"-128..127; the first is 300 at index \(0, 1\)"):
        golden.matmul(np.array([[0, 300, 0]]), c)
    with pytest.raises(TypeError, match=r"^a must be an integer array"):
        golden.matmul(a.astype(np.float32), c)
    with pytest.raises(TypeError, match=r"^codes must be a uint8 array of RF8 codes, not int64"):
        golden.matmul(a, c.astype(np.int64))
    with pytest.raises(ValueError, match=r"^inner dimensions differ"):
        golden.matmul(a, np.zeros((4, 4), dtype=np.uint8))
    with pytest.raises(ValueError, match=r"^acc_bits must be an integer in 27\.\.64 for act_bits=8 "
                                         r"\(the largest single product needs 27 bits\), not 26$"):
        golden.matmul(a, c, acc_bits=26)
    with pytest.raises(ValueError, match=r"^acc_bits must be an integer .*, not True$"):
        golden.matmul(a, c, acc_bits=True)
    with pytest.raises(ValueError, match=r"^overflow must be one of 'wrap', 'saturate', not 'clip'$"):
        golden.matmul(a, c, overflow="clip")
    with pytest.raises(ValueError, match=r"^act_bits must be an integer in 2\.\.16, not 17$"):
        golden.matmul(a, c, act_bits=17)
    with pytest.raises(ValueError, match=r"^act_bits must be an integer in 2\.\.16, not 17$"):
        golden.product(np.zeros(2, np.int8), np.zeros(2, np.uint8), act_bits=17)
    with pytest.raises(ValueError, match=r"^impl must be one of 'auto', 'int8', 'f64', 'loop', "
                                         r"not 'gpu'$"):
        golden.matmul(a, c, impl="gpu")
    with pytest.raises(ValueError, match=r"^a must be 2-D"):
        golden.matmul(np.zeros(3, dtype=np.int8), c)
    with pytest.raises(ValueError, match=r"^impl='f64' computes the wrap mode only"):
        golden.matmul(a, c, overflow="saturate", impl="f64")


def test_matmul_empty_shapes():
    assert golden.matmul(np.zeros((0, 3), np.int8), np.zeros((3, 2), np.uint8)).shape == (0, 2)
    assert (golden.matmul(np.zeros((2, 0), np.int8), np.zeros((0, 2), np.uint8)) == 0).all()


def test_exactness_bounds_use_the_magnitude_of_minus_128():
    # |int8(-128)| does not fit int8: a bound computed with np.abs on int8 would go negative and
    # send this case to the int8 GEMM, whose int32 sums overflow here (K * 128 * 96 > 2**31).
    K = 180_000
    a = np.full((1, K), -128, dtype=np.int8)
    codes = np.full((K, 1), 0x79, dtype=np.uint8)                 # largest weight, 24 * 2^14
    assert golden.matmul(a, codes, 64)[0, 0] == K * oracles.product(-128, 0x79)
    with pytest.raises(ValueError, match=r"^impl='int8' needs int8-range activations"):
        golden.matmul(a, codes, 64, impl="int8")
