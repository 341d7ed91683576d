"""rf8hw.nn.bitexact (per-layer arithmetic) and the bit-exact model functions of rf8hw.nn.quant:
the QuantLinear hardware path against oracles written differently."""

import numpy as np
import pytest
import torch
import torch.nn as nn

import rf8hw
from rf8hw.arch import ArrayConfig
from rf8hw.format import codec, golden, spec
from rf8hw.nn import bitexact, quant
from rf8hw.nn.bitexact import OverflowStats

MAX_CODE = 0x79          # E = 15, R = 1: W = 24 * 2**14 = 393216, the largest weight


def _rf8_layer(k=20, n=7, seed=0, granularity="channel"):
    torch.manual_seed(seed)
    lin = nn.Linear(k, n)
    with torch.no_grad():
        lin.weight.mul_(torch.logspace(-2, 0.5, n).unsqueeze(1))    # per-channel ranges differ
    return lin, quant.QuantLinear.from_linear(lin, "rf8", granularity, "nearest", mode="bitexact")


def _oracle_act_quant(x: np.ndarray, qmax: int = 127, per_token: bool = False):
    """Per tensor: one float32(max|x| / qmax); per token: one per row, a column [M, 1]."""
    if per_token:
        scale = np.array([[float(np.float32(float(np.abs(r).max()) / qmax))] for r in x])
    else:
        scale = float(np.float32(np.abs(x).max() / qmax))
    return np.clip(np.rint(x.astype(np.float64) / scale), -qmax, qmax).astype(np.int64), scale


@pytest.mark.parametrize("act", ["token", "tensor"])
@pytest.mark.parametrize("granularity", ["channel", "tensor"])
def test_bitexact_layer_equals_direct_golden_matmul(granularity, act):
    """layer(x) == golden.matmul(a, codes) * 2**(X-18) * act_scale + bias, bit for bit, and the same
    value from the decoded weights (exact float64 sums of powers of two) as a second oracle; per-token
    (the default) and per-tensor activation scales."""
    _, q = _rf8_layer(granularity=granularity)
    assert q.act_granularity == "token"
    q.act_granularity = act
    x = torch.randn(2, 5, 20, generator=torch.Generator().manual_seed(3))
    x[0, 1] *= 30                                   # one loud token: per-token and per-tensor differ
    y = q(x)
    assert y.shape == (2, 5, 7) and y.dtype == torch.float32
    a, scale = _oracle_act_quant(x.reshape(10, 20).numpy(), per_token=act == "token")
    codes, X = q.codes.numpy(), q.exponent.numpy().astype(np.int64)
    acc = golden.matmul(a, codes, acc_bits=40, overflow="wrap")
    bias = q.bias.detach().numpy()                   # float32, added to the float32 product
    direct = (acc * np.ldexp(1.0, X - spec.PRODUCT_SHIFT) * scale).astype(np.float32) + bias
    assert torch.equal(y.reshape(10, 7), torch.from_numpy(direct))
    w = codec.decode(codes, int(X[0]) if X.size == 1 else X).astype(np.float64)
    via_decode = ((a.astype(np.float64) @ w) * scale).astype(np.float32) + bias
    assert torch.equal(y.reshape(10, 7), torch.from_numpy(via_decode))
    assert q.overflow_stats.calls == 1 and q.overflow_stats.outputs == 70 and q.overflow_stats.events == 0


def test_bitexact_is_fake_quant_with_int8_activations_when_acc_is_ample():
    """With 64-bit accumulation the only difference to weight-only fake-quant is the activation
    rounding: equal (to float32 rounding) to fake-quant on dequantized INT8 activations, and within
    the activation-rounding bound sum_k |W[k, n]| * act_scale / 2 of plain fake-quant."""
    _, q = _rf8_layer(k=64, n=16, seed=1)
    quant.set_mode(q_model := nn.Sequential(q), array=ArrayConfig(acc_bits=64), act_granularity="tensor")
    x = torch.randn(32, 64, generator=torch.Generator().manual_seed(4))
    y = q_model(x).double()
    a, scale = _oracle_act_quant(x.numpy())
    w = q.weight_kn().double()
    bias = q.bias.detach().double()
    fake_int8_act = torch.from_numpy(a).double() * scale @ w + bias
    torch.testing.assert_close(y, fake_int8_act, rtol=1e-6, atol=1e-6)
    fake = x.double() @ w + bias
    bound = w.abs().sum(0) * scale / 2
    assert ((y - fake).abs() <= bound * (1 + 1e-6) + 1e-6).all()
    assert (y - fake).abs().max() > 0          # the activations really were rounded


def _overflow_layer():
    """K = 4, N = 3: column 0 all max weights, column 1 zero, column 2 one max weight."""
    q = quant.QuantLinear(4, 3, "rf8", "tensor", bias=False, mode="bitexact")
    codes = np.zeros((4, 3), np.uint8)
    codes[:, 0] = MAX_CODE
    codes[0, 2] = MAX_CODE
    q.codes.copy_(torch.from_numpy(codes))
    return q


# integer activations; act_scale = float32(127 / 127) = 1, so x == a
OVERFLOW_ROWS = [
    [127, 127, 127, 127],      # column 0: 4 * 127 * W, far outside 27 bits
    [127, -127, 127, -127],    # column 0: partial sums W, 0, W, 0: always in range
    [127, 127, -127, -127],    # column 0: exact 0, but the prefix 2 * 127 * W leaves 27 bits
    [-127, 0, 0, 0],           # single products always fit (acc_bits >= min_acc_bits)
]


@pytest.mark.parametrize("overflow", ["wrap", "saturate"])
def test_overflow_events_on_a_constructed_overflowing_layer(overflow):
    acc_bits = spec.min_acc_bits(8)                  # 27: one product fits, two do not
    q = _overflow_layer()
    quant.set_mode(model := nn.Sequential(q), array=ArrayConfig(acc_bits=acc_bits, overflow=overflow))
    y = model(torch.tensor(OVERFLOW_ROWS, dtype=torch.float32))
    W = int(golden.WEIGHT_INT[MAX_CODE])
    assert W == 24 << 14
    lo, hi = -(1 << (acc_bits - 1)), (1 << (acc_bits - 1)) - 1
    expected_acc, events = [], 0
    for row in OVERFLOW_ROWS:              # plain Python: k-order accumulation per column
        out = []
        for col in range(3):
            ws = [W if int(q.codes[k, col]) else 0 for k in range(4)]
            exact = sum(x * w for x, w in zip(row, ws))
            if overflow == "wrap":
                r = (exact - lo) % (1 << acc_bits) + lo
            else:
                r = 0
                for x, w in zip(row, ws):
                    r = min(hi, max(lo, r + x * w))
            events += r != exact
            out.append(r)
        expected_acc.append(out)
    step = 2.0 ** (int(q.exponent[0]) - spec.PRODUCT_SHIFT)
    assert torch.equal(y, torch.tensor(expected_acc, dtype=torch.float64).mul(step).float())
    # wrap: only row 0 col 0 (exact sum out of range); saturate: rows 0 and 2 (transient clamp)
    assert events == (1 if overflow == "wrap" else 2)
    rep = quant.overflow_report(model)
    assert rep["0"]["events"] == events and rep["total"]["events"] == events
    assert rep["0"]["outputs"] == 12
    assert rep["0"]["max_abs_sum"] == 4 * 127 * W
    assert rep["0"]["acc_bits_needed"] == (4 * 127 * W).bit_length() + 1
    quant.reset_stats(model)
    assert quant.overflow_report(model)["total"]["events"] == 0


def test_overflow_events_vanish_with_a_wide_enough_accumulator():
    q = _overflow_layer()
    need = (4 * 127 * (24 << 14)).bit_length() + 1
    for acc_bits, expect in ((need - 1, 1), (need, 0)):
        quant.set_mode(model := nn.Sequential(q), array=ArrayConfig(acc_bits=acc_bits))
        model(torch.tensor(OVERFLOW_ROWS[:1], dtype=torch.float32))
        assert quant.overflow_report(model)["total"]["events"] == expect, acc_bits


def test_static_calibration_clips_and_counts():
    _, q = _rf8_layer()
    model = nn.Sequential(q)
    quant.set_mode(model, mode="fake")
    g = torch.Generator().manual_seed(5)
    batches = [torch.randn(8, 20, generator=g) for _ in range(3)]
    levels = quant.calibrate(model, batches)
    assert levels == {"0": pytest.approx(max(float(b.abs().max()) for b in batches))}
    quant.set_mode(model, absmax={"0": 1.0})
    x = torch.tensor([[3.0] + [0.5] * 19])
    y = model(x)
    a, scale, clipped = bitexact.quantize_activations(x.numpy(), 8, absmax=1.0)
    assert clipped == 1 and a[0, 0] == 127 and a[0, 1] == 64 and scale == float(np.float32(1 / 127))
    assert quant.overflow_report(model)["0"]["clipped_acts"] == 1
    direct, _, _ = bitexact.rf8_gemm(a, scale, q.codes.numpy(), q.exponent.numpy())
    assert torch.equal(y, torch.from_numpy(direct.astype(np.float32) + q.bias.detach().numpy()))


def test_quantize_with_mode_bitexact_runs_the_whole_model_and_all_zero_input_gives_zero():
    """An all-zero activation tensor has absmax 0: scale 1, a = 0, no division by zero."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(12, 6, bias=False), nn.ReLU(), nn.Linear(6, 3, bias=False))
    q = rf8hw.quantize(model, fmt="rf8", mode="bitexact")
    y = q(torch.zeros(2, 12))
    assert torch.equal(y, torch.zeros(2, 3))
    rep = quant.overflow_report(q)
    assert rep["total"]["calls"] == 2 and rep["total"]["events"] == 0


def test_bad_inputs_name_the_value_and_what_is_allowed():
    with pytest.raises(ValueError, match=r"^acc_bits must be an integer in 27\.\.64 for act_bits=8 "):
        ArrayConfig(acc_bits=20)
    with pytest.raises(ValueError, match=r"^overflow must be one of 'wrap', 'saturate', not 'clip'$"):
        ArrayConfig(overflow="clip")
    with pytest.raises(ValueError, match=r"^act_bits must be an integer in 2\.\.16, not 17$"):
        bitexact.act_qmax(17)
    model = nn.Sequential(nn.Linear(4, 2))
    with pytest.raises(ValueError, match=r"mode 'bitexact' needs fmt 'rf8' or 'int8' or 'fp8_e4m3' \(a MAC "
                                         r"array of that weight format\), not 'apot'"):
        rf8hw.quantize(model, fmt="apot", mode="bitexact")
    with pytest.raises(ValueError, match=r"^model has no QuantLinear layer with a bit-exact path"):
        quant.set_mode(rf8hw.quantize(model, fmt="apot"))
    with pytest.raises(ValueError, match=r"^array\.pe must be a int8 PE kind for a int8 layer, "
                                         r"not 'rf8_pipe'"):
        quant.QuantLinear(4, 2, fmt="int8", array=ArrayConfig())
    q = rf8hw.quantize(model, fmt="rf8")
    with pytest.raises(ValueError, match=r"^mode must be one of 'fake', 'bitexact', not 'exact'$"):
        quant.set_mode(q, mode="exact")
    with pytest.raises(ValueError, match=r"^absmax names \['fc9'\] which are not bit-exact layers; "
                                         r"layers are: 0$"):
        quant.set_mode(q, absmax={"fc9": 1.0})
    with pytest.raises(ValueError, match=r"^absmax\['0'\] must be a finite number >= 0, not -1\.0$"):
        quant.set_mode(q, absmax={"0": -1.0})
    with pytest.raises(ValueError, match=r"^array must be an rf8hw\.arch\.ArrayConfig or None, not dict$"):
        quant.set_mode(q, array={"acc_bits": 32})
    with pytest.raises(ValueError, match=r"^array\.pe must be an RF8 PE kind .* not 'int8', "
                                         r"which multiplies int8 weights$"):
        quant.set_mode(q, array=ArrayConfig(pe="int8"))
    with pytest.raises(ValueError, match=r"^act_absmax must be a finite number >= 0, not nan$"):
        quant.QuantLinear(4, 2, act_absmax=float("nan"))
    quant.set_mode(q)
    with pytest.raises(ValueError, match=r"^activations contain 1 NaN/Inf value\(s\)"):
        q(torch.tensor([[1.0, float("nan"), 0.0, 0.0]]))
    with pytest.raises(ValueError, match=r"^static absmax must be a finite number >= 0, not -1\.0$"):
        bitexact.quantize_activations(np.zeros(3), 8, absmax=-1.0)
    with pytest.raises(ValueError, match=r"^act_bits must be an integer in 2\.\.16, not True$"):
        bitexact.quantize_activations(np.zeros(3), True)


def test_layer_owns_its_array_config_clipping_level_and_counters():
    """QuantLinear's bit-exact settings are real attributes (set in __init__, replaced by set_mode),
    the default is ArrayConfig(): 8-bit activations, 40-bit wrapping accumulator."""
    layer = quant.QuantLinear(20, 7)
    assert layer.array == ArrayConfig() and (layer.array.act_bits, layer.array.acc_bits,
                                              layer.array.overflow) == (8, 40, "wrap")
    assert layer.act_absmax is None and layer.overflow_stats == OverflowStats()
    assert not any(k.startswith("bitexact") for k in vars(layer))
    assert bitexact.act_qmax(8) == 127 and bitexact.act_qmax(2) == 1
    _, q = _rf8_layer()
    cfg = ArrayConfig(rows=4, cols=4, act_bits=6, acc_bits=33, overflow="saturate", pe="rf8_lean")
    model = nn.Sequential(q)
    assert quant.set_mode(model, array=cfg, absmax={"0": 2.0}) is model
    assert q.array is cfg and q.act_absmax == 2.0 and q.mode == "bitexact"
    x = torch.randn(3, 20, generator=torch.Generator().manual_seed(6))
    y = model(x)
    a, scale, clipped = bitexact.quantize_activations(x.numpy(), 6, absmax=2.0)
    assert int(np.abs(a).max()) <= 31
    direct, acc, exact = bitexact.rf8_gemm(a, scale, q.codes.numpy(), q.exponent.numpy(), cfg)
    assert torch.equal(y, torch.from_numpy(direct.astype(np.float32) + q.bias.detach().numpy()))
    assert q.overflow_stats.calls == 1 and q.overflow_stats.clipped_acts == clipped
    quant.reset_stats(model)
    assert q.overflow_stats == OverflowStats()
    # a layer built with its own settings runs them without set_mode
    own = quant.QuantLinear(20, 7, mode="bitexact", array=cfg, act_absmax=2.0)
    own.load_state_dict(q.state_dict())
    assert torch.equal(own(x), y)


# ------------------------------------------------------------------ W8A8 baselines (INT8, FP8-E4M3)

def _oracle_baseline(a, act_scale, codes, fmt, scale, acc_bits, overflow):
    """The baseline array the long way: products from rf8hw.format.baselines.product in Python ints,
    added in k order into an acc_bits accumulator (wrap: two's complement; saturate: every partial
    sum clamped), then the exact rational acc * act_scale * scale * 2**-s rounded once to float64."""
    from fractions import Fraction

    from rf8hw.format import baselines

    half = 1 << (acc_bits - 1)
    shift = baselines.FP8_E4M3_SCALE_BITS if fmt == "fp8_e4m3" else 0
    M, K = a.shape
    N = codes.shape[1]
    y = np.zeros((M, N))
    accs = np.zeros((M, N), dtype=np.int64)
    for m in range(M):
        for n in range(N):
            acc = 0
            for k in range(K):
                acc += baselines.product(fmt, int(a[m, k]), int(codes[k, n]))
                if overflow == "wrap":
                    acc = (acc + half) % (2 * half) - half
                else:
                    acc = max(-half, min(half - 1, acc))
            accs[m, n] = acc
            s = act_scale[m, 0] if np.ndim(act_scale) else act_scale
            sn = float(scale[n if scale.size > 1 else 0])
            y[m, n] = float(Fraction(acc) * Fraction(float(s)) * Fraction(sn) / 2 ** shift)
    return y, accs


@pytest.mark.parametrize("fmt", ["int8", "fp8_e4m3"])
@pytest.mark.parametrize("acc_bits, overflow", [(40, "wrap"), (27, "wrap"), (27, "saturate")])
def test_baseline_gemm_equals_the_long_way(fmt, acc_bits, overflow):
    """Every code (NaN codes of FP8 included: W = 0), activations up to +-127, per-row and per-column
    scales; with a 27-bit accumulator the FP8 sums leave its range (wrap and saturate differ)."""
    rng = np.random.default_rng(7)
    K, N, M = 300, 5, 4
    codes = rng.integers(0, 256, (K, N)).astype(np.uint8)
    if fmt == "int8":
        codes[codes == 0x80] = 0x81
    codes[:, 0] = 0x7E if fmt == "fp8_e4m3" else 0x7F                 # the largest weight everywhere
    a = rng.integers(-127, 128, (M, K))
    a[0] = 127
    act_scale = rng.uniform(0.001, 1, (M, 1)).astype(np.float32).astype(np.float64)
    scale = rng.uniform(0.001, 1, N).astype(np.float32)
    arr = ArrayConfig(acc_bits=acc_bits, overflow=overflow, pe=quant.layer.BASELINE_PE[fmt])
    y, acc, exact = bitexact.baseline_gemm(a, act_scale, codes, fmt, scale, arr)
    y_ref, acc_ref = _oracle_baseline(a, act_scale, codes, fmt, scale, acc_bits, overflow)
    assert np.array_equal(acc, acc_ref) and np.array_equal(y, y_ref)
    overflowed = (acc != exact).any()
    assert overflowed == (fmt == "fp8_e4m3" and acc_bits == 27)


@pytest.mark.parametrize("fmt", ["int8", "fp8_e4m3"])
def test_baseline_layer_bitexact_is_w8a8(fmt):
    """A QuantLinear of a baseline format in bit-exact mode: per-token INT8 activations (the oracle's
    own quantization), the long-way GEMM, the float32 result plus bias; its array is the RF8 array's
    arithmetic with the format's PE kind; fake-quant differs only by the activation rounding."""
    torch.manual_seed(0)
    lin = nn.Linear(24, 6)
    model = nn.Sequential(lin)
    q = rf8hw.quantize(model, fmt=fmt, granularity="channel")
    x = torch.randn(3, 24)
    y_fake = q(x).detach()
    quant.set_mode(q, "bitexact", array=ArrayConfig(acc_bits=32))
    layer = q[0]
    assert layer.array.pe == quant.layer.BASELINE_PE[fmt] and layer.array.acc_bits == 32
    y = q(x)
    a, s = _oracle_act_quant(x.numpy(), per_token=True)
    ref, _ = _oracle_baseline(a, s, layer.codes.numpy(), fmt, layer.scale.numpy(), 32, "wrap")
    ref = ref.astype(np.float32) + layer.bias.detach().numpy()
    assert torch.equal(y, torch.from_numpy(ref))
    assert 0 < float((y - y_fake).abs().max()) < 0.05
    assert quant.overflow_report(q)["total"]["calls"] == 1
