"""rf8hw sweep (rf8hw.accel.dse): the Pareto front and the constraint pick on hand-made tables whose
answer is known; bad input; and a real tiny sweep on mlp_digits (rf8_pipe and int8_pipe, 2 x 2,
local Ray, real synthesis) that is killed after its first synthesis finished and restarted: the
restart recomputes nothing that had finished, and its table is checked against the cycle model."""

import copy
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from rf8hw import cli
from rf8hw.accel import dse
from rf8hw.accel.cycles import gemm_cycles
from rf8hw.accel.estimate import DEFAULT_HESSIAN_BATCHES
from rf8hw.arch import ArrayConfig
from rf8hw.nn import gptq, quant
from rf8hw.nn.checkpoint import load_checkpoint
from rf8hw.zoo import mlp_digits

# ------------------------------------------------------------------------- Pareto front, pick


def test_pareto_front_of_a_known_table():
    # (area, throughput): b dominates a; c and d trade off; e duplicates d; f has no area.
    rows = [{"a": 10, "t": 1}, {"a": 5, "t": 2}, {"a": 20, "t": 9}, {"a": 8, "t": 3}, {"a": 8, "t": 3},
            {"a": None, "t": 100}, {"a": 30, "t": 9}]
    assert dse.pareto_front(rows, {"a": "min", "t": "max"}) == [False, True, True, True, True, False, False]
    # both minimised: only the smallest (5, 2) and the one with the least t (10, 1) remain
    assert dse.pareto_front(rows, {"a": "min", "t": "min"}) == [True, True, False, False, False, False, False]
    # three objectives: a point bad in two but best in the third stays on the front
    three = [{"x": 1, "y": 1, "z": 9}, {"x": 2, "y": 2, "z": 1}, {"x": 2, "y": 2, "z": 0}]
    assert dse.pareto_front(three, {"x": "min", "y": "min", "z": "max"}) == [True, False, False]
    with pytest.raises(ValueError, match="objective 'a' must be one of 'min', 'max', not 'up'"):
        dse.pareto_front(rows, {"a": "up"})


def test_pick_best_under_constraints():
    pts = [{"pe": "A", "lut4_equiv": 100, "inferences_per_s": 10.0, "accuracy": 0.9,
            "higher_is_better": True},
           {"pe": "B", "lut4_equiv": 500, "inferences_per_s": 50.0, "accuracy": 0.7,
            "higher_is_better": True},
           {"pe": "C", "lut4_equiv": 300, "inferences_per_s": 50.0, "accuracy": 0.95,
            "higher_is_better": True},
           {"pe": "D", "lut4_equiv": None, "inferences_per_s": None, "accuracy": 0.99,
            "higher_is_better": True}]
    assert dse.pick_best(pts)["pe"] == "C"                   # tie on throughput: fewer LUTs
    assert dse.pick_best(pts, max_luts=200)["pe"] == "A"
    assert dse.pick_best(pts, min_accuracy=0.92)["pe"] == "C"
    assert dse.pick_best(pts, max_luts=200, min_accuracy=0.92) is None
    lower = [dict(p, higher_is_better=False) for p in pts]   # e.g. perplexity: at most X
    assert dse.pick_best(lower, min_accuracy=0.8)["pe"] == "B"


# --------------------------------------------------------------------------------- bad input

@pytest.mark.parametrize("argv, message", [
    (["--pe", "rf9"], "pe must be one of"),
    (["--rows", "0"], "rows must be an integer in 1..64, not 0"),
    (["--acc-bits", "20"], "acc_bits"),
    (["--rows", "two"], "argument --rows: takes comma-separated integers, not 'two'"),
    (["--act", "row"], "act must be one of 'token', 'tensor', not 'row'"),
    (["--device", "xc7"], "device must be one of"),
    (["--max-luts", "0"], "max_luts must be an integer >= 1, not 0"),
])
def test_bad_input_is_one_line_exit_2(tmp_path, capsys, argv, message):
    ckpt = tmp_path / "m.safetensors"
    ckpt.write_bytes(b"x")                       # never read: validation fails first
    base = {"--pe": "rf8_pipe", "--rows": "2", "--cols": "2"}
    base.update(dict(zip(argv[::2], argv[1::2])))
    try:
        rc = cli.main(["sweep", "--model", "mlp_digits", "--checkpoint", str(ckpt),
                       "--out", str(tmp_path / "o"), *[x for kv in base.items() for x in kv]])
    except SystemExit as exc:                    # argparse's usage error (rf8hw.cli.Parser)
        rc = exc.code
    err = capsys.readouterr().err
    assert rc == 2 and message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "o").exists()


def test_a_bad_checkpoint_is_refused_before_the_sweep(tmp_path, capsys):
    rc = cli.main(["sweep", "--model", "mlp_digits", "--checkpoint", str(tmp_path / "none.safetensors"),
                   "--pe", "rf8_pipe", "--rows", "2", "--cols", "2", "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert rc == 2 and "no such checkpoint" in err and len(err.strip().splitlines()) == 1


def test_adapter_numerics_are_checked():
    with pytest.raises(ValueError, match="act must be one of 'token', 'tensor', not 'row'"):
        dse.SweepConfig(model="minilm", acts=("token", "row"))
    with pytest.raises(ValueError, match="checkpoint is required"):
        dse.SweepConfig(model="mlp_digits")


# ------------------------------------------------------------------ the real sweep, killed


@pytest.fixture(scope="module")
def checkpoint(train_mlp_digits):
    """mlp_digits after 300 AdamW steps (shared with tests/accel/test_estimate.py)."""
    return train_mlp_digits(300)


def _entries(directory):
    return {p.name: p.stat().st_mtime_ns for p in directory.glob("*.json")} if directory.is_dir() else {}


@pytest.mark.slow
def test_sweep_killed_then_resumed_recomputes_nothing_finished(checkpoint, tmp_path, capsys):
    synth_cache, cache, out = tmp_path / "synth", tmp_path / "dse", tmp_path / "out"
    args = ["sweep", "--model", "mlp_digits", "--checkpoint", str(checkpoint), "--pe", "rf8_pipe,int8_pipe",
            "--rows", "2", "--cols", "2", "--acc-bits", "28", "--synth-cache", str(synth_cache),
            "--cache", str(cache), "--out", str(out), "--quiet"]
    # 1. one Ray CPU: the four factors (2 accuracy, 2 synthesis) run one after the other; kill the
    #    whole process group (driver and Ray) once the first synthesis result is in the cache.
    proc = subprocess.Popen([sys.executable, "-m", "rf8hw.cli", *args, "--num-cpus", "1"],
                            start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.time() + 600
        while not _entries(synth_cache) and proc.poll() is None and time.time() < deadline:
            time.sleep(0.2)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        proc.stderr.close()
    before_synth, before_acc = _entries(synth_cache), _entries(cache / "accuracy")
    assert len(before_synth) == 1, "the first sweep was not killed in the middle"
    assert not (out / "sweep.json").exists()

    # 2. the restart (in process, two Ray CPUs) computes only what is missing
    assert cli.main(args + ["--num-cpus", "2", "--json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    # three accuracy factors: the float reference (GEMMs, fp32) and one path per weight format
    assert rep["computed"] == {"accuracy": 3 - len(before_acc), "synthesis": 1}
    for name, mtime in {**before_synth}.items():
        assert (synth_cache / name).stat().st_mtime_ns == mtime
    for name, mtime in before_acc.items():
        assert (cache / "accuracy" / name).stat().st_mtime_ns == mtime
    rows = {r["pe"]: r for r in rep["points"]}
    assert set(rows) == {"rf8_pipe", "int8_pipe"}
    done_first = [r for r in rows.values() if f"{r['synth_key']}.json" in before_synth]
    assert len(done_first) == 1 and done_first[0]["synth_cached"]
    assert sum(not r["synth_cached"] for r in rows.values()) == 1
    assert all(r["accuracy_cached"] == (f"{r['acc_key']}.json" in before_acc) for r in rows.values())

    # 3. the table: cycles from the cycle model, throughput from Fmax, fronts consistent
    for pe, r in rows.items():
        assert r["status"] == "ok" and r["fits"] and r["lut4_equiv"] >= r["lut4"] > 0 and r["fmax_mhz"] > 0
        expect = sum(gemm_cycles(1, k, n, ArrayConfig(2, 2, pe=pe)).cycles
                     for k, n in ((64, 128), (128, 128), (128, 10)))
        assert r["cycles_per_inference"] == expect
        assert r["inferences_per_s"] == pytest.approx(r["fmax_mhz"] * 1e6 / expect)
        assert r["accuracy_node"]
    # accuracy against an independent evaluation: the bit-exact path with a wrapping 28-bit
    # accumulator (its overflow events are the cost), and the INT8 point's bit-exact W8A8 path on the
    # same arithmetic (the default, like for like)
    # RF8 rounded by the estimate's default recipe (scale search + GPTQ act order), its Hessians
    # from the zoo model's training batches (generator seed 0), as the estimate documents
    model, _ = load_checkpoint(checkpoint)
    data = mlp_digits.Data()
    gen = torch.Generator().manual_seed(0)
    batches = [data.batch(gen, mlp_digits.RECIPE["batch_size"])[0]
               for _ in range(DEFAULT_HESSIAN_BATCHES)]
    H = gptq.hessians(model, [n for n, m in model.named_modules() if type(m) is torch.nn.Linear],
                      lambda m: [m(b) for b in batches])
    q = quant.quantize_(copy.deepcopy(model), quant.QuantConfig(**quant.RECIPE), calibrate=H, warn=False)
    q = quant.set_mode(q, "bitexact", array=ArrayConfig(2, 2, acc_bits=28))
    assert rows["rf8_pipe"]["accuracy"] == data.evaluate(q)["test_acc"]
    assert rows["rf8_pipe"]["overflow_events"] == quant.overflow_report(q)["total"]["events"] > 0
    assert rows["rf8_pipe"]["accuracy_path"] == "bitexact"
    q8 = quant.set_mode(quant.quantize(model, fmt="int8"), "bitexact", array=ArrayConfig(2, 2, acc_bits=28))
    assert rows["int8_pipe"]["accuracy"] == data.evaluate(q8)["test_acc"] > 0.9
    assert rows["int8_pipe"]["overflow_events"] == quant.overflow_report(q8)["total"]["events"]
    assert rows["int8_pipe"]["accuracy_path"] == "bitexact"
    pts = list(rows.values())
    assert [r["pareto_throughput"] for r in pts] == dse.pareto_front(
        pts, {"lut4_equiv": "min", "inferences_per_s": "max"})
    best = rep["best"]["ecp5-25k"]
    assert best["inferences_per_s"] == max(r["inferences_per_s"] for r in pts)
    csv_lines = (out / "sweep.csv").read_text().splitlines()
    assert len(csv_lines) == 3 and csv_lines[0].startswith("device,pe,rows,cols,acc_bits")
    assert "| ecp5-25k | rf8_pipe | 2 | 2 | 28 |" in (out / "sweep.md").read_text()
    for kind in ("throughput", "accuracy"):
        assert (out / f"sweep_ecp5-25k_{kind}.png").read_bytes()[:4] == b"\x89PNG"
    assert json.loads((out / "sweep.json").read_text())["points"] == rep["points"]

    # 4. a rerun finds every factor cached and starts no Ray instance
    assert cli.main(args + ["--json"]) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["computed"] == {"accuracy": 0, "synthesis": 0} and again["ray"] == {"used": False}
    assert [r["inferences_per_s"] for r in again["points"]] == [r["inferences_per_s"] for r in rep["points"]]

    # 5. a hand-edited accuracy entry (its sealed digest no longer matches) is not trusted: it is
    #    reported, removed and computed again, and the table is the one computed before
    entry = sorted((cache / "accuracy").glob("*.json"))[0]
    edited = json.loads(entry.read_text())
    edited["value"]["accuracy"] = 1.0
    entry.write_text(json.dumps(edited))
    assert cli.main(args + ["--json"]) == 0
    out_err = capsys.readouterr()
    redone = json.loads(out_err.out)
    assert redone["computed"] == {"accuracy": 1, "synthesis": 0}
    assert (f"rf8hw: unusable accuracy cache entry removed (cache entry {entry}: its content does not match"
            in out_err.err)
    assert [r["accuracy"] for r in redone["points"]] == [r["accuracy"] for r in rep["points"]]

    # 6. a failing factor (an "adapter" that returns no model) fails its points, one line each with
    #    the log; the synthesis rows are still written and the sweep exits 1
    bad = ["sweep", "--model", "platform:node", "--pe", "rf8_pipe,int8_pipe", "--rows", "2", "--cols", "2",
           "--acc-bits", "28", "--synth-cache", str(synth_cache), "--cache", str(cache),
           "--out", str(tmp_path / "bad"), "--quiet", "--num-cpus", "1"]
    assert cli.main(bad) == 1
    err = capsys.readouterr().err
    failed = [ln for ln in err.splitlines() if ln.startswith("rf8hw sweep: failed:")]
    assert len(failed) == 2 and all("must return (model, example, metric" in ln and "(log: " in ln
                                    for ln in failed)
    table = json.loads((tmp_path / "bad" / "sweep.json").read_text())
    assert [r["status"] for r in table["points"]] == ["failed", "failed"]
    assert all(r["synth_cached"] and r["lut4"] > 0 for r in table["points"])
    assert all(os.path.isfile(r["log"]) for r in table["points"])


# ------------------------------------------------------------------------ the cluster address


@pytest.mark.parametrize("address", ["127.0.0.1", ":6379", "host:", "host:0", "notahost:99999", "h:x",
                                     "ray://h:10001", "a b:1", "::1:6379", "h:６３７９"])
def test_a_malformed_address_is_refused_by_the_config(address):
    with pytest.raises(ValueError, match=r"^address must be HOST:PORT with a port in 1\.\.65535 "):
        dse.SweepConfig(model="minilm", address=address)
    assert dse.parse_address("[::1]:6379") == ("::1", 6379)
    assert dse.parse_address("head.example:6379") == ("head.example", 6379)


def test_num_cpus_with_an_address_and_a_huge_batch_are_refused():
    with pytest.raises(ValueError, match="^num_cpus sizes the local Ray instance; with address"):
        dse.SweepConfig(model="minilm", address="127.0.0.1:6379", num_cpus=2)
    with pytest.raises(ValueError, match=r"^num_cpus must be an integer in 1\.\.1024, not 100000$"):
        dse.SweepConfig(model="minilm", num_cpus=100000)
    with pytest.raises(ValueError, match=r"^batch must be an integer in 1\.\.4096"):
        dse.SweepConfig(model="mlp_digits", checkpoint="x", batch=10**9)


def test_an_unreachable_cluster_is_one_line_in_seconds(tmp_path, capsys):
    """Issue item 5: ``--address 127.0.0.1:1`` (nothing listens) used to hang for more than ten
    minutes in ray.init's retries; now the address is probed first, before any work."""
    ckpt = tmp_path / "m.safetensors"
    t0 = time.monotonic()
    rc = cli.main(["sweep", "--model", "minilm", "--pe", "rf8_pipe", "--rows", "2", "--cols", "2",
                   "--address", "127.0.0.1:1", "--cache", str(tmp_path / "c"), "--synth-cache",
                   str(tmp_path / "s"), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert rc == 2 and time.monotonic() - t0 < 60
    assert err == ("rf8hw sweep: error: address '127.0.0.1:1': no Ray cluster there (Connection refused); "
                   "start one with `ray start --head --port=1` on 127.0.0.1\n")
    assert not (tmp_path / "o").exists() and not (tmp_path / "c").exists() and not ckpt.exists()


def test_a_port_that_is_not_a_ray_cluster_is_one_line(monkeypatch):
    """Something listens but it is not a Ray GCS: the probe (a child process) is stopped after the
    timeout instead of ray.init retrying for minutes."""
    import socket
    import threading

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    accepted = []
    threading.Thread(target=lambda: accepted.append(server.accept()), daemon=True).start()
    port = server.getsockname()[1]
    t0 = time.monotonic()
    try:
        with pytest.raises(ValueError, match=rf"^address '127\.0\.0\.1:{port}' (accepts connections but no "
                                             r"Ray GCS answered there within 3 s|: Ray could not connect)"):
            dse.check_ray_address(f"127.0.0.1:{port}", timeout=3)
    finally:
        server.close()
    assert time.monotonic() - t0 < 30
    with pytest.raises(ValueError, match=r"unknown host 'no-such-host\.invalid'"):
        dse.check_ray_address("no-such-host.invalid:6379", timeout=3)


# ------------------------------------------------------------------------ tables and plots


def _summary(rows, max_luts=None, min_accuracy=None):
    """A sweep summary as :func:`rf8hw.accel.dse.sweep` makes it, from hand-made rows."""
    best = {"ecp5-25k": dse.pick_best(rows, max_luts, min_accuracy)}
    return {"config": {"model": "mlp_digits", "max_luts": max_luts, "min_accuracy": min_accuracy},
            "points": rows, "n_points": len(rows), "factors": {"accuracy": 2, "synthesis": 2},
            "computed": {"accuracy": 0, "synthesis": 0},
            "failed": [r for r in rows if r["status"] == "failed"],
            "does_not_fit": 0, "wall_s": 1.0, "synthesis_seconds_fresh": 0, "metric": "test_acc",
            "higher_is_better": True, "constraint": {"max_luts": max_luts, "min_accuracy": min_accuracy},
            "best": best, "versions": {"rf8hw": "x"}, "notes": ["a note"]}


def _row(pe, rows, lut, ips, acc, fmt="rf8", dsp=False, **more):
    return {"device": "ecp5-25k", "pe": pe, "rows": rows, "cols": 2, "acc_bits": 32, "rounding": None,
            "act": "token" if fmt == "rf8" else None, "status": "ok", "weight_format": fmt,
            "dsp_inference": dsp, "lut4_equiv": lut, "lut4": lut, "inferences_per_s": ips, "accuracy": acc,
            "higher_is_better": True, "pareto_throughput": True, "pareto_accuracy": True, **more}


@pytest.fixture
def figures(monkeypatch):
    """The axes of every figure saved, read before they are closed."""
    import matplotlib.figure

    seen = []
    real = matplotlib.figure.Figure.savefig

    def keep(fig, *args, **kwargs):
        seen.append(fig.axes[0])
        return real(fig, *args, **kwargs)

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", keep)
    return seen


def test_sweep_plots_label_points_mark_the_choice_and_keep_every_point_inside_the_ticks(tmp_path, figures):
    from rf8hw.accel import dse_report

    rows = [_row("rf8_pipe", 1, 480, 12700.0, 0.8711), _row("rf8_pipe", 2, 861, 17450.0, 0.8711),
            _row("int8_pipe", 2, 1240, 15200.0, 0.8733, fmt="int8"),
            _row("int8_dsp", 2, 160, 14000.0, 0.8733, fmt="int8", dsp=True)]
    dse_report.write_outputs(_summary(rows, max_luts=900, min_accuracy=0.8), tmp_path)
    throughput, acc = figures
    # every point carries its row number of sweep.md; the key beside the axes names the designs
    texts = [t.get_text() for t in throughput.texts]
    assert {"1", "2", "3", "4"} <= set(texts)
    key = next(t for t in texts if t.startswith("points (rows of sweep.md)"))
    assert key.splitlines()[1:] == ["1: 1x2 rf8_pipe a32 token", "2: 2x2 rf8_pipe a32 token",
                                    "3: 2x2 int8_pipe a32", "4: 2x2 int8_dsp a32"]
    legend = [t.get_text() for t in throughput.get_legend().get_texts()]
    assert "--max-luts 900" in legend and "chosen: 2x2 rf8_pipe a32 token" in legend
    lo, hi = throughput.get_ylim()
    ticks = [t for t in throughput.get_yticks() if lo <= t <= hi]
    assert ticks and max(ticks) >= 17450 and min(ticks) <= 12700       # labelled ticks above and below
    assert acc.get_ylim()[1] <= 1.0 and "--min-accuracy 0.8" in [t.get_text() for t in
                                                                 acc.get_legend().get_texts()]
    md = (tmp_path / "sweep.md").read_text()
    assert "| 1 | ecp5-25k | rf8_pipe | 1 | 2 |" in md
    assert "| 12,700 |" in md and "| 861 |" in md and "| 1,240 |" in md and "max LUT4 sites: 900" in md
    assert "## Notes" in md and "a note" in md and md.rstrip().splitlines()[-3] == "## Versions"
    written = json.loads((tmp_path / "sweep.json").read_text())
    assert written["paths"]["markdown"] == str(tmp_path / "sweep.md")


def test_a_sweep_whose_points_all_failed_says_so_in_its_plots(tmp_path, figures):
    from rf8hw.accel import dse_report

    rows = [_row("rf8_pipe", 2, None, None, None, status="failed", error="boom", log="x.log")]
    dse_report.write_outputs(_summary(rows), tmp_path)
    assert len(figures) == 2
    for ax in figures:
        assert any("no point has a result to plot" in t.get_text() and "1 of 1 points failed" in t.get_text()
                   for t in ax.texts)
