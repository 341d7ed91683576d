"""Memory-aware cycle model vs the co-simulation throttled to the same memory, on MiniLM's GEMMs.

For each program (a MiniLM GEMM, or Q/K/V sharing one loaded input) and each memory (a built-in
profile at an accelerator clock, or a user bandwidth), the input streams of the generated
Verilog (:func:`rf8hw.sim.accel_cosim.run_accel_cosim`, Verilator by default) are throttled to
the memory's arrival pattern (:func:`rf8hw.accel.accel_cycles.stream_arrivals`: one byte sequence
at the profile's bytes per cycle, every producer holding ``tvalid`` low until its beat's bytes
are there), and the simulated cycles are compared with the model's
(:func:`rf8hw.accel.accel_cycles.accel_schedule` with the same arrivals):

* every command handshake, streamed activation and result beat at the model's cycle, every result
  equal to the post-processing rule;
* cycles = max(last result beat seen in simulation, last byte of the memory's sequence, result
  write-back included) + 1, against the model's: the ratio model / co-simulation (goal: within
  2 %).

``--scale S`` divides M, K and N by S (same ratios; the full shapes, S = 1, run 0.3-2 M cycles each).

Run: ``nice .venv/bin/python benchmarks/bench_accel_memory.py [--scale 1] [--simulator verilator]
[--programs q,ffn_up,ffn_down] [--clock-mhz 47.5] [--profiles ulx3s-sdram] [--bandwidths 0.03]
[--out docs/accel_memory.json]``; exits 1 if anything differs.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rf8hw.accel.accel_cycles import accel_schedule, stream_arrivals  # noqa: E402
from rf8hw.accel.memory import PROFILES, resolve  # noqa: E402
from rf8hw.arch import AccelConfig, ArrayConfig  # noqa: E402

#: all-MiniLM-L6-v2 at 128 tokens: programs of (M, K, N, load) commands
PROGRAMS = {"q": [(128, 384, 384, 1)], "qkv": [(128, 384, 384, 1), (128, 384, 384, 0), (128, 384, 384, 0)],
            "ffn_up": [(128, 384, 1536, 1)], "ffn_down": [(128, 1536, 384, 1)]}


def jobs_of(acfg, cmds, seed):
    from rf8hw.sim.accel_stimulus import accel_job, random_gemm

    rng = np.random.default_rng(seed)
    jobs, a0 = [], None
    for M, K, N, load in cmds:
        a, codes, bias, mult, shift = random_gemm(rng, acfg, M, K, N)
        if load:
            a0 = a
        jobs.append(accel_job(acfg, a0, codes, bias, mult, shift, load=load))
    return jobs


def run(args, save=None) -> tuple[list[dict], int]:
    from rf8hw.sim.accel_cosim import run_accel_cosim

    s = args.scale
    array = ArrayConfig(8, 8)
    acfg = AccelConfig(array, max_m=128 // s, max_k=1536 // s)
    memories = [(p, resolve(p)) for p in args.profiles] + [(f"{b:g} GB/s", resolve(None, b))
                                                           for b in args.bandwidths]
    rows, bad = [], 0
    for name in args.programs:
        cmds = [(M // s, K // s, N // s, load) for M, K, N, load in PROGRAMS[name]]
        jobs = jobs_of(acfg, cmds, [args.seed, len(rows)])
        want = np.concatenate([j.expected for j in jobs])
        full = accel_schedule(cmds, acfg)
        for label, prof in memories:
            rate = prof.rate(args.clock_mhz)
            b = rate.bytes_per_cycle
            arr = stream_arrivals(cmds, acfg, rate)
            sched = accel_schedule(cmds, acfg, arrivals=arr)
            model = max(sched[-1]["out_last"], arr["end"]) + 1
            t0 = time.perf_counter()
            r = run_accel_cosim(acfg, jobs, simulator=args.simulator, work_dir=args.work,
                                seed=len(rows), arrivals=arr, max_cycles=model + 2000)
            wall = time.perf_counter() - t0
            R = array.rows
            want_a = [row for c, sc in zip(cmds, sched) if c[3]
                      for t in sc["tiles"][:-(-c[1] // R)] for row in _rows(t)]
            checks = {
                "results": bool(np.array_equal(r["results"], want)),
                "cmd": r["cmd_cycles"] == [x["cmd"] for x in sched],
                "a": r["a_cycles"] == want_a,
                "out": r["out_cycles"] == [c for x in sched for c in x["out"]],
            }
            cosim = max(r["out_cycles"][-1] if r["out_cycles"] else 0, arr["end"]) + 1
            ok = all(checks.values()) and cosim == model
            bad += not ok
            row = {"program": name, "commands": [list(c) for c in cmds], "memory": label,
                   "clock_mhz": args.clock_mhz, "bytes_per_cycle": float(rate.bytes_per_cycle),
                   "bytes_per_cycle_exact": f"{b.numerator}/{b.denominator}",
                   "latency_cycles": rate.latency, "full_rate_cycles": full[-1]["out_last"] + 1,
                   "model_cycles": model, "cosim_cycles": cosim, "ratio": model / cosim,
                   "model_last_result": sched[-1]["out_last"],
                   "cosim_last_result": r["out_cycles"][-1] if r["out_cycles"] else None,
                   "memory_end": arr["end"], "checks": checks, "ok": ok, "wall_s": round(wall, 1)}
            rows.append(row)
            if save is not None:
                save(rows, bad)                       # after every run: a long one keeps what it has
            print(f"{name:9s} {label:22s} {float(rate.bytes_per_cycle):7.3f} B/cycle  full rate "
                  f"{row['full_rate_cycles']:>9,}  model {model:>9,}  co-sim {cosim:>9,}  ratio "
                  f"{row['ratio']:.6f}  {'ok' if ok else 'DIFFERS ' + str(checks)}  {wall:.0f} s",
                  flush=True)
    return rows, bad


def _rows(tile):
    return range(tile["a_first"], tile["a_last"] + 1) if "rows" not in tile else tile["rows"]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", type=int, default=1, choices=(1, 2, 4, 8))
    ap.add_argument("--simulator", default="verilator", choices=("verilator", "icarus"))
    ap.add_argument("--programs", default="q,ffn_up,ffn_down",
                    type=lambda t: [x for x in t.split(",") if x])
    ap.add_argument("--profiles", default="ulx3s-sdram", type=lambda t: [x for x in t.split(",") if x])
    ap.add_argument("--bandwidths", default="0.03", type=lambda t: [float(x) for x in t.split(",") if x])
    ap.add_argument("--clock-mhz", type=float, default=47.5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--work", default="/tmp/rf8hw-bench-accel-memory")
    ap.add_argument("--out", default=str(ROOT / "docs" / "accel_memory.json"))
    args = ap.parse_args(argv)
    for p in args.programs:
        if p not in PROGRAMS:
            ap.error(f"--programs: {p!r} is not one of {', '.join(PROGRAMS)}")
    for p in args.profiles:
        if p not in PROFILES:
            ap.error(f"--profiles: {p!r} is not one of {', '.join(PROFILES)}")
    Path(args.work).mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()

    command = "benchmarks/bench_accel_memory.py " + " ".join(sys.argv[1:] if argv is None else argv)

    def save(rows, bad, done=False):
        out = {"what": "memory-aware cycle model vs co-simulation throttled to the same memory (MiniLM "
                       "GEMMs" + (f", M, K, N divided by {args.scale}" if args.scale > 1 else ", full shapes")
                       + ")", "array": "8x8 rf8_pipe", "simulator": args.simulator, "scale": args.scale,
               "complete": done, "rows": rows, "differ": bad,
               "worst_ratio_error": max(abs(r["ratio"] - 1) for r in rows),
               "wall_s": round(time.perf_counter() - t0, 1),
               "command": command}
        Path(args.out).write_text(json.dumps(out, indent=1) + "\n")
        return out

    rows, bad = run(args, save)
    out = save(rows, bad, done=True)
    print(f"{len(rows)} runs, {bad} differ; worst |model/co-sim - 1| = {out['worst_ratio_error']:.2e}; "
          f"wrote {args.out}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
