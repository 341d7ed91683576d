"""GG statistics and GG-init, checked against independent oracles (mpmath, scipy.stats.gennorm)."""

import math

import mpmath
import numpy as np
import pytest
import torch
from scipy import integrate, stats
from torch import nn

from rf8hw.nn import gg

SHAPES = [0.5, 1.0, 1.5, 2.0, 2.5]


def rho_mpmath(nu):
    nu = mpmath.mpf(nu)
    return float(mpmath.gamma(1 / nu) * mpmath.gamma(3 / nu) / mpmath.gamma(2 / nu) ** 2)


@pytest.mark.parametrize("nu", [0.07, 0.1, 0.5, 1.0, 1.37, 2.0, 2.99, 7.5, 19.0])
def test_moment_ratio_matches_mpmath_gamma(nu):
    assert gg.moment_ratio(nu) == pytest.approx(rho_mpmath(nu), rel=1e-12)


def test_moment_ratio_known_values():
    assert gg.moment_ratio(2.0) == pytest.approx(math.pi / 2, rel=1e-14)   # Gaussian
    assert gg.moment_ratio(1.0) == pytest.approx(2.0, rel=1e-14)           # Laplacian


@pytest.mark.parametrize("nu", [0.06, 0.1, 0.33, 1.0, 2.0, 2.5, 5.0, 19.5])
def test_shape_from_ratio_inverts_rho(nu):
    r = rho_mpmath(nu)
    assert gg.shape_from_ratio(r, how="solve") == pytest.approx(nu, rel=1e-10)
    assert gg.shape_from_ratio(r, how="table") == pytest.approx(nu, rel=1e-5)


def test_shape_from_ratio_grid_is_nearest_authors_grid_point():
    grid = [round(0.10 + 0.01 * i, 2) for i in range(290)]
    assert grid[0] == 0.10 and grid[-1] == 2.99
    for r in [1.47, 1.5, math.pi / 2, 1.9, 2.0, 3.3, 10.0, 100.0]:
        expected = min(grid, key=lambda g: abs(rho_mpmath(g) - r))
        assert gg.shape_from_ratio(r, how="grid") == expected
    # the authors' lookup saturates at the grid's ends
    assert gg.shape_from_ratio(1.34, how="grid") == 2.99 and gg.shape_from_ratio(1e6, how="grid") == 0.10


def test_shape_from_ratio_out_of_range_is_an_error():
    with pytest.raises(ValueError, match=r"moment ratio 1\.2 is outside .* not GG-like"):
        gg.shape_from_ratio(1.2)                     # below 4/3: flatter than any GG (e.g. bimodal)
    with pytest.raises(ValueError, match=r"moment ratio 0\.9 is below 1, impossible"):
        gg.shape_from_ratio(0.9, how="grid")
    with pytest.raises(ValueError, match=r"moment ratio must be finite, not nan"):
        gg.shape_from_ratio(float("nan"))
    with pytest.raises(ValueError, match=r"^how must be one of 'solve', 'table', 'grid', not 'x'$"):
        gg.shape_from_ratio(2.0, how="x")


@pytest.mark.parametrize("nu", SHAPES)
def test_pdf_matches_scipy_gennorm_and_integrates_to_one(nu):
    p = gg.GGParams(nu, 0.7, -0.2)
    x = np.linspace(-5, 5, 101)
    np.testing.assert_allclose(gg.pdf(x, p), stats.gennorm.pdf(x, nu, loc=-0.2, scale=0.7), rtol=1e-12)
    np.testing.assert_allclose(gg.cdf(x, p), stats.gennorm.cdf(x, nu, loc=-0.2, scale=0.7), rtol=1e-10,
                               atol=1e-15)
    total = sum(integrate.quad(lambda t: gg.pdf(t, p), a, b)[0] for a, b in [(-np.inf, -0.2), (-0.2, np.inf)])
    assert total == pytest.approx(1.0, abs=1e-8)
    assert gg.loglik(x, p) == pytest.approx(stats.gennorm.logpdf(x, nu, loc=-0.2, scale=0.7).sum(), rel=1e-12)
    assert gg.pdf(torch.tensor(x).reshape(101, 1), p).shape == (101, 1)      # torch in, shape kept
    # variance formula alpha^2 Gamma(3/nu)/Gamma(1/nu)
    assert p.std ** 2 == pytest.approx(stats.gennorm.var(nu, scale=0.7), rel=1e-12)


@pytest.mark.parametrize("nu", SHAPES)
def test_sample_follows_gg_ks(nu):
    g = torch.Generator().manual_seed(7)
    x = gg.sample(20000, nu, 0.3, 0.1, generator=g, dtype=torch.float64).numpy()
    res = stats.kstest(x, stats.gennorm(nu, loc=0.1, scale=0.3).cdf)
    assert res.pvalue > 1e-3, res


def test_sample_reproducible_shape_and_dtype():
    a = gg.sample((3, 4), 1.0, 1.0, generator=torch.Generator().manual_seed(1))
    b = gg.sample((3, 4), 1.0, 1.0, generator=torch.Generator().manual_seed(1))
    assert a.shape == (3, 4) and a.dtype == torch.float32 and torch.equal(a, b)


@pytest.mark.parametrize("nu", SHAPES)
def test_fit_recovers_known_shape_at_1e6_samples(nu):
    g = torch.Generator().manual_seed(int(nu * 100))
    x = gg.sample(10**6, nu, 0.05, 0.01, generator=g)
    p = gg.fit(x)                                     # torch in, moment method
    assert abs(p.shape - nu) <= 0.03
    assert p.scale == pytest.approx(0.05, rel=0.03)   # variance-based: noisier for heavy tails
    assert abs(p.mean - 0.01) <= 5 * gg.GGParams(nu, 0.05).std / 1000      # 5 standard errors
    q = gg.fit(x.numpy().reshape(1000, 1000), method="ml")     # numpy in, any shape
    assert abs(q.shape - nu) <= 0.03
    assert q.scale == pytest.approx(0.05, rel=0.01)


def test_ml_fit_agrees_with_scipy_gennorm_ml_at_fixed_mean():
    x = stats.gennorm.rvs(0.8, loc=0.0, scale=2.0, size=4000, random_state=np.random.default_rng(3))
    x = x - x.mean()                                   # our ML keeps the sample mean; make it 0
    p = gg.fit(x, method="ml")
    beta, _, scale = stats.gennorm.fit(x, floc=0.0)
    assert p.shape == pytest.approx(beta, rel=2e-4)
    assert p.scale == pytest.approx(scale, rel=2e-4)
    assert gg.loglik(x, p) >= gg.loglik(x, gg.fit(x)) - 1e-9   # ML is at least as likely as moments


def test_center_false_is_the_authors_uncentred_ratio():
    x = np.array([-1.0, 0.5, 2.0, 3.0, -0.25])
    p = gg.fit(x, center=False)
    r = np.mean(x ** 2) / np.mean(np.abs(x)) ** 2
    assert p.mean == 0.0
    assert gg.moment_ratio(p.shape) == pytest.approx(r, rel=1e-10)


def test_gaussian_fit_is_the_ml_gaussian_and_gg_wins_on_laplace_data():
    x = gg.sample(50000, 1.0, 1.0, generator=torch.Generator().manual_seed(2), dtype=torch.float64).numpy()
    g = gg.fit_gaussian(x)
    assert g.shape == 2.0
    assert gg.loglik(x, g) == pytest.approx(stats.norm.logpdf(x, x.mean(), x.std()).sum(), rel=1e-12)
    assert gg.loglik(x, gg.fit(x)) > gg.loglik(x, g) + 1000


@pytest.mark.parametrize("bad, msg", [
    ([], r"x is empty"),
    ([1.0, float("nan")], r"x contains 1 non-finite value\(s\) \(NaN/Inf\), e\.g\. nan"),
    ([1.0, float("inf")], r"x contains 1 non-finite value"),
    ([3.0, 3.0, 3.0], r"cannot fit a GG to constant data \(all values 3\.0\)"),
    (np.array([1, 2], dtype=complex), r"x must be a real numeric array or tensor, got dtype complex128"),
    (["a", "b"], r"x must be a real numeric array or tensor, got dtype <U1"),
    ([-1.0, 1.0] * 50, r"moment ratio 1 is outside"),           # two-point data: no GG
])
def test_fit_bad_input(bad, msg):
    with pytest.raises(ValueError, match=msg):
        gg.fit(bad)


@pytest.mark.parametrize("kw, msg", [
    (dict(shape=0.0, scale=1.0), r"GG shape must be a finite number > 0, not 0\.0"),
    (dict(shape=-1.0, scale=1.0), r"GG shape must be a finite number > 0, not -1\.0"),
    (dict(shape=1.0, scale=float("nan")), r"GG scale must be a finite number > 0, not nan"),
    (dict(shape=1.0, scale=1.0, mean=float("inf")), r"GG mean must be a finite number, not inf"),
])
def test_impossible_parameters(kw, msg):
    with pytest.raises(ValueError, match=msg):
        gg.GGParams(**kw)
    with pytest.raises(ValueError, match=msg):
        gg.sample(10, **kw)


@pytest.mark.parametrize("size, msg", [
    (-1, r"^sample count must be an integer >= 0, not -1$"),
    (True, r"^sample count must be an integer >= 0, not True$"),
    ((3, 2.5), r"^sample shape\[1\] must be an integer >= 0, not 2\.5$"),
    (2.5, r"^sample size must be an integer >= 0 or a tuple of them, not 2\.5$"),
])
def test_sample_size_checked(size, msg):
    with pytest.raises(ValueError, match=msg):
        gg.sample(size, 1.0, 1.0)


def test_density_needs_ggparams():
    with pytest.raises(ValueError, match=r"expected GGParams, not tuple"):
        gg.pdf([0.0], (1.0, 1.0, 0.0))


def test_fit_method_name_checked():
    with pytest.raises(ValueError, match=r"^method must be one of 'moment', 'ml', not 'mle'$"):
        gg.fit([1.0, 2.0, 4.0], method="mle")


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(50, 64)
        self.blocks = nn.ModuleList([nn.Linear(64, 256), nn.Linear(64, 256)])
        self.norm = nn.LayerNorm(256)
        self.conv = nn.Conv2d(4, 8, 3)
        self.head = nn.Linear(256, 512, bias=False)
        self.scale = nn.Parameter(torch.tensor(3.0))


def test_layer_type_and_fit_model_groupings():
    assert gg.layer_type("blocks.3.attn.c_attn.weight") == "blocks.*.attn.c_attn.weight"
    net = Net()
    gg.gg_init_(net, shape=1.0, embeddings="gg", generator=torch.Generator().manual_seed(0))
    per_tensor = gg.fit_model(net)
    assert set(per_tensor) == {"emb.weight", "blocks.0.weight", "blocks.1.weight", "conv.weight",
                               "head.weight"}
    per_type = gg.fit_model(net, by="type")
    assert set(per_type) == {"emb.weight", "blocks.*.weight", "conv.weight", "head.weight"}
    pooled = torch.cat([net.blocks[0].weight.ravel(), net.blocks[1].weight.ravel()])
    assert per_type["blocks.*.weight"] == gg.fit(pooled)
    whole = gg.fit_model(net.state_dict(), by="model")
    matrices = [net.emb.weight, net.blocks[0].weight, net.blocks[1].weight, net.conv.weight, net.head.weight]
    assert whole["model"] == gg.fit(torch.cat([p.detach().ravel() for p in matrices]))
    with pytest.raises(ValueError, match=r"^by must be one of 'tensor', 'type', 'model', not 'layer'$"):
        gg.fit_model(net, by="layer")


def test_fit_model_uniform_default_init_is_not_gg():
    """nn.Linear's default init is uniform: moment ratio ~4/3, the nu -> inf limit; no GG fits."""
    lin = nn.Linear(512, 256)
    nn.init.uniform_(lin.weight, -1, 1, generator=torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match=r"^weight: moment ratio 1\.33\d+ is outside .* not GG-like"):
        gg.fit_model(lin)
    rec = gg.fit_model(lin, which="all", on_error="record")
    assert set(rec) == {"weight", "bias"}
    assert rec["weight"].startswith("moment ratio 1.33")


def test_plot_fits_writes_png(tmp_path):
    g = torch.Generator().manual_seed(0)
    tensors = {"a": gg.sample((64, 64), 1.0, 0.1, generator=g), "b": gg.sample(3000, 2.0, 0.1, generator=g)}
    res = gg.plot_fits(tensors, tmp_path / "fits.png")
    assert (tmp_path / "fits.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert res["a"]["loglik_gg"] > res["a"]["loglik_gauss"]       # Laplace data: GG wins
    assert res["b"]["gg"].shape == pytest.approx(2.0, abs=0.15)


def test_plot_fits_labels_its_axes_and_says_what_the_curves_are(tmp_path, monkeypatch):
    from matplotlib.figure import Figure

    figures = []
    real = Figure.savefig
    monkeypatch.setattr(Figure, "savefig", lambda self, *a, **k: (figures.append(self), real(self, *a, **k)))
    g = torch.Generator().manual_seed(0)
    res = gg.plot_fits({"fc1.weight": gg.sample((64, 64), 1.0, 0.1, generator=g)}, tmp_path / "f.png",
                       method="ml")
    (fig,) = figures
    (ax,) = fig.axes
    assert ax.get_xlabel() == "weight value" and ax.get_ylabel() == "probability density (log)"
    assert ax.get_yscale() == "log"
    r = res["fc1.weight"]
    p, llr = r["gg"], (r["loglik_gg"] - r["loglik_gauss"]) / 4096
    assert ax.get_title() == f"fc1.weight  (n=4,096, llr={llr:+.3f})"
    assert [t.get_text() for t in ax.get_legend().get_texts()] == [
        "weights (101 bins)", f"GG fit: nu={p.shape:.2f}, alpha={p.scale:.3g}",
        f"Gaussian: sigma={r['gauss'].std:.3g}"]
    title = fig.get_suptitle()
    assert "fitted generalized Gaussian (GG, maximum-likelihood estimate)" in title
    assert "Gaussian (GG shape 2)" in title and "log-likelihood gain of the GG over the Gaussian" in title


@pytest.mark.parametrize("fan", ["in", "out"])
@pytest.mark.parametrize("shape", [0.8, 2.0])
def test_gg_init_variance_and_shape(fan, shape):
    net = Net()
    emb_before = net.emb.weight.detach().clone()
    report = gg.gg_init_(net, shape=shape, xi=2.0, fan=fan, generator=torch.Generator().manual_seed(5))
    for name, lin, fan_in, fan_out in [("head", net.head, 256, 512), ("blocks.0", net.blocks[0], 64, 256),
                                       ("conv", net.conv, 4 * 9, 8)]:
        w = lin.weight.detach().double()
        n = fan_in if fan == "in" else fan_out
        var = w.var().item()
        # sampling tolerance: 5 standard errors of a variance estimate, sd(var) = var sqrt((kurt - 1)/N)
        kurt = math.gamma(5 / shape) * math.gamma(1 / shape) / math.gamma(3 / shape) ** 2
        tol = 5 * (2.0 / n) * math.sqrt((kurt - 1) / w.numel())
        assert abs(var - 2.0 / n) <= tol, (name, var, 2.0 / n, tol)
        assert report[f"{name}.weight"].startswith(f"gg shape={shape:g}")
    assert gg.fit(net.head.weight).shape == pytest.approx(shape, abs=0.05 * shape)
    assert torch.equal(net.emb.weight, emb_before) and report["emb.weight"] == "kept"
    assert torch.all(net.blocks[0].bias == 0) and torch.all(net.conv.bias == 0)
    assert torch.all(net.norm.weight == 1) and torch.all(net.norm.bias == 0)
    assert net.scale.item() == 3.0 and report["scale"] == "kept"


def test_gg_init_embeddings_gg_authors_mode_and_tied_weights():
    net = Net()
    gg.gg_init_(net, shape=2.0, xi=1.0, fan="out", embeddings="gg",
                generator=torch.Generator().manual_seed(1))
    # authors' n = shape[0] = num_embeddings = 50
    var = net.emb.weight.var().item()
    assert abs(var - 1 / 50) < 5 * (1 / 50) * math.sqrt(2 / net.emb.weight.numel())
    tied = nn.Sequential(nn.Embedding(40, 16), nn.Linear(16, 40, bias=False))
    tied[1].weight = tied[0].weight
    before = tied[0].weight.detach().clone()
    report = gg.gg_init_(tied, shape=1.0)
    assert torch.equal(tied[0].weight, before) and report == {"0.weight": "kept"}


@pytest.mark.parametrize("kw, msg", [
    (dict(fan="both"), r"^fan must be one of 'in', 'out', not 'both'$"),
    (dict(embeddings="zero"), r"^embeddings must be one of 'keep', 'gg', not 'zero'$"),
    (dict(xi=0.0), r"xi must be a finite number > 0, not 0\.0"),
    (dict(shape=-2.0), r"GG shape must be a finite number > 0, not -2\.0"),
])
def test_gg_init_bad_arguments(kw, msg):
    with pytest.raises(ValueError, match=msg):
        gg.gg_init_(Net(), **kw)


def test_fit_cli_prints_table_writes_plot_and_json(tmp_path, capsys, monkeypatch):
    import json

    from safetensors.torch import save_file

    from rf8hw.cli import main

    net = Net()
    gg.gg_init_(net, shape=1.0, embeddings="gg", generator=torch.Generator().manual_seed(0))
    state = {k: v.detach().contiguous() for k, v in net.state_dict().items()}
    state["untrained.weight"] = torch.linspace(-1, 1, 4096).reshape(64, 64)      # uniform: not GG
    state["position_ids"] = torch.arange(512).reshape(1, 512)                     # int64 buffer (HF)
    (tmp_path / "ckpt").mkdir()
    (tmp_path / "cwd").mkdir()
    ckpt = tmp_path / "ckpt" / "m.safetensors"
    save_file(state, ckpt)
    monkeypatch.chdir(tmp_path / "cwd")
    assert main(["fit", str(ckpt), "--by", "type", "--json", str(tmp_path / "fits.json")]) == 0
    cap = capsys.readouterr()
    out = cap.out
    assert "blocks.*.weight" in out and "untrained.weight" in out and "not GG-like: moment ratio" in out
    assert "position_ids" not in out and "skipped 1 non-float tensor(s): position_ids" in cap.err
    assert (tmp_path / "cwd" / "m.gg.png").read_bytes()[:4] == b"\x89PNG"     # in the current directory
    assert not list((tmp_path / "ckpt").glob("*.png"))
    rows = json.loads((tmp_path / "fits.json").read_text())["groups"]
    pooled = torch.cat([state["blocks.0.weight"].ravel(), state["blocks.1.weight"].ravel()])
    assert rows["blocks.*.weight"]["shape"] == pytest.approx(gg.fit(pooled).shape, rel=1e-12)
    assert "error" in rows["untrained.weight"]


def test_fit_cli_bad_checkpoint(tmp_path, capsys):
    from rf8hw.cli import main

    bad = tmp_path / "x.safetensors"
    bad.write_bytes(b"not a checkpoint")
    assert main(["fit", str(bad)]) == 2
    assert "is not a readable safetensors file" in capsys.readouterr().err
    assert main(["fit", str(tmp_path / "missing.safetensors")]) == 2
    assert "no such checkpoint" in capsys.readouterr().err


def _fit_checkpoint(tmp_path):
    from safetensors.torch import save_file

    g = torch.Generator().manual_seed(0)
    path = tmp_path / "m.safetensors"
    save_file({"w": gg.sample((64, 64), 1.0, 0.1, generator=g), "b": torch.zeros(64)}, str(path))
    return path


def test_fit_writes_the_plot_and_the_json_as_one_unit(tmp_path, monkeypatch, capsys):
    """A JSON file that cannot be written leaves no plot either (and no temporary)."""
    import errno
    from pathlib import Path

    from rf8hw.cli import main

    ckpt = _fit_checkpoint(tmp_path)
    real = Path.write_text

    def full(self, data, *args, **kwargs):
        if ".fits.json" in self.name:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(self, data, *args, **kwargs)
    monkeypatch.setattr(Path, "write_text", full)
    out = tmp_path / "out"
    out.mkdir()
    assert main(["fit", str(ckpt), "--plot", str(out / "p.png"), "--json", str(out / "fits.json")]) == 2
    assert capsys.readouterr().err == f"rf8hw fit: error: No space left on device: {out / 'fits.json'}\n"
    assert list(out.iterdir()) == []


@pytest.mark.parametrize("argv, message", [
    (["--plot", "{out}/same.png", "--json", "{out}/same.png"],
     "--json {out}/same.png is the plot's file too (--plot {out}/same.png); give two files"),
    (["--plot", "{out}/same", "--json", "{out}/same.png"], "is the plot's file too"),
    (["--plot", ""], "--plot . is a directory; give a file name"),
    (["--json", ""], "--json . is a directory; give a file name"),
])
def test_fit_refuses_outputs_that_would_overwrite_each_other_or_be_ignored(tmp_path, monkeypatch, capsys,
                                                                            argv, message):
    from rf8hw.cli import main

    ckpt = _fit_checkpoint(tmp_path)
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    assert main(["fit", str(ckpt), *[a.replace("{out}", str(out)) for a in argv]]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message.replace("{out}", str(out)) in err, err
    assert list(out.iterdir()) == [] and not list(tmp_path.glob("*.png"))


def test_fit_of_a_file_without_matrices_says_which_tensors_it_has(tmp_path, capsys):
    from safetensors.torch import save_file

    from rf8hw.cli import main

    path = tmp_path / "q.safetensors"
    save_file({"fc1.codes": torch.zeros(4, 4, dtype=torch.uint8), "fc1.bias": torch.randn(4)}, str(path))
    assert main(["fit", str(path), "--plot", str(tmp_path / "x.png")]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err == ["rf8hw fit: skipped 1 non-float tensor(s): fc1.codes",
                   f"rf8hw fit: error: {path} holds no floating-point matrix (ndim >= 2) to fit, only 1 "
                   "smaller tensor(s) (fc1.bias); --which all fits them"]


def test_fit_interrupted_is_one_line_and_writes_nothing(tmp_path, monkeypatch, capsys):
    from rf8hw.cli import main

    ckpt = _fit_checkpoint(tmp_path)

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt
    monkeypatch.setattr(gg, "plot_fits", interrupted)
    out = tmp_path / "out"
    out.mkdir()
    assert main(["fit", str(ckpt), "--plot", str(out / "p.png"), "--json", str(out / "f.json")]) == 130
    assert capsys.readouterr().err == "rf8hw fit: interrupted; no plot or JSON file was written\n"
    assert list(out.iterdir()) == []
