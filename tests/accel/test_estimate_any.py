"""rf8hw estimate on a model the zoo does not know, through a user adapter (``package.module:function``),
and the op-level GEMM capture (rf8hw.accel.gemms) checked against shapes worked out by hand."""

import json
import textwrap

import pytest
import torch

from rf8hw import cli
from rf8hw.accel import estimate, gemms, source
from rf8hw.accel.cycles import gemm_cycles
from rf8hw.arch import ArrayConfig

ADAPTER = '''
import torch
import torch.nn as nn


class MyLinear(nn.Linear):          # a subclass: quantize_ must take it
    pass


class TinyAttn(nn.Module):
    """Single-head attention with a scores product via torch.matmul, and an unused branch."""

    def __init__(self, d=16):
        super().__init__()
        self.qkv = MyLinear(d, 3 * d)
        self.out = nn.Linear(d, d)
        self.unused = nn.Linear(d, 999)       # never runs: must not count
        self.head = nn.Linear(d, 4)

    def forward(self, x):
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        att = torch.softmax(q @ k.transpose(-2, -1) / 4.0, dim=-1)
        return self.head(self.out(att @ v)).mean(1)


def adapter():
    torch.manual_seed(0)
    model = TinyAttn().eval()
    x = torch.randn(2, 6, 16, generator=torch.Generator().manual_seed(1))
    ref = model(x).detach()

    def metric(m):
        with torch.no_grad():
            err = (m(x) - ref).abs().max().item()
        return {"neg_max_err": -err, "max_err": err}

    return model, (lambda m: m(x)), metric, {"name": "tinyattn", "batch": 2}


def adapter_with_calibration():
    model, run, metric, info = adapter()
    x_cal = torch.randn(3, 6, 16, generator=torch.Generator().manual_seed(2))

    def calibrate(m):
        with torch.no_grad():
            m(x_cal)

    return model, run, metric, {**info, "calibrate": calibrate}
'''


@pytest.fixture
def adapter_module(tmp_path, monkeypatch):
    (tmp_path / "my_adapters_for_test.py").write_text(textwrap.dedent(ADAPTER))
    monkeypatch.syspath_prepend(str(tmp_path))
    return "my_adapters_for_test:adapter"


EXPECTED = [("qkv", 12, 16, 48, True, 1), ("scores", 6, 16, 6, False, 2), ("mix", 6, 6, 16, False, 2),
            ("out", 12, 16, 16, True, 1), ("head", 12, 16, 4, True, 1)]


def _shapes(gs):
    return [(g.M, g.K, g.N, g.on_array, g.count) for g in gs]


def test_gemm_capture_of_an_unknown_model_float_and_bitexact(adapter_module):
    import my_adapters_for_test as mod

    from rf8hw.nn import quant

    model, run, _, _ = mod.adapter()
    got = gemms.capture(model, run)
    assert _shapes(got) == [e[1:] for e in EXPECTED]
    assert [g.name for g in got if g.on_array] == ["qkv", "out", "head"]
    q = quant.quantize_(model, quant.QuantConfig(mode="bitexact"))
    assert isinstance(q.qkv, quant.QuantLinear)          # the nn.Linear subclass was quantized
    assert _shapes(gemms.capture(q, run)) == [e[1:] for e in EXPECTED]


def test_estimate_cli_with_a_user_adapter(adapter_module, tmp_path, capsys):
    out = tmp_path / "rep"
    rc = cli.main(["estimate", "--model", adapter_module, "--rows", "4", "--cols", "4", "--no-synth",
                   "--json", "--quiet", "--out", str(out)])
    assert rc == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["model"] == "tinyattn" and rep["metric"] == "neg_max_err"
    assert set(rep["accuracy"]) == {k for k, p in estimate.PATHS.items() if p.default and not p.calibrated}
    assert rep["metrics"]["fp32"]["max_err"] == 0.0
    assert 0 < rep["metrics"]["rf8_bitexact"]["max_err"] < 0.05
    cfg = ArrayConfig(4, 4)
    expect = sum(gemm_cycles(M, K, N, cfg).cycles for _, M, K, N, on, _ in EXPECTED if on)
    assert rep["cycles"]["cycles"] == expect and rep["cycles_per_inference"] == expect / 2
    assert rep["cycles"]["macs_off_array"] == 2 * (6 * 16 * 6 + 6 * 6 * 16)
    assert rep["overflow_events"] == 0 and set(rep["overflow"]) == {"qkv", "out", "unused", "head", "total"}
    assert rep["overflow"]["unused"]["calls"] == 0
    assert json.loads((out / "estimate.json").read_text()) == rep
    assert "| rf8_bitexact_tensor |" in (out / "estimate.md").read_text()


def test_calibration_data_adds_the_smoothed_and_static_paths(adapter_module):
    """With ``calibrate`` (batches disjoint from the evaluation) the report adds the smoothed
    per-token path; ``static=True`` adds static scales too.  Both stay close to fp32."""
    import my_adapters_for_test as mod

    model, run, metric, _ = mod.adapter()
    x2 = torch.randn(3, 6, 16, generator=torch.Generator().manual_seed(2))
    seen = []

    def calibrate(m):
        seen.append(type(m.qkv).__name__)
        with torch.no_grad():
            m(x2)

    src = source.from_adapter((model, run, metric, {"name": "tinyattn", "batch": 2, "calibrate": calibrate}))
    cfg = estimate.EstimateConfig(array=ArrayConfig(4, 4), synth=False, calibrate_batches=1,
                                  paths=("rf8_bitexact", "rf8_bitexact_smooth", "rf8_bitexact_static"))
    rep = estimate.estimate(cfg, progress=False, source=src)
    assert list(rep["accuracy"]) == ["fp32", "rf8_bitexact", "rf8_bitexact_smooth", "rf8_bitexact_static"]
    for k in ("rf8_bitexact", "rf8_bitexact_smooth", "rf8_bitexact_static"):
        assert 0 < rep["metrics"][k]["max_err"] < 0.05, k
    assert rep["metrics"]["rf8_bitexact_smooth"] != rep["metrics"]["rf8_bitexact"]
    # the default recipe's GPTQ Hessians and smoothing measure the float model; static
    # calibration runs the quantized one
    assert seen == ["MyLinear", "MyLinear", "QuantLinear"]
    assert any("the calibration run never reached 1 layer(s) (first 'unused')" in n for n in rep["notes"])


def test_bad_adapter_names_are_one_line_errors(tmp_path, capsys):
    rc = cli.main(["estimate", "--model", "resnet", "--rows", "4", "--cols", "4", "--no-synth"])
    assert rc == 2
    assert "model must be one of tinygpt, mlp_digits, minilm, smollm2, package.module:function or " \
           "path/to/file.py:function, not 'resnet'" in capsys.readouterr().err
    rc = cli.main(["estimate", "--model", "no_such_mod_xyz:f", "--rows", "4", "--cols", "4", "--no-synth"])
    assert rc == 2 and "cannot be imported" in capsys.readouterr().err
    rc = cli.main(["estimate", "--model", "rf8hw.zoo.minilm:adapter", "--batch", "2", "--rows", "4",
                   "--cols", "4", "--no-synth"])
    assert rc == 2 and "batch is for the zoo models" in capsys.readouterr().err
    rc = cli.main(["estimate", "--model", "mlp_digits", "--rows", "4", "--cols", "4", "--no-synth"])
    assert rc == 2 and "--checkpoint is required" in capsys.readouterr().err
    with pytest.raises(ValueError, match="must return"):
        source.from_adapter(torch.nn.Linear(2, 2))


def test_capture_of_tinygpt_agrees_with_the_module_level_count():
    """Two independent counts of the zoo's GPT: op-level capture vs the module hooks of
    tests/accel/gemm_oracle.py."""
    from gemm_oracle import model_gemms

    from rf8hw.zoo import tinygpt

    m = tinygpt.build(tinygpt.CONFIG())
    x = tinygpt.example(m.config, 2)
    key = lambda gs: sorted((g.M, g.K, g.N, g.on_array, g.count) for g in gs)
    assert key(gemms.capture(m, x)) == key(model_gemms(m, x))


def test_adapter_run_with_calibrate_records_it_in_the_report_config(adapter_module, tmp_path, capsys):
    """--calibrate N with an adapter: its calibration data give rf8_bitexact_smooth and
    rf8_bitexact_static, and the report's config (the EstimateConfig that ran) records N."""
    with_cal = adapter_module.replace(":adapter", ":adapter_with_calibration")
    rc = cli.main(["estimate", "--model", with_cal, "--rows", "4", "--cols", "4", "--no-synth",
                   "--calibrate", "3", "--json", "--quiet", "--out", str(tmp_path / "rep")])
    assert rc == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["config"]["calibrate_batches"] == 3 and rep["config"]["model"] == with_cal
    assert {"rf8_bitexact_smooth", "rf8_bitexact_static"} <= set(rep["accuracy"])
    assert rep["static_absmax"] and set(rep["static_absmax"]) == {"qkv", "out", "unused", "head"}
    # an adapter without calibration data cannot give what --calibrate asks for: one line, exit 2
    rc = cli.main(["estimate", "--model", adapter_module, "--rows", "4", "--cols", "4", "--no-synth",
                   "--calibrate", "3", "--quiet", "--out", str(tmp_path / "rep2")])
    err = capsys.readouterr().err
    assert rc == 2 and "--calibrate 3 needs calibration data" in err and "Traceback" not in err


class _Opaque(torch.nn.Module):
    """Products run inside functions the capture has no rule for: a weight einsum, an activation
    einsum, tensordot, and nn.MultiheadAttention (one F.multi_head_attention_forward call)."""

    def __init__(self, d=8):
        super().__init__()
        self.w = torch.nn.Parameter(torch.randn(d, 12))
        self.lin = torch.nn.Linear(12, d)
        self.mha = torch.nn.MultiheadAttention(d, 2, batch_first=True)

    def forward(self, x):                                         # x: [2, 5, 8]
        h = torch.einsum("btd,de->bte", x, self.w)                # 2*5*8*12 = 960 MACs
        s = torch.einsum("bte,bse->bts", h, h)                    # 2*5*12*5 = 600
        t = torch.tensordot(s, torch.ones(5, 3), dims=1)          # 2*5*5*3 = 150
        a, _ = self.mha(x, x, x)
        return self.lin(h).sum() + t.sum() + a.sum()


def test_products_inside_opaque_functions_are_counted_off_the_array_never_dropped():
    """Found by the issue-26 probes: torch.einsum ran on no rule of the capture and its MACs
    were silently absent.  Every MAC ATen executes is now in the capture (independent count:
    torch's FlopCounterMode), the opaque ones off the array and named in the notes."""
    from torch.utils.flop_counter import FlopCounterMode

    torch.manual_seed(0)
    model, x = _Opaque(), torch.randn(2, 5, 8)
    got = gemms.capture(model, x)
    with FlopCounterMode(display=False) as fc, torch.no_grad():
        model.train()(x)       # in eval mode nn.MultiheadAttention's fused fast path hides its MACs
    assert sum(g.macs for g in got) == fc.get_total_flops() // 2 == 6030
    other = [g for g in got if g.op == "other"]
    assert [(g.name, g.M, g.K, g.N, g.count) for g in other[:3]] == [
        ("model.einsum", 10, 8, 12, 1), ("model.einsum", 5, 12, 5, 2), ("model.tensordot", 10, 5, 3, 1)]
    assert {g.name for g in other[3:]} == {"mha.multi_head_attention_forward"}
    assert [(g.name, g.on_array) for g in got if g.op != "other"] == [("lin", True)]
    notes = gemms.off_array_notes(got, 2)
    assert len(notes) == 1 and "matrix products inside functions the capture does not map" in notes[0]
    assert "(model.einsum, model.tensordot, mha.multi_head_attention_forward;" in notes[0]
    assert notes[0].startswith(f"{sum(g.macs for g in other):,} MACs per 2 inference(s)")
