"""``rf8hw sweep``: design-space exploration of RF8 / INT8 / FP8 arrays for one model on Ray, to a
Pareto front (``docs/dse.md``); thin over :class:`rf8hw.accel.dse.SweepConfig`, which validates
every value once."""

from __future__ import annotations

import argparse
import json
import sys

#: list option -> (SweepConfig field, element type, metavar)
LISTS = {"--device": ("devices", str, "D[,D...]"), "--pe": ("pes", str, "K[,K...]"),
         "--rows": ("rows", int, "R[,R...]"), "--cols": ("cols", int, "C[,C...]"),
         "--acc-bits": ("acc_bits", int, "A[,A...]"), "--rounding": ("roundings", str, "NAME[,...]"),
         "--act": ("acts", str, "SCHEME[,...]")}


def _list(kind):
    def parse(text: str):
        items = [t.strip() for t in text.split(",") if t.strip()]
        if not items:
            raise argparse.ArgumentTypeError(f"needs at least one value, not {text!r}")
        if kind is int:
            bad = [t for t in items if not t.lstrip("-").isdigit()]
            if bad:
                raise argparse.ArgumentTypeError(f"takes comma-separated integers, not {bad[0]!r}")
            return tuple(int(t) for t in items)
        return tuple(items)
    return parse


def register(subparsers, name: str, help_text: str) -> None:
    from rf8hw.accel.dse import ACT_SCHEMES
    from rf8hw.accel.estimate import BUILTIN_ADAPTERS, MODELS
    from rf8hw.accel.synth import DEVICES
    from rf8hw.format import spec
    from rf8hw.arch import PE_KINDS

    p = subparsers.add_parser(name, help=help_text, description=help_text)
    p.add_argument("--model", required=True, metavar="MODEL",
                   help=f"{'|'.join(MODELS + tuple(BUILTIN_ADAPTERS))} or package.module:function")
    p.add_argument("--checkpoint", default=None, help="model.safetensors of rf8hw train (zoo models only)")
    helps = {"--device": f"FPGAs ({', '.join(DEVICES)}; default ecp5-25k)",
             "--pe": f"PE kinds ({', '.join(PE_KINDS)}); INT8/FP8 kinds are the baselines",
             "--rows": "array rows", "--cols": "array columns",
             "--acc-bits": "accumulator widths (default 40)",
             "--rounding": f"RF8 rounding rules ({', '.join(spec.ROUNDING_MODES)}; default nearest)",
             "--act": f"RF8 activation schemes ({', '.join(ACT_SCHEMES)}; adapter models; default token)"}
    for flag, (dest, kind, metavar) in LISTS.items():
        p.add_argument(flag, dest=dest, type=_list(kind), metavar=metavar, help=helps[flag],
                       required=flag in ("--pe", "--rows", "--cols"), default=None)
    p.add_argument("--act-bits", type=int, default=8, help="activation width (default 8)")
    p.add_argument("--overflow", default="wrap", choices=spec.OVERFLOW_MODES, help="accumulator overflow rule")
    p.add_argument("--batch", type=int, default=1, help="inferences per weight tile (zoo models)")
    p.add_argument("--seed", type=int, default=1, help="nextpnr placement seed (default 1)")
    p.add_argument("--synth-cache", default=None, metavar="DIR", help="synthesis cache (default ~/.cache/rf8hw/synth)")
    p.add_argument("--cache", default=None, metavar="DIR",
                   help="accuracy / does-not-fit cache (default ~/.cache/rf8hw/dse)")
    p.add_argument("--address", default=None,
                   help="join this Ray cluster (e.g. 127.0.0.1:6379); default: a local Ray instance")
    p.add_argument("--num-cpus", type=int, default=None, help="CPUs of the local Ray instance (default: all)")
    p.add_argument("--max-luts", type=int, default=None, help="constraint: at most N LUT4 sites")
    p.add_argument("--min-accuracy", type=float, default=None,
                   help="constraint: accuracy at least X (at most X where lower is better)")
    p.add_argument("--out", default=None, metavar="DIR", help="output directory (default sweep_<model>)")
    p.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args) -> int:
    from pathlib import Path

    from rf8hw.accel.dse import SweepConfig, sweep

    given = {dest: getattr(args, dest) for dest, _, _ in LISTS.values() if getattr(args, dest) is not None}
    cfg = SweepConfig(model=args.model, checkpoint=args.checkpoint, act_bits=args.act_bits,
                      overflow=args.overflow, batch=args.batch, seed=args.seed, synth_cache=args.synth_cache,
                      cache=args.cache, address=args.address, num_cpus=args.num_cpus, max_luts=args.max_luts,
                      min_accuracy=args.min_accuracy, **given)
    out = Path(args.out) if args.out else Path(f"sweep_{args.model.replace(':', '_').replace('.', '_')}")
    summary = sweep(cfg, out, progress=not args.quiet)
    for r in summary["failed"]:
        print(f"rf8hw sweep: failed: {r['pe']} {r['rows']}x{r['cols']} acc{r['acc_bits']} on {r['device']}: "
              f"{r['error']} (log: {r['log']})", file=sys.stderr)
    if args.json:
        print(json.dumps(summary))
    else:
        for device, b in summary["best"].items():
            print(f"best on {device}: " + ("no point qualifies" if b is None else
                  f"{b['pe']} {b['rows']}x{b['cols']} acc{b['acc_bits']}: {b['inferences_per_s']:.4g} "
                  f"inferences/s, {b['lut4_equiv']} LUT4 sites, {b['metric']} {b['accuracy']:.5g}"))
    paths = summary["paths"]
    print(f"rf8hw sweep: {summary['n_points']} points, {len(summary['failed'])} failed, "
          f"{summary['does_not_fit']} do not fit, {summary['wall_s']} s; wrote {paths['markdown']}, "
          f"{paths['json']}, {paths['csv']}", file=sys.stderr)
    return 1 if summary["failed"] else 0
