"""Per-channel grids, scale search, error-compensated (GPTQ) rounding, their QuantConfig options
(quantize_, channel_scale, bit-exact path, save/load) and RF8-aware fine-tuning (rf8hw/nn/grid.py,
gptq.py, quant/, bitexact.py, ste.py)."""

import copy
import json
import warnings

import numpy as np
import pytest
import torch
import torch.nn as nn

from rf8hw.files import sha256_file
from rf8hw.format import codec
from rf8hw.nn import bitexact, gptq, quant, ste
from rf8hw.nn import grid as gridmod


def _layer(K=48, N=24, seed=0):
    rng = np.random.default_rng(seed)
    w = (rng.standard_t(4, size=(K, N)) * 0.05).astype(np.float32)
    return w


def _inputs(M, K, seed):
    """Correlated inputs (one fixed random mixing of independent features, so H is far from
    diagonal); ``seed`` draws the samples, the distribution is the same for every seed."""
    mix = np.random.default_rng(1234).normal(size=(K, K)) / np.sqrt(K) + np.eye(K)
    return np.random.default_rng(seed).normal(size=(M, K)) @ mix


def _out_mse(x, w, w_hat):
    return float(((x @ (w.astype(np.float64) - w_hat.astype(np.float64))) ** 2).mean())


# ------------------------------------------------------------------------------------ grids

@pytest.mark.parametrize("fmt", ["rf8", "int8"])
def test_unit_grid_rounding_equals_encode_weight(fmt):
    w = _layer()
    codes, _, sat = gridmod.fit_grid(w, fmt).round(w)
    ref, params = quant.encode_weight(w, fmt, "channel")
    np.testing.assert_array_equal(codes, ref)
    assert sat == 0
    q = quant.QuantLinear(w.shape[0], w.shape[1], fmt)
    q.codes.copy_(torch.from_numpy(codes))
    for k, v in params.items():
        getattr(q, k).copy_(torch.from_numpy(v))
    np.testing.assert_array_equal(q.weight_kn().numpy(), gridmod.fit_grid(w, fmt).decode(codes))


@pytest.mark.parametrize("fmt,scaled", [("rf8", False), ("rf8", True), ("int8", False)])
def test_rounder_is_round_exactly(fmt, scaled):
    """The per-vector rounder the GPTQ loop uses equals ChannelGrid.round bit for bit, also beyond
    the grid, at zero, on tiny values and at the exact midpoints between neighbouring grid values."""
    w = _layer(64, 24, seed=8)
    g = gridmod.fit_grid(w, fmt, gridmod.search_scale(w) if scaled else None)
    vals = g.decode(np.arange(256, dtype=np.uint8)[:, None].repeat(24, 1))
    srt = np.sort(vals, axis=0)
    mids = ((srt[1:].astype(np.float64) + srt[:-1]) / 2).astype(np.float32)
    rows = np.concatenate([w, w * 3, w * 1e-6, np.zeros((1, 24), np.float32), mids])
    rnd = g.rounder()
    for row in rows:
        c1, q1, s1 = g.round(row)
        c2, q2, s2 = rnd(row)
        np.testing.assert_array_equal(c1, c2)
        np.testing.assert_array_equal(q1, q2)
        assert s1 == s2


def test_rf8_grid_counts_saturation_and_rejects_bad_scales():
    w = _layer()
    g = gridmod.fit_grid(w, "rf8")
    _, w_hat, sat = g.round(w * 4)
    assert sat > 0 and np.abs(w_hat).max() == np.float32(1.5) * np.exp2(g.exponent).max()
    with pytest.raises(ValueError, match="channel_scale must be 24 finite positive"):
        gridmod.fit_grid(w, "rf8", np.zeros(24))
    with pytest.raises(ValueError, match="grid format"):
        gridmod.fit_grid(w, "fp8")
    with pytest.raises(ValueError, match="do not end in the grid's 24 channels"):
        g.round(w[:, :3])


def test_scale_search_never_worse_than_unit_scale_and_lies_in_the_octave():
    w = _layer(64, 32, seed=3)
    s = gridmod.search_scale(w)
    assert s.shape == (32,) and s.dtype == np.float32
    assert ((s > 0.5) & (s <= 1)).all() and (s < 1).any()
    w_hat1 = gridmod.fit_grid(w, "rf8").round(w)[1]
    w_hat = gridmod.fit_grid(w, "rf8", s).round(w)[1]
    per_ch = lambda wh: ((w.astype(np.float64) - wh) ** 2).sum(0)
    assert (per_ch(w_hat) <= per_ch(w_hat1)).all() and per_ch(w_hat).sum() < per_ch(w_hat1).sum()
    # one factor only -> that factor everywhere; importance zero on all but one input feature
    np.testing.assert_array_equal(gridmod.search_scale(w, factors=[0.8]), np.full(32, 0.8, np.float32))
    imp = np.zeros(64)
    imp[5] = 1.0
    s5 = gridmod.search_scale(w, importance=imp)
    e5 = np.abs(w[5] - gridmod.fit_grid(w, "rf8", s5).round(w)[1][5])
    e1 = np.abs(w[5] - w_hat1[5])
    assert (e5 <= e1).all()
    # sample_rows >= K is the full search; a subsample still gives scales in the octave
    np.testing.assert_array_equal(gridmod.search_scale(w, sample_rows=64), s)
    s_sub = gridmod.search_scale(w, sample_rows=16)
    assert ((s_sub > 0.5) & (s_sub <= 1)).all() and (s_sub != s).any()
    with pytest.raises(ValueError, match="sample_rows"):
        gridmod.search_scale(w, sample_rows=0)
    with pytest.raises(ValueError, match="factors"):
        gridmod.search_scale(w, factors=[])
    with pytest.raises(ValueError, match="importance must be 64"):
        gridmod.search_scale(w, importance=np.ones(3))


# ------------------------------------------------------------------------------------- GPTQ

@pytest.mark.parametrize("fmt", ["rf8", "int8"])
@pytest.mark.parametrize("c", [1.0, 7.5])
@pytest.mark.parametrize("order", gptq.ORDERS)
def test_gptq_with_identity_like_hessian_is_nearest_rounding(fmt, c, order):
    w = _layer()
    g = gridmod.fit_grid(w, fmt)
    res = gptq.gptq(w, c * np.eye(w.shape[0]), g, block=16, order=order)
    np.testing.assert_array_equal(res.codes, g.round(w)[0])
    # a diagonal but non-constant Hessian spreads nothing either
    res = gptq.gptq(w, np.diag(np.linspace(0.1, 3, w.shape[0])), g, block=16, order=order)
    np.testing.assert_array_equal(res.codes, g.round(w)[0])


def _obs_oracle(w, H, g, damp, order):
    """GPTQ written the long way (the optimal-brain-surgeon form): keep the inverse Hessian of the
    not-yet-rounded inputs explicitly, round input ``k`` (in ``order``), move every remaining
    weight by ``-err * Hinv[:, k] / Hinv[k, k]``, then remove ``k`` from ``Hinv`` by its Schur
    complement.  No Cholesky factor, no blocks, no permutation of the matrices."""
    W = w.astype(np.float64).copy()
    H = H.astype(np.float64).copy()
    H[np.diag(H) <= 0, np.diag(H) <= 0] = 1.0
    H += damp * np.diag(H).mean() * np.eye(len(H))
    Hinv = np.linalg.inv(H)
    left = np.ones(len(H), bool)
    codes = np.empty(w.shape, np.uint8)
    for k in order:
        c, q, _ = g.round(W[k])
        codes[k] = c
        err = (W[k] - q) / Hinv[k, k]
        W[left] -= np.outer(Hinv[left, k], err)
        left[k] = False
        Hinv -= np.outer(Hinv[:, k], Hinv[k, :]) / Hinv[k, k]
    return codes


@pytest.mark.parametrize("order", gptq.ORDERS)
@pytest.mark.parametrize("fmt", ["rf8", "int8"])
def test_gptq_equals_an_inverse_hessian_oracle_in_either_order(order, fmt):
    K, N = 40, 12
    w = _layer(K, N, seed=9)
    x = _inputs(400, K, 10) * np.linspace(0.2, 3.0, K)      # unequal input scales: act order != natural
    H = 2 * x.T @ x / len(x)
    g = gridmod.fit_grid(w, fmt)
    seq = np.argsort(-np.diag(H), kind="stable") if order == "act" else np.arange(K)
    if order == "act":
        assert (seq != np.arange(K)).any()
    res = gptq.gptq(w, H, g, damp=0.01, block=8, order=order)
    ref = _obs_oracle(w, H, g, 0.01, seq)
    assert (res.codes == ref).mean() > 0.99             # equal up to float rounding at near-ties
    np.testing.assert_array_equal(res.w_hat, g.decode(res.codes))
    other = gptq.gptq(w, H, g, damp=0.01, block=8, order="natural" if order == "act" else "act")
    assert (other.codes != res.codes).any()             # the order matters on this layer


@pytest.mark.parametrize("order", gptq.ORDERS)
@pytest.mark.parametrize("fmt,scaled", [("rf8", False), ("rf8", True), ("int8", False)])
def test_gptq_lowers_output_error_and_stays_on_the_grid(fmt, scaled, order):
    K, N = 64, 32
    w = _layer(K, N, seed=1)
    x_cal, x_held = _inputs(512, K, 2), _inputs(512, K, 3)
    H = 2 * x_cal.T @ x_cal / len(x_cal)
    g = gridmod.fit_grid(w, fmt, gridmod.search_scale(w) if scaled else None)
    near = g.round(w)[1]
    res = gptq.gptq(w, H, g, block=16, order=order)
    assert _out_mse(x_cal, w, res.w_hat) < _out_mse(x_cal, w, near)
    assert _out_mse(x_held, w, res.w_hat) < _out_mse(x_held, w, near)
    assert (res.codes != g.round(w)[0]).any()
    np.testing.assert_array_equal(res.w_hat, g.decode(res.codes))
    if fmt == "rf8":
        X = g.exponent.astype(np.int64)
        # every result is an RF8 value: re-encoding its unscaled value gives the same codes back
        np.testing.assert_array_equal(codec.encode(codec.decode(res.codes, X), X), res.codes)
        if not scaled:
            np.testing.assert_array_equal(codec.decode(codec.encode(res.w_hat, X), X), res.w_hat)


def test_gptq_blocking_does_not_change_the_result_much_and_rejects_bad_input():
    K, N = 40, 8
    w = _layer(K, N, seed=4)
    x = _inputs(256, K, 5)
    H = x.T @ x
    g = gridmod.fit_grid(w, "int8")
    a, b = gptq.gptq(w, H, g, block=1), gptq.gptq(w, H, g, block=128)
    assert (a.codes == b.codes).mean() > 0.98          # equal up to float rounding at near-ties
    with pytest.raises(ValueError, match="does not match 40 input features"):
        gptq.gptq(w, np.eye(3), g)
    with pytest.raises(ValueError, match="grid has 8 channels"):
        gptq.gptq(w[:, :4], H, g)
    with pytest.raises(ValueError, match="block"):
        gptq.gptq(w, H, g, block=0)
    with pytest.raises(ValueError, match="GPTQ order must be one of 'natural', 'act', not 'random'"):
        gptq.gptq(w, H, g, order="random")


@pytest.mark.parametrize("order", gptq.ORDERS)
def test_dead_inputs_are_rounded_to_nearest_and_keep_their_weight(order):
    K, N = 16, 6
    w = _layer(K, N, seed=6)
    x = _inputs(128, K, 7)
    x[:, 3] = 0
    H = x.T @ x
    g = gridmod.fit_grid(w, "rf8")
    res = gptq.gptq(w, H, g, block=4, order=order)
    assert (res.w_hat[3] != 0).any()
    assert np.isfinite(res.w_hat).all()


# ------------------------------------------------------------------------------ whole model

class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Linear(32, 48)
        self.b = nn.Linear(48, 16)

    def forward(self, x):
        return self.b(torch.relu(self.a(x)))


def _tiny():
    torch.manual_seed(0)
    return Tiny().eval()


def _cfg(fmt="rf8", **kw):
    return quant.QuantConfig(fmt=fmt, granularity="channel", **kw)


def _cal_held():
    g = torch.Generator().manual_seed(1)
    mix = torch.randn(32, 32, generator=g) / 6 + torch.eye(32)
    return torch.randn(512, 32, generator=g) @ mix, torch.randn(512, 32, generator=g) @ mix


class SharedInput(nn.Module):
    """q/k/v-like: three layers read one tensor; ``bump`` edits it in place between two of them."""

    def __init__(self, bump=False):
        super().__init__()
        self.q, self.k, self.v = nn.Linear(8, 4), nn.Linear(8, 4), nn.Linear(8, 4)
        self.bump = bump

    def forward(self, x):
        x = x.clone()
        a, b = self.q(x), self.k(x)
        if self.bump:
            x.mul_(2)
        return a + b + self.v(x)


@pytest.mark.parametrize("bump", [False, True])
def test_hessians_of_layers_sharing_an_input_equal_the_definition(bump):
    x = torch.randn(3, 5, 8, generator=torch.Generator().manual_seed(0))
    m = SharedInput(bump)
    H = gptq.hessians(m, ["q", "k", "v"], lambda mm: [mm(x), mm(x[:1])])
    rows = torch.cat([x, x[:1]]).reshape(-1, 8).double()
    want = 2 * rows.T @ rows / rows.shape[0]
    for n in ("q", "k"):
        torch.testing.assert_close(H[n], want, rtol=1e-12, atol=0)
    torch.testing.assert_close(H["v"], 4 * want if bump else want, rtol=1e-12, atol=0)
    with torch.inference_mode():            # inference tensors: no version counter, never shared
        Hi = gptq.hessians(m, ["q", "v"], lambda mm: mm(x))
    x2 = x.reshape(-1, 8).double()
    torch.testing.assert_close(Hi["v"], (4 if bump else 1) * 2 * x2.T @ x2 / 15, rtol=1e-12, atol=0)
    with pytest.raises(ValueError, match="never reached 1 layer"):
        gptq.hessians(Tiny(), ["a", "b"], lambda mm: mm.a(torch.zeros(1, 32)))
    assert set(gptq.hessians(Tiny(), ["a", "b"], lambda mm: mm.a(torch.zeros(1, 32)),
                             require_all=False)) == {"a"}


@pytest.mark.parametrize("fmt,scale", [("rf8", False), ("rf8", True), ("int8", False)])
def test_quantize_gptq_beats_nearest_on_held_out_inputs(fmt, scale):
    m = _tiny()
    cal, held = _cal_held()
    with torch.no_grad():
        ref = m(held)
    near = quant.quantize_(copy.deepcopy(m), _cfg(fmt, scale_search=scale))
    rec = quant.quantize_(copy.deepcopy(m), _cfg(fmt, scale_search=scale, gptq=True),
                          calibrate=lambda mm: mm(cal))
    with torch.no_grad():
        e_near = float(((near(held) - ref) ** 2).mean())
        e_rec = float(((rec(held) - ref) ** 2).mean())
    assert e_rec < e_near
    for q in quant.quant_layers(rec).values():
        assert type(q) is quant.QuantLinear and (q.channel_scale is not None) == scale
    # a dict of Hessians measured once gives the same codes as the callable
    names = list(quant.quant_layers(rec))
    H = gptq.hessians(m, names, lambda mm: mm(cal))
    again = quant.quantize_(copy.deepcopy(m), _cfg(fmt, scale_search=scale, gptq=True), calibrate=H)
    for n in names:
        assert torch.equal(again.get_submodule(n).codes, rec.get_submodule(n).codes)


def test_quantize_refined_without_options_equals_plain_and_scale_search_matches_grid():
    m = _tiny()
    a = quant.quantize_(copy.deepcopy(m), _cfg(scale_search=True))
    b = quant.quantize_(copy.deepcopy(m))
    for n, q in quant.quant_layers(b).items():
        qa = a.get_submodule(n)
        assert q.channel_scale is None and qa.channel_scale is not None
        w = m.get_submodule(n).weight.detach().T.numpy()
        s = gridmod.search_scale(w)
        g = gridmod.fit_grid(w, "rf8", s)
        np.testing.assert_array_equal(qa.channel_scale.numpy(), s)
        np.testing.assert_array_equal(qa.codes.numpy(), g.round(w)[0])
        np.testing.assert_array_equal(qa.exponent.numpy(), g.exponent)
        np.testing.assert_array_equal(qa.weight_kn().numpy(), g.decode(qa.codes.numpy()))
    # the Hessian-weighted search with an identity-like Hessian is the plain search
    K = m.a.in_features
    c = quant.quantize_(copy.deepcopy(m), _cfg(scale_search=True, scale_objective="hessian"),
                        calibrate={"a": 3 * np.eye(K), "b": np.eye(48)})
    assert torch.equal(c.a.channel_scale, a.a.channel_scale) and torch.equal(c.b.codes, a.b.codes)


def test_smooth_and_gptq_combine():
    m = _tiny()
    cal, held = _cal_held()
    run = lambda mm: mm(cal)
    with torch.no_grad():
        ref = m(held)
    near = quant.quantize_(copy.deepcopy(m), _cfg(), smooth=run)
    rec = quant.quantize_(copy.deepcopy(m), _cfg(gptq=True), smooth=run, calibrate=run)
    assert torch.equal(near.a.smooth, rec.a.smooth)
    with torch.no_grad():
        assert float(((rec(held) - ref) ** 2).mean()) < float(((near(held) - ref) ** 2).mean())


def test_channel_scale_cache_is_invalidated():
    m = quant.quantize_(_tiny(), _cfg(scale_search=True))
    q = m.a
    w1 = q.weight_kn().clone()
    x = torch.randn(3, 32)
    with torch.no_grad():
        y1 = q(x)
        q.channel_scale.mul_(2)
        assert torch.equal(q.weight_kn(), w1 * 2) and torch.allclose(q(x) - q.bias, (y1 - q.bias) * 2)
        s = q.channel_scale.clone()
        q.channel_scale = None
        base = q.weight_kn().clone()
        assert torch.equal(base * s, w1 * 2)
        assert "channel_scale" not in q.params() and q.layer_meta()["channel_scale"] is False


def test_bitexact_with_channel_scale_equals_a_float64_oracle_exactly():
    m = quant.quantize_(_tiny(), _cfg(scale_search=True))
    q = m.a
    s = q.channel_scale
    assert (s < 1).any()
    x = torch.randn(5, 32, generator=torch.Generator().manual_seed(2))
    for gran in ("token", "tensor"):
        quant.set_mode(m, "bitexact", act_granularity=gran)
        with torch.no_grad():
            y = q(x)
        # oracle: integer activations and weights, exact integer sums (golden.matmul's contract is
        # not used), then the documented dequantization rounded as docs/quantization.md states
        a, a_scale, _ = bitexact.quantize_activations(x.numpy(), 8, None, gran)
        w_int = codec.decode(q.codes.numpy(), 0).astype(np.float64) * 2.0 ** 18
        assert (w_int == np.round(w_int)).all()
        acc = np.array([[sum(int(a[i, k]) * int(w_int[k, n]) for k in range(32)) for n in range(48)]
                        for i in range(5)])
        step = np.exp2(q.exponent.numpy().astype(np.float64) - 18)
        ref = (acc * step
               * (np.asarray(a_scale, np.float64) * s.numpy().astype(np.float64))).astype(np.float32)
        ref = ref + q.bias.detach().numpy()
        np.testing.assert_array_equal(y.numpy(), ref)
        assert q.overflow_stats.events == 0
        # and the scale really enters: without it the result differs
        noscale = (acc * step * np.asarray(a_scale, np.float64)).astype(np.float32) + q.bias.detach().numpy()
        assert not np.allclose(y.numpy(), noscale, rtol=1e-4)


def test_quantize_rejects_bad_refinement_options():
    m = _tiny()
    with pytest.raises(ValueError, match="needs calibrate=run"):
        quant.quantize_(copy.deepcopy(m), _cfg(gptq=True))
    with pytest.raises(ValueError, match="needs calibrate=run"):
        quant.quantize_(copy.deepcopy(m), _cfg(scale_search=True, scale_objective="hessian"))
    with pytest.raises(ValueError, match="needs no calibration data"):
        quant.quantize_(copy.deepcopy(m), _cfg(), calibrate=lambda mm: None)
    with pytest.raises(ValueError, match="never reached"):
        quant.quantize_(copy.deepcopy(m), _cfg(gptq=True), calibrate=lambda mm: None)
    with pytest.raises(ValueError, match="no entry for 1 selected layer"):
        quant.quantize_(copy.deepcopy(m), _cfg(gptq=True), calibrate={"a": np.eye(32)})
    with pytest.raises(ValueError, match="callable run"):
        quant.quantize_(copy.deepcopy(m), _cfg(gptq=True), calibrate=3)
    for kw, msg in ((dict(fmt="int8", scale_search=True),
                     r"^scale_search is an RF8 option .*; it needs fmt 'rf8', not 'int8'$"),
                    (dict(fmt="apot", gptq=True),
                     r"^gptq rounds onto the rf8 or int8 grid; it needs fmt 'rf8' or 'int8', not 'apot'$"),
                    (dict(gptq=True, rounding="paper"), "need rounding 'nearest', not 'paper'$"),
                    (dict(scale_search=True, granularity="tensor"),
                     "work per output channel; they need granularity 'channel' \\(or None\\), not 'tensor'$"),
                    (dict(gptq=1), "gptq must be True or False"),
                    (dict(scale_objective="output"), "scale_objective must be one of"),
                    (dict(gptq_damp=-1.0), "gptq_damp"),
                    (dict(gptq_block=0), "gptq_block"),
                    (dict(gptq_order="act-order"), "gptq_order must be one of 'natural', 'act'"),
                    (dict(gptq_order="act"), "^gptq_order 'act' orders GPTQ rounding; it needs gptq$"),
                    (dict(scale_sample_rows=0), "scale_sample_rows")):
        with pytest.raises(ValueError, match=msg):
            quant.QuantConfig(**kw)


def test_gptq_saturation_is_reported():
    m = _tiny()
    cal, _ = _cal_held()
    names = ["a", "b"]
    H = gptq.hessians(m, names, lambda mm: mm(cal))
    expected = {}
    for n in names:
        w = m.get_submodule(n).weight.detach().T.numpy()
        sat = gptq.gptq(w, H[n], gridmod.fit_grid(w, "rf8")).saturated
        if sat:
            expected[n] = sat
    assert expected        # this layer pair does push some weights beyond the RF8 grid
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        quant.quantize_(copy.deepcopy(m), _cfg(gptq=True), calibrate=H)
    msgs = [str(w.message) for w in rec if "beyond the grid" in str(w.message)]
    assert msgs == [f"rf8hw.quantize_: GPTQ moved {sum(expected.values())} weight(s) beyond the grid in "
                    f"{len(expected)} layer(s) (first {next(iter(expected))!r}); they were rounded to the "
                    "grid's largest magnitude"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        quant.quantize_(copy.deepcopy(m), _cfg(gptq=True), calibrate=H, warn=False)


def test_save_load_round_trip_with_channel_scale(tmp_path):
    m = _tiny()
    cal, held = _cal_held()
    q = quant.quantize_(copy.deepcopy(m), _cfg(scale_search=True, gptq=True), calibrate=lambda mm: mm(cal))
    path = tmp_path / "q.safetensors"
    quant.save_quantized(q, path)
    meta = json.loads(path.with_suffix(".json").read_text())
    assert meta["version"] == quant.FILE_VERSION and meta["layers"]["a"]["channel_scale"] is True
    back = quant.load_quantized(path, model=m)
    assert torch.equal(back.a.channel_scale, q.a.channel_scale)
    with torch.no_grad():
        assert torch.equal(back(held), q(held))
        quant.set_mode(back, "bitexact")
        quant.set_mode(q, "bitexact")
        assert torch.equal(back(held[:4]), q(held[:4]))
    # a plain model's layers say channel_scale false and load without one
    plain = quant.quantize_(copy.deepcopy(m))
    quant.save_quantized(plain, tmp_path / "p.safetensors")
    assert quant.load_quantized(tmp_path / "p.safetensors", model=m).a.channel_scale is None


def _tamper(path, fn, meta_fn=None):
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    with safe_open(str(path), "pt") as f:
        header = f.metadata()
    state = load_file(str(path))
    fn(state)
    if meta_fn is not None:
        header = meta_fn(header)
    save_file(state, str(path), metadata=header)
    side = path.with_suffix(".json")
    meta = json.loads(side.read_text())
    meta["tensors_sha256"] = sha256_file(path)
    if meta_fn is not None:
        meta["layers"] = json.loads(header["layers"])
    side.write_text(json.dumps(meta))


@pytest.mark.parametrize("change,msg", [
    (lambda st: st["a.channel_scale"].__setitem__(3, -0.5),
     r"layer 'a': channel_scale\[3\] must be a finite number > 0, not -0.5"),
    (lambda st: st["a.channel_scale"].__setitem__(0, float("nan")),
     r"layer 'a': channel_scale\[0\] must be a finite"),
    (lambda st: st.__setitem__("a.channel_scale", st["a.channel_scale"].double()), r"a.channel_scale"),
    (lambda st: st.__setitem__("a.channel_scale", st["a.channel_scale"][:10].clone()), r"a.channel_scale"),
    (lambda st: st.pop("a.channel_scale"), r"a.channel_scale"),
])
def test_tampered_channel_scale_is_refused(tmp_path, change, msg):
    m = _tiny()
    q = quant.quantize_(copy.deepcopy(m), _cfg(scale_search=True))
    path = tmp_path / "q.safetensors"
    quant.save_quantized(q, path)
    _tamper(path, change)
    with pytest.raises(ValueError, match=msg):
        quant.load_quantized(path, model=m)


def test_channel_scale_the_sidecar_does_not_list_is_refused(tmp_path):
    m = _tiny()
    q = quant.quantize_(copy.deepcopy(m), _cfg(scale_search=True))
    path = tmp_path / "q.safetensors"
    quant.save_quantized(q, path)

    def drop_flag(header):
        layers = json.loads(header["layers"])
        layers["a"]["channel_scale"] = False
        return {**header, "layers": json.dumps(layers, sort_keys=True)}

    _tamper(path, lambda st: None, drop_flag)
    with pytest.raises(ValueError, match="a.channel_scale"):
        quant.load_quantized(path, model=m)
    side = path.with_suffix(".json")
    meta = json.loads(side.read_text())
    meta["layers"]["b"]["channel_scale"] = "yes"
    side.write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="layer 'b': channel_scale must be true or false, not 'yes'"):
        quant.load_quantized(path, model=m)


# ------------------------------------------------------------------------------- STE

def test_ste_forward_is_the_rf8_quantized_model_and_gradient_passes_through():
    m = _tiny()
    q = quant.quantize(m, "rf8")
    s = ste.ste_(copy.deepcopy(m))
    assert all(type(x) is ste.STELinear for x in (s.a, s.b))
    x = torch.randn(7, 32, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        assert torch.equal(s(x), q(x))
    s.zero_grad()
    s(x).sum().backward()
    # the STE gradient of each float weight is the plain gradient at its rounded value
    wa = ste.rf8_round(s.a.weight).requires_grad_(True)
    wb = ste.rf8_round(s.b.weight).requires_grad_(True)
    h = torch.relu(torch.nn.functional.linear(x, wa, s.a.bias))
    torch.nn.functional.linear(h, wb, s.b.bias).sum().backward()
    assert torch.equal(s.a.weight.grad, wa.grad) and torch.equal(s.b.weight.grad, wb.grad)
    assert s.a.weight.grad.abs().sum() > 0
    plain = ste.strip_ste(s)
    assert type(plain.a) is nn.Linear and torch.equal(plain.a.weight, s.a.weight)
    with pytest.raises(ValueError, match="no nn.Linear"):
        ste.ste_(nn.Sequential(nn.ReLU()))


def test_finetune_with_ste_lowers_the_quantized_loss():
    from rf8hw import zoo

    mod = zoo.get("mlp_digits")
    torch.manual_seed(0)
    model = mod.build()
    data = mod.Data(model.config)
    ste.finetune(model, data, 40, 1e-2, 64, seed=0)
    before = data.evaluate(quant.quantize(model, "rf8"))["test_loss"]
    s = ste.ste_(copy.deepcopy(model))
    losses = ste.finetune(s, data, 40, 1e-3, 64, seed=1, backslash=1.0)
    after = data.evaluate(quant.quantize(ste.strip_ste(s), "rf8"))["test_loss"]
    assert len(losses) == 40 and after < before
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with torch.no_grad():
            assert torch.equal(s(data.x_test)[0], quant.quantize(ste.strip_ste(s), "rf8")(data.x_test)[0])


def test_distill_moves_the_rf8_model_towards_its_float_teacher_on_held_out_inputs():
    teacher = _tiny()
    gen = torch.Generator().manual_seed(11)
    train = [torch.randn(32, 32, generator=gen) for _ in range(4)]
    held = torch.randn(256, 32, generator=gen)
    fwd = lambda m, b: m(b)
    mse = lambda s, t: ((s - t) ** 2).mean()
    with torch.no_grad():
        ref = teacher(held)
        before = float(mse(quant.quantize(teacher, "rf8")(held), ref))
    student = ste.ste_(copy.deepcopy(teacher))
    losses = ste.distill(student, teacher, train, fwd, mse, 200, 1e-5, seed=0)
    q = quant.quantize(ste.strip_ste(student), "rf8")
    with torch.no_grad():
        after = float(mse(q(held), ref))
        assert torch.equal(student(held), q(held))              # the STE forward is the deployable model
    assert len(losses) == 200 and after < 0.9 * before      # 26 % lower here
    assert not student.training
    # the teacher is untouched
    assert torch.equal(teacher.a.weight, _tiny().a.weight)
    with pytest.raises(ValueError, match="at least one input batch"):
        ste.distill(student, teacher, [], fwd, mse, 1, 1e-3)
    with pytest.raises(ValueError, match="steps"):
        ste.distill(student, teacher, train, fwd, mse, 0, 1e-3)
    with pytest.raises(ValueError, match="distillation diverged at step 0"):
        ste.distill(student, teacher, train, fwd, lambda s, t: mse(s, t) * float("nan"), 3, 1e-3)


def test_distill_with_backslash_lowers_the_coded_size_and_keeps_distilling():
    from rf8hw.nn import rate

    teacher = _tiny()
    gen = torch.Generator().manual_seed(12)
    with torch.no_grad():              # Gaussian weights: BackSlash's shape estimate refuses uniform ones
        for m in (teacher.a, teacher.b):
            m.weight.copy_(0.1 * torch.randn(m.weight.shape, generator=gen))
    train = [torch.randn(32, 32, generator=gen) for _ in range(4)]
    fwd = lambda m, b: m(b)
    mse = lambda s, t: ((s - t) ** 2).mean()
    step = 2.0 ** -7
    bpp = {}
    for lam in (0.0, 1.0):
        student = copy.deepcopy(teacher)                       # a plain float student
        losses = ste.distill(student, teacher, train, fwd, mse, 60, 1e-3, seed=0, backslash=lam)
        assert len(losses) == 60 and all(np.isfinite(losses)) and not student.training
        weights = [m.weight for m in student.modules() if isinstance(m, nn.Linear)]
        bpp[lam] = rate.report(weights, step)["exp_golomb_bpp"]
        if lam == 0.0:                 # the student starts as the teacher: nothing to learn, no change
            assert max(losses) == 0.0 and torch.equal(student.a.weight, teacher.a.weight)
    assert bpp[1.0] < 0.9 * bpp[0.0], bpp
    with pytest.raises(ValueError, match="backslash"):
        ste.distill(copy.deepcopy(teacher), teacher, train, fwd, mse, 1, 1e-3, backslash=-1.0)
