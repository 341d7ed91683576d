"""``rf8hw cosim --model mlp_digits`` without ``--layer``: the whole forward pass of a real zoo model
(3 digits: fc1 3 x 64 x 128, fc2 3 x 128 x 128, fc3 3 x 128 x 10) through the accelerator's
Verilog under Icarus, each layer consuming the RTL's output; killed (SIGINT) after its first
GEMM and resumed from the store.  Slow: it starts the simulator."""

import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest

from rf8hw import cli

pytestmark = pytest.mark.slow

SUMMARY = re.compile(r"^gemms=3 macs=77568 mismatches=0 bitexact_mismatches=0 cycles=(\d+) "
                     r"model_cycles=(\d+) outputs_equal=True cycles/s=\d+$")


def _argv(checkpoint, tmp_path, *extra):
    return ["cosim", "--model", "mlp_digits", "--checkpoint", str(checkpoint), "--batch", "3",
            "--rows", "4", "--cols", "4", "--seed", "1", "--sim", "icarus",
            "--cache-dir", str(tmp_path / "cache"), *extra]


def test_mlp_digits_through_the_rtl_interrupted_and_resumed(train_mlp_digits, tmp_path, capsys):
    checkpoint = train_mlp_digits(30)
    argv = _argv(checkpoint, tmp_path, "--stall-prob", "0", "--out-dir", str(tmp_path / "run"))
    store = tmp_path / "cache" / "model-gemms"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    # SIGINT reset to its default in the child: pytest-xdist's workers ignore it, and an ignored
    # signal stays ignored across exec (the run would finish instead of stopping)
    proc = subprocess.Popen([sys.executable, "-m", "rf8hw", *argv], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 300
    while not list(store.glob("*.json")) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None, proc.communicate()
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130 and "interrupted (signal 2)" in err, err
    stored = len(list(store.glob("*.json")))
    assert 1 <= stored < 3

    assert cli.main(argv) == 0
    out = capsys.readouterr().out.strip().splitlines()
    m = SUMMARY.match(out[-1])
    assert m and m.group(1) == m.group(2), out[-1]
    assert f"totals: 3 GEMMs ({3 - stored} simulated, {stored} from the store)" in "\n".join(out)
    assert "final output: 30 values, equal to the bit-exact PyTorch path: True" in out
    saved = json.loads((tmp_path / "run" / "result.json").read_text())
    assert saved["ok"] and [g["layer"] for g in saved["gemms"]] == ["fc1", "fc2", "fc3"]
    assert all(g["beats_off_model"] == 0 and g["cycles"] == g["model_cycles"]
               for g in saved["gemms"])
    assert [g["reused"] for g in saved["gemms"]] == [True] * stored + [False] * (3 - stored)


def test_mlp_digits_int32_with_stalls(train_mlp_digits, tmp_path, capsys):
    """INT32 output, 20 % idle producers and consumer stalls: every result still exact (the
    cycle check needs full rate and is not made)."""
    argv = _argv(train_mlp_digits(30), tmp_path, "--stall-prob", "0.2", "--out-bits", "32",
                 "--out-dir", str(tmp_path / "run"))
    assert cli.main(argv) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert re.match(r"^gemms=3 macs=77568 mismatches=0 bitexact_mismatches=0 cycles=\d+ "
                    r"model_cycles=\d+ outputs_equal=True", last), last


def test_shared_qkv_input_through_the_rtl(tmp_path, monkeypatch, capsys):
    """A two-block attention model (tests/accel/test_cosim_model.py's, 14 token rows): each
    block's Q, K and V in one simulation, K and V reading the input from the activation buffer
    (load = 0); every result beat at the cycle model's cycle, 0 mismatches, outputs equal."""
    import textwrap

    from test_cosim_model import ADAPTER, LAYERS

    (tmp_path / "cosim_model_tiny_rtl.py").write_text(textwrap.dedent(ADAPTER))
    monkeypatch.syspath_prepend(str(tmp_path))
    argv = ["cosim", "--model", "cosim_model_tiny_rtl:adapter", "--rows", "4", "--cols", "4",
            "--seed", "2", "--sim", "icarus", "--stall-prob", "0", "--cache-dir",
            str(tmp_path / "cache"), "--out-dir", str(tmp_path / "run")]
    assert cli.main(argv) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert re.match(r"^gemms=13 macs=30408 mismatches=0 bitexact_mismatches=0 cycles=(\d+) "
                    r"model_cycles=\1 outputs_equal=True", last), last
    saved = json.loads((tmp_path / "run" / "result.json").read_text())
    assert [g["layer"] for g in saved["gemms"]] == LAYERS
    assert [g["load"] for g in saved["gemms"]] == [1, 0, 0, 1, 1, 1] * 2 + [1]
    assert all(g["beats_off_model"] == 0 and g["cycles"] == g["model_cycles"]
               for g in saved["gemms"])
    assert len(list((tmp_path / "cache" / "model-gemms").glob("*.json"))) == 9
