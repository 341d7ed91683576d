"""User adapters and what an estimate makes of them: every way an adapter can be wrong is one line
naming it (exit status 2, no traceback); a metric that is NaN or infinite is refused at the path
that produced it and leaves an earlier report untouched; an example that runs no array layer is
refused; convolutions are counted (off the array), never dropped; ``--model path/to/file.py:fn``;
the report's Markdown tells close values apart; a full disk names the path and keeps the old report.
"""

import errno
import json
import textwrap
from pathlib import Path

import pytest
import torch

from rf8hw import cli
from rf8hw.accel import cycles, estimate, gemms, report, source
from rf8hw.arch import ArrayConfig

ADAPTERS = '''
import torch
import torch.nn as nn


def _mlp():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4)).eval()


X = torch.randn(4, 8, generator=torch.Generator().manual_seed(1))


def good():
    m = _mlp()
    ref = m(X).detach()

    def metric(mm):
        with torch.no_grad():
            return {"cos": torch.nn.functional.cosine_similarity(mm(X), ref).mean().item()}
    return m, (lambda mm: mm(X)), metric, {"name": "tiny", "batch": 4}


def with_metric(fn):
    m, ex, _, info = good()
    return m, ex, fn, info


def nan_metric():
    return with_metric(lambda mm: {"cos": float("nan")})


def inf_on_the_second_path():
    m, ex, metric, info = good()
    seen = []

    def met(mm):
        seen.append(1)
        return {"cos": metric(mm)["cos"] if len(seen) == 1 else float("inf")}
    return m, ex, met, info


def no_layer():
    m, _, metric, info = good()
    return m, (lambda mm: None), metric, info


def raises():
    return 1 / 0


def takes_args(x, y=2):
    return good()


def two_items():
    return good()[:2]


def a_string():
    return "model"


def model_not_a_module():
    _, ex, metric, info = good()
    return "m", ex, metric, info


def example_an_int():
    m, _, metric, info = good()
    return m, 3, metric, info


def example_wrong_shape():
    m, _, metric, info = good()
    return m, torch.randn(2, 5), metric, info


def metric_raises():
    return with_metric(lambda mm: {}["x"])


def metric_a_string():
    return with_metric(lambda mm: "great")


def metric_a_list():
    return with_metric(lambda mm: {"cos": [1, 2]})


def metric_empty():
    return with_metric(lambda mm: {})


def metric_not_callable():
    m, ex, _, info = good()
    return m, ex, 0.5, info


def metric_without_its_name():
    def metric(mm):
        return {"cos": 1.0}
    metric.name = "accuracy"
    return with_metric(metric)


def calibrate_an_int():
    m, ex, metric, info = good()
    return m, ex, metric, {**info, "calibrate": 5}


def calibrate_raises():
    m, ex, metric, info = good()
    return m, ex, metric, {**info, "calibrate": lambda mm: mm(torch.zeros(1, 3))}


def info_typo():
    m, ex, metric, info = good()
    return m, ex, metric, {**info, "calibration": lambda mm: None}


def info_a_list():
    m, ex, metric, _ = good()
    return m, ex, metric, ["tiny"]


def batch_a_string():
    m, ex, metric, info = good()
    return m, ex, metric, {**info, "batch": "4"}


def exits():
    raise SystemExit(3)


class CNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 8, 3, padding=1)
        self.fc = nn.Linear(8 * 8 * 8, 10)

    def forward(self, x):
        return self.fc(torch.relu(self.conv(x)).flatten(1))


def cnn():
    torch.manual_seed(0)
    m = CNN().eval()
    x = torch.randn(2, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    ref = m(x).detach()

    def metric(mm):
        with torch.no_grad():
            return {"cos": torch.nn.functional.cosine_similarity(mm(x), ref).mean().item()}
    return m, (lambda mm: mm(x)), metric, {"name": "cnn", "batch": 2}


def conv_only():
    m, run, metric, info = cnn()
    return m, (lambda mm: mm.conv(torch.zeros(1, 1, 8, 8))), metric, info
'''


@pytest.fixture
def adapters(tmp_path, monkeypatch):
    """The adapters above as the importable module ``rel_adapters`` (and its file's path)."""
    path = tmp_path / "pkg" / "rel_adapters.py"
    path.parent.mkdir()
    path.write_text(textwrap.dedent(ADAPTERS))
    (tmp_path / "pkg" / "broken_at_import.py").write_text("raise RuntimeError('boom at import')\n")
    (tmp_path / "pkg" / "bad_syntax.py").write_text("def f(:\n")
    (tmp_path / "pkg" / "missing_dep.py").write_text("import no_such_dependency_xyz\n")
    monkeypatch.syspath_prepend(str(path.parent))
    return path


def _estimate(argv, tmp_path, capsys):
    try:
        rc = cli.main(["estimate", *argv, "--rows", "2", "--cols", "2", "--no-synth", "--quiet"])
    except SystemExit as exc:
        rc = exc.code
    out, err = capsys.readouterr()
    return rc, out, err


BAD = [
    ("rel_adapters:raises", "adapter 'rel_adapters:raises' raised ZeroDivisionError: division by zero (at "),
    ("rel_adapters:takes_args", "must be callable without arguments; it requires x"),
    ("rel_adapters:two_items", "must return (model, example, metric[, info]) or a dict with those keys, "
                               "not a tuple of 2 items"),
    ("rel_adapters:a_string", "or a dict with those keys, not str"),
    ("rel_adapters:model_not_a_module", "model must be a torch.nn.Module, not str"),
    ("rel_adapters:example_an_int", "example must be a callable example(model), a tensor, a tuple or a dict "
                                    "of inputs, not int"),
    ("rel_adapters:example_wrong_shape", "the example of adapter 'rel_adapters:example_wrong_shape' raised "
                                         "RuntimeError: mat1 and mat2 shapes cannot be multiplied"),
    ("rel_adapters:metric_raises", "the metric of adapter 'rel_adapters:metric_raises' raised KeyError: 'x' "
                                   "(at "),
    ("rel_adapters:metric_a_string", "tiny, path fp32: metric 'metric' is 'great' (str)"),
    ("rel_adapters:metric_a_list", "tiny, path fp32: metric 'cos' is [1, 2] (list)"),
    ("rel_adapters:metric_empty", "tiny, path fp32: a metric must return a number or a non-empty dict of "
                                  "numbers, not an empty dict"),
    ("rel_adapters:metric_not_callable", "metric must be a callable metric(model), not float"),
    ("rel_adapters:metric_without_its_name", "tiny, path fp32: the metric returned cos, without its "
                                             "headline 'accuracy'"),
    ("rel_adapters:calibrate_an_int", "info['calibrate'] must be a callable run(model) or None, not int"),
    ("rel_adapters:info_typo", "unknown info key(s) calibration; known: name, batch, calibrate, notes"),
    ("rel_adapters:info_a_list", "info (the 4th item) must be a dict, not list"),
    ("rel_adapters:batch_a_string", "info['batch'] must be an integer >= 1, not '4'"),
    ("rel_adapters:exits", "raised SystemExit: sys.exit(3)"),
    ("rel_adapters:nope", "module 'rel_adapters' has no function 'nope'"),
    ("broken_at_import:f", "adapter module 'broken_at_import' of --model 'broken_at_import:f' failed to "
                           "import: RuntimeError: boom at import (at "),
    ("bad_syntax:f", "failed to import: SyntaxError: invalid syntax"),
    ("missing_dep:f", "failed to import: ModuleNotFoundError: No module named 'no_such_dependency_xyz'"),
    ("not_on_the_path_xyz:f", "cannot be imported: No module named 'not_on_the_path_xyz'; the module must be "
                              "on the Python path (PYTHONPATH), or name its file: --model "
                              "path/to/not_on_the_path_xyz.py:f"),
    (":", "not ':': no module before ':'"),
    (".x:y", "not '.x:y': '.x' is not a module name"),
    ("rel_adapters:", "not 'rel_adapters:': '' is not a function name"),
    ("rel_adapters:a b", "'a b' is not a function name"),
    ("no/such/file.py:f", "adapter file 'no/such/file.py' of --model 'no/such/file.py:f' does not exist"),
    # issue item 1: NaN at the first path, infinity at the second; item 2: nothing for the array
    ("rel_adapters:nan_metric", "tiny, path fp32: metric 'cos' is nan; a metric must be a finite number"),
    ("rel_adapters:inf_on_the_second_path", "tiny, path rf8_fake: metric 'cos' is inf"),
    ("rel_adapters:no_layer", "the example of tiny ran no layer the array can take (no matrix product at "
                              "all)"),
    ("rel_adapters:conv_only", "the example of cnn ran no layer the array can take (only 4,608 off-array "
                               "MACs (conv))"),
]


@pytest.mark.parametrize("model, needle", BAD, ids=[m for m, _ in BAD])
def test_a_wrong_adapter_is_one_line_naming_it(model, needle, adapters, tmp_path, capsys):
    rc, out, err = _estimate(["--model", model, "--out", str(tmp_path / "rep")], tmp_path, capsys)
    assert rc == 2 and err.startswith("rf8hw estimate: error: ") and err.count("\n") == 1, err
    assert needle in err and "Traceback" not in err, err
    assert not (tmp_path / "rep").exists()


def test_calibrate_that_raises_is_named(adapters, tmp_path, capsys):
    rc, _, err = _estimate(["--model", "rel_adapters:calibrate_raises", "--out", str(tmp_path / "r")],
                           tmp_path, capsys)
    assert rc == 2 and err.count("\n") == 1
    assert "the calibrate entry of adapter 'rel_adapters:calibrate_raises' raised RuntimeError" in err


def test_a_nan_metric_leaves_the_good_report_of_an_earlier_run(adapters, tmp_path, capsys):
    """Issue item 1: the metric is checked as it is produced (the path and the metric are named),
    and a failed rerun into an --out holding a good report leaves all its files as they were."""
    out = tmp_path / "rep"
    rc, _, _ = _estimate(["--model", "rel_adapters:good", "--out", str(out)], tmp_path, capsys)
    assert rc == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    assert sorted(before) == ["estimate.json", "estimate.md", "estimate_cycles.png"]
    for bad in ("rel_adapters:nan_metric", "rel_adapters:inf_on_the_second_path"):
        rc, _, err = _estimate(["--model", bad, "--out", str(out)], tmp_path, capsys)
        assert rc == 2 and "a metric must be a finite number" in err and err.count("\n") == 1
        assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    # the writer refuses a report holding NaN before it writes anything
    rep = json.loads(before["estimate.json"])
    rep["accuracy"]["fp32"] = float("nan")
    with pytest.raises(ValueError, match="Out of range float values"):
        report.write_report(rep, out)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_a_full_disk_names_the_folder_and_keeps_the_old_report(adapters, tmp_path, capsys, monkeypatch):
    out = tmp_path / "rep"
    assert _estimate(["--model", "rel_adapters:good", "--out", str(out)], tmp_path, capsys)[0] == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    real = Path.write_text

    def full(self, data, *args, **kwargs):
        if self.name.startswith(".estimate.md"):
            real(self, data[:10], *args, **kwargs)          # half written, then the disk is full
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(self, data, *args, **kwargs)

    monkeypatch.setattr(Path, "write_text", full)
    rc, _, err = _estimate(["--model", "rel_adapters:good", "--out", str(out)], tmp_path, capsys)
    assert rc == 2 and err == f"rf8hw estimate: error: No space left on device: {out / 'estimate.md'}\n"
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before     # no temporary, no mix


def test_a_cnn_counts_its_convolutions(adapters, tmp_path, capsys):
    """Issue item 10: a Conv2d layer stays in float (RF8 quantization takes linear layers), so it
    is off the array -- and its MACs are in the report, with a note, not dropped."""
    rc, out, _ = _estimate(["--model", "rel_adapters:cnn", "--json", "--out", str(tmp_path / "r")],
                           tmp_path, capsys)
    assert rc == 0
    rep = json.loads(out)
    conv = 2 * 8 * 8 * 8 * 9                   # output elements x (C_in / groups x kernel)
    fc = 2 * 512 * 10
    assert rep["gemms"] == {"gemms_on_array": 1, "gemms_off_array": 1, "macs_on_array": fc,
                            "macs_off_array": conv, "macs_conv": conv}
    layers = {r["name"]: r for r in rep["cycles"]["layers"]}
    assert layers["conv"]["op"] == "conv" and not layers["conv"]["on_array"]
    assert (layers["conv"]["M"], layers["conv"]["K"], layers["conv"]["N"]) == (128, 9, 8)
    assert rep["cycles"]["cycles"] == cycles.gemm_cycles(2, 512, 10, ArrayConfig(2, 2)).cycles
    assert any(n.startswith(f"{conv:,} MACs per 2 inference(s)") and "convolutions (conv" in n
               and "leave them out" in n for n in rep["notes"])
    md = (tmp_path / "r" / "estimate.md").read_text()
    assert "| conv | 128 x 9 x 8 | off-array |" in md and "run off the array" in md
    assert "inferences/s and GMAC/s count the array's work only" in md


@pytest.mark.parametrize("layer, x", [
    (torch.nn.Conv1d(4, 6, 3), torch.randn(2, 4, 10)),
    (torch.nn.Conv2d(4, 6, 3, stride=2, padding=1, groups=2), torch.randn(3, 4, 9, 7)),
    (torch.nn.Conv2d(4, 6, (1, 3), padding="same", padding_mode="reflect"), torch.randn(1, 4, 5, 5)),
    (torch.nn.Conv2d(3, 6, 3), torch.randn(3, 8, 8)),                   # unbatched
    (torch.nn.Conv3d(2, 4, 2), torch.randn(1, 2, 4, 4, 4)),
    (torch.nn.ConvTranspose2d(4, 6, 3, stride=2, groups=2), torch.randn(2, 4, 5, 5)),
    (torch.nn.ConvTranspose1d(3, 5, 4), torch.randn(2, 3, 7)),
])
def test_convolution_macs_equal_an_independent_count(layer, x):
    """The im2col GEMMs' MACs against a count from the definition: every output element of a
    convolution takes C_in/groups x kernel products; every input element of a transposed one
    feeds C_out/groups x kernel products."""
    out = layer(x)
    kernel = int(torch.tensor(layer.kernel_size).prod())
    if isinstance(layer, torch.nn.modules.conv._ConvTransposeNd):
        expect = x.numel() * layer.out_channels // layer.groups * kernel
    else:
        expect = out.numel() * layer.in_channels // layer.groups * kernel
    found = gemms.capture(torch.nn.Sequential(layer), x)
    assert [g.op for g in found] == ["conv"] and not found[0].on_array
    assert sum(g.macs for g in found) == expect and found[0].count == layer.groups


def test_an_adapter_given_by_its_file(adapters, tmp_path, capsys, monkeypatch):
    """--model path/to/file.py:fn imports the file (its folder first on the path, as for
    ``python file.py``); the default output folder is named after the file, not its path."""
    import sys

    sys.path.remove(str(adapters.parent))           # not importable by name: only by its path
    sys.modules.pop("rel_adapters", None)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    rel = Path("..") / "pkg" / "rel_adapters.py"
    rc, _, err = _estimate(["--model", f"{rel}:good"], tmp_path, capsys)
    assert rc == 0, err
    written = elsewhere / "estimate_rel_adapters_good_2x2_ecp5-25k"
    assert json.loads((written / "estimate.json").read_text())["model"] == "tiny"
    spec = source.resolve(f"{rel}:good")
    assert spec.target == f"{adapters.resolve()}:good"          # absolute: Ray workers run elsewhere
    assert source.model_tag(f"{rel}:good") == "rel_adapters_good"
    assert source.model_tag("mypkg.mod:fn") == "mypkg_mod_fn"


def test_markdown_tells_close_accuracies_apart(adapters, tmp_path, capsys):
    """A tiny model whose paths all reach 0.9999x: the table shows enough decimals for every row
    and every non-zero delta to differ (no "1.0000" everywhere, no "-0.0000")."""
    rc, out, _ = _estimate(["--model", "rel_adapters:good", "--json", "--out", str(tmp_path / "r")],
                           tmp_path, capsys)
    rep = json.loads(out)
    rep["accuracy"] = {"fp32": 1.0, "rf8_fake": 0.9999812, "rf8_bitexact": 0.9999431, "int8": 0.99999995}
    rep["metrics"] = {k: {"cos": v} for k, v in rep["accuracy"].items()}
    md = report.render_markdown(rep)
    rows = [ln for ln in md.splitlines() if ln.startswith(("| fp32 |", "| rf8_fake |", "| rf8_bitexact |",
                                                            "| int8 |"))]
    values = [ln.split("|")[2].strip() for ln in rows]
    deltas = [ln.split("|")[3].strip() for ln in rows]
    assert len(set(values)) == 4 and deltas[0] == "0", rows
    assert all(float(d) != 0 for d in deltas[1:]) and "-0.0000 " not in md, rows
    assert report.decimals_to_tell_apart([1.0, 0.99998, 0.99996]) == 5
    assert report.decimals_to_tell_apart([97.33, 97.11], 2) == 2
    # the versions close the report; they are not inside the overflow section
    assert md.index("## Versions") > md.index("## Notes") > md.index("## Overflow events")
    assert "Versions:" not in md


def test_cycles_plot_says_what_its_bars_count(tmp_path, monkeypatch):
    import matplotlib.figure

    labels = []
    real = matplotlib.figure.Figure.savefig
    monkeypatch.setattr(matplotlib.figure.Figure, "savefig",
                        lambda fig, *a, **k: labels.append(fig.axes[0].get_ylabel()) or real(fig, *a, **k))
    found = [cycles.Gemm("fc", 4, 8, 8)]
    cycles.plot_model_cycles(cycles.model_cycles(found, ArrayConfig(2, 2), 4), tmp_path / "a.png")
    cycles.plot_model_cycles(cycles.model_cycles(found, ArrayConfig(2, 2), 1), tmp_path / "b.png")
    assert labels == ["cycles per batch of 4 inferences", "cycles per inference"]


def test_hessian_batches_without_gptq_and_a_huge_batch_are_refused(tmp_path, capsys):
    with pytest.raises(ValueError, match=r"^hessian_batches 2 gives the GPTQ Hessians; it needs gptq$"):
        estimate.EstimateConfig(gptq=False, hessian_batches=2)
    with pytest.raises(ValueError, match=r"^batch must be an integer in 1\.\.4096 \(the forward pass holds "
                                         r"the whole batch in memory\), not 1000000000$"):
        estimate.EstimateConfig(batch=10**9)
