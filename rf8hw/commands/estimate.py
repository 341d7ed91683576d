"""``rf8hw estimate``: accuracy on the bit-exact RF8 hardware path, cycles, area and Fmax of an RF8 array
for a trained zoo model (``--model tinygpt|mlp_digits --checkpoint ...``), a built-in real model
(``--model minilm|smollm2``) or any model behind a user adapter (``--model package.module:function``
returning ``(model, example, metric[, info])``); thin over :mod:`rf8hw.accel.estimate`: the options
are the fields of :class:`~rf8hw.accel.estimate.EstimateConfig` and
:class:`~rf8hw.arch.ArrayConfig`, which check every value and every rule between them."""

from __future__ import annotations

import json
import sys


def register(subparsers, name: str, help_text: str) -> None:
    from rf8hw.accel.estimate import EstimateConfig
    from rf8hw.arch import ArrayConfig, rf8_kinds
    from rf8hw.commands.options import add_config_args

    p = subparsers.add_parser(name, help=help_text, description=help_text)
    add_config_args(p, EstimateConfig, only=("model", "checkpoint"))
    add_config_args(p, ArrayConfig, choices={"pe": rf8_kinds()})
    add_config_args(p, EstimateConfig, exclude=("model", "checkpoint"))
    p.add_argument("--out", default=None, metavar="DIR",
                   help="report directory (default: estimate_<model>_<R>x<C>_<device> next to the "
                        "checkpoint, or in the current directory)")
    p.add_argument("--json", action="store_true", help="print the report as one JSON object")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.set_defaults(func=run)


def run(args) -> int:
    from pathlib import Path

    from rf8hw import checks
    from rf8hw.accel.estimate import EstimateConfig, estimate
    from rf8hw.accel.report import render_markdown, write_report
    from rf8hw.accel.source import model_tag
    from rf8hw.accel.synth import SynthError
    from rf8hw.arch import ArrayConfig
    from rf8hw.commands.options import config_from_args

    cfg = config_from_args(EstimateConfig, args, array=config_from_args(ArrayConfig, args))
    name = f"estimate_{model_tag(cfg.model)}_{cfg.array.rows}x{cfg.array.cols}_{cfg.device}"
    checks.output_dir("--out", args.out)           # an empty name is refused, not the current folder
    out = Path(args.out) if args.out is not None else \
        (Path(cfg.checkpoint).parent if cfg.checkpoint else Path()) / name
    checks.output_dir("--out", out)
    try:
        rep = estimate(cfg, progress=not args.quiet)
    except SynthError as exc:
        # a tool that failed (the message names its log): as rf8hw synth reports it, exit 1
        print(f"rf8hw estimate: synthesis failed: {exc}", file=sys.stderr, flush=True)
        return 1
    paths = write_report(rep, out)
    print(json.dumps(rep) if args.json else render_markdown(rep))
    print(f"rf8hw estimate: wrote {', '.join(paths.values())}", file=sys.stderr)
    return 0
