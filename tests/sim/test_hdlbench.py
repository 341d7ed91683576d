"""The HDL bench (sim/hdl_bench/: wrapper.py and its cocotb_test.py; ``rf8hw.sim.run_tiles``
with ``CosimOptions(bench="hdl")``, the default): stimulus and checking off the per-cycle Python
path, with the guarantees of the Python bench; and what makes runs safe to start twice (run
directories, watchdog, paths, signals)."""

import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from rf8hw import sim
from rf8hw.arch import ArrayConfig
from rf8hw.format import golden
from rf8hw.sim import MAX_STALL_PROB, CosimOptions
from rf8hw.sim.hdl_bench import wrapper as hdlbench

# --- host-side pieces, no simulator --------------------------------------------------------------

def test_threshold_rule_and_generator():
    """floor(p * 2**32); the effective probability (T-1)/(2**32-1) is < 1 for every allowed p
    (at most MAX_STALL_PROB); the xorshift32 reference matches Marsaglia's published first output
    for state 2463534242."""
    assert hdlbench.lfsr_threshold(0) == 0
    assert hdlbench.lfsr_threshold(0.5) == 2**31
    assert hdlbench.lfsr_threshold(0.999) == int(0.999 * 2**32)
    assert hdlbench.stall_probability(hdlbench.lfsr_threshold(0)) == 0.0
    top = hdlbench.lfsr_threshold(MAX_STALL_PROB)
    assert top == int(MAX_STALL_PROB * 2**32) and hdlbench.stall_probability(top) < 1.0
    for bad in (1.0, np.nextafter(MAX_STALL_PROB, 1.0), -0.1, float("nan")):
        with pytest.raises(ValueError, match="stall_prob"):
            hdlbench.lfsr_threshold(bad)
    assert hdlbench.xorshift32(2463534242) == 723471715
    x, below, n = hdlbench.stream_seed(7, "w"), 0, 20_000
    t = hdlbench.lfsr_threshold(0.1)
    for _ in range(n):
        below += x < t
        x = hdlbench.xorshift32(x)
    assert abs(below / n - 0.1) < 0.01
    assert len({hdlbench.stream_seed(7, s) for s in "war"}) == 3


def test_largest_stall_probability_keeps_the_watchdog_in_32_bits(capsys):
    """Issue 26, item 6: --stall-prob 0.9999999 was accepted, then the bench failed on tb_max_idle
    (32 bits) out of range.  The largest allowed probability keeps the watchdog of the largest
    array in range; anything above is refused when the options are made, naming the bound."""
    from rf8hw.arch import MAX_DIM
    from rf8hw.cli import main
    from rf8hw.sim.scoreboard import watchdog_cycles

    for probs in ((MAX_STALL_PROB,), (0.0, MAX_STALL_PROB)):
        assert watchdog_cycles(MAX_DIM, MAX_DIM, probs) < 2**32
    assert watchdog_cycles(MAX_DIM, MAX_DIM, (0.9999999,)) >= 2**32      # what used to be accepted
    for name in ("stall_prob", "backpressure_prob"):
        assert getattr(CosimOptions(**{name: MAX_STALL_PROB}), name) == MAX_STALL_PROB
        with pytest.raises(ValueError, match=rf"^{name} must be a number in \[0, 0\.99999\] .*at most "
                                             r"0\.99999.*, not 0\.9999999$"):
            CosimOptions(**{name: 0.9999999})
    assert main(["cosim", "--rows", "2", "--cols", "2", "--tiles", "1", "--seed", "1",
                 "--stall-prob", "0.9999999"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "at most 0.99999" in err, err


def test_hex_round_trip():
    rng = np.random.default_rng(0)
    for lane_bits in (8, 16, 40, 64):
        lo, hi = -(1 << (lane_bits - 1)), (1 << (lane_bits - 1)) - 1
        v = rng.integers(lo, hi, size=(50, 3), endpoint=True, dtype=np.int64)
        last = rng.integers(0, 2, size=50)
        text = hdlbench.encode_beats(v, lane_bits, last)
        digits = hdlbench.decode_words(text, 50, "test")
        assert np.array_equal(digits[:, 0], last)
        assert np.array_equal(hdlbench.tile_words(digits[:, 1:], lane_bits, 3), v)
    with pytest.raises(RuntimeError, match="X or Z"):
        hdlbench.decode_words(b"0x1\n", 1, "r.hex")
    with pytest.raises(RuntimeError, match="expected 2 lines"):
        hdlbench.decode_words(b"01\n", 2, "r.hex")


@pytest.mark.parametrize("overflow", ["wrap", "saturate"])
def test_block_diagonal_batches_equal_the_per_tile_golden_model(overflow):
    from rf8hw.sim.scoreboard import GoldenModel, expected_rows

    rng = np.random.default_rng(3)
    tiles = sim.random_tiles(rng, 4, 4, 40, m_rows=(1, 9))
    model = GoldenModel(8, 27, overflow)
    rows = expected_rows(model, tiles, budget=600)
    ref = np.concatenate([golden.matmul(a, c, 27, overflow, impl="loop") for c, a in tiles])
    assert np.array_equal(rows, ref)
    # wrap: the batched exact path (GoldenModel.wrap_rows) is what ran; saturate has none
    assert (model.wrap_rows(tiles) is None) == (overflow == "saturate")
    assert (np.abs(ref) >= 1 << 25).any()          # sums near the 27-bit bounds: some wrapped
    assert (np.abs(ref) == (1 << 26) - 1).any() or overflow == "wrap"   # some tile saturated


@pytest.mark.parametrize("reset", ["aresetn", "rst"])
def test_wrapper_takes_port_names_from_the_manifest(reset):
    from rf8hw.hdl.generate import render

    cfg = ArrayConfig(2, 3, acc_bits=27, reset=reset)
    _, manifest = render(cfg)
    text = hdlbench.wrapper_verilog(manifest)
    clock = manifest.interface.clock.name
    assert f"{cfg.module_name} dut (" in text
    assert f".{clock}(clk), .{reset}({'~' if reset == 'aresetn' else ''}dut_rst)" in text


# --- on the simulators ------------------------------------------------------------------------------

@pytest.mark.slow
def test_full_rate_cycle_records_equal_the_python_bench(cosim_cache, tmp_path):
    """At full rate the streams are deterministic: the HDL bench's per-tile cycle records are the
    Python bench's, field for field (Icarus)."""
    tiles = sim.random_tiles(np.random.default_rng(8), 4, 4, 12, m_rows=(1, 10))
    cfg = ArrayConfig(4, 4, acc_bits=27)
    options = {"simulator": "icarus", "stall_prob": 0, "cache_root": cosim_cache}
    hdl = sim.run_tiles(tiles, cfg, CosimOptions(out_dir=tmp_path / "h", **options))
    py = sim.run_tiles(tiles, cfg, CosimOptions(out_dir=tmp_path / "p", bench="python", **options))
    assert hdl.mismatches == py.mismatches == 0
    assert hdl.tile_cycles == py.tile_cycles
    assert hdl.cycles == py.cycles
    assert hdl.python_s is not None and py.python_s is None


@pytest.mark.slow
def test_wrong_expected_value_is_named(cosim_cache, tmp_path):
    rows = cols = 4
    tiles = sim.random_tiles(np.random.default_rng(2), rows, cols, 3, m_rows=5)
    options = CosimOptions(simulator="icarus", stall_prob=0.2, cache_root=cosim_cache,
                           out_dir=tmp_path)
    r = sim.run_tiles(tiles, ArrayConfig(rows, cols, acc_bits=27), options, corrupt=(1, 2, 3))
    assert r.mismatches == 1 and not r.ok
    first = r.first_mismatch
    codes, a = tiles[1]
    right = int(golden.matmul(a, codes, 27, "wrap")[2, 3])
    assert (first.tile, first.row, first.column) == (1, 2, 3)
    assert (first.expected, first.got) == (right + 1, right)
    row_cycle = [x for x in r.tile_cycles if x.tile == 1][0].r_first + 2
    assert first.cycle >= row_cycle    # the cycle of that row's handshake (2 rows in, or later)


def test_groups_need_the_python_bench(tmp_path):
    tiles = sim.random_tiles(np.random.default_rng(1), 2, 2, 2)
    with pytest.raises(ValueError, match="need bench='python'"):
        sim.run_tiles(tiles, ArrayConfig(2, 2, acc_bits=27), CosimOptions(cache_root=tmp_path),
                      groups=[1, 1])
    with pytest.raises(ValueError, match="bench must be one of 'hdl', 'python', 'lib'"):
        CosimOptions(bench="vhdl", cache_root=tmp_path)
    assert not any(tmp_path.iterdir())


# --- runs are isolated (the CLI) ------------------------------------------------------------------

@pytest.mark.slow
def test_stall_probability_0999_in_a_cache_dir_with_a_space(cosim_cache, tmp_path, capsys):
    """The watchdog scales with the stall probability: 0.999 on every stream completes, exact,
    on Verilator, with the session's cache (its path holds a space) and a run directory with
    one."""
    from rf8hw import cli

    assert " " in str(cosim_cache)
    status = cli.main(["cosim", "--rows", "4", "--cols", "4", "--acc-bits", "27", "--tiles", "2",
                       "--m-rows", "1", "--seed", "2", "--stall-prob", "0.999",
                       "--cache-dir", str(cosim_cache), "--out-dir", str(tmp_path / "a run")])
    out, err = capsys.readouterr()
    assert status == 0, err
    assert SUMMARY.match(out.strip().splitlines()[-1]).groups() == ("2", "0")
    cycles = json.loads((tmp_path / "a run" / "cycles.json").read_text())["cycles"]
    assert cycles > 2_000      # ~1,000 edges per beat, 10 beats partly in parallel (full rate: < 20)


SUMMARY = re.compile(r"^tiles=(\d+) macs=\d+ mismatches=(\d+) cycles=\d+ cycles/s=\d+$")


def _cli(*args, cwd, **kwargs):
    return subprocess.Popen([sys.executable, "-m", "rf8hw", "cosim", *args], cwd=cwd,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs)


@pytest.mark.slow
def test_two_concurrent_runs_each_report_their_own_tiles(cosim_cache, tmp_path):
    """Same seed, same cache, same working directory, started together: each run checks and
    reports its own tile count, in a directory of its own named after its parameters."""
    common = ["--rows", "2", "--cols", "2", "--acc-bits", "27", "--seed", "4", "--sim", "icarus",
              "--cache-dir", str(cosim_cache)]
    runs = {40: _cli(*common, "--tiles", "40", "--stall-prob", "0", cwd=tmp_path),
            4: _cli(*common, "--tiles", "4", "--stall-prob", "0.5", cwd=tmp_path)}
    dirs = set()
    for tiles, proc in runs.items():
        out, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err
        lines = out.strip().splitlines()
        assert SUMMARY.match(lines[-1]).groups() == (str(tiles), "0"), lines[-1]
        run_dir = Path([ln for ln in lines if ln.startswith("run directory: ")][0].split(": ", 1)[1])
        assert run_dir.parent == tmp_path / "cosim_runs"
        assert f"-hdl-tiles{tiles}-m2-stall{0 if tiles == 40 else 0.5}-" in run_dir.name
        assert json.loads((run_dir / "cycles.json").read_text())["config"]["seed"] == 4
        assert len(json.loads((run_dir / "cycles.json").read_text())["tiles"]) == tiles
        dirs.add(run_dir)
    assert len(dirs) == 2


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
def test_a_killed_cli_leaves_no_simulator(sig, cosim_cache, tmp_path):
    """SIGTERM to the CLI while it simulates: the CLI exits (one line) and no simulator process
    is left.  SIGKILL (nothing can run in the CLI): the child's watchdog kills the simulator's
    group within a second (found by the issue-26 probes: the simulator ran on)."""
    proc = _cli("--rows", "2", "--cols", "2", "--acc-bits", "27", "--tiles", "200000", "--seed",
                "1", "--sim", "icarus", "--cache-dir", str(cosim_cache), cwd=tmp_path)
    run_dir = None
    deadline = time.monotonic() + 600
    while run_dir is None and time.monotonic() < deadline and proc.poll() is None:
        logs = list((tmp_path / "cosim_runs").glob("*/sim.log"))
        if logs and "running rf8hw.sim.hdl_bench.cocotb_test" in logs[0].read_text(errors="replace"):
            run_dir = logs[0].parent
        time.sleep(0.5)
    assert run_dir is not None, proc.stderr.read() if proc.poll() is not None else "no sim.log"
    sims = _simulators_in(run_dir)
    assert sims, "the simulator was not running"
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    if sig == signal.SIGTERM:
        assert proc.returncode == 128 + signal.SIGTERM
        assert err.strip().splitlines() == ["rf8hw cosim: interrupted (signal 15); the simulator "
                                            "was stopped"], err
    else:
        assert proc.returncode == -signal.SIGKILL
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and _alive(sims):
        time.sleep(0.2)
    assert not _alive(sims)
    assert not (run_dir / "result.json").exists()


def _alive(pids: list[int]) -> list[int]:
    """The processes of ``pids`` still running (not gone, not zombies)."""
    alive = []
    for p in pids:
        try:
            if "Z" not in Path(f"/proc/{p}/stat").read_text().split(")")[-1][:3]:
                alive.append(p)
        except OSError:
            pass
    return alive


def _simulators_in(run_dir: Path) -> list[int]:
    """Ids of processes whose working directory is ``run_dir`` (the simulator's)."""
    found = []
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                if Path(p / "cwd").resolve() == run_dir.resolve():
                    found.append(int(p.name))
            except OSError:
                pass
    return found


@pytest.mark.slow
def test_a_chunk_file_that_cannot_be_used_is_one_line(cosim_cache, tmp_path, capsys):
    """The result chunk r.hex cannot be written or read (here: a directory in its place, as a
    full disk or a path the simulator cannot open would do): the bench writes one error line
    (OSError is caught in the simulator too; it used to end "without a result"), exit 1."""
    from rf8hw.cli import main

    run = tmp_path / "run"
    (run / "r.hex").mkdir(parents=True)
    status = main(["cosim", "--rows", "2", "--cols", "2", "--tiles", "2", "--seed", "1", "--sim",
                   "icarus", "--cache-dir", str(cosim_cache), "--out-dir", str(run)])
    err = capsys.readouterr().err
    assert status == 1 and err.count("\n") == 1, err
    assert re.match(r"rf8hw cosim: the icarus simulation failed: \[Errno 21\] Is a directory: "
                    r"'/.*/run/r\.hex' \(see .*sim\.log\)$", err.strip()), err
