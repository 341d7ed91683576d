"""cocotb co-simulation of the generated Verilog against golden.matmul, on Verilator and Icarus.

Builds are shared by the whole session (``cosim_cache``, tests/sim/conftest.py), so each
configuration is generated and compiled once.  Verilator runs one 4 x 4 configuration (acc_bits
27, wrap: an HDL-bench build costs 30-100 s of C++, so every Verilator test of tests/sim shares
it); Icarus builds in about a second, so it runs every other
configuration, 8 x 8 included.  The HDL bench (the default) runs them all; tests/sim/
test_hdlbench.py compares it with the Python bench.
"""

import re
from pathlib import Path

import numpy as np
import pytest

from rf8hw import sim
from rf8hw.arch import ArrayConfig, Timing, rf8_kinds
from rf8hw.format import golden
from rf8hw.sim import CosimOptions

# (simulator, rows, cols, acc_bits, overflow, pe): acc_bits 27 is the narrowest accumulator for
# int8 activations, so the 'overflow' tiles of random_tiles really overflow it.  pe None: the
# default kind (ArrayConfig.pe); the reference RF8PE and the active-high reset variant once each.
RANDOM_CONFIGS = [
    ("verilator", 4, 4, 27, "wrap", None),
    ("icarus", 4, 4, 27, "wrap", None),
    ("icarus", 4, 4, 27, "saturate", None),
    ("icarus", 4, 4, 27, "saturate", "rf8"),
    ("icarus", 8, 8, 27, "wrap", None),
    ("icarus", 8, 8, 27, "saturate", None),
]


def config_id(cfg):
    s, r, c, a, o, pe = cfg
    return f"{s}-{r}x{c}-acc{a}-{o}" + (f"-{pe}" if pe else "")


def exact_sums(tiles):
    """Column sums with unbounded integers (no accumulator): differ from golden where it overflowed."""
    return [a.astype(object) @ golden.weight_int(codes).astype(object) for codes, a in tiles]


@pytest.mark.slow
def test_exhaustive_all_65536_products_through_the_rtl(cosim_cache, tmp_path):
    """Every (int8 activation, code) pair is computed alone by the array and equals golden.product
    (Verilator; Icarus runs the same RTL through every other test)."""
    rows = cols = 4
    tiles = sim.exhaustive_tiles(rows, cols)
    assert len(sim.exhaustive_pairs(tiles)) == 256 * 256
    options = CosimOptions(simulator="verilator", stall_prob=0.05, seed=3, cache_root=cosim_cache,
                           out_dir=tmp_path)
    r = sim.run_tiles(tiles, ArrayConfig(rows, cols, acc_bits=27), options, keep_results=True)
    assert r.mismatches == 0, r.first_mismatch
    assert r.rows_checked == sum(len(a) for _, a in tiles)
    # Second, independent oracle: each result is the single product of its pair.
    checked = 0
    for t, (codes, a) in enumerate(tiles):
        got = r.results[t]
        k = np.arange(len(a)) % rows
        x = a[np.arange(len(a)), k]
        want = golden.product(x[:, None], codes[k, :])
        bad = np.flatnonzero((got != want).any(axis=1))
        assert not len(bad), f"tile {t}: first bad row {bad[:1]}"
        checked += want.size
    assert checked == len(tiles) * 256 * rows * cols    # 65,536 pairs x rows (each pair once per k)


@pytest.mark.slow
@pytest.mark.parametrize("cfg", RANDOM_CONFIGS, ids=[config_id(c) for c in RANDOM_CONFIGS])
def test_random_tiles_with_stalls_on_every_stream(cfg, cosim_cache, tmp_path):
    """Random tiles (overflowing ones included), idle inputs and output backpressure."""
    simulator, rows, cols, acc_bits, overflow, pe = cfg
    rng = np.random.default_rng(rows * 100 + len(overflow))
    # Tiles up to M = 3 * rows, longer than the fill latency rows + cols: results back up while
    # the tile's own activations still stream in.  The consumer is slower than the producers, so
    # the 2-row output FIFO fills and stalls the array (in weight and in activation phases).
    tiles = sim.random_tiles(rng, rows, cols, 20, m_rows=(1, 3 * rows))
    cfg = ArrayConfig(rows, cols, acc_bits=acc_bits, overflow=overflow,
                      **({"pe": pe} if pe else {}))
    r = sim.run_tiles(tiles, cfg, CosimOptions(simulator=simulator, stall_prob=0.2,
                                               backpressure_prob=0.6, seed=5,
                                               cache_root=cosim_cache, out_dir=tmp_path))
    assert r.build.config == cfg and r.build.manifest.config.pe == cfg.pe
    assert r.mismatches == 0, r.first_mismatch
    assert r.rows_checked == sum(len(a) for _, a in tiles)
    assert r.tiles == len(tiles) and r.err_w_tlast == 0
    expected = [golden.matmul(a, c, acc_bits, overflow, impl="loop") for c, a in tiles]
    assert any(np.any(e != s) for e, s in zip(expected, exact_sums(tiles))), \
        "no tile overflowed the accumulator: the overflow rule was not exercised"
    recs = r.tile_cycles
    # stalls happened on every stream, and backpressure reached the activation input
    assert sum(x.w_idle for x in recs) and sum(x.a_idle for x in recs)
    assert sum(x.out_stall for x in recs)
    assert sum(x.w_not_ready for x in recs) and sum(x.a_not_ready for x in recs)
    for x in recs:   # every cycle of a phase is a handshake, a not-ready cycle or an idle cycle
        assert x.weight_load == rows + x.w_not_ready + x.w_idle, x
        assert x.compute == x.m_rows + x.a_not_ready + x.a_idle, x


# All on Icarus: Verilator's elaboration of every edge shape (the zero-width counters it once
# refused) is checked by `verilator --lint-only -Wall` in tests/hdl/test_generate.py, without a
# C++ build of its own here.
EDGE_CONFIGS = [("icarus", 1, 1), ("icarus", 2, 2), ("icarus", 1, 2), ("icarus", 2, 1),
                ("icarus", 1, 7), ("icarus", 7, 1)]


@pytest.mark.slow
@pytest.mark.parametrize("cfg", EDGE_CONFIGS, ids=[f"{s}-{r}x{c}" for s, r, c in EDGE_CONFIGS])
def test_edge_shapes_cosimulate_with_stalls(cfg, cosim_cache, tmp_path):
    """rows == 1 and cols <= 2 (once zero-width counters) co-simulate bit-exactly with idle inputs
    and backpressure (Icarus under -g2012, cocotb's default)."""
    simulator, rows, cols = cfg
    tiles = sim.random_tiles(np.random.default_rng(rows * 10 + cols), rows, cols, 12,
                             m_rows=(1, 3 * rows + 2))
    r = sim.run_tiles(tiles, ArrayConfig(rows, cols, acc_bits=27),
                      CosimOptions(simulator=simulator, stall_prob=0.2, backpressure_prob=0.5,
                                   seed=2, cache_root=cosim_cache, out_dir=tmp_path))
    assert r.mismatches == 0, r.first_mismatch
    assert r.rows_checked == sum(len(a) for _, a in tiles) and r.tiles == len(tiles)
    assert sum(x.out_stall for x in r.tile_cycles)


RESET_CASES = [("verilator", "aresetn"), ("icarus", "aresetn"), ("icarus", "rst")]


@pytest.mark.slow
@pytest.mark.parametrize("simulator, reset", RESET_CASES, ids=[f"{s}-{r}" for s, r in RESET_CASES])
def test_reset_mid_tile_then_clean_tile(simulator, reset, cosim_cache, tmp_path):
    """Reset (the default active-low aresetn, or the active-high rst variant) in the middle of
    tile 0's activations: its results never appear; the next tile is exact."""
    rows = cols = 4
    rng = np.random.default_rng(9)
    tiles = sim.random_tiles(rng, rows, cols, 3, m_rows=8)
    # full rate: tile 0's weights are accepted at cycles 1..rows, its activations from rows+1 on
    reset_at = rows + 1 + 4
    cfg = ArrayConfig(rows, cols, acc_bits=27, reset=reset)
    options = CosimOptions(simulator=simulator, stall_prob=0.0, seed=1, cache_root=cosim_cache,
                           out_dir=tmp_path)
    r = sim.run_tiles(tiles, cfg, options, reset_at_cycle=reset_at, tiles_after_reset=1,
                      keep_results=True)
    assert (r.build.module, r.build.config.reset) == (cfg.module_name, reset)
    assert r.build.module.endswith("_rst") == (reset == "rst")
    assert r.dropped_tiles == (0, 1)
    assert r.mismatches == 0, r.first_mismatch     # an interrupted-tile row would count
    assert list(r.results) == [2]
    codes, a = tiles[2]
    assert np.array_equal(r.results[2], golden.matmul(a, codes, 27, "wrap"))
    assert [x.tile for x in r.tile_cycles] == [2]
    assert r.tile_cycles[0].w_first == 1      # cycle numbering restarts after reset


@pytest.mark.slow
def test_gemm_full_rate_cycles_follow_the_timing_formulas(cosim_cache, tmp_path):
    """Ragged GEMM at full rate: per-tile cycles equal docs/architecture.md's formulas, and the
    tile results assemble to golden.matmul of the whole GEMM."""
    rows = cols = 4
    M, K, N = 6, 10, 7                     # K and N not multiples of the array size
    cfg = ArrayConfig(rows, cols, acc_bits=27)
    r = sim.run_gemm(M, K, N, cfg, CosimOptions(simulator="verilator", stall_prob=0, seed=4,
                                                cache_root=cosim_cache, out_dir=tmp_path))
    assert r.mismatches == 0, r.first_mismatch
    assert len(r.tile_cycles) == 3 * 2 and len(r.gemms) == 1
    rng = np.random.default_rng(4)
    a = rng.integers(-128, 128, size=(M, K))
    codes = rng.integers(0, 256, size=(K, N), dtype=np.uint8)
    assert np.array_equal(r.gemms[0].gemm, golden.matmul(a, codes, 27, "wrap"))
    assert r.gemms[0].gemm_shape == (M, K, N) and r.gemms[0].tile_cycles == r.tile_cycles
    t = Timing(cfg)
    recs = r.tile_cycles
    for i, x in enumerate(recs):
        assert (x.weight_load, x.compute, x.drain) == (rows, M, t.latency), x
        assert x.r_first - x.a_first == t.latency, x
        assert x.w_not_ready == x.w_idle == x.a_not_ready == x.a_idle == 0
        assert x.out_stall == 0
        if i:   # double buffering: these weights streamed in while the previous tile computed
            assert x.w_first == recs[i - 1].a_first + 1, (recs[i - 1], x)
            assert x.a_first - recs[i - 1].a_first == t.tile_period(M), (recs[i - 1], x)
        else:
            assert x.w_last + 1 == x.a_first
    assert recs[0].w_first == 1
    assert r.cycles == recs[-1].r_last + 1


@pytest.mark.slow
def test_several_gemms_in_one_run_each_start_on_an_empty_array(cosim_cache, tmp_path):
    """run_gemms: three GEMMs (two ragged) in one Icarus run; each GEMM's handshakes, counted from
    its first weight beat, are the cycle model's schedule of that GEMM alone, its span is
    gemm_cycles, and its assembled result is golden.matmul."""
    from rf8hw.accel.cycles import gemm_cycles, tile_schedule

    cfg = ArrayConfig(4, 3, acc_bits=27)
    rng = np.random.default_rng(6)
    shapes = [(3, 5, 7), (5, 4, 3), (1, 9, 4)]
    gemms = [(rng.integers(-128, 128, size=(M, K)), rng.integers(0, 256, size=(K, N), dtype=np.uint8))
             for M, K, N in shapes]
    options = CosimOptions(simulator="icarus", bench="python", stall_prob=0,
                           cache_root=cosim_cache, out_dir=tmp_path)
    r = sim.run_gemms(gemms, cfg, options)
    assert r.mismatches == 0 and len(r.gemms) == 3
    keys = ("w_first", "w_last", "a_first", "a_last", "r_first", "r_last")
    previous_end = -1
    for (M, K, N), (a, codes), g in zip(shapes, gemms, r.gemms):
        recs = g.tile_cycles
        t0 = recs[0].w_first
        assert t0 > previous_end + 1          # offered only after the GEMM before it was done
        assert [{k: getattr(x, k) - t0 for k in keys} for x in recs] == tile_schedule(
            [M] * len(recs), cfg)
        assert recs[-1].r_last - t0 + 1 == gemm_cycles(M, K, N, cfg).cycles
        assert np.array_equal(g.gemm, golden.matmul(a, codes, 27, "wrap"))
        previous_end = recs[-1].r_last
    with pytest.raises(ValueError, match=r"groups must be tile counts summing to the 2 tiles"):
        sim.run_tiles(sim.random_tiles(rng, 4, 3, 2), cfg, CosimOptions(cache_root=tmp_path),
                      groups=[1])


SUMMARY = re.compile(r"^tiles=(\d+) macs=(\d+) mismatches=(\d+) cycles=(\d+) cycles/s=(\d+)$")


def run_cli(capsys, *args):
    from rf8hw.cli import main

    status = main(["cosim", *args])
    out, err = capsys.readouterr()
    return status, out.strip().splitlines(), err


@pytest.mark.slow
def test_cli_summary_line_and_success(capsys, cosim_cache, tmp_path):
    status, lines, _ = run_cli(capsys, "--rows", "4", "--cols", "4", "--tiles", "6", "--seed", "3",
                               "--sim", "icarus", "--acc-bits", "27", "--stall-prob", "0.2",
                               "--cache-dir", str(cosim_cache), "--out-dir", str(tmp_path))
    assert status == 0
    match = SUMMARY.match(lines[-1])
    assert match, lines[-1]
    tiles, macs, mismatches = map(int, match.groups()[:3])
    assert (tiles, macs, mismatches) == (6, 6 * 4 * 16, 0)
    assert any(line.startswith("cycle accounting: ") and line.endswith("cycles.json")
               for line in lines)


@pytest.mark.slow
def test_cli_exits_nonzero_and_names_the_first_mismatch(capsys, cosim_cache, tmp_path, monkeypatch):
    """With a wrong model (corrupt expected value) the command exits 1 and names the mismatch."""
    def run_cosim(tiles, cfg, options, *, m_rows=None, progress=None):    # a wrong model
        stimulus = sim.random_tiles(np.random.default_rng(options.seed), cfg.rows, cfg.cols,
                                    tiles, m_rows=m_rows)
        return sim.run_tiles(stimulus, cfg, options, corrupt=(0, 1, 2), progress=progress)

    monkeypatch.setattr(sim, "run_cosim", run_cosim)
    status, lines, err = run_cli(capsys, "--rows", "4", "--cols", "4", "--tiles", "2", "--seed",
                                 "1", "--sim", "icarus", "--acc-bits", "27",
                                 "--cache-dir", str(cosim_cache), "--out-dir", str(tmp_path))
    assert status == 1
    assert "FIRST MISMATCH: tile=0 row=1 column=2 expected=" in err
    assert SUMMARY.match(lines[-1]).group(3) == "1"


@pytest.mark.parametrize("args, message", [
    (["--stall-prob", "1"], r"stall_prob must be a number in \[0, 0\.99999\].*not 1\.0"),
    (["--stall-prob", "-0.5"], r"stall_prob must be a number in \[0, 0\.99999\].*not -0\.5"),
    (["--stall-prob", "0.9999999"], r"stall_prob must be a number in \[0, 0\.99999\] \(.*at most "
                                    r"0\.99999, where the bench's 32-bit watchdog still fits\), "
                                    r"not 0\.9999999$"),
    # negative numbers argparse took for options ("expected one argument") reach the range check
    (["--stall-prob", "-inf"], r"stall_prob must be a number in \[0, 0\.99999\].*not -inf$"),
    (["--stall-prob", "-1e-3"], r"stall_prob must be a number in \[0, 0\.99999\].*not -0\.001$"),
    (["--backpressure-prob", "-NaN"], r"backpressure_prob must be a number in .*not nan$"),
    (["--backpressure-prob", "1.5"], r"backpressure_prob must be a number in \[0, 0\.99999\].*not 1\.5"),
    (["--bench", "vhdl"], r"bench must be one of 'hdl', 'python', 'lib', not 'vhdl'"),
    (["--sim", "modelsim"], r"simulator must be one of 'verilator', 'icarus', not 'modelsim'"),
    (["--rows", "0"], r"rows must be an integer in 1\.\.64, not 0"),
    (["--tiles", "0"], r"tiles must be an integer in 1\.\.1000000 .*, not 0"),
    (["--acc-bits", "20"], r"acc_bits must be an integer in 27\.\."),
    (["--rows", None], r"--rows required \(or --rtl FILE\.v\)"),
])
def test_cli_bad_input_is_one_clear_error(capsys, args, message):
    base = {"--rows": "4", "--cols": "4", "--tiles": "2", "--seed": "0", "--sim": "icarus"}
    for flag, value in zip(args[::2], args[1::2]):
        base[flag] = value
    status, _, err = run_cli(capsys, *[x for k, v in base.items() if v is not None for x in (k, v)])
    assert status == 2
    assert re.search(message, err), err
    assert len(err.strip().splitlines()) == 1, err


@pytest.mark.parametrize("args, message", [
    (["--overflow", "clamp"], r"--overflow: invalid choice: 'clamp'"),
    (["--pe", "int8"], r"--pe: invalid choice: 'int8'"),       # the RF8 PE kinds only
])
def test_cli_choices_come_from_array_config(capsys, args, message):
    with pytest.raises(SystemExit) as exc:
        run_cli(capsys, "--rows", "4", "--cols", "4", "--tiles", "2", "--seed", "0", *args)
    assert exc.value.code == 2
    assert re.search(message, capsys.readouterr().err)


def test_non_rf8_pe_kinds_are_refused_before_anything_runs(tmp_path):
    """The testbench's golden model is RF8: an INT8 or FP8 array cannot be checked by it."""
    options = CosimOptions(simulator="icarus", cache_root=tmp_path)
    for pe in ("int8", "fp8_e4m3"):
        with pytest.raises(ValueError, match=rf"PE kind '{pe}' has weight format"):
            sim.prepare(ArrayConfig(2, 2, pe=pe), options)
    with pytest.raises(ValueError, match="RF8 products only"):
        sim.run_cosim(1, ArrayConfig(2, 2, pe="int8_dsp"), options)
    with pytest.raises(TypeError, match="cfg must be an ArrayConfig"):
        sim.run_tiles([], {"rows": 2, "cols": 2}, options)
    with pytest.raises(TypeError, match="options must be a CosimOptions"):
        sim.run_cosim(1, ArrayConfig(2, 2), {"simulator": "icarus"})
    assert not any(tmp_path.iterdir())


def test_options_are_checked_once_when_made(tmp_path):
    """CosimOptions refuses every bad field on construction, in the words of rf8hw.checks; the
    entry points take the object as it is."""
    for kwargs, message in [
        ({"simulator": "modelsim"}, r"^simulator must be one of 'verilator', 'icarus', not 'modelsim'$"),
        ({"bench": "vhdl"}, r"^bench must be one of 'hdl', 'python', 'lib', not 'vhdl'$"),
        ({"stall_prob": 1}, r"^stall_prob must be a number in \[0, 0\.99999\] .*, not 1$"),
        ({"stall_prob": 0.9999999}, r"^stall_prob must be a number in \[0, 0\.99999\] .*, "
                                    r"not 0\.9999999$"),
        ({"backpressure_prob": "x"}, r"^backpressure_prob must be a number in \[0, 0\.99999\] .*, "
                                     r"not 'x'$"),
        ({"seed": -1}, r"^seed must be an integer in 0\.\.9223372036854775807, not -1$"),
        ({"seed": 1.5}, r"^seed must be an integer"),
        ({"waves": "yes"}, r"^waves must be True or False, not 'yes'$"),
        ({"out_dir": tmp_path / "f" / "run"}, r"^out_dir '.*f/run': '.*f' is not a directory$"),
        ({"cache_root": tmp_path / "f"}, r"^cache_root '.*f' exists and is not a directory$"),
        ({"rtl": tmp_path / "none.v"}, r"none\.v: cannot read the Verilog file"),
    ]:
        (tmp_path / "f").write_text("a file")
        with pytest.raises(ValueError, match=message):
            CosimOptions(**kwargs)
    options = CosimOptions(stall_prob=0.25, out_dir=tmp_path / "run")
    assert options.backpressure == 0.25 and options.out_dir == str(tmp_path / "run")
    assert CosimOptions(backpressure_prob=0.5).backpressure == 0.5


def test_one_run_directory_rule(tmp_path, monkeypatch):
    """Without out_dir: a new directory below ./cosim_runs named after every parameter, unique
    per call; with out_dir: that directory (absolute)."""
    monkeypatch.chdir(tmp_path)
    options = CosimOptions(simulator="icarus", stall_prob=0.2, seed=3)
    first, second = (options.run_dir("m", "tiles4-m2") for _ in range(2))
    assert first != second and first.parent == second.parent == tmp_path / sim.RUNS_DIR
    assert first.name.startswith("m-icarus-hdl-tiles4-m2-stall0.2-bp0.2-seed3-")
    assert options.run_dir_name("m", "layer-pkg.mod:fn-0.fc") == (
        "m-icarus-hdl-layer-pkg.mod_fn-0.fc-stall0.2-bp0.2-seed3")
    assert CosimOptions(out_dir="here").run_dir("m", "x") == tmp_path / "here"


@pytest.mark.parametrize("kwargs, message", [
    ({}, r"^tiles is required \(random tiles\), or layer and model"),
    ({"layer": "fc1"}, r"^layer and model go together \(a model's layer\), not layer='fc1' with model=None$"),
    ({"model": "mlp_digits"}, r"^layer and model go together"),
    ({"layer": "fc1", "model": "mlp_digits", "tiles": 3}, r"^tiles is for random tiles; layer 'fc1'"),
    ({"layer": "fc1", "model": "mlp_digits", "m_rows": 3}, r"^m_rows is for random tiles"),
])
def test_request_rules_hold_for_the_api_too(kwargs, message):
    """The rules between rf8hw cosim's options live in CosimRequest, with the same words for the
    command line and the Python API."""
    with pytest.raises(ValueError, match=message):
        sim.CosimRequest(**kwargs)
    assert sim.CosimRequest(tiles=2).is_layer is False
    assert sim.CosimRequest(layer="fc1", model="mlp_digits").is_layer


def test_missing_simulator_is_named(monkeypatch):
    monkeypatch.setattr("shutil.which", lambda name: None)
    with pytest.raises(FileNotFoundError, match=r"iverilog not found on PATH"):
        sim.check_simulator("icarus")


@pytest.mark.slow
def test_cli_from_another_directory_with_waves(cosim_cache, tmp_path):
    """As a user runs it: a subprocess in an unrelated directory; --waves writes and names a file."""
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "rf8hw", "cosim", "--rows", "4", "--cols", "4",
                          "--tiles", "2", "--seed", "5", "--sim", "icarus", "--acc-bits", "27",
                          "--waves", "--cache-dir", str(cosim_cache)],
                         cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.strip().splitlines()
    assert SUMMARY.match(lines[-1]), lines
    waves = [ln.split(": ", 1)[1] for ln in lines if ln.startswith("waveform: ")]
    assert len(waves) == 1 and waves[0].endswith(".fst")
    assert Path(waves[0]).is_file() and Path(waves[0]).stat().st_size > 0
    assert Path(waves[0]).is_relative_to(tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("bench", ["hdl", "python"])
def test_icarus_in_a_directory_with_non_ascii_characters(bench, cosim_cache, tmp_path):
    """Issue 26, item 4: on Icarus a run below a folder named with non-ASCII characters ended
    "without a result" (r.hex never written: Icarus' $writememh refuses such a file name).  The
    simulator is given paths relative to the run directory, its working directory; a subprocess
    run from "café dir" (an é and a space), waves on, completes with 0 mismatches.  The Python
    bench's run also takes a relative cache directory with non-ASCII characters ("cäche dir":
    its build directory is made absolute, as the simulator runs in the run directory)."""
    import subprocess
    import sys

    where = tmp_path / "café dir"
    where.mkdir()
    cache = str(cosim_cache) if bench == "hdl" else "cäche dir"
    out = subprocess.run([sys.executable, "-m", "rf8hw", "cosim", "--rows", "2", "--cols", "2",
                          "--tiles", "3", "--seed", "4", "--sim", "icarus", "--bench", bench,
                          "--waves", "--cache-dir", cache],
                         cwd=where, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout + out.stderr
    lines = out.stdout.strip().splitlines()
    assert SUMMARY.match(lines[-1]).group(3) == "0", lines
    run_dir = Path(next(ln.split(": ", 1)[1] for ln in lines if ln.startswith("run directory: ")))
    assert run_dir.is_relative_to(where) and (run_dir / "result.json").is_file()
    waves = Path(next(ln.split(": ", 1)[1] for ln in lines if ln.startswith("waveform: ")))
    assert waves.parent == run_dir and waves.stat().st_size > 0


@pytest.mark.slow
def test_first_build_is_announced_with_progress_then_reused(cosim_cache, tmp_path, monkeypatch):
    """The first run of a configuration says that it generates the Verilog and builds the model,
    with a line every BUILD_TICK_S seconds of the build (issue 26: the first Verilator cosim
    printed nothing for a minute); the next run reuses both and says nothing (build_s None)."""
    from rf8hw.sim import build

    monkeypatch.setattr(build, "BUILD_TICK_S", 0.02)
    cfg, lines = ArrayConfig(1, 3, acc_bits=27), []
    options = CosimOptions(simulator="icarus", cache_root=tmp_path / "cache")
    first = sim.prepare(cfg, options, progress=lines.append)
    assert lines[0].startswith(f"generating the Verilog of {cfg.module_name} into the cache ")
    assert lines[1].startswith(f"building the icarus model of {cfg.module_name} for the hdl bench "
                               f"(seconds; once: later runs reuse it from the cache ")
    assert all(re.fullmatch(r"\[build\] \d+ s", line) for line in lines[2:]), lines
    assert first.build_s is not None and first.build_s > 0
    again = []
    second = sim.prepare(cfg, options, progress=again.append)
    assert again == [] and second.build_s is None and second.build_dir == first.build_dir


def test_a_full_disk_leaves_no_run_directory(tmp_path, monkeypatch, capsys):
    """Issue 26: a full disk while a run's files are written left a lone job.json (and a
    traceback).  job.json and tiles.npz are written as one unit; on failure the run directory the
    run made is removed (cosim_runs/ too when left empty), a given --out-dir is left without
    them, and the command says so in one line naming the directory (exit 2).  The simulator is
    never started (the build is stubbed: this is about the run's own files)."""
    import errno

    from rf8hw.cli import main
    from rf8hw.sim import run as sim_run

    rtl = Path(__file__).resolve().parents[2] / "rtl" / f"{ArrayConfig(4, 4).module_name}.v"
    design = sim.load_rtl(rtl)
    monkeypatch.setattr(sim_run, "prepare", lambda cfg, options, progress=None: sim.Build(
        "icarus", "hdl", False, tmp_path / "build", design))
    import subprocess

    def no_simulator(*args, **kwargs):
        raise AssertionError("the simulator was started")
    monkeypatch.setattr(subprocess, "Popen", no_simulator)
    real = Path.write_bytes

    def write_bytes(self, data):
        if "tiles.npz" in self.name:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(self, data)
    monkeypatch.setattr(Path, "write_bytes", write_bytes)
    monkeypatch.chdir(tmp_path)
    argv = ["cosim", "--rtl", str(rtl), "--tiles", "2", "--seed", "1", "--sim", "icarus"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert re.fullmatch(r"rf8hw cosim: error: No space left on device; the run's job\.json and "
                        r"tiles\.npz were not written and its directory was removed: "
                        rf"{re.escape(str(tmp_path))}/cosim_runs/{design.module}-icarus-hdl-"
                        r"tiles2-m4-stall0\.1-bp0\.1-seed1-\w+\n", err), err
    assert not (tmp_path / "cosim_runs").exists()
    given = tmp_path / "mine"
    given.mkdir()
    assert main([*argv, "--out-dir", str(given)]) == 2
    err = capsys.readouterr().err
    assert err == (f"rf8hw cosim: error: No space left on device; the run's job.json and "
                   f"tiles.npz were not written: {given}\n")
    assert sorted(p.name for p in given.iterdir()) == [".lock"]


@pytest.mark.slow
@pytest.mark.parametrize("pe", rf8_kinds())
def test_narrow_activations_on_every_rf8_kind(pe, cosim_cache, tmp_path):
    """act_bits 2 and 3 (the narrowest accumulator each) on a 1x1 array of each RF8 kind, full
    rate, 20 random tiles.  The issue-26 probes found rf8_lean and rf8_pipe (the default kind)
    returning wrong values here (e.g. expected=589824 got=196608 at act_bits 2): a sign fill
    narrower than the fraction, fixed in the RTL and pinned PE by PE in tests/hdl/test_pe.py."""
    for act_bits in (2, 3):
        cfg = ArrayConfig(1, 1, act_bits=act_bits, acc_bits=act_bits + 19, pe=pe)
        r = sim.run_cosim(20, cfg, CosimOptions(simulator="icarus", stall_prob=0.0, seed=1,
                                                cache_root=cosim_cache,
                                                out_dir=tmp_path / f"a{act_bits}"))
        assert r.mismatches == 0, (act_bits, r.first_mismatch)
