"""The accelerator's post-processing in the bit-exact PyTorch path (rf8hw.nn.bitexact.postprocess,
accel_gemm, accel_linear, QuantLinear.set_postprocess) against rf8hw.format.postproc (numpy,
written independently) and a plain-integer oracle: every shift, the rounding ties, saturation,
negative values, INT8 and INT32."""

import math
from fractions import Fraction

import numpy as np
import pytest
import torch

from rf8hw.arch import ArrayConfig
from rf8hw.format import golden, postproc
from rf8hw.nn import bitexact
from rf8hw.nn.quant import QuantLinear


def oracle(acc: int, bias: int, mult: int, shift: int, out_bits: int) -> int:
    r = math.floor(Fraction((acc + bias) * mult, 2 ** shift) + Fraction(1, 2))
    return min(max(r, -(2 ** (out_bits - 1))), 2 ** (out_bits - 1) - 1)


def both(acc, bias, mult, shift, acc_bits, out_bits):
    """(torch result, numpy rule's result) as lists."""
    t = bitexact.postprocess(torch.from_numpy(np.asarray(acc, dtype=np.int64)), bias, mult, shift,
                             acc_bits=acc_bits, out_bits=out_bits)
    n = postproc.postprocess(np.asarray(acc, dtype=np.int64), bias, mult, shift,
                             acc_bits=acc_bits, out_bits=out_bits)
    assert t.dtype == torch.int64
    return t.tolist(), n.tolist()


@pytest.mark.parametrize("out_bits", [8, 32])
def test_every_shift_at_and_next_to_every_tie(out_bits):
    """Shifts 0..63 x products at and next to the rounding ties (both signs) x the extreme
    46-bit accumulators: torch == numpy rule == oracle."""
    half = 1 << 45
    accs, mults, shifts = [], [], []
    for s in range(postproc.SHIFT_MAX + 1):
        for a in (-half, half - 1, -1, 0, 1):
            accs.append(a), mults.append((1 << 16) - 1), shifts.append(s)
        if s - 1 > 43 + 15:
            continue
        mult = 1 << min(15, max(s - 1, 0))
        for odd in (-3, -1, 1, 3):
            base = odd * (1 << max(s - 1 - 15, 0))
            for d in (-1, 0, 1):
                accs.append(base + d), mults.append(mult), shifts.append(s)
    acc = np.array(accs, dtype=np.int64)[None, :]
    t, n = both(acc, 0, np.array(mults), np.array(shifts), 46, out_bits)
    want = [oracle(a, 0, m, s, out_bits) for a, m, s in zip(accs, mults, shifts)]
    assert t[0] == n[0] == want and len(want) > 1000


def test_ties_round_half_up_and_shift_zero_is_identity():
    t, n = both([[5, -5, -3, 3, -1, 1]], 0, 1, 1, 40, 32)
    assert t == n == [[3, -2, -1, 2, 0, 1]]
    t, n = both([[7, -7, 123456, -(1 << 39)]], 0, 1, 0, 40, 32)
    assert t == n == [[7, -7, 123456, -(1 << 31)]]          # shift 0: no rounding, INT32 clamp


@pytest.mark.parametrize("acc_bits", [27, 40, 46])
@pytest.mark.parametrize("out_bits", [8, 32])
def test_random_columns_with_extreme_bias_mult_shift(acc_bits, out_bits):
    rng = np.random.default_rng(acc_bits * 100 + out_bits)
    half = 1 << (acc_bits - 1)
    M, N = 30, 64
    acc = rng.integers(-half, half, size=(M, N), dtype=np.int64)
    acc[0], acc[1] = -half, half - 1
    acc[2:6] = rng.integers(-300, 300, size=(4, N))            # small: INT8 in range
    bias = rng.integers(-half, half, size=N)
    bias[:4] = [-half, half - 1, 0, -1]
    mult = rng.integers(0, 1 << 16, size=N)
    mult[:4] = [0, 1, (1 << 16) - 1, 1 << 15]
    shift = rng.integers(0, 64, size=N)
    shift[4:8] = [0, 1, 62, 63]
    t, n = both(acc, bias, mult, shift, acc_bits, out_bits)
    want = [[oracle(int(acc[m, c]), int(bias[c]), int(mult[c]), int(shift[c]), out_bits)
             for c in range(N)] for m in range(M)]
    assert t == n == want
    lo, hi = -(1 << (out_bits - 1)), (1 << (out_bits - 1)) - 1
    flat = np.array(t)
    assert (flat == lo).any() and (flat == hi).any() and ((flat > lo) & (flat < hi)).any()


def test_bad_parameters_are_one_line_errors():
    acc = torch.zeros(2, 3, dtype=torch.int64)
    for kwargs, words in [({"shift": 64}, "shift[0] must be in 0..63, not 64"),
                          ({"mult": -1}, "mult[0] must be in 0..65535, not -1"),
                          ({"bias": 1 << 39}, "bias[0] must be in"),
                          ({"out_bits": 16}, "out_bits must be one of 8, 32, not 16"),
                          ({"acc_bits": 47}, "acc_bits")]:
        with pytest.raises(ValueError, match=words.replace("[", r"\[").replace("]", r"\]")):
            bitexact.postprocess(acc, **kwargs)
    with pytest.raises(ValueError, match="signed 40-bit integers"):
        bitexact.postprocess(torch.full((1, 1), 1 << 39), 0, 1, 0)
    with pytest.raises(ValueError, match="2-D integer tensor"):
        bitexact.postprocess(torch.zeros(2, 2), 0, 1, 0)


def _layer(rng, K, N, channel_scale=False):
    lin = torch.nn.Linear(K, N)
    with torch.no_grad():
        lin.weight.copy_(torch.from_numpy(rng.standard_normal((N, K)) * 0.05))
        lin.bias.copy_(torch.from_numpy(rng.standard_normal(N) * 0.3))
    q = QuantLinear.from_linear(lin, mode="bitexact")
    if channel_scale:
        q.channel_scale = torch.from_numpy(rng.uniform(0.6, 1.4, N).astype(np.float32))
    return q


@pytest.mark.parametrize("out_bits", [8, 32])
@pytest.mark.parametrize("channel_scale", [False, True])
def test_layer_equals_the_numpy_rule_on_its_own_integers(out_bits, channel_scale):
    """QuantLinear with set_postprocess: its INT8/INT32 integers are postproc.gemm of its INT8
    activations and codes with the parameters postproc derives (bias_int, requant_params), and its
    float output is those integers times the output scale (INT8) or the column's unit (INT32)."""
    rng = np.random.default_rng(out_bits + channel_scale)
    K, N, M = 96, 40, 7
    q = _layer(rng, K, N, channel_scale)
    x = torch.from_numpy(rng.standard_normal((M, K)).astype(np.float32))
    float_out = q(x)                                      # rule 3 (no post-processing)
    absmax = float(float_out.abs().max()) * 0.7           # some outputs saturate
    q.set_postprocess(out_bits, absmax if out_bits == 8 else None)
    details = []
    got = bitexact.accel_linear(x, q.codes, q.exponent, q.bias, q.array, None, out_bits,
                                q.out_absmax, None, channel_scale=q.channel_scale, details=details)
    y = q(x)
    assert torch.equal(y, got)
    d = details[0]
    a = d["a"]
    act_scale = float(np.float32(np.abs(x.numpy()).max() / 127))
    assert d["act_scale"] == act_scale and np.abs(a).max() == 127
    X = q.exponent.numpy()
    cs = 1.0 if q.channel_scale is None else q.channel_scale.numpy()
    bias = postproc.bias_int(q.bias.detach().numpy(), X, act_scale, cs)
    if out_bits == 8:
        out_scale = float(np.float32(absmax / 127))
        mult, shift = postproc.requant_params(X, act_scale, out_scale, cs)
    else:
        mult, shift = 1, 0
    want = postproc.gemm(a, q.codes.numpy(), bias, mult, shift, out_bits=out_bits)
    assert np.array_equal(d["y_int"], want)
    assert np.array_equal(d["acc"], golden.matmul(a, q.codes.numpy(), 40, "wrap", impl="loop"))
    if out_bits == 8:
        assert (np.abs(want) >= 127).any() and (np.abs(want) < 100).any()    # saturated, and not
        assert np.array_equal(y.numpy(), (want * np.float64(out_scale)).astype(np.float32))
    else:
        unit = np.ldexp(1.0, X.astype(np.int64) - 18) * (act_scale * np.asarray(cs, np.float64))
        assert np.array_equal(y.numpy(), (want * unit).astype(np.float32))
        # INT32 output is the exact sum plus the bias: close to the float layer's output
        assert torch.allclose(y, float_out, atol=0.05, rtol=0.05)


def test_set_postprocess_refuses_bad_values():
    q = _layer(np.random.default_rng(0), 16, 4)
    for args, words in [((16, 1.0), "out_bits must be one of 8, 32 or None, not 16"),
                        ((8, None), "INT8 output needs out_absmax"),
                        ((8, -1.0), "out_absmax"),
                        ((32, 2.0), "INT32 output takes no out_absmax"),
                        ((None, 2.0), "out_absmax=2.0 without out_bits")]:
        with pytest.raises(ValueError, match=words):
            q.set_postprocess(*args)
    assert q.out_bits is None
    q.set_postprocess(8, 3.0)
    q.set_postprocess(None)
    assert q.out_bits is None and q.out_absmax is None


def test_accel_gemm_refuses_per_token_scales_and_long_k():
    rng = np.random.default_rng(1)
    a = rng.integers(-127, 128, size=(3, 8))
    codes = rng.integers(0, 256, size=(8, 2)).astype(np.uint8)
    with pytest.raises(ValueError, match="one activation scale .* not 3 \\(per-token"):
        bitexact.accel_gemm(a, np.ones((3, 1)), codes, np.zeros(2, np.int64), out_scale=1.0)
    limit = postproc.max_k(8, 27)
    codes = np.zeros((limit + 1, 1), np.uint8)
    with pytest.raises(ValueError, match=f"K must be .*{limit}"):
        bitexact.accel_gemm(np.zeros((1, limit + 1), np.int64), 1.0, codes, np.zeros(1, np.int64),
                            out_scale=1.0, array=ArrayConfig(acc_bits=27))
