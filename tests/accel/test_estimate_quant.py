"""rf8hw estimate with the RF8 refinements of ``QuantConfig`` (per-column scale search, GPTQ
rounding): the zoo path (mlp_digits checkpoint, Hessians from training batches), the adapter path
(Hessians from the adapter's calibration data, measured once) and bad input."""

import copy
import json

import pytest
import torch

from rf8hw import cli
from rf8hw.accel import estimate, source
from rf8hw.arch import ArrayConfig
from rf8hw.nn import gptq, quant
from rf8hw.nn.checkpoint import load_checkpoint
from rf8hw.zoo import mlp_digits


@pytest.fixture(scope="module")
def checkpoint(train_mlp_digits):
    """mlp_digits after 150 AdamW steps."""
    return train_mlp_digits(150)


def _training_batches(n):
    """What the estimate documents: ``n`` training batches of the recipe's size, generator seed 0."""
    data, gen = mlp_digits.Data(), torch.Generator().manual_seed(0)
    return [data.batch(gen, mlp_digits.RECIPE["batch_size"])[0] for _ in range(n)]


def test_zoo_estimate_with_scale_search_and_gptq(checkpoint, tmp_path, capsys):
    rc = cli.main(["estimate", "--model", "mlp_digits", "--checkpoint", str(checkpoint), "--rows", "8",
                   "--cols", "8", "--no-synth", "--json", "--quiet", "--scale-search", "--gptq",
                   "--gptq-order", "natural", "--hessian-batches", "3", "--out", str(tmp_path / "rep")])
    assert rc == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["config"]["scale_search"] is True and rep["config"]["gptq"] is True
    assert rep["config"]["hessian_batches"] == 3
    assert any("per-column scale search + GPTQ rounding (Hessians from 3 training batches); the other"
               in n for n in rep["notes"])
    # recompute the RF8 rows from the documented recipe; the baselines stay plain rounding
    model, _ = load_checkpoint(checkpoint)
    model.eval()
    data = mlp_digits.Data()
    batches = _training_batches(3)
    H = gptq.hessians(model, [n for n, m in model.named_modules() if type(m) is torch.nn.Linear],
                      lambda m: [m(b) for b in batches])
    cfg = quant.QuantConfig(scale_search=True, gptq=True)
    q = quant.quantize_(copy.deepcopy(model), cfg, calibrate=H, warn=False)
    assert all(layer.channel_scale is not None for layer in quant.quant_layers(q).values())
    assert rep["metrics"]["rf8_fake"] == data.evaluate(q)
    quant.set_mode(q, "bitexact", array=ArrayConfig(8, 8))
    assert rep["metrics"]["rf8_bitexact"] == data.evaluate(q)
    assert rep["metrics"]["int8"] == data.evaluate(quant.quantize(model, "int8"))
    assert abs(rep["accuracy"]["rf8_bitexact"] - rep["accuracy"]["fp32"]) <= 0.02


class TwoLayer(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.a = torch.nn.Linear(24, 32)
        self.b = torch.nn.Linear(32, 8)

    def forward(self, x):
        return self.b(torch.relu(self.a(x)))


def _adapter_parts():
    torch.manual_seed(0)
    model = TwoLayer().eval()
    x_eval = torch.randn(16, 24, generator=torch.Generator().manual_seed(1))
    x_cal = torch.randn(64, 24, generator=torch.Generator().manual_seed(2))
    ref = model(x_eval).detach()
    calls = []

    def metric(m):
        with torch.no_grad():
            return {"mse": float(((m(x_eval) - ref) ** 2).mean())}

    def calibrate(m):
        calls.append(type(m.a).__name__)
        with torch.no_grad():
            m(x_cal)

    metric.higher_is_better = False
    return model, metric, calibrate, calls


def _estimate(model, metric, calibrate, paths, **options):
    """The estimate of the two-layer model as an adapter would give it (one inference of 24)."""
    src = source.from_adapter((model, lambda m: m(torch.zeros(1, 24)), metric,
                               {} if calibrate is None else {"calibrate": calibrate}))
    cfg = estimate.EstimateConfig(array=ArrayConfig(4, 4), synth=False, paths=paths, **options)
    return estimate.estimate(cfg, progress=False, source=src)


def test_adapter_estimate_uses_the_calibration_data_once_for_the_rf8_rows():
    model, metric, calibrate, calls = _adapter_parts()
    rep = _estimate(model, metric, calibrate, ("rf8_fake", "rf8_bitexact", "int8", "rf8_bitexact_smooth"))
    assert rep["config"]["gptq"] is True and rep["config"]["scale_search"] is True   # the recipe
    assert any("GPTQ rounding, act column order (Hessians from the adapter's calibration data) "
               "(the default recipe)" in n for n in rep["notes"])
    # Hessians once on the float model, then smoothing measures the float model again
    assert calls == ["Linear", "Linear"]
    H = gptq.hessians(model, ["a", "b"], calibrate)
    q = quant.quantize_(copy.deepcopy(model), quant.QuantConfig(**quant.RECIPE), calibrate=H)
    assert rep["metrics"]["rf8_fake"] == metric(q)
    plain = quant.quantize_(copy.deepcopy(model), quant.QuantConfig())
    assert rep["metrics"]["rf8_fake"]["mse"] < metric(plain)["mse"]       # GPTQ + scale help here
    assert rep["metrics"]["int8"] == metric(quant.quantize_(copy.deepcopy(model),
                                                            quant.QuantConfig(fmt="int8")))
    quant.set_mode(q, "bitexact", array=ArrayConfig(4, 4))
    assert rep["metrics"]["rf8_bitexact"] == metric(q)


def test_adapter_estimate_with_gptq_in_activation_order():
    model, metric, calibrate, _ = _adapter_parts()
    rep = _estimate(model, metric, calibrate, ("rf8_fake",), scale_search=False, gptq=True, gptq_order="act")
    assert rep["config"]["gptq_order"] == "act" and rep["config"]["scale_search"] is False
    assert any("GPTQ rounding, act column order" in n for n in rep["notes"])
    H = gptq.hessians(model, ["a", "b"], calibrate)
    q = quant.quantize_(copy.deepcopy(model), quant.QuantConfig(gptq=True, gptq_order="act"), calibrate=H)
    assert rep["metrics"]["rf8_fake"] == metric(q)
    natural = quant.quantize_(copy.deepcopy(model), quant.QuantConfig(gptq=True), calibrate=H)
    assert any(not torch.equal(q.get_submodule(n).codes, natural.get_submodule(n).codes) for n in ("a", "b"))


def test_bad_refinement_options_are_named(checkpoint, capsys):
    with pytest.raises(ValueError, match="need rounding 'nearest', not 'paper'"):
        estimate.EstimateConfig(model="mlp_digits", checkpoint="x", rounding="paper", gptq=True)
    with pytest.raises(ValueError, match=r"gptq must be True, False or None \(the recipe\), not 'yes'"):
        estimate.EstimateConfig(model="mlp_digits", checkpoint="x", gptq="yes")
    with pytest.raises(ValueError, match="hessian_batches"):
        estimate.EstimateConfig(model="mlp_digits", checkpoint="x", hessian_batches=0)
    with pytest.raises(ValueError, match="gptq_order 'act' orders GPTQ rounding; it needs gptq"):
        estimate.EstimateConfig(model="mlp_digits", checkpoint="x", gptq=False, gptq_order="act")
    with pytest.raises(ValueError, match="gptq_order must be one of 'natural', 'act', not 'reverse'"):
        estimate.EstimateConfig(model="mlp_digits", checkpoint="x", gptq=True, gptq_order="reverse")
    model, metric, _, _ = _adapter_parts()
    with pytest.raises(ValueError, match="gptq needs calibration data"):
        _estimate(model, metric, None, None, gptq=True)
    rc = cli.main(["estimate", "--model", "mlp_digits", "--checkpoint", str(checkpoint), "--rows", "4",
                   "--cols", "4", "--no-synth", "--scale-search", "--rounding", "paper", "--quiet"])
    err = capsys.readouterr().err
    assert rc == 2 and "need rounding 'nearest', not 'paper'" in err and "Traceback" not in err
    rc = cli.main(["estimate", "--model", "mlp_digits", "--checkpoint", str(checkpoint), "--rows", "4",
                   "--cols", "4", "--no-synth", "--no-gptq", "--gptq-order", "act", "--quiet"])
    err = capsys.readouterr().err
    assert (rc == 2 and "gptq_order 'act' orders GPTQ rounding; it needs gptq" in err
            and "Traceback" not in err)
    rc = cli.main(["estimate", "--model", "minilm", "--rows", "4", "--cols", "4", "--gptq",
                   "--gptq-order", "actt", "--no-synth", "--quiet"])          # refused before the model loads
    err = capsys.readouterr().err
    assert rc == 2 and "gptq_order must be one of 'natural', 'act', not 'actt'" in err
    rc = cli.main(["estimate", "--model", "minilm", "--rows", "4", "--cols", "4", "--gptq",
                   "--hessian-batches", "4", "--no-synth", "--quiet"])
    err = capsys.readouterr().err
    assert rc == 2 and "hessian_batches is for the zoo models" in err
    # --hessian-batches without --gptq is refused (it was ignored), worded like --gptq-order's rule
    with pytest.raises(ValueError, match="^hessian_batches 4 gives the GPTQ Hessians; it needs gptq$"):
        estimate.EstimateConfig(model="mlp_digits", checkpoint="x", gptq=False, hessian_batches=4)
    rc = cli.main(["estimate", "--model", "mlp_digits", "--checkpoint", str(checkpoint), "--rows", "4",
                   "--cols", "4", "--no-synth", "--no-gptq", "--hessian-batches", "4", "--quiet"])
    err = capsys.readouterr().err
    assert rc == 2
    assert err == "rf8hw estimate: error: hessian_batches 4 gives the GPTQ Hessians; it needs gptq\n"
    cfg = estimate.EstimateConfig(model="mlp_digits", checkpoint=str(checkpoint), gptq=True, synth=False)
    assert cfg.hessian_batches is None and cfg.hessian_batch_count == estimate.DEFAULT_HESSIAN_BATCHES
