"""Cycle model vs cocotb co-simulation on GEMM shapes, and the model zoo's cycles vs array size.

1. For each shape of :data:`SHAPES` (ragged ones included), co-simulate the whole GEMM on the
   generated Verilog (``rf8hw.sim.run.run_gemms``: the GEMMs of one array in one simulator run, each on
   an idle, empty array; full-rate producers, consumer always ready), check the
   result against ``golden.matmul``, and compare the measured cycles with
   :func:`rf8hw.accel.cycles.gemm_cycles` and every tile's handshake stamps with
   :func:`rf8hw.accel.cycles.tile_schedule`.  Writes ``docs/cycles_cosim.json`` and the table between the
   ``COSIM TABLE`` markers of ``docs/estimates.md``.
2. Cycles per inference and utilisation of mlp_digits and tinygpt for square arrays 4..64
   (``docs/estimates_cycles.png``, ``docs/estimates_zoo.json``).

Run: ``.venv/bin/python benchmarks/bench_cycles.py [--simulator icarus|verilator] [--zoo-only]
[--random N [--random-seed S]] [--json-only]``; ``--random N`` adds N random (array, GEMM) shapes
(:func:`random_shapes`: the arrays of :data:`RANDOM_ARRAYS`, M 1..24, K and N up to 40, ragged
most of the time) to the co-simulated list (the acceptance check of issue 11 asks for >= 200);
``--json-only`` writes ``docs/cycles_cosim.json`` only (no zoo plot, no ``docs/estimates.md``
table).  The run exits 1 if any shape's cycles, handshakes or results differ.
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

from rf8hw.arch import ArrayConfig  # noqa: E402

#: (rows, cols, M, K, N): array shape (default PE kind and reset) and GEMM shape
SHAPES = [
    (8, 8, 8, 8, 8),          # one full tile (the docs/architecture.md example)
    (8, 8, 16, 20, 12),       # ragged K and N
    (8, 8, 1, 64, 128),       # mlp_digits fc1 at batch 1: 128 tiles of one row
    (8, 8, 12, 128, 10),      # mlp_digits fc3 at batch 12: ragged N
    (4, 4, 5, 13, 7),         # ragged K and N, small array
    (4, 6, 3, 10, 10),        # more columns than rows
    (3, 5, 7, 9, 11),         # odd sizes everywhere
    (1, 1, 2, 7, 3),          # a single PE: no guard, no skew
    (4, 8, 1, 5, 70),         # M = 1, many N tiles
    (16, 16, 9, 33, 20),      # larger array, ragged
    (8, 8, 64, 256, 256),     # the utilisation goal of issue 11 (1,024 tiles, M = 64)
]


#: Arrays of the random shapes: (rows, cols, PE kind, reset).  Each is one simulator build
#: (Verilator: seconds of C++), so a few are reused: edge shapes (one row, one or two columns), a
#: non-square and the 8 x 8, every RF8 PE kind (product latency 1 and 2) and both resets.
RANDOM_ARRAYS = [(4, 4, "rf8_pipe", "aresetn"), (3, 5, "rf8", "aresetn"),
                 (8, 8, "rf8_pipe", "aresetn"), (2, 1, "rf8_lean", "aresetn"),
                 (1, 3, "rf8_signlate", "aresetn"), (5, 2, "rf8_pipe", "rst"),
                 (1, 1, "rf8", "aresetn"), (6, 7, "rf8_lean", "aresetn")]


def random_shapes(n: int, seed: int) -> list[tuple]:
    """``n`` random ``(ArrayConfig, M, K, N)``: an array of :data:`RANDOM_ARRAYS`, ``M`` in
    1..24, ``K`` in 1..min(40, 6 rows) and ``N`` in 1..min(40, 6 cols) (at most 36 tiles, ragged
    unless ``K``/``N`` happen to be multiples of the array)."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        R, C, pe, reset = RANDOM_ARRAYS[int(rng.integers(len(RANDOM_ARRAYS)))]
        out.append((ArrayConfig(R, C, pe=pe, reset=reset), int(rng.integers(1, 25)),
                    int(rng.integers(1, min(40, 6 * R) + 1)),
                    int(rng.integers(1, min(40, 6 * C) + 1))))
    return out


def fixed_shapes() -> list[tuple]:
    """:data:`SHAPES` as ``(ArrayConfig, M, K, N)`` (default PE kind and reset)."""
    return [(ArrayConfig(R, C), M, K, N) for R, C, M, K, N in SHAPES]

BEGIN, END = "<!-- BEGIN COSIM TABLE -->", "<!-- END COSIM TABLE -->"
ZOO_SIZES = [4, 8, 16, 32, 64]


def compare(simulator: str, progress=True, shapes=None) -> tuple[list[dict], list[dict]]:
    """Co-simulate ``shapes`` (``(ArrayConfig, M, K, N)``; default :func:`fixed_shapes`) and
    compare each with the model.  The GEMMs of one array go through one simulator run
    (:func:`rf8hw.sim.run.run_gemms`: each GEMM on an idle, empty array, so one GEMM's model applies);
    returns the per-shape rows (in the order given) and one record per simulator run."""
    from tqdm import tqdm

    from rf8hw.accel.cycles import gemm_cycles, tile_schedule
    from rf8hw.format import golden
    from rf8hw.sim import CosimOptions, run_gemms

    keys = ("w_first", "w_last", "a_first", "a_last", "r_first", "r_last")
    shapes = fixed_shapes() if shapes is None else shapes
    by_cfg: dict[ArrayConfig, list[int]] = {}
    for i, (cfg, *_) in enumerate(shapes):
        by_cfg.setdefault(cfg, []).append(i)
    rows_out, runs = [None] * len(shapes), []
    for cfg, idx in tqdm(by_cfg.items(), desc="array configs", disable=not progress):
        gemms = []
        for i in idx:
            _, M, K, N = shapes[i]
            rng = np.random.default_rng(i)
            gemms.append((rng.integers(-128, 128, size=(M, K)),
                          rng.integers(0, 256, size=(K, N), dtype=np.uint8)))
        t0 = time.monotonic()
        options = CosimOptions(simulator=simulator, bench="python", stall_prob=0.0, seed=idx[0])
        res = run_gemms(gemms, cfg, options)
        runs.append({"module": cfg.module_name, "shapes": len(idx), "tiles": res.tiles,
                     "mismatches": res.mismatches, "wall_s": round(time.monotonic() - t0, 1)})
        for i, (a, codes), g in zip(idx, gemms, res.gemms):
            _, M, K, N = shapes[i]
            recs = sorted(g.tile_cycles, key=lambda r: r.tile)
            first = recs[0].w_first
            measured_span = recs[-1].r_last - first + 1
            model = gemm_cycles(M, K, N, cfg)
            sched = tile_schedule([M] * model.tiles, cfg)
            stamps_equal = [{k: getattr(r, k) - first for k in keys} for r in recs] == sched
            exact = g.gemm is not None and bool(np.array_equal(
                g.gemm, golden.matmul(a, codes, cfg.acc_bits, cfg.overflow)))
            rows_out[i] = {
                "rows": cfg.rows, "cols": cfg.cols, "pe": cfg.pe, "reset": cfg.reset,
                "M": M, "K": K, "N": N, "tiles": model.tiles, "first_weight_cycle": first,
                "measured_cycles": measured_span, "model_cycles": model.cycles,
                "equal": measured_span == model.cycles, "all_handshakes_equal": stamps_equal,
                "result_exact": exact and res.mismatches == 0,
                "utilisation": model.utilisation, "simulator": simulator,
            }
    return rows_out, runs


def table(rows: list[dict], simulator: str) -> str:
    lines = [f"Co-simulation: `sim.run.run_gemms` on the generated Verilog ({simulator}; PE kind "
             f"{', '.join(sorted({r['pe'] for r in rows}))}), full-rate producers, consumer "
             "always ready, each GEMM on an idle, empty array.  *measured* = last result "
             "handshake - first weight handshake + 1.  Regenerate: "
             "`.venv/bin/python benchmarks/bench_cycles.py`.", "",
             "| array R x C | GEMM M x K x N | tiles | measured | model | equal | "
             "every handshake equal | result = golden | utilisation |",
             "|---|---|--:|--:|--:|:-:|:-:|:-:|--:|"]
    for r in rows:
        lines.append(f"| {r['rows']} x {r['cols']} | {r['M']} x {r['K']} x {r['N']} | {r['tiles']} | "
                     f"{r['measured_cycles']} | {r['model_cycles']} | "
                     f"{'yes' if r['equal'] else '**NO**'} | "
                     f"{'yes' if r['all_handshakes_equal'] else '**NO**'} | "
                     f"{'yes' if r['result_exact'] else '**NO**'} | {100 * r['utilisation']:.1f} % |")
    return "\n".join(lines)


def write_table(doc: Path, text: str) -> None:
    s = doc.read_text()
    if BEGIN not in s or END not in s:
        raise ValueError(f"{doc} has no {BEGIN} ... {END} markers")
    head, rest = s.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    doc.write_text(f"{head}{BEGIN}\n{text}\n{END}{tail}")


def zoo(plot_path: Path, json_path: Path) -> dict:
    import matplotlib
    import matplotlib.ticker

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from rf8hw import zoo
    from rf8hw.accel import cycles
    from rf8hw.accel.gemms import capture

    out = {}
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for name, batch in (("mlp_digits", 1), ("mlp_digits", 64), ("tinygpt", 1)):
        mod = zoo.get(name)
        model = mod.build()
        gemms = capture(model, mod.example(model.config, batch))
        reps = [cycles.model_cycles(gemms, ArrayConfig(s, s), batch) for s in ZOO_SIZES]
        label = f"{name} (batch {batch})"
        out[label] = [{"rows": s, "cols": s, "cycles_per_inference": r["cycles_per_inference"],
                       "utilisation": r["utilisation"], "macs_on_array": r["macs_on_array"] // batch,
                       "macs_off_array": r["macs_off_array"] // batch,
                       "layers": [{k: v for k, v in L.items()} for L in r["layers"]]}
                      for s, r in zip(ZOO_SIZES, reps)]
        axes[0].plot(ZOO_SIZES, [r["cycles_per_inference"] for r in reps], "o-", label=label)
        axes[1].plot(ZOO_SIZES, [100 * r["utilisation"] for r in reps], "o-", label=label)
    axes[0].set(yscale="log", xlabel="array size R = C", ylabel="cycles per inference")
    axes[1].set(xlabel="array size R = C", ylabel="utilisation (%)", ylim=(0, 100))
    for ax in axes:
        ax.set_xscale("log", base=2)
        ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
        ax.set_xticks(ZOO_SIZES, [str(s) for s in ZOO_SIZES])
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle("RF8 weight-stationary array: cycle model (rf8hw.accel.cycles) for the model zoo",
                 fontsize=10)
    fig.tight_layout()
    fig.savefig(plot_path, dpi=110)
    plt.close(fig)
    json_path.write_text(json.dumps(out, indent=1) + "\n")
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--simulator", default="icarus", choices=("icarus", "verilator"))
    p.add_argument("--zoo-only", action="store_true", help="only the model-zoo plot (no co-simulation)")
    p.add_argument("--docs", default=str(ROOT / "docs"))
    p.add_argument("--random", type=int, default=0, help="add N random shapes")
    p.add_argument("--random-seed", type=int, default=0)
    p.add_argument("--json-only", action="store_true",
                   help="write docs/cycles_cosim.json only (no zoo plot, no estimates.md table)")
    args = p.parse_args(argv)
    if args.random < 0:
        p.error(f"--random must be >= 0, not {args.random}")
    docs = Path(args.docs)
    if not args.json_only:
        z = zoo(docs / "estimates_cycles.png", docs / "estimates_zoo.json")
        for label, rows in z.items():
            print(label, ", ".join(f"{r['rows']}x{r['cols']}: {r['cycles_per_inference']:,.0f} "
                                   f"cyc {100 * r['utilisation']:.1f} %" for r in rows))
    if args.zoo_only:
        return 0
    t0 = time.monotonic()
    fixed = fixed_shapes()
    rows, runs = compare(args.simulator,
                         shapes=fixed + random_shapes(args.random, args.random_seed))
    wall = time.monotonic() - t0
    bad = [r for r in rows if not (r["equal"] and r["all_handshakes_equal"] and r["result_exact"])]
    summary = {"shapes": len(rows), "fixed_shapes": len(fixed), "random_shapes": args.random,
               "random_seed": args.random_seed, "simulator": args.simulator,
               "differing_shapes": len(bad), "wall_s": round(wall, 1), "simulator_runs": runs,
               "command": "benchmarks/bench_cycles.py " + " ".join(argv if argv is not None
                                                                   else sys.argv[1:])}
    out = docs / "cycles_cosim.json"
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text(json.dumps({"format": "rf8hw-cycles-cosim/2", "summary": summary,
                               "shapes": rows}, indent=1) + "\n")
    tmp.replace(out)
    if not args.json_only:
        text = table(rows[:len(fixed)], args.simulator)
        write_table(docs / "estimates.md", text)
        print(text)
    print(f"{summary['shapes']} shapes ({summary['fixed_shapes']} fixed, {args.random} random) on "
          f"{args.simulator}: {len(bad)} differ from the cycle model; {wall:.0f} s")
    if bad:
        print(f"{len(bad)} shape(s) differ: {bad}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
