"""DeepShape: output histogram, rank preservation, untouched tails, and the target-count rule."""

from fractions import Fraction

import numpy as np
import pytest
import torch
from torch import nn

from rf8hw.nn import deepshape, gg

GRID = 2.0 ** -13


@pytest.fixture(scope="module")
def reshaped():
    """1e6 GG(2) weights through the authors' defaults (2^-13 grid, min_count 1000, 0.8, 0.6)."""
    w0 = gg.sample((1000, 1000), 2.0, 0.01, generator=torch.Generator().manual_seed(0))
    w = w0.clone()
    rep = deepshape.deepshape_([w])
    return w0, w, rep["tensors"]["param0"], rep


def in_window(w, rec):
    q = torch.round(w.double() / GRID)
    lo, hi = rec["window"]
    return (q >= lo) & (q <= hi)


def test_output_histogram_has_scaled_shape_and_scale(reshaped):
    w0, w, rec, _ = reshaped
    inside = in_window(w0, rec)
    after = gg.fit(w[inside])
    # exact up to discretisation and the window's truncation of the target (heavier-tailed inputs,
    # e.g. shape 1.2, come out nearer 0.83x because the window cuts more of the target's tail)
    assert after.shape == pytest.approx(0.8 * rec["fit"]["shape"], rel=0.02)
    assert after.scale == pytest.approx(0.6 * rec["fit"]["scale"], rel=0.02)
    assert rec["target"]["shape"] == pytest.approx(0.8 * rec["fit"]["shape"], rel=1e-12)
    assert rec["fit"] == pytest.approx({k: getattr(gg.fit(w0[inside]), k)
                                        for k in ("shape", "scale", "mean")})


def test_ranks_preserved(reshaped):
    w0, w, _, _ = reshaped
    order = torch.argsort(w0.ravel(), stable=True)
    assert torch.all(torch.diff(w.ravel()[order]) >= 0)          # never reordered (ties allowed)


def test_out_of_window_weights_untouched_and_in_window_on_grid(reshaped):
    w0, w, rec, rep = reshaped
    inside = in_window(w0, rec)
    assert torch.equal(w[~inside], w0[~inside]) and (~inside).sum() > 0
    levels = w[inside].double() / GRID
    assert torch.equal(levels, torch.round(levels))
    lo, hi = rec["window"]
    assert levels.min() >= lo and levels.max() <= hi
    assert rec["n_in_window"] == int(inside.sum()) == rep["n_in_window"]
    assert rec["n_changed"] == int((w != w0).sum())


def test_window_is_the_run_of_levels_holding_min_count():
    levels = np.array([-3, -2, -1, 0, 1, 2, 4])
    counts = np.array([5, 10, 30, 50, 20, 10, 90])
    assert deepshape.find_window(levels, counts, 10) == (4, 4)       # the mode is level 4 (90)
    counts[-1] = 1
    assert deepshape.find_window(levels, counts, 10) == (-2, 2)
    assert deepshape.find_window(levels, counts, 25) == (-1, 0)
    assert deepshape.find_window(levels, counts, 51) is None


def test_target_counts_largest_remainder_against_fractions():
    p = gg.GGParams(1.0, 3 * GRID, 0.0)
    lo, hi, n = -5, 5, 1001
    got = deepshape.target_counts(p, lo, hi, GRID, n)
    mass = [gg.cdf((k + 0.5) * GRID, p) - gg.cdf((k - 0.5) * GRID, p) for k in range(lo, hi + 1)]
    exact = [Fraction(float(m)) / Fraction(float(sum(mass))) * n for m in mass]
    base = [int(e) for e in exact]
    rem = sorted(range(len(exact)), key=lambda i: (-(exact[i] - base[i]), i))[: n - sum(base)]
    assert got.tolist() == [b + (i in rem) for i, b in enumerate(base)]
    assert got.sum() == n and got.tolist() == got[::-1].tolist()         # symmetric target


def test_model_reshapes_matrices_and_skips_small_tensors():
    net = nn.Sequential(nn.Linear(400, 500), nn.Linear(500, 10))
    gg.gg_init_(net, shape=1.5, xi=1.0, generator=torch.Generator().manual_seed(1))
    bias_before = net[0].bias.detach().clone()
    rep = deepshape.deepshape_(net, grid=2 ** -10, min_count=500)
    assert set(rep["tensors"]) == {"0.weight", "1.weight"}
    assert rep["tensors"]["0.weight"]["skipped"] is None and rep["tensors"]["0.weight"]["n_changed"] > 0
    assert rep["tensors"]["1.weight"]["skipped"].startswith("no level holds min_count=500 weights")
    assert rep["tensors"]["1.weight"]["n_changed"] == 0
    assert torch.equal(net[0].bias, bias_before)
    assert rep["n_params"] == 400 * 500 + 5000


@pytest.mark.parametrize("kw, msg", [
    (dict(grid=0.0), r"grid must be a finite number > 0, not 0\.0"),
    (dict(shape_factor=-0.8), r"shape_factor must be a finite number > 0, not -0\.8"),
    (dict(scale_factor=float("nan")), r"scale_factor must be a finite number > 0, not nan"),
    (dict(min_count=0), r"min_count must be an integer >= 1, not 0"),
    (dict(min_count=2.5), r"min_count must be an integer >= 1, not 2\.5"),
])
def test_bad_arguments(kw, msg):
    with pytest.raises(ValueError, match=msg):
        deepshape.deepshape_([torch.zeros(10)], **kw)


def test_bad_tensors():
    with pytest.raises(ValueError, match=r"^param0: DeepShape needs non-empty tensors of finite values$"):
        deepshape.deepshape_([torch.tensor([1.0, float("nan")])])
    with pytest.raises(ValueError, match=r"^param0: DeepShape needs non-empty tensors of finite values$"):
        deepshape.deepshape_([torch.zeros(0)])
    with pytest.raises(ValueError, match=r"DeepShape got no parameters to reshape"):
        deepshape.deepshape_([])
