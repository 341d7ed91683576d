"""``rf8hw sweep``: design-space exploration of RF8 / INT8 / FP8 arrays for one model on Ray, to a
Pareto front (``docs/dse.md``); thin over :class:`rf8hw.accel.dse.SweepConfig`, whose fields are
the options (lists as comma-separated values) and which validates every value once."""

from __future__ import annotations

import json
import sys


def register(subparsers, name: str, help_text: str) -> None:
    from rf8hw.accel.dse import SweepConfig
    from rf8hw.commands.options import add_config_args

    p = subparsers.add_parser(name, help=help_text, description=help_text)
    add_config_args(p, SweepConfig)
    p.add_argument("--out", default=None, metavar="DIR", help="output directory (default sweep_<model>)")
    p.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args) -> int:
    from pathlib import Path

    from rf8hw import checks
    from rf8hw.accel.dse import SweepConfig, sweep
    from rf8hw.accel.source import model_tag
    from rf8hw.commands.options import config_from_args

    cfg = config_from_args(SweepConfig, args)
    checks.output_dir("--out", args.out)
    out = Path(args.out) if args.out is not None else Path(f"sweep_{model_tag(cfg.model)}")
    summary = sweep(cfg, out, progress=not args.quiet)
    for r in summary["failed"]:
        print(f"rf8hw sweep: failed: {r['pe']} {r['rows']}x{r['cols']} acc{r['acc_bits']} on {r['device']}: "
              f"{r['error']} (log: {r['log']})", file=sys.stderr)
    if args.json:
        print(json.dumps(summary))
    else:
        for device, b in summary["best"].items():
            print(f"best on {device}: " + ("no point qualifies" if b is None else
                  f"{b['pe']} {b['rows']}x{b['cols']} acc{b['acc_bits']}: {b['inferences_per_s']:,.0f} "
                  f"inferences/s, {b['lut4_equiv']:,} LUT4 sites, {b['metric']} {b['accuracy']:.6g}"))
    paths = summary["paths"]
    print(f"rf8hw sweep: {summary['n_points']} points, {len(summary['failed'])} failed, "
          f"{summary['does_not_fit']} do not fit, {summary['wall_s']} s; wrote {paths['markdown']}, "
          f"{paths['json']}, {paths['csv']}", file=sys.stderr)
    return 1 if summary["failed"] else 0
