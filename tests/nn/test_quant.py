"""rf8hw.nn.quant: storage, each format against an oracle written differently, export/import, bad input."""

import json
import math
from fractions import Fraction

import ml_dtypes
import numpy as np
import pytest
import torch
import torch.nn as nn

import rf8hw
from rf8hw.format import spec
from rf8hw.nn import quant
from rf8hw.zoo import mlp_digits


@pytest.fixture
def model():
    torch.manual_seed(0)
    return mlp_digits.build()


@pytest.fixture
def x():
    return torch.randn(7, 64, generator=torch.Generator().manual_seed(1))


def _layer(k=48, n=12, seed=0, scale_rows=True):
    """A Linear with very different per-channel ranges, so per-channel scaling matters."""
    torch.manual_seed(seed)
    lin = nn.Linear(k, n)
    if scale_rows:
        with torch.no_grad():
            lin.weight.mul_(torch.logspace(-3, 1, n).unsqueeze(1))
    return lin


@pytest.mark.parametrize("fmt", quant.FORMATS)
def test_quantlinear_stores_uint8_codes_not_float_weights(model, fmt):
    q = rf8hw.quantize(model, fmt=fmt, granularity="channel")
    layer = q.fc2
    assert isinstance(layer, quant.QuantLinear)
    # .weight is decoded on demand (for code that reads it, e.g. Hugging Face initialisation), never stored
    assert "weight" not in layer._parameters and "weight" not in layer._buffers
    assert layer.weight is not layer.weight and torch.equal(layer.weight, layer.weight_kn().T)
    state = layer.state_dict()
    assert state["codes"].dtype == torch.uint8 and tuple(state["codes"].shape) == (128, 128)
    side = "exponent" if fmt == "rf8" else "scale"
    assert state[side].dtype == (torch.int32 if fmt == "rf8" else torch.float32)
    assert tuple(state[side].shape) == (128,)
    # nothing float of the weight's size is kept: only the codes, one exponent/scale per channel, bias
    assert sorted(state) == sorted(["codes", side, "bias"])


def test_quantize_leaves_the_input_model_unchanged(model):
    before = {k: v.clone() for k, v in model.state_dict().items()}
    rf8hw.quantize(model, fmt="int8")
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert type(model.fc1) is nn.Linear


def test_int8_is_symmetric_absmax_per_channel_nearest_level():
    lin = _layer()
    q = quant.QuantLinear.from_linear(lin, "int8", "channel")
    w = lin.weight.detach().double().numpy()               # [N, K]
    codes = q.codes.view(torch.int8).numpy().T              # [N, K]
    for n in range(w.shape[0]):                             # oracle: brute force over the 255 levels
        s = np.abs(w[n]).max() / 127
        levels = np.arange(-127, 128)
        expect = levels[np.argmin(np.abs(w[n][:, None] - levels[None, :] * s), axis=1)]
        np.testing.assert_array_equal(codes[n], expect, err_msg=f"channel {n}")
        assert q.scale[n].item() == pytest.approx(s, rel=1e-6)
    assert codes.min() >= -127                              # -128 is never used


def test_fp8_e4m3_codes_match_ml_dtypes_per_tensor():
    lin = _layer()
    q = quant.QuantLinear.from_linear(lin, "fp8_e4m3", "tensor")
    w = lin.weight.detach().numpy().T.astype(np.float32)
    s = np.float32(np.abs(w).max()) / np.float32(448)
    expect = (w / s).astype(ml_dtypes.float8_e4m3fn).view(np.uint8)
    np.testing.assert_array_equal(q.codes.numpy(), expect)
    assert q.scale.shape == (1,) and q.scale.item() == s


def test_fp8_e4m3_decode_all_256_codes_match_ml_dtypes():
    codes = torch.arange(256, dtype=torch.uint8).reshape(16, 16)
    got = quant.decode_weight(codes, "fp8_e4m3", {"scale": torch.ones(1)}).numpy()
    expect = codes.numpy().view(ml_dtypes.float8_e4m3fn).astype(np.float32)
    nan = np.isnan(expect)
    assert nan.sum() == 2                                   # 0x7f and 0xff
    np.testing.assert_array_equal(np.isnan(got), nan)
    np.testing.assert_array_equal(got[~nan], expect[~nan])


def test_apot_level_set_is_the_documented_two_term_sum():
    """Code ``s iiii jjj`` -> P1[i] + P2[j], P1 = 0, 2^0, 2^-2 .. 2^-28, P2 = 0, 2^-1 .. 2^-13."""
    p1 = [Fraction(0)] + [Fraction(1, 4 ** i) for i in range(15)]
    p2 = [Fraction(0)] + [Fraction(1, 2 * 4 ** j) for j in range(7)]
    exact = [p1[c >> 3] + p2[c & 7] for c in range(128)]
    assert len(set(exact)) == 128 and max(exact) == Fraction(3, 2)
    np.testing.assert_array_equal(quant.APOT_LEVELS, np.array([float(v) for v in exact], dtype=np.float32))
    # float32 rounds three sums onto their leading term (2^-1+2^-26, 2^-1+2^-28, 2^-3+2^-28)
    assert len(set(quant.APOT_LEVELS.tolist())) == 125


def test_apot_encode_picks_the_nearest_level():
    lin = _layer(seed=3)
    q = quant.QuantLinear.from_linear(lin, "apot", "channel")
    u = lin.weight.detach().double().numpy().T / q.scale.double().numpy()     # [K, N], units of scale
    codes = q.codes.numpy()
    chosen = np.where(codes >= 0x80, -1.0, 1.0) * quant.APOT_LEVELS[codes & 0x7F]
    levels = np.concatenate([-quant.APOT_LEVELS, quant.APOT_LEVELS]).astype(np.float64)
    best = np.abs(u[..., None] - levels).min(axis=-1)                        # brute force over 256
    assert np.all(np.abs(u - chosen) - best <= 1e-6 * np.maximum(np.abs(u), 2.0 ** -20))
    assert np.abs(u).max() == pytest.approx(1.5)                            # absmax maps to the top level


@pytest.mark.parametrize("rounding", spec.ROUNDING_MODES)
@pytest.mark.parametrize("granularity", quant.GRANULARITIES)
def test_rf8_layer_values_are_spec_codes_with_absmax_exponent(rounding, granularity):
    lin = _layer(k=16, n=6, seed=2)
    q = quant.QuantLinear.from_linear(lin, "rf8", granularity, rounding)
    w = lin.weight.detach().double().numpy().T               # [K, N]
    amax = np.abs(w).max(axis=0) if granularity == "channel" else np.full(w.shape[1], np.abs(w).max())
    X_oracle = [math.floor(math.log2(a) + 0.5) for a in amax]    # round(log2 max|w|); no ties for floats
    X = q.exponent.numpy()
    X = np.broadcast_to(X, (w.shape[1],))
    assert list(X) == X_oracle
    got = q.weight_kn().numpy()
    codes = q.codes.numpy()
    for k in range(w.shape[0]):
        for n in range(w.shape[1]):
            assert got[k, n] == float(spec.code_value(int(codes[k, n]), int(X[n])))
            if rounding == "nearest":           # nearest in value among all 256 codes (Fraction table)
                table = {float(spec.code_value(c, int(X[n]))) for c in range(256)}
                best = min(abs(w[k, n] - v) for v in table)
                assert abs(w[k, n] - got[k, n]) == best, f"k={k} n={n} code={codes[k, n]:#04x}"


def test_sqnr_db_matches_direct_formula(model):
    q = rf8hw.quantize(model, fmt="rf8", rounding="paper", granularity="tensor")
    sig = err = 0.0
    for name in ("fc1", "fc2", "fc3"):
        w = getattr(model, name).weight.detach().double()
        w_hat = getattr(q, name).weight_kn().double().T
        sig += float((w * w).sum())
        err += float(((w - w_hat) ** 2).sum())
    assert quant.sqnr_db(model, q) == pytest.approx(10 * math.log10(sig / err), rel=1e-12)
    assert 25 < quant.sqnr_db(model, q) < 31        # ~28 dB with paper rounding (docs/results.md)


@pytest.mark.parametrize("fmt", quant.FORMATS)
def test_export_import_round_trip_is_exact(tmp_path, model, x, fmt):
    q = rf8hw.quantize(model, fmt=fmt, rounding="paper", skip=["fc3"])
    path = tmp_path / "q.safetensors"
    quant.save_quantized(q, path, model_info={"name": "mlp_digits", "config": {"n_hidden": 128}})
    for loaded in (quant.load_quantized(path), quant.load_quantized(path, model=mlp_digits.build())):
        for name in ("fc1", "fc2"):
            assert torch.equal(getattr(loaded, name).codes, getattr(q, name).codes)
            assert getattr(loaded, name).layer_meta() == getattr(q, name).layer_meta()
        assert type(loaded.fc3) is nn.Linear and torch.equal(loaded.fc3.weight, model.fc3.weight)
        assert torch.equal(loaded(x)[0], q(x)[0])
    meta = json.loads(path.with_suffix(".json").read_text())
    assert meta["format"] == quant.FILE_FORMAT and set(meta["layers"]) == {"fc1", "fc2"}


def test_skip_keeps_layers_float_and_unknown_pattern_is_an_error(model):
    q = rf8hw.quantize(model, fmt="rf8", skip=["fc*"])
    assert all(type(getattr(q, n)) is nn.Linear for n in ("fc1", "fc2", "fc3"))
    with pytest.raises(ValueError, match=r"^skip pattern 'lm_head' matches no nn.Linear; "
                                         r"linear layers are: fc1, fc2, fc3$"):
        rf8hw.quantize(model, skip=["lm_head"])


@pytest.mark.parametrize("kwargs, message", [
    ({"fmt": "int4"}, r"^fmt must be one of 'rf8', 'int8', 'fp8_e4m3', 'apot', not 'int4'$"),
    ({"granularity": "row"}, r"^granularity must be one of 'tensor', 'channel', not 'row'$"),
    ({"rounding": "stochastic"}, r"^rounding must be one of 'paper', 'nearest', not 'stochastic'$"),
    ({"mode": "exact"}, r"^mode must be one of 'fake', 'bitexact', not 'exact'$"),
])
def test_bad_options_are_rejected_by_name(model, kwargs, message):
    with pytest.raises(ValueError, match=message):
        rf8hw.quantize(model, **kwargs)


@pytest.mark.parametrize("fmt", quant.FORMATS)
@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_weights_are_rejected(model, fmt, bad):
    with torch.no_grad():
        model.fc2.weight[3, 5] = bad
    with pytest.raises(ValueError, match=r"^layer 'fc2': weight contains NaN/Inf "
                                         r"\(first (nan|inf) at out-feature 3, in-feature 5\); "
                                         r"quantization needs finite weights$"):
        rf8hw.quantize(model, fmt=fmt)


def test_malformed_files_give_clear_errors(tmp_path, model):
    """The short version; tests/nn/test_quant_io.py has the full matrix of bad files."""
    q = rf8hw.quantize(model, fmt="int8")
    path = tmp_path / "q.safetensors"
    quant.save_quantized(q, path, model_info={"name": "mlp_digits", "config": {}})
    sidecar = path.with_suffix(".json")
    good = sidecar.read_text()

    sidecar.write_text("{not json")
    with pytest.raises(ValueError, match=r"^malformed quantized model sidecar .*q\.json: not JSON"):
        quant.load_quantized(path)
    sidecar.write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(ValueError, match=r"is not an rf8hw-quantized-model v3 sidecar "
                                         r"\(format='something-else', version=None\)$"):
        quant.load_quantized(path)
    sidecar.write_text(good)

    path.write_bytes(path.read_bytes()[:100])                # truncated tensor file
    with pytest.raises(ValueError,
                       match=r"^quantized model file .*q\.safetensors is not a readable safetensors file"):
        quant.load_quantized(path)
    with pytest.raises(FileNotFoundError, match=r"^no such quantized model sidecar: .*nope\.json$"):
        quant.load_quantized(tmp_path / "nope.safetensors")
    with pytest.raises(ValueError, match=r"^model has no QuantLinear layer"):
        quant.save_quantized(model, tmp_path / "float.safetensors")
