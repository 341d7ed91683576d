"""Accelerator cycle model vs the Amaranth simulation of its RTL, and its utilisation on MiniLM.

1. ``--random N`` random command programs (1-3 ragged GEMMs each, activation reuse included) on
   random arrays (1..6 x 1..6, PE kinds rf8 / rf8_pipe / rf8_lean, random buffer sizes and
   post-processing lane counts), simulated
   with :func:`rf8hw.sim.accel_pysim.simulate_accel` (full-rate producers, consumer always ready);
   every result beat is checked against the post-processing rule, and every command handshake,
   streamed activation and result beat's cycle against :func:`rf8hw.accel.accel_cycles.accel_schedule`.
   With one lane a result row takes ``cols`` cycles, so programs with ``ceil(K / rows) < cols``
   have the lanes as the bottleneck (the credit rule holds the array back).
2. The model on all-MiniLM-L6-v2's GEMMs at 128 tokens on an 8 x 8 array (``max_m=128``,
   ``max_k=1536``): per GEMM and per encoder layer (Q, K, V share their input: one loading command and
   two reusing it; the attention score products are not weight GEMMs and are left out).

Run: ``.venv/bin/python benchmarks/bench_accel_cycles.py [--random N] [--seed S] [--out FILE]``;
writes ``docs/accel_cycles.json`` by default; exits 1 if anything differs.
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

from rf8hw.accel.accel_cycles import accel_gemm_cycles, accel_schedule  # noqa: E402
from rf8hw.arch import AccelConfig, ArrayConfig  # noqa: E402

#: all-MiniLM-L6-v2 per encoder layer at 128 tokens: (name, M, K, N, load)
MINILM_LAYER = [("q", 128, 384, 384, 1), ("k", 128, 384, 384, 0), ("v", 128, 384, 384, 0),
                ("attn_out", 128, 384, 384, 1), ("ffn_up", 128, 384, 1536, 1),
                ("ffn_down", 128, 1536, 384, 1)]


def random_check(n: int, seed: int) -> tuple[list[dict], int]:
    from rf8hw.hdl.accel_axi import RF8AccelAxiTop
    from rf8hw.sim.accel_pysim import simulate_accel
    from rf8hw.sim.accel_stimulus import random_program

    rows, bad = [], 0
    for i in range(n):
        rng = np.random.default_rng([seed, i])
        R, C = int(rng.integers(1, 7)), int(rng.integers(1, 7))
        pe = ("rf8", "rf8_pipe", "rf8_lean")[i % 3]
        acfg = AccelConfig(ArrayConfig(R, C, pe=pe), max_m=int(rng.integers(1, 17)),
                           max_k=int(rng.integers(1, 41)), post_lanes=int(rng.integers(1, C + 1)))
        jobs, cmds = random_program(rng, acfg, int(rng.integers(1, 4)))
        t0 = time.perf_counter()
        trace = simulate_accel(RF8AccelAxiTop(acfg), jobs, rng=rng)
        sched = accel_schedule(cmds, acfg)
        want = np.concatenate([j.expected for j in jobs])
        results_ok = bool(np.array_equal(np.array(trace.results), want))
        streamed = [row for s, (M, K, _, load) in zip(sched, cmds) if load
                    for tile in s["tiles"][:-(-K // R)]
                    for row in tile.get("rows", range(tile["a_first"], tile["a_first"] + M))]
        cycles_ok = (trace.cmd_cycles == [s["cmd"] for s in sched]
                     and trace.result_cycles[:len(want)] == [c for s in sched for c in s["out"]]
                     and trace.act_cycles == streamed)
        ragged = any(K % R or N % C for _, K, N, _ in cmds)
        bad += not (results_ok and cycles_ok)
        rows.append({"rows": R, "cols": C, "pe": pe, "max_m": acfg.max_m, "max_k": acfg.max_k,
                     "post_lanes": acfg.post_lanes,
                     "commands": [list(c) for c in cmds], "ragged": ragged,
                     "sim_last_beat": trace.result_cycles[len(want) - 1] if trace.result_cycles else None,
                     "model_last_beat": sched[-1]["out_last"], "results_equal": results_ok,
                     "cycles_equal": cycles_ok, "seconds": round(time.perf_counter() - t0, 2)})
        print(f"{i:4d} {R}x{C} {pe:9s} {cmds} results {'ok' if results_ok else 'DIFFER'} "
              f"cycles {'ok' if cycles_ok else 'DIFFER'}", flush=True)
    return rows, bad


def minilm() -> dict:
    acfg = AccelConfig(ArrayConfig(8, 8), max_m=128, max_k=1536)
    per_gemm = []
    for name, M, K, N, load in MINILM_LAYER:
        c = accel_gemm_cycles(M, K, N, acfg, load)
        per_gemm.append({"name": name, "M": M, "K": K, "N": N, "load": load, "cycles": c.cycles,
                         "utilisation": c.utilisation, "out_bytes_per_value": c.out_bytes_per_value})
    sched = accel_schedule([c[1:] for c in MINILM_LAYER], acfg)
    layer_cycles = sched[-1]["out_last"] + 1
    macs = sum(M * K * N for _, M, K, N, _ in MINILM_LAYER)
    return {"array": "8x8 rf8_pipe", "max_m": 128, "max_k": 1536, "per_gemm_from_idle": per_gemm,
            "layer_cycles_back_to_back": layer_cycles, "layer_macs": macs,
            "layer_utilisation": macs / (64 * layer_cycles)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--random", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "accel_cycles.json")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    rows, bad = random_check(args.random, args.seed)
    report = {"random_programs": len(rows), "commands": sum(len(r["commands"]) for r in rows),
              "ragged_programs": sum(r["ragged"] for r in rows), "differing": bad,
              "seconds": round(time.perf_counter() - t0, 1), "minilm": minilm(), "programs": rows}
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    m = report["minilm"]
    print(f"{len(rows)} programs ({report['commands']} commands, {report['ragged_programs']} ragged): "
          f"{bad} differ; MiniLM layer utilisation {100 * m['layer_utilisation']:.2f} % "
          f"({m['layer_cycles_back_to_back']} cycles); wrote {args.out}")
    for g in m["per_gemm_from_idle"]:
        print(f"  {g['name']:9s} {g['M']}x{g['K']}x{g['N']} load={g['load']}: {g['cycles']} cycles, "
              f"{100 * g['utilisation']:.2f} %")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
