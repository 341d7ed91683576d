"""BackSlash arithmetic against hand computations in plain Python (math.pow)."""

import functools
import math

import numpy as np
import pytest
import torch
from torch import nn

from rf8hw.nn import backslash, gg, params, rate

THETA = [0.5, -2.0, 0.0, 1.0, -0.25]
LAM, EPS, NU = 3.0, 1.0, 0.7


def fixed_nu(tensors):
    return NU


def hand_step(theta, lam, eps, nu):
    n = len(theta)
    sign = lambda x: (x > 0) - (x < 0)
    return [t - lam * nu / n * sign(t) * math.pow(abs(t) + eps, nu - 1) for t in theta]


def test_step_form_one_step_matches_hand_computation():
    p = nn.Parameter(torch.tensor(THETA, dtype=torch.float64))
    bs = backslash.BackSlash([p], lam=LAM, eps=EPS, form="step", shape_estimator=fixed_nu)
    bs.step()
    assert p.tolist() == pytest.approx(hand_step(THETA, LAM, EPS, NU), rel=1e-15, abs=1e-15)
    assert p[2].item() == 0.0                      # sign(0) = 0: exact zeros stay zero
    assert bs.nu == NU


def test_step_form_pools_n_over_all_tensors():
    a = torch.tensor(THETA[:2], dtype=torch.float64)
    b = torch.tensor([THETA[2:]], dtype=torch.float64)         # 2-D, another shape
    backslash.BackSlash([a, b], lam=LAM, eps=0.5, form="step", shape_estimator=fixed_nu).step()
    assert a.tolist() + b.ravel().tolist() == pytest.approx(hand_step(THETA, LAM, 0.5, NU), rel=1e-15)


def test_loss_form_value_and_gradient_equal_step_update():
    p = nn.Parameter(torch.tensor(THETA, dtype=torch.float64))
    bs = backslash.BackSlash([p], lam=LAM, eps=EPS, form="loss", shape_estimator=fixed_nu)
    pen = bs.penalty()
    expected = LAM * sum(math.pow(abs(t) + EPS, NU) for t in THETA) / len(THETA)
    assert pen.item() == pytest.approx(expected, rel=1e-15)
    assert bs.last_rate_term == pytest.approx(expected / LAM, rel=1e-15)
    pen.backward()
    update = [t - s for t, s in zip(THETA, hand_step(THETA, LAM, EPS, NU))]
    assert p.grad.tolist() == pytest.approx(update, rel=1e-14, abs=1e-15)


def test_default_nu_is_pooled_uncentred_moment_ratio():
    g = torch.Generator().manual_seed(0)
    a = gg.sample((1000, 500), 1.3, 0.02, generator=g)
    b = gg.sample((500, 1000), 1.3, 0.02, generator=g)
    bs = backslash.BackSlash([a, b], lam=1.0, form="step")
    nu = bs.estimate_nu()
    assert abs(nu - 1.3) <= 0.03
    x = np.concatenate([a.double().numpy().ravel(), b.double().numpy().ravel()])
    ratio = np.mean(x ** 2) / np.mean(np.abs(x)) ** 2
    assert nu == pytest.approx(gg.shape_from_ratio(ratio, how="solve"), rel=1e-4)


def test_nu_of_half_precision_weights_matches_float32():
    x = gg.sample((500, 500), 0.9, 0.02, generator=torch.Generator().manual_seed(5))
    ref = backslash.pooled_shape([x])
    for dt in (torch.bfloat16, torch.float16):
        # rounding the values to 8/11 significant bits moves the moment ratio by well under 1e-3
        assert backslash.pooled_shape([x.to(dt)]) == pytest.approx(ref, rel=1e-3)


def test_uniform_weights_raise_by_default_and_saturate_with_the_authors_grid():
    """A lone nn.Linear from PyTorch's default init is uniform: moment ratio ~4/3, below any GG's."""
    w = torch.empty(256, 256).uniform_(-1, 1, generator=torch.Generator().manual_seed(0))
    r = float(w.double().pow(2).mean() / w.double().abs().mean() ** 2)
    assert r < gg.moment_ratio(gg.SHAPE_MAX)
    with pytest.raises(ValueError, match=r"moment ratio 1\.33\d+ is outside .* not GG-like"):
        backslash.BackSlash([w], lam=1.0, form="step").step()
    bs = backslash.BackSlash([w], lam=1.0, form="step",
                             shape_estimator=functools.partial(backslash.pooled_shape, how="grid"))
    bs.step()
    assert bs.nu == 2.99


def test_nu_is_re_estimated_on_every_call():
    g = torch.Generator().manual_seed(1)
    p = nn.Parameter(gg.sample((200, 200), 2.0, 0.05, generator=g))
    bs = backslash.BackSlash([p], lam=1.0, form="loss")
    bs.penalty()
    nu_before = bs.nu
    with torch.no_grad():
        p.copy_(gg.sample((200, 200), 0.6, 0.05, generator=g))
    bs.penalty()
    assert nu_before == pytest.approx(2.0, abs=0.1) and bs.nu == pytest.approx(0.6, abs=0.05)


def test_module_default_touches_weight_matrices_only():
    net = nn.Sequential(nn.Linear(8, 16), nn.LayerNorm(16), nn.Linear(16, 4))
    gg.gg_init_(net, shape=1.0, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        net[1].weight.uniform_(0.5, 1.5, generator=torch.Generator().manual_seed(1))
        for m in (net[0], net[1], net[2]):
            m.bias.uniform_(-1, 1, generator=torch.Generator().manual_seed(2))
    before = {n: p.detach().clone() for n, p in net.named_parameters()}
    bs = backslash.BackSlash(net, lam=100.0, form="step")
    assert bs.n == 8 * 16 + 16 * 4
    bs.step()
    for n, p in net.named_parameters():
        assert torch.equal(p, before[n]) == (p.ndim == 1), n


def test_select_params_rules():
    emb = nn.Embedding(10, 4)
    net = nn.Sequential(emb, nn.Linear(4, 10))
    net[1].weight = emb.weight                                  # tied: listed once
    assert list(params.select_params(net)) == ["0.weight"]
    assert list(params.select_params(net, "all")) == ["0.weight", "1.bias"]
    picked = params.select_params(net.state_dict(), lambda name, t: name.endswith("bias"))
    assert list(picked) == ["1.bias"]
    with pytest.raises(ValueError, match=r"which must be 'matrices', 'all' or a callable .*, not 'weights'"):
        params.select_params(net, "weights")
    with pytest.raises(ValueError, match=r"select_params needs a torch.nn.Module or a name -> "
                                         r"tensor mapping, not int"):
        params.select_params(3)


def test_log_record_matches_rate_report():
    p = gg.sample((300, 300), 1.0, 0.05, generator=torch.Generator().manual_seed(2))
    bs = backslash.BackSlash([p], lam=2.0, eps=1.0, form="step")
    rec = bs.log(quant_step=2 ** -8)
    ref = rate.report(p, 2 ** -8)
    assert rec["nu"] == bs.nu and rec["n_params"] == 90000 and rec["lam"] == 2.0
    assert rec["rate_term"] == pytest.approx(float(((p.double().abs() + 1) ** rec["nu"]).mean()), rel=1e-6)
    for k in ("exp_golomb_bpp", "exp_golomb_with_table_bpp", "zigzag_bpp", "entropy_bpp", "zero_fraction"):
        assert rec[k] == ref[k]
    assert "exp_golomb_bpp" not in bs.log()


def test_backslash_lowers_coded_size_of_gg_weights():
    """Many decoupled steps shrink small weights to the zero bin: fewer bits at the same step."""
    p = gg.sample((100, 100), 2.0, 0.01, generator=torch.Generator().manual_seed(3))
    before = rate.report(p, 2 ** -8)
    bs = backslash.BackSlash([p], lam=5.0, form="step")         # lam nu / N ~ 1e-3 per step
    for _ in range(20):
        bs.step()
    after = rate.report(p, 2 ** -8)
    assert after["exp_golomb_bpp"] < 0.8 * before["exp_golomb_bpp"]
    assert after["zero_fraction"] > before["zero_fraction"]


@pytest.mark.parametrize("kw, msg", [
    (dict(lam=-1.0), r"lam must be a finite number >= 0, not -1\.0"),
    (dict(lam=float("inf")), r"lam must be a finite number >= 0, not inf"),
    (dict(lam=1.0, eps=0.0), r"eps must be a finite number > 0, not 0\.0"),
    (dict(lam=1.0, form="decoupled"), r"^form must be one of 'loss', 'step', not 'decoupled'$"),
    (dict(lam=1.0, shape_estimator=2.0), r"shape_estimator must be callable, not 2\.0"),
])
def test_bad_arguments(kw, msg):
    with pytest.raises(ValueError, match=msg):
        backslash.BackSlash([torch.ones(3)], **kw)


def test_bad_parameters_and_misuse():
    with pytest.raises(ValueError, match=r"BackSlash needs at least one parameter tensor"):
        backslash.BackSlash([], lam=1.0)
    with pytest.raises(ValueError,
                       match=r"params must be a module, a mapping or an iterable of tensors, not 5"):
        backslash.BackSlash(5, lam=1.0)
    with pytest.raises(ValueError, match=r"cannot estimate the GG shape: the parameters contain NaN/Inf"):
        backslash.BackSlash([torch.tensor([1.0, float("nan")])], lam=1.0).penalty()
    with pytest.raises(ValueError, match=r"cannot estimate the GG shape: all selected parameters are zero"):
        backslash.BackSlash([torch.zeros(4)], lam=1.0, form="step").step()
    with pytest.raises(ValueError, match=r"penalty\(\) belongs to form='loss'"):
        backslash.BackSlash([torch.ones(3)], lam=1.0, form="step").penalty()
    with pytest.raises(ValueError, match=r"step\(\) belongs to form='step'"):
        backslash.BackSlash([torch.ones(3)], lam=1.0, form="loss").step()
    with pytest.raises(ValueError, match=r"shape_estimator returned nan; a GG shape must be finite and > 0"):
        backslash.BackSlash([torch.ones(3)], lam=1.0, shape_estimator=lambda ts: float("nan")).penalty()
