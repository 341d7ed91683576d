"""Benchmark of ``rf8hw sweep`` (docs/dse.md): a sweep from empty caches, then its rerun from the
caches; optionally the same sweep on a 2-node Ray cluster started on this machine
(``ray start --head`` + a second ``ray start --address``, one CPU each) against a 1-node local Ray
with one CPU, both from empty caches.

Usage::

    python benchmarks/bench_dse.py sweep --out docs/results/dse_minilm_ecp5-25k -- \\
        --model minilm --device ecp5-25k --pe rf8,rf8_lean,rf8_pipe,int8_pipe,int8_dsp,fp8_e4m3 \\
        --rows 2,4 --cols 4 --acc-bits 28,32 --act token,tensor
    python benchmarks/bench_dse.py cluster --out docs/results/dse_cluster -- --model mlp_digits \\
        --checkpoint CKPT --pe rf8_pipe,int8_pipe --rows 2 --cols 2,4

Everything after ``--`` is passed to ``rf8hw sweep``.  Each mode writes ``<out>/bench.json``
(wall times, how much was synthesis, load averages, versions) next to the sweep's own outputs.
Times are single runs (each run is minutes; the caches make a repeat a different measurement).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rf8hw.files import write_atomic

RF8HW = [sys.executable, "-m", "rf8hw.cli", "sweep"]
RAY = str(Path(sys.executable).with_name("ray"))


def _sweep(argv, out: Path, caches: Path, extra=()) -> dict:
    """One ``rf8hw sweep`` subprocess; returns its JSON summary (minus the rows) and wall time."""
    cmd = RF8HW + list(argv) + ["--synth-cache", str(caches / "synth"), "--cache", str(caches / "dse"),
                                "--out", str(out), "--json", "--quiet", *extra]
    load = os.getloadavg()
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t0
    if proc.returncode not in (0, 1):
        raise SystemExit(f"bench_dse: sweep failed (exit {proc.returncode}): {proc.stderr[-2000:]}")
    rep = json.loads(proc.stdout.strip().splitlines()[-1])
    nodes = {}
    for r in rep["points"]:
        for k in ("accuracy_node", "synth_node"):
            if r.get(k):
                nodes[r[k]] = nodes.get(r[k], 0) + 1
    return {"exit": proc.returncode, "wall_s": round(wall, 1), "sweep_wall_s": rep["wall_s"],
            "n_points": rep["n_points"], "failed": len(rep["failed"]), "does_not_fit": rep["does_not_fit"],
            "computed": rep["computed"], "factors": rep["factors"],
            "synthesis_seconds_fresh": rep["synthesis_seconds_fresh"], "ray": rep["ray"],
            "tasks_per_node": nodes, "load_average_before": list(load),
            "load_average_after": list(os.getloadavg()), "versions": rep["versions"]}


def bench_sweep(argv, out: Path) -> dict:
    with tempfile.TemporaryDirectory(prefix="bench_dse_") as tmp:
        caches = Path(tmp)
        first = _sweep(argv, out, caches)
        print(f"bench_dse: fresh sweep {first['wall_s']} s ({first['n_points']} points)", file=sys.stderr)
        rerun = _sweep(argv, Path(tmp) / "rerun_out", caches)
        print(f"bench_dse: rerun from cache {rerun['wall_s']} s", file=sys.stderr)
    return {"argv": argv, "fresh": first, "rerun_from_cache": rerun}


def _start(args: list[str], log: Path) -> subprocess.Popen:
    return subprocess.Popen([RAY, "start", "--block", "--disable-usage-stats", *args],
                            stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True)


def _stop(proc: subprocess.Popen) -> None:
    """``ray start --block`` stops the Ray processes it started when interrupted; if it has not
    after 60 s, its process group (started with it: ``start_new_session``) is killed."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def bench_cluster(argv, out: Path, port: int) -> dict:
    # the `ray start` nodes and the driver must agree on token authentication (the local
    # instance of ray.init turns it on by itself; `ray start` on its own does not)
    os.environ.setdefault("RAY_AUTH_MODE", "token")
    logs = out / "ray_logs"
    logs.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="bench_dse_1node_") as tmp:
        one = _sweep(argv, out / "one_node", Path(tmp), extra=("--num-cpus", "1"))
    print(f"bench_dse: 1 node x 1 CPU {one['wall_s']} s", file=sys.stderr)
    head = _start(["--head", f"--port={port}", "--num-cpus=1", "--include-dashboard=false"],
                  logs / "head.log")
    nodes = [head]
    try:
        address = f"127.0.0.1:{port}"
        time.sleep(15)
        # the second node on the same machine: every port of its own
        base = port + 100
        nodes.append(_start([f"--address={address}", "--num-cpus=1", f"--node-manager-port={base}",
                             f"--object-manager-port={base + 1}", f"--metrics-export-port={base + 2}",
                             f"--dashboard-agent-listen-port={base + 3}",
                             f"--dashboard-agent-grpc-port={base + 4}",
                             f"--runtime-env-agent-port={base + 5}", f"--min-worker-port={base + 10}",
                             f"--max-worker-port={base + 60}"], logs / "worker.log"))
        time.sleep(15)
        with tempfile.TemporaryDirectory(prefix="bench_dse_2nodes_") as tmp:
            two = _sweep(argv, out / "two_nodes", Path(tmp), extra=("--address", address))
    finally:
        for p in reversed(nodes):
            _stop(p)
    print(f"bench_dse: 2 nodes x 1 CPU {two['wall_s']} s, tasks per node {two['tasks_per_node']}",
          file=sys.stderr)
    return {"argv": argv, "one_node_one_cpu": one, "two_nodes_one_cpu_each": two,
            "speedup": round(one["wall_s"] / two["wall_s"], 3)}


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    own, sweep_args = (argv[:argv.index("--")], argv[argv.index("--") + 1:]) if "--" in argv else (argv, [])
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("mode", choices=("sweep", "cluster"))
    p.add_argument("--out", required=True)
    p.add_argument("--port", type=int, default=6390, help="head port of the 2-node cluster")
    a = p.parse_args(own)
    if not sweep_args:
        p.error("give the rf8hw sweep arguments after --")
    out = Path(a.out)
    if out.exists():
        shutil.rmtree(out / "rerun_out", ignore_errors=True)
    out.mkdir(parents=True, exist_ok=True)
    res = bench_sweep(sweep_args, out) if a.mode == "sweep" else bench_cluster(sweep_args, out, a.port)
    res["cpu_count"] = os.cpu_count()
    write_atomic(out / "bench.json", json.dumps(res, indent=1) + "\n")
    print(json.dumps({k: v for k, v in res.items() if k != "argv"}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
