"""Acceptance benchmark of ``rf8hw estimate`` (issue 6): on a freshly trained mlp_digits checkpoint
it runs end to end in < 5 min with synthesis included, and its RF8 bit-exact accuracy is within
1 pt of fp32.

Steps (each a subprocess of the installed ``rf8hw`` CLI, argument lists, no shell):

1. ``rf8hw train --model mlp_digits --epochs 30`` into a temporary directory (timed separately:
   training is not part of the estimate);
2. ``rf8hw estimate --model mlp_digits ... --rows R --cols C --json`` with ``XDG_CACHE_HOME`` pointed
   at an empty directory, so the YoWASP tool cache (WebAssembly compilation of yosys/nextpnr) and
   rf8hw's synthesis cache start empty: a fresh set-up as far as this machine allows (the venv
   itself is reused);
3. the same command again: the synthesis result now comes from the cache.

Prints one JSON object with the wall times and the accuracies; exit status 1 if a target is missed.
Run: ``.venv/bin/python benchmarks/bench_estimate.py [--rows 4 --cols 4 --device ecp5-25k]``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET_S = 300.0
TARGET_PT = 1.0


def _run(cmd: list[str], env: dict) -> tuple[float, str]:
    print(f"[bench_estimate] {' '.join(cmd[1:3])} ...", file=sys.stderr, flush=True)
    t0 = time.monotonic()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    wall = time.monotonic() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return wall, proc.stdout


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=4)
    p.add_argument("--cols", type=int, default=4)
    p.add_argument("--device", default="ecp5-25k")
    p.add_argument("--epochs", type=int, default=30)
    args = p.parse_args(argv)
    rf8hw_exe = str(Path(sys.executable).with_name("rf8hw"))
    with tempfile.TemporaryDirectory(prefix="bench_estimate_") as tmp:
        tmp = Path(tmp)
        env = dict(os.environ, XDG_CACHE_HOME=str(tmp / "cache"))
        train_s, _ = _run([rf8hw_exe, "train", "--model", "mlp_digits", "--epochs", str(args.epochs),
                           "--out", str(tmp / "ckpt"), "--quiet"], env)
        cmd = [rf8hw_exe, "estimate", "--model", "mlp_digits", "--checkpoint",
               str(tmp / "ckpt" / "model.safetensors"), "--rows", str(args.rows), "--cols",
               str(args.cols), "--device", args.device, "--json", "--quiet", "--out", str(tmp / "rep")]
        fresh_s, out = _run(cmd, env)
        rep = json.loads(out)
        cached_s, out2 = _run(cmd, env)
        rep2 = json.loads(out2)
    acc = rep["accuracy"]
    delta_pt = 100 * (acc["rf8_bitexact"] - acc["fp32"])
    result = {
        "array": f"{args.rows}x{args.cols}", "device": args.device, "train_epochs": args.epochs,
        "train_s": round(train_s, 1), "estimate_fresh_s": round(fresh_s, 1),
        "estimate_cached_synth_s": round(cached_s, 1), "synth_cached_second_run": rep2["synth"].get("cached"),
        "synth_stage_s": rep["synth"].get("seconds"),
        "accuracy": acc, "rf8_bitexact_minus_fp32_pt": round(delta_pt, 2),
        "overflow_events": rep["overflow_events"], "cycles_per_inference": rep["cycles_per_inference"],
        "fmax_mhz": rep["fmax_mhz"], "lut4": rep["lut4"], "ff": rep["ff"], "dsp": rep["dsp"],
        "inferences_per_s": rep["inferences_per_s"],
        "load_average": os.getloadavg(), "cpus": os.cpu_count(),
        "targets": {"estimate_fresh_s <= 300": fresh_s <= TARGET_S,
                    "|rf8_bitexact - fp32| <= 1 pt": abs(delta_pt) <= TARGET_PT},
    }
    print(json.dumps(result, indent=1))
    return 0 if all(result["targets"].values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
