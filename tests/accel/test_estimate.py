"""rf8hw estimate: the CLI end to end on a trained mlp_digits checkpoint, the synthesis cache (one
real 1x1 synthesis), the report files, bad input."""

import json

import pytest

import rf8hw
from rf8hw.zoo import mlp_digits
from rf8hw import cli
from rf8hw.accel import estimate
from rf8hw.nn import quant
from rf8hw.accel.cycles import gemm_cycles
from rf8hw.arch import ArrayConfig


@pytest.fixture(scope="module")
def checkpoint(train_mlp_digits):
    """mlp_digits trained for 300 AdamW steps (a few seconds)."""
    return train_mlp_digits(300)


def test_estimate_cli_json_end_to_end_without_synthesis(checkpoint, tmp_path, capsys):
    out = tmp_path / "report"
    rc = cli.main(["estimate", "--model", "mlp_digits", "--checkpoint", str(checkpoint), "--rows", "8",
                   "--cols", "8", "--no-synth", "--json", "--quiet", "--out", str(out)])
    assert rc == 0
    rep = json.loads(capsys.readouterr().out)
    assert set(rep["accuracy"]) == {"fp32", "rf8_fake", "rf8_bitexact", "int8", "fp8_e4m3"}
    for key in ("overflow_events", "cycles_per_inference", "fmax_mhz", "lut4", "ff", "dsp"):
        assert key in rep
    assert rep["fmax_mhz"] is None and rep["lut4"] is None and rep["inferences_per_s"] is None
    assert any("--no-synth" in n for n in rep["notes"])
    # recompute two entries independently
    model, _ = rf8hw.nn.checkpoint.load_checkpoint(checkpoint)
    data = mlp_digits.Data()
    assert rep["accuracy"]["fp32"] == data.evaluate(model)["test_acc"]
    q = rf8hw.quantize(model, fmt="rf8", mode="bitexact")
    assert rep["accuracy"]["rf8_bitexact"] == data.evaluate(q)["test_acc"]
    assert rep["overflow_events"] == quant.overflow_report(q)["total"]["events"] == 0
    assert rep["accuracy"]["fp32"] > 0.9
    assert abs(rep["accuracy"]["rf8_bitexact"] - rep["accuracy"]["fp32"]) <= 0.01   # acceptance: 1 pt
    expect = sum(gemm_cycles(1, k, n, ArrayConfig(8, 8)).cycles for k, n in ((64, 128), (128, 128), (128, 10)))
    # double-buffered weight timing (cycles.py), default PE kind rf8_pipe (3,795 with rf8)
    assert rep["cycles_per_inference"] == expect == 3798
    assert json.loads((out / "estimate.json").read_text()) == rep
    md = (out / "estimate.md").read_text()
    assert "| rf8_bitexact |" in md and "absent" in md and "--no-synth" in md
    assert (out / "estimate_cycles.png").read_bytes()[:4] == b"\x89PNG"


def test_estimate_with_wrapping_27_bit_accumulator_and_pipelined_pe(checkpoint):
    """Overflow events appear with a 27-bit accumulator; the pipelined RF8 PE adds one cycle per layer."""
    cfg = estimate.EstimateConfig(model="mlp_digits", checkpoint=str(checkpoint), synth=False,
                                  array=ArrayConfig(4, 4, acc_bits=27, pe="rf8_pipe"))
    rep = estimate.estimate(cfg, progress=False)
    plain = sum(gemm_cycles(1, k, n, ArrayConfig(4, 4, pe="rf8")).cycles
                for k, n in ((64, 128), (128, 128), (128, 10)))
    assert rep["cycles_per_inference"] == plain + 3
    per_layer = {k: v["events"] for k, v in rep["overflow"].items() if k != "total"}
    assert rep["overflow_events"] == sum(per_layer.values()) > 0
    assert rep["overflow"]["total"]["acc_bits_needed"] > 27


def test_cached_synthesis_runs_once_then_hits_the_cache(tmp_path):
    """One real 1x1 synthesis (yowasp yosys + nextpnr); the second call returns the stored result,
    a different seed is a different key."""
    first, cached = estimate.cached_synthesis(ArrayConfig(1, 1), "ecp5-25k", seed=1, cache_dir=tmp_path)
    assert not cached and first["lut4"] > 0 and first["fmax_mhz"] > 0 and first["dsp"] == 0
    again, cached = estimate.cached_synthesis(ArrayConfig(1, 1), "ecp5-25k", seed=1, cache_dir=tmp_path)
    assert cached and again == json.loads(json.dumps(first))
    key = estimate.synth_cache_key
    base = dict(rows=1, cols=1, device="ecp5-25k", pe="rf8_pipe", act_bits=8, acc_bits=40,
                overflow="wrap", reset="aresetn")      # ArrayConfig's defaults
    assert (tmp_path / f"{key({**base, 'seed': 1})}.json").is_file()
    assert key({**base, "seed": 1}) != key({**base, "seed": 2})


def test_bad_input_is_named(checkpoint, tmp_path, capsys):
    with pytest.raises(ValueError, match=r"^model must be one of 'tinygpt', 'mlp_digits', not 'resnet'$"):
        estimate.EstimateConfig(model="resnet", checkpoint="x")
    with pytest.raises(ValueError, match=r"^pe must be a PE kind with RF8 weights, one of 'rf8', "
                                         r"'rf8_signlate', 'rf8_lean', 'rf8_pipe', not 'int8'$"):
        estimate.EstimateConfig(model="mlp_digits", checkpoint="x", array=ArrayConfig(pe="int8"))
    with pytest.raises(ValueError, match=r"^batch must be an integer >= 1, not 0$"):
        estimate.EstimateConfig(model="mlp_digits", checkpoint="x", batch=0)
    cfg = estimate.EstimateConfig(model="tinygpt", checkpoint=str(checkpoint), synth=False)
    with pytest.raises(ValueError, match=r"holds a 'mlp_digits' model, not 'tinygpt'$"):
        estimate.estimate(cfg, progress=False)
    rc = cli.main(["estimate", "--model", "mlp_digits", "--checkpoint", str(checkpoint), "--rows", "0",
                   "--cols", "8", "--no-synth", "--out", str(tmp_path)])
    assert rc == 2
    assert "rows must be an integer in 1..64, not 0" in capsys.readouterr().err
    rc = cli.main(["estimate", "--model", "mlp_digits", "--checkpoint", str(tmp_path / "none.safetensors"),
                   "--rows", "4", "--cols", "4", "--no-synth", "--out", str(tmp_path)])
    assert rc == 2
    assert "no such checkpoint" in capsys.readouterr().err
