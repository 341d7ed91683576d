"""``rf8hw estimate``: accuracy on the bit-exact hardware path, cycles, area and Fmax of an RF8 array
for a trained zoo model (thin over :func:`rf8hw.accel.estimate.estimate`)."""

from __future__ import annotations

import json
import sys


def register(subparsers, name: str, help_text: str) -> None:
    from rf8hw.accel.estimate import EstimateConfig
    from rf8hw.commands.options import add_config_args
    from rf8hw.hdl.config import ArrayConfig
    from rf8hw.hdl.registry import rf8_kinds

    p = subparsers.add_parser(name, help=help_text, description=help_text)
    add_config_args(p, EstimateConfig, only=("model", "checkpoint"))
    add_config_args(p, ArrayConfig, choices={"pe": rf8_kinds()})
    add_config_args(p, EstimateConfig, only=("device", "batch", "rounding", "calibrate_batches",
                                             "seed", "synth_cache"))
    p.add_argument("--no-synth", action="store_true",
                   help="skip synthesis: the report then has no area, Fmax or inferences/s")
    p.add_argument("--out", default=None, metavar="DIR",
                   help="report directory (default: estimate_<model>_<R>x<C>_<device> next to the checkpoint)")
    p.add_argument("--json", action="store_true", help="print the report as one JSON object")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.set_defaults(func=run)


def run(args) -> int:
    from pathlib import Path

    from rf8hw.accel.estimate import EstimateConfig, estimate
    from rf8hw.accel.report import render_markdown, write_report
    from rf8hw.commands.options import config_from_args
    from rf8hw.hdl.config import ArrayConfig

    cfg = config_from_args(EstimateConfig, args, array=config_from_args(ArrayConfig, args),
                           synth=not args.no_synth)
    out = Path(args.out) if args.out else (
        Path(args.checkpoint).parent / f"estimate_{args.model}_{args.rows}x{args.cols}_{args.device}")
    rep = estimate(cfg, progress=not args.quiet)
    paths = write_report(rep, out)
    if args.json:
        print(json.dumps(rep))
    else:
        print(render_markdown(rep))
    print(f"rf8hw estimate: wrote {paths['markdown']}, {paths['json']}, {paths['png']}", file=sys.stderr)
    return 0
