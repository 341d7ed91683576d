"""A whole real model's forward pass through the accelerator's RTL (``rf8hw cosim --model M``,
:func:`rf8hw.accel.cosim_model.cosim_model`): every RF8 GEMM simulated, each layer consuming the
RTL's output, the final output compared with the bit-exact PyTorch path.

For each model: the time of the RTL pass (the forward pass with the simulator in the loop: host
work + simulation; the goal), the simulation alone, the simulator build (apart; cached), cycles
against the cycle model, mismatches, the simulated cycles per second, the machine's load.  Goals
(issue 24 item 3): MiniLM (128 tokens) <= 60 s, SmolLM2-135M (64 tokens, every RF8 layer) <= 300
s.  Every GEMM is simulated afresh (a new, empty GEMM store per run) unless ``--store DIR``.

Run: ``nice .venv/bin/python benchmarks/bench_cosim_model.py [--models minilm,smollm2]
[--rows 8 --cols 8] [--sim verilator] [--engine lib|cocotb] [--out docs/cosim_model.json]``;
exits 1 if any output differs or any GEMM is off the cycle model.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rf8hw.accel.cosim_model import cosim_model  # noqa: E402
from rf8hw.arch import ArrayConfig  # noqa: E402
from rf8hw.files import write_atomic  # noqa: E402
from rf8hw.sim import CosimOptions  # noqa: E402

#: wall-time goals of the RTL pass, seconds
GOALS = {"minilm": 60.0, "smollm2": 300.0}


def measure(model: str, args) -> dict:
    store = args.store or tempfile.mkdtemp(prefix=f"bench-cosim-model-{model}-")
    options = CosimOptions(simulator=args.sim, stall_prob=0.0, seed=args.seed,
                           cache_root=args.cache_dir,
                           out_dir=str(Path(store) / "run"))
    load0 = os.getloadavg()
    t0 = time.perf_counter()
    run = cosim_model(model, ArrayConfig(args.rows, args.cols), options, out_bits=args.out_bits,
                      engine=args.engine, store_root=Path(store) / "gemms",
                      progress=lambda line: print(line, flush=True))
    total = time.perf_counter() - t0
    t = run.totals
    goal = GOALS.get(model)
    row = {"model": model, "module": run.acfg.module_name, "simulator": args.sim,
           "engine": args.engine, "out_bits": args.out_bits, "seed": args.seed,
           "share_inputs": True, "loads_0": sum(g.load == 0 for g in run.gemms),
           "gemms": t["gemms"], "simulated": t["simulated"], "macs": t["macs"],
           "cycles": t["cycles"], "model_cycles": t["model_cycles"],
           "beats_off_model": t["beats_off_model"], "golden_mismatches": t["golden_mismatches"],
           "bitexact_mismatches": t["bitexact_mismatches"], "outputs_equal": run.outputs_equal,
           "output_values": run.output_values, "rtl_pass_s": round(t["rtl_pass_wall_s"], 2),
           "simulation_s": round(t["sim_wall_s"], 2),
           "host_s": round(t["rtl_pass_wall_s"] - t["sim_wall_s"], 2),
           "stimulus_s": round(t["stimulus_s"], 2), "bitexact_s": round(t["bitexact_s"], 2),
           "schedule_s": round(t["schedule_s"], 2),
           "cycles_per_s": round(t["cycles_per_s"]), "build_s": run.build_s,
           "total_s": round(total, 2), "pytorch_macs": t["pytorch_macs"],
           "load_before": [round(x, 2) for x in load0],
           "load_after": [round(x, 2) for x in os.getloadavg()],
           "goal_s": goal, "goal_met": None if goal is None else t["rtl_pass_wall_s"] <= goal,
           "ok": run.ok, "when": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())}
    print(json.dumps(row, indent=1), flush=True)
    return row


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="minilm,smollm2")
    ap.add_argument("--rows", type=int, default=8)
    ap.add_argument("--cols", type=int, default=8)
    ap.add_argument("--sim", default="verilator")
    ap.add_argument("--engine", default=None)
    ap.add_argument("--out-bits", type=int, default=8)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--cache-dir", default=None)
    ap.add_argument("--store", default=None, help="GEMM store to use (default: a new one)")
    ap.add_argument("--out", default=None, help="JSON file to add the rows to (by model)")
    args = ap.parse_args(argv)
    rows = [measure(m, args) for m in args.models.split(",") if m]
    if args.out:
        path = Path(args.out)
        old = json.loads(path.read_text()) if path.is_file() else {}
        old.setdefault("runs", {}).update({r["model"]: r for r in rows})
        old["regenerate"] = ("nice .venv/bin/python benchmarks/bench_cosim_model.py --models "
                             "minilm,smollm2 --out docs/cosim_model.json")
        write_atomic(path, json.dumps(old, indent=1, sort_keys=True) + "\n")
    return 0 if all(r["ok"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
