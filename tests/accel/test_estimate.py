"""rf8hw estimate: the CLI end to end on a trained mlp_digits checkpoint, the synthesis cache (one
real 1x1 synthesis), the report files, bad input; the one place that decides zoo or adapter."""

import json

import pytest

import rf8hw
from rf8hw import cli
from rf8hw.accel import estimate, synth_cache
from rf8hw.accel.cycles import gemm_cycles
from rf8hw.accel.report import render_markdown
from rf8hw.arch import ArrayConfig
from rf8hw.nn import quant
from rf8hw.zoo import mlp_digits


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
    # every path that needs no calibration data (a zoo model has it with --calibrate N)
    assert list(rep["accuracy"]) == ["fp32", "rf8_fake", "rf8_fake_paper", "rf8_bitexact",
                                     "rf8_bitexact_tensor", "int8_bitexact", "fp8_e4m3_bitexact", "int8",
                                     "fp8_e4m3", "apot"]
    # the RF8 nearest paths as run: the default recipe (a zoo model gives calibration data)
    assert rep["config"] == {**estimate.EstimateConfig(
        model="mlp_digits", checkpoint=str(checkpoint), array=ArrayConfig(8, 8), synth=False).as_dict(),
        "scale_search": True, "gptq": True, "gptq_order": "act"}
    assert any("scale search + GPTQ rounding, act column order" in n and "(the default recipe)" in n
               for n in rep["notes"])
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
    # the W8A8 baseline: the same activations and accumulator, an INT8 array (its own oracle tests:
    # tests/nn/test_bitexact.py)
    q8 = quant.set_mode(rf8hw.quantize(model, fmt="int8"), "bitexact", array=ArrayConfig(8, 8))
    assert rep["accuracy"]["int8_bitexact"] == data.evaluate(q8)["test_acc"]
    assert rep["accuracy"]["fp32"] > 0.9
    assert abs(rep["accuracy"]["rf8_bitexact"] - rep["accuracy"]["fp32"]) <= 0.01   # acceptance: 1 pt
    expect = sum(gemm_cycles(1, k, n, ArrayConfig(8, 8)).cycles
                 for k, n in ((64, 128), (128, 128), (128, 10)))
    # double-buffered weight timing (cycles.py), default PE kind rf8_pipe (3,795 with rf8)
    assert rep["cycles_per_inference"] == expect == 3798
    assert json.loads((out / "estimate.json").read_text()) == rep
    md = (out / "estimate.md").read_text()
    assert "| rf8_bitexact |" in md and "absent" in md and "--no-synth" in md
    assert (out / "estimate_cycles.png").read_bytes()[:4] == b"\x89PNG"


def test_estimate_with_a_memory_profile(checkpoint, tmp_path, capsys):
    """--memory: per-layer bound from the accelerator's throttled schedule, inferences/s from the
    slower side, the roofline written with the report; without it the report says compute peak."""
    from rf8hw.accel import memory

    out = tmp_path / "report"
    rc = cli.main(["estimate", "--model", "mlp_digits", "--checkpoint", str(checkpoint), "--rows", "8",
                   "--cols", "8", "--no-synth", "--paths", "fp32", "--memory", "ulx3s-sdram",
                   "--clock-mhz", "50", "--json", "--quiet", "--out", str(out)])
    assert rc == 0
    rep = json.loads(capsys.readouterr().out)
    mem = rep["memory"]
    assert rep["config"]["memory"] == "ulx3s-sdram" and rep["config"]["clock_mhz"] == 50.0
    assert mem["profile"]["name"] == "ulx3s-sdram" and mem["clock_from"] == "--clock-mhz"
    assert [(r["M"], r["K"], r["N"]) for r in mem["layers"]] == [(1, 64, 128), (1, 128, 128), (1, 128, 10)]
    rate = memory.PROFILES["ulx3s-sdram"].rate(50.0)
    for r in mem["layers"]:                 # M = 1: the weights dominate; every layer memory-bound
        g = memory.gemm_memory(r["M"], r["K"], r["N"], ArrayConfig(8, 8), rate,
                               mem["profile"]["buffer_bytes"])
        assert r["cycles"] == g["cycles"] and r["bound"] == "memory" == g["bound"]
    assert mem["inferences_per_s"] == pytest.approx(50e6 / mem["cycles"])
    assert mem["inferences_per_s"] < mem["compute_inferences_per_s"]
    md = (out / "estimate.md").read_text()
    assert "## Memory" in md and "3 of 3 memory-bound" in md and "inferences/s" in md
    assert (out / "estimate_roofline.png").read_bytes()[:4] == b"\x89PNG"
    assert json.loads((out / "estimate.json").read_text()) == rep
    rep.pop("memory")
    md = render_markdown({**rep, "memory": None})
    assert "**compute peak**" in md and "--memory PROFILE" in md and "## Memory" not in md
    # a rerun into the same folder without a profile leaves no roofline of the old report beside it
    rc = cli.main(["estimate", "--model", "mlp_digits", "--checkpoint", str(checkpoint), "--rows", "8",
                   "--cols", "8", "--no-synth", "--paths", "fp32", "--quiet", "--out", str(out)])
    assert rc == 0 and "wrote" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == ["estimate.json", "estimate.md", "estimate_cycles.png"]


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


@pytest.mark.slow
def test_cached_synthesis_runs_once_then_hits_the_cache(tmp_path):
    """One real 1x1 synthesis (yowasp yosys + nextpnr); the second call returns the stored result,
    a different seed is a different key."""
    first, cached = synth_cache.cached_synthesis(ArrayConfig(1, 1), "ecp5-25k", seed=1, cache_dir=tmp_path)
    assert not cached and first["lut4"] > 0 and first["fmax_mhz"] > 0 and first["dsp"] == 0
    again, cached = synth_cache.cached_synthesis(ArrayConfig(1, 1), "ecp5-25k", seed=1, cache_dir=tmp_path)
    assert cached and again == json.loads(json.dumps(first))
    key = synth_cache.synth_cache_key
    base = dict(rows=1, cols=1, device="ecp5-25k", pe="rf8_pipe", act_bits=8, acc_bits=40,
                overflow="wrap", reset="aresetn")      # ArrayConfig's defaults
    assert (tmp_path / f"{key({**base, 'seed': 1})}.json").is_file()
    assert key({**base, "seed": 1}) != key({**base, "seed": 2})


def test_bad_input_is_named(checkpoint, tmp_path, capsys):
    with pytest.raises(ValueError, match=r"^model must be one of tinygpt, mlp_digits, minilm, smollm2, "
                                         r"package\.module:function or path/to/file\.py:function, "
                                         r"not 'resnet'$"):
        estimate.EstimateConfig(model="resnet", checkpoint="x")
    with pytest.raises(ValueError, match=r"^pe must be a PE kind with RF8 weights, one of 'rf8', "
                                         r"'rf8_signlate', 'rf8_lean', 'rf8_pipe', not 'int8'$"):
        estimate.EstimateConfig(model="mlp_digits", checkpoint="x", array=ArrayConfig(pe="int8"))
    with pytest.raises(ValueError, match=r"^batch must be an integer in 1\.\.4096 \(the forward pass holds "
                                         r"the whole batch in memory\), not 0$"):
        estimate.EstimateConfig(model="mlp_digits", checkpoint="x", batch=0)
    with pytest.raises(ValueError, match=r"holds a 'mlp_digits' model, not 'tinygpt'$"):
        estimate.EstimateConfig(model="tinygpt", checkpoint=str(checkpoint), synth=False)   # loads nothing
    with pytest.raises(ValueError, match=r"^path must be one of 'fp32', .*, not 'int4'$"):
        estimate.EstimateConfig(model="mlp_digits", checkpoint=str(checkpoint), paths=("fp32", "int4"))
    cfg = estimate.EstimateConfig(model="mlp_digits", checkpoint=str(checkpoint), synth=False,
                                  paths=("rf8_bitexact_static",))
    with pytest.raises(ValueError, match=r"^paths rf8_bitexact_static need calibration data"):
        estimate.estimate(cfg, progress=False)
    rc = cli.main(["estimate", "--model", "mlp_digits", "--checkpoint", str(checkpoint), "--rows", "0",
                   "--cols", "8", "--no-synth", "--out", str(tmp_path)])
    assert rc == 2
    assert "rows must be an integer in 1..64, not 0" in capsys.readouterr().err
    rc = cli.main(["estimate", "--model", "mlp_digits", "--checkpoint", str(tmp_path / "none.safetensors"),
                   "--rows", "4", "--cols", "4", "--no-synth", "--out", str(tmp_path)])
    assert rc == 2
    assert "no such checkpoint" in capsys.readouterr().err


def test_calibrated_paths_of_a_zoo_model(checkpoint):
    """--calibrate N gives a zoo model calibration data (N training batches, seed 0): the smoothed
    and the static path; rf8_bitexact keeps its dynamic per-token scales."""
    cfg = estimate.EstimateConfig(model="mlp_digits", checkpoint=str(checkpoint), synth=False,
                                  calibrate_batches=2, array=ArrayConfig(4, 4),
                                  scale_search=False, gptq=False)        # plain nearest rounding
    rep = estimate.estimate(cfg, progress=False)
    assert list(rep["accuracy"])[-2:] == ["rf8_bitexact_smooth", "rf8_bitexact_static"]
    assert rep["config"]["calibrate_batches"] == 2
    model, _ = rf8hw.nn.checkpoint.load_checkpoint(checkpoint)
    data = mlp_digits.Data()
    gen = __import__("torch").Generator().manual_seed(0)
    batches = [data.batch(gen, mlp_digits.RECIPE["batch_size"])[0] for _ in range(2)]
    q = rf8hw.quantize(model, fmt="rf8")
    absmax = quant.calibrate(q, batches)
    assert rep["static_absmax"] == absmax
    quant.set_mode(q, "bitexact", array=ArrayConfig(4, 4), absmax=absmax)
    assert rep["metrics"]["rf8_bitexact_static"] == mlp_digits.Data().evaluate(q)
    dynamic = quant.set_mode(rf8hw.quantize(model, fmt="rf8"), "bitexact", array=ArrayConfig(4, 4))
    assert rep["metrics"]["rf8_bitexact"] == mlp_digits.Data().evaluate(dynamic)


def test_estimate_cosim_layer_and_sweep_resolve_the_model_in_one_place(checkpoint, tmp_path, monkeypatch):
    """rf8hw.accel.source.resolve is the one function deciding zoo or adapter: the estimate, the
    layer co-simulation and the sweep all go through it."""
    from rf8hw.accel import cosim_layer, dse, source

    seen = []
    real = source.resolve

    def spy(model, checkpoint=None):
        seen.append(model)
        return real(model, checkpoint)

    monkeypatch.setattr(source, "resolve", spy)
    estimate.EstimateConfig(model="mlp_digits", checkpoint=str(checkpoint), synth=False)
    assert seen == ["mlp_digits"]
    cosim_layer.capture_layer("mlp_digits", "fc3", ArrayConfig(2, 2), checkpoint=str(checkpoint), batch=2)
    assert seen == ["mlp_digits"] * 2
    dse.SweepConfig(model="mlp_digits", checkpoint=str(checkpoint), pes=("rf8_pipe",), rows=(2,), cols=(2,))
    assert seen == ["mlp_digits"] * 3
    with pytest.raises(ValueError, match="^--checkpoint is for the zoo models"):
        source.resolve("minilm", str(checkpoint))
    assert source.resolve("minilm").kind == "adapter" and source.resolve("mlp_digits", checkpoint).is_zoo


def test_progress_bars_do_not_change_the_numbers(checkpoint):
    """The zoo metric's per-batch progress bar is a forward hook: it must return None (a hook's
    value would replace the model's output)."""
    cfg = estimate.EstimateConfig(model="mlp_digits", checkpoint=str(checkpoint), synth=False)
    quiet = estimate.accuracy(cfg.load_source(progress=False), cfg, ["fp32", "rf8_bitexact"])
    shown = estimate.accuracy(cfg.load_source(progress=True), cfg, ["fp32", "rf8_bitexact"], progress=True)
    assert shown["metrics"] == quiet["metrics"]
