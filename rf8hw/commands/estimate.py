"""``rf8hw estimate``: accuracy on the bit-exact hardware path, cycles, area and Fmax of an RF8 array
for a trained zoo model (``--model tinygpt|mlp_digits --checkpoint ...``), a built-in real model
(``--model minilm|smollm2``) or any model behind a user adapter (``--model package.module:function``
returning ``(model, example, metric[, info])``); thin over :mod:`rf8hw.accel.estimate`."""

from __future__ import annotations

import json
import sys


def register(subparsers, name: str, help_text: str) -> None:
    from dataclasses import fields

    from rf8hw.accel.estimate import BUILTIN_ADAPTERS, MODELS, EstimateConfig
    from rf8hw.commands.options import add_config_args
    from rf8hw.arch import ArrayConfig
    from rf8hw.arch import rf8_kinds

    p = subparsers.add_parser(name, help=help_text, description=help_text)
    p.add_argument("--model", required=True, metavar="MODEL",
                   help=f"{'|'.join(MODELS + tuple(BUILTIN_ADAPTERS))} or package.module:function "
                        "(an adapter returning model, example, metric[, info])")
    p.add_argument("--checkpoint", default=None,
                   help="model.safetensors written by rf8hw train (zoo models only, required there)")
    add_config_args(p, ArrayConfig, choices={"pe": rf8_kinds()})
    add_config_args(p, EstimateConfig, only=("device", "batch", "rounding", "calibrate_batches",
                                             "gptq_order", "hessian_batches", "seed", "synth_cache"))
    helps = {f.name: f.metadata["help"] for f in fields(EstimateConfig) if "help" in f.metadata}
    for flag in ("scale_search", "gptq"):      # booleans: hand-written flags (options.py)
        p.add_argument("--" + flag.replace("_", "-"), action="store_true", dest=flag, help=helps[flag])
    p.add_argument("--no-synth", action="store_true",
                   help="skip synthesis: the report then has no area, Fmax or inferences/s")
    p.add_argument("--out", default=None, metavar="DIR",
                   help="report directory (default: estimate_<model>_<R>x<C>_<device> next to the "
                        "checkpoint, or in the current directory)")
    p.add_argument("--json", action="store_true", help="print the report as one JSON object")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.set_defaults(func=run)


def run(args) -> int:
    from pathlib import Path

    from rf8hw import checks
    from rf8hw.accel.estimate import (MODELS, EstimateConfig, check_refinement, estimate, estimate_adapter,
                                      load_adapter)
    from rf8hw.accel.synth import check_seed
    from rf8hw.accel.report import render_markdown, write_report
    from rf8hw.commands.options import config_from_args
    from rf8hw.arch import ArrayConfig

    array = config_from_args(ArrayConfig, args)
    tag = args.model.replace(":", "_").replace(".", "_")
    if args.model in MODELS:
        if args.checkpoint is None:
            raise ValueError(f"--checkpoint is required for the zoo model {args.model!r} "
                             "(a model.safetensors written by rf8hw train)")
        cfg = config_from_args(EstimateConfig, args, array=array, synth=not args.no_synth)
        out = Path(args.out) if args.out else (
            Path(args.checkpoint).parent / f"estimate_{tag}_{args.rows}x{args.cols}_{args.device}")
        checks.output_dir("--out", out)
        rep = estimate(cfg, progress=not args.quiet)
    else:
        if args.checkpoint is not None:
            raise ValueError(f"--checkpoint is for the zoo models ({', '.join(MODELS)}); the adapter "
                             f"{args.model!r} loads its own model")
        if args.batch != 1 or args.rounding != "nearest":
            raise ValueError("--batch and --rounding are for the zoo models; with an adapter the "
                             "example's batch comes from the adapter and both RF8 roundings are reported")
        if args.hessian_batches != EstimateConfig.__dataclass_fields__["hessian_batches"].default:
            raise ValueError("--hessian-batches is for the zoo models; with an adapter the --gptq "
                             "Hessians come from the adapter's calibration data")
        check_refinement(args.scale_search, args.gptq, gptq_order=args.gptq_order)   # before any loading
        load_adapter(args.model)                 # a bad name fails before anything loads
        out = Path(args.out) if args.out else Path(f"estimate_{tag}_{args.rows}x{args.cols}_{args.device}")
        checks.output_dir("--out", out)
        check_seed(args.seed)
        rep = estimate_adapter(args.model, array, args.device, synth=not args.no_synth, seed=args.seed,
                               synth_cache=args.synth_cache, progress=not args.quiet,
                               static=bool(args.calibrate_batches), scale_search=args.scale_search,
                               gptq=args.gptq, gptq_order=args.gptq_order)
    paths = write_report(rep, out)
    if args.json:
        print(json.dumps(rep))
    else:
        print(render_markdown(rep))
    print(f"rf8hw estimate: wrote {paths['markdown']}, {paths['json']}, {paths['png']}", file=sys.stderr)
    return 0
