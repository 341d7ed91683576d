"""Ctrl-C: a run interrupted by the user ends with one line, ``rf8hw <command>: interrupted``, and
exit status 130 -- not a traceback -- whatever it was doing; ``rf8hw cosim`` keeps its own handling
(it stops its simulator and names the signal).  The end-to-end cases send SIGINT to the whole
process group, as a terminal does, while an estimate synthesizes and while a sweep runs on Ray."""

import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from rf8hw import cli


@pytest.mark.parametrize("command, argv", [
    ("estimate", ["--model", "minilm", "--rows", "2", "--cols", "2", "--no-synth"]),
    ("synth", ["--rows", "1", "--cols", "1", "--device", "ecp5-25k"]),
    ("sweep", ["--model", "minilm", "--pe", "rf8_pipe", "--rows", "2", "--cols", "2"]),
])
def test_an_interrupt_is_one_line_and_status_130(command, argv, monkeypatch, capsys):
    import importlib

    module = importlib.import_module(f"rf8hw.commands.{command}")

    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(module, "run", interrupted)
    assert cli.main([command, *argv]) == cli.INTERRUPTED == 130
    assert capsys.readouterr().err == f"rf8hw {command}: interrupted\n"


def test_cosim_keeps_its_own_interrupt_handling(monkeypatch, tmp_path, capsys):
    import rf8hw.sim

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(rf8hw.sim, "run_cosim", interrupted)
    rc = cli.main(["cosim", "--rows", "2", "--cols", "2", "--tiles", "1", "--seed", "1",
                   "--cache-dir", str(tmp_path / "c"), "--out-dir", str(tmp_path / "r")])
    assert rc == 128 + signal.SIGINT
    assert capsys.readouterr().err == ("rf8hw cosim: interrupted (signal 2); the simulator was stopped\n")


def _interrupt_when(argv, trigger: str, cwd, env=None, deadline=600):
    """Run ``rf8hw argv`` in a session of its own; once ``trigger`` appears on its stderr send
    SIGINT to the whole process group (as a terminal's Ctrl-C does).  Returns the exit status, the
    stderr after the signal and the seconds from the signal to the exit.  SIGINT is reset to its
    default in the child: a test run started in the background of a non-interactive shell inherits
    it ignored, and a terminal's Ctrl-C is what is tested."""
    proc = subprocess.Popen([sys.executable, "-m", "rf8hw", *argv], cwd=cwd, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **(env or {})},
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    lines, mark = [], []

    def read():
        for line in proc.stderr:
            lines.append(line)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    t0 = time.monotonic()
    try:
        while (not any(trigger in ln for ln in lines) and proc.poll() is None
               and time.monotonic() - t0 < deadline):
            time.sleep(0.1)
        assert proc.poll() is None, "".join(lines)
        mark.append(len(lines))
        os.killpg(proc.pid, signal.SIGINT)
        t1 = time.monotonic()
        rc = proc.wait(timeout=120)
        waited = time.monotonic() - t1
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    reader.join(5)
    return rc, "".join(lines[mark[0]:]), waited


@pytest.mark.slow
def test_ctrl_c_during_the_estimates_synthesis(tmp_path, train_mlp_digits):
    """SIGINT to the process group while nextpnr runs: one line, status 130, the synthesis thread
    stopped (the process does not wait for it), nothing cached or written."""
    ckpt = train_mlp_digits(300)
    rc, err, waited = _interrupt_when(
        ["estimate", "--model", "mlp_digits", "--checkpoint", str(ckpt), "--rows", "2", "--cols", "2",
         "--synth-cache", str(tmp_path / "synth"), "--out", str(tmp_path / "rep")], "nextpnr-ecp5:", tmp_path)
    assert rc == 130 and "Traceback" not in err, err
    assert err.rstrip().splitlines()[-1] == "rf8hw estimate: interrupted"
    assert waited < 60
    assert not list((tmp_path / "synth").glob("*.json")) and not (tmp_path / "rep").exists()


@pytest.mark.slow
def test_ctrl_c_during_a_sweep(tmp_path, train_mlp_digits):
    """SIGINT to the process group while the sweep's factors run on Ray: one line, status 130,
    Ray shut down, no table written."""
    ckpt = train_mlp_digits(300)
    rc, err, waited = _interrupt_when(
        ["sweep", "--model", "mlp_digits", "--checkpoint", str(ckpt), "--pe", "rf8_pipe", "--rows", "2",
         "--cols", "2", "--num-cpus", "1", "--cache", str(tmp_path / "dse"), "--synth-cache",
         str(tmp_path / "synth"), "--out", str(tmp_path / "out")], "factor/s", tmp_path)
    assert rc == 130 and "Traceback" not in err, err
    assert "rf8hw sweep: interrupted\n" in err and waited < 120
    assert not (tmp_path / "out" / "sweep.json").exists()
