"""The library engine (rf8hw.sim.verilator_lib) and the array's library bench (``--bench lib``,
Verilator's default): the harness generated from the port lists of both tops, the option rules,
and on Verilator the same cycle records as the HDL bench, stalls and a mid-run reset included,
with every result checked."""

import json
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from rf8hw import sim
from rf8hw.arch import AccelConfig, ArrayConfig
from rf8hw.sim import CosimOptions
from rf8hw.sim.verilator_lib import Harness, module_ports, pack_ints, pack_lanes, unpack_ints, unpack_lanes


def _array_harness(tmp_path, cfg):
    from rf8hw.hdl.generate import generate

    generate(cfg, out_dir=tmp_path)
    design = sim.load_rtl(tmp_path / f"{cfg.module_name}.v")
    from rf8hw.sim.lib_bench import array_harness

    return array_harness(design.manifest, design.data.decode())


def test_one_generator_serves_the_array_and_the_accelerator(tmp_path):
    """The streams, widths and status outputs come from the port lists; Verilator's C types
    (VlWide above 64 bits) and both tops' buses appear in the C++."""
    h = _array_harness(tmp_path, ArrayConfig(8, 8))
    assert {s.bus: (s.width, s.has_last) for s in h.inputs} == {"s_axis_a": (64, True),
                                                                 "s_axis_w": (64, True)}
    assert [(s.bus, s.width, s.words) for s in h.outputs] == [("m_axis_acc", 320, 10)]
    assert h.status == (("err_w_tlast", 1),)
    assert (h.clock, h.reset, h.reset_active_low) == ("aclk", "aresetn", True)
    cpp = h.cpp()
    assert "top->m_axis_acc_tdata[j]" in cpp and "(QData)" in cpp
    from rf8hw.hdl.accel_axi import RF8AccelAxiTop
    from rf8hw.hdl.generate import to_verilog

    acfg = AccelConfig(ArrayConfig(3, 4), max_m=9, max_k=20)
    text = to_verilog(RF8AccelAxiTop(acfg), acfg.module_name)
    a = Harness.from_ports(acfg.module_name, module_ports(text, acfg.module_name),
                           acfg.array.clock_port, acfg.array.reset, acfg.array.reset_active_low)
    assert sorted(s.bus for s in a.inputs) == ["s_axis_a", "s_axis_cmd", "s_axis_p", "s_axis_w"]
    assert [s.has_last for s in a.inputs if s.bus != "s_axis_w"] == [False] * 3
    assert [s.bus for s in a.outputs] == ["m_axis_out"]
    assert sorted(n for n, _ in a.status) == ["busy", "err_cmd", "err_w_tlast"]


def test_ports_that_fit_no_role_are_refused():
    ports = {"aclk": ("input", 1), "rst": ("input", 1), "s_axis_x_tdata": ("input", 8),
             "s_axis_x_tvalid": ("input", 1), "s_axis_x_tready": ("output", 1),
             "m_axis_y_tdata": ("output", 8), "m_axis_y_tvalid": ("output", 1),
             "m_axis_y_tready": ("input", 1)}
    Harness.from_ports("t", ports, "aclk", "rst", False)
    with pytest.raises(ValueError, match=r"port mode \(input, 2 bits\) is neither"):
        Harness.from_ports("t", {**ports, "mode": ("input", 2)}, "aclk", "rst", False)
    with pytest.raises(ValueError, match="bus s_axis_x needs a 1-bit output s_axis_x_tready"):
        Harness.from_ports("t", {k: v for k, v in ports.items() if k != "s_axis_x_tready"},
                           "aclk", "rst", False)


def test_buffers_round_trip():
    rng = np.random.default_rng(0)
    for lane_bits, lanes in ((8, 8), (40, 8), (32, 3), (64, 2)):
        lo, hi = -(1 << (lane_bits - 1)), (1 << (lane_bits - 1)) - 1
        v = rng.integers(lo, hi, size=(50, lanes), endpoint=True)
        words = pack_lanes(v, lane_bits, lane_bits * lanes)
        assert words.shape == (50, -(-lane_bits * lanes // 32))
        assert np.array_equal(unpack_lanes(words, lane_bits, lanes), v)
        ints = unpack_ints(words)
        assert all(int(x) >> (lane_bits * i) & ((1 << lane_bits) - 1) == int(v[r, i]) % (1 << lane_bits)
                   for r, x in enumerate(ints[:5]) for i in range(lanes))
        assert np.array_equal(pack_ints(ints, lane_bits * lanes), words)


def test_bench_defaults_and_refusals(tmp_path):
    """lib is Verilator's default bench (hdl with waves: the library records none), hdl Icarus';
    lib on Icarus or with waves is one line."""
    assert CosimOptions(simulator="verilator").bench == "lib"
    assert CosimOptions(simulator="verilator", waves=True).bench == "hdl"
    assert CosimOptions(simulator="icarus").bench == "hdl"
    with pytest.raises(ValueError, match="^bench 'lib' runs on Verilator only, not simulator 'icarus'"):
        CosimOptions(simulator="icarus", bench="lib")
    with pytest.raises(ValueError, match="^waves: bench 'lib' records no waveform"):
        CosimOptions(bench="lib", waves=True)


CFG = ArrayConfig(4, 4, acc_bits=27)


@pytest.mark.slow
def test_cycle_records_equal_the_hdl_bench_with_stalls_and_a_reset(cosim_cache, tmp_path):
    """Same seed, same stall rule: the library bench's cycles.json equals the HDL bench's record
    for record (ragged random tiles of every kind, input gaps 0.2, backpressure 0.6, then a reset
    mid-run with 3 tiles after it), every result checked, the same results kept."""
    tiles = sim.random_tiles(np.random.default_rng(3), 4, 4, 24, m_rows=(1, 12))
    runs = {}
    for bench in ("lib", "hdl"):
        for name, extra in (("plain", {}), ("reset", {"reset_at_cycle": 150, "tiles_after_reset": 3})):
            options = CosimOptions(simulator="verilator", bench=bench, stall_prob=0.2,
                                   backpressure_prob=0.6, seed=5, cache_root=cosim_cache,
                                   out_dir=tmp_path / f"{bench}-{name}")
            r = sim.run_tiles(tiles, CFG, options, keep_results=True, **extra)
            assert r.mismatches == 0, r.first_mismatch
            runs[bench, name] = r
    for name in ("plain", "reset"):
        lib, hdl = runs["lib", name], runs["hdl", name]
        assert lib.tile_cycles == hdl.tile_cycles and len(lib.tile_cycles) > 3
        assert (lib.cycles, lib.dropped_tiles, lib.rows_checked) == \
            (hdl.cycles, hdl.dropped_tiles, hdl.rows_checked)
        assert lib.results.keys() == hdl.results.keys()
        assert all(np.array_equal(lib.results[t], hdl.results[t]) for t in lib.results)
        lj, hj = (json.loads(r.cycles_json.read_text()) for r in (lib, hdl))
        assert lj["tiles"] == hj["tiles"] and lj["config"]["bench"] == "lib"
        assert (lib.out_dir / "result.json").is_file() and (lib.out_dir / "results.npz").is_file()
    assert runs["lib", "reset"].dropped_tiles and runs["lib", "plain"].rows_checked == \
        sum(len(a) for _, a in tiles)
    # the stalls really happened on every stream
    t = runs["lib", "plain"].tile_cycles
    assert sum(r.w_idle for r in t) and sum(r.a_idle for r in t) and sum(r.out_stall for r in t)


@pytest.mark.slow
def test_a_wrong_expected_value_is_named_exit_1(cosim_cache, tmp_path, capsys, monkeypatch):
    """The library bench's scoreboard fails on one corrupted expected value, naming tile, row,
    column and the cycle of the row's handshake; the CLI (Verilator's default bench) exits 1."""
    tiles = sim.random_tiles(np.random.default_rng(1), 4, 4, 6)
    options = CosimOptions(simulator="verilator", stall_prob=0.1, seed=2, cache_root=cosim_cache,
                           out_dir=tmp_path / "run")
    r = sim.run_tiles(tiles, CFG, options, corrupt=(4, 2, 3))
    assert r.options.bench == "lib"
    assert r.mismatches == 1
    m = r.first_mismatch
    assert (m.tile, m.row, m.column, m.got) == (4, 2, 3, m.expected - 1)
    assert r.tile_cycles[4].r_first <= m.cycle <= r.tile_cycles[4].r_last

    def run_cosim(tiles, cfg, options, *, m_rows=None, progress=None):    # a wrong model
        stimulus = sim.random_tiles(np.random.default_rng(options.seed), cfg.rows, cfg.cols,
                                    tiles, m_rows=m_rows)
        return sim.run_tiles(stimulus, cfg, options, corrupt=(0, 1, 2), progress=progress)

    from rf8hw.cli import main

    monkeypatch.setattr(sim, "run_cosim", run_cosim)
    status = main(["cosim", "--rows", "4", "--cols", "4", "--acc-bits", "27", "--tiles", "3",
                   "--seed", "1", "--cache-dir", str(cosim_cache), "--out-dir", str(tmp_path / "c")])
    out, err = capsys.readouterr()
    assert status == 1
    assert "FIRST MISMATCH: tile=0 row=1 column=2 expected=" in err
    assert re.search(r"tiles=3 macs=\d+ mismatches=1 cycles=\d+ cycles/s=\d+$", out.strip()), out


@pytest.mark.slow
def test_sigterm_during_a_lib_run_is_one_line(cosim_cache, tmp_path):
    """SIGTERM while the library bench runs (in the CLI's own process, between two batches):
    exit 143, one line, no result.json."""
    proc = subprocess.Popen([sys.executable, "-m", "rf8hw", "cosim", "--rows", "4", "--cols", "4",
                             "--acc-bits", "27", "--tiles", "100000", "--m-rows", "40", "--seed",
                             "1", "--cache-dir", str(cosim_cache)], cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    run_dir, deadline = None, time.monotonic() + 600
    while run_dir is None and time.monotonic() < deadline and proc.poll() is None:
        logs = list((tmp_path / "cosim_runs").glob("*/sim.log"))
        if logs and "running the library bench" in logs[0].read_text(errors="replace"):
            run_dir = logs[0].parent
        time.sleep(0.2)
    assert run_dir is not None, proc.stderr.read() if proc.poll() is not None else "no sim.log"
    assert "-verilator-lib-" in run_dir.name
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert err.strip().splitlines() == ["rf8hw cosim: interrupted (signal 15); the simulator was "
                                        "stopped"], err
    assert not (run_dir / "result.json").exists()
