"""``rf8hw estimate``: accuracy on the bit-exact hardware path, cycles, area and Fmax of an RF8 array
for a trained zoo model (thin over :func:`rf8hw.accel.estimate.estimate`)."""

from __future__ import annotations

import json
import sys


def register(subparsers, name: str, help_text: str) -> None:
    p = subparsers.add_parser(name, help=help_text, description=help_text)
    p.add_argument("--model", required=True, choices=("tinygpt", "mlp_digits"))
    p.add_argument("--checkpoint", required=True, help="model.safetensors written by rf8hw train")
    p.add_argument("--rows", type=int, required=True, help="array rows R (reduction depth), 1..64")
    p.add_argument("--cols", type=int, required=True, help="array columns C, 1..64")
    p.add_argument("--acc-bits", type=int, default=40, help="accumulator width (27..64; default 40)")
    p.add_argument("--overflow", default="wrap", choices=("wrap", "saturate"))
    p.add_argument("--device", default="ecp5-25k", choices=("ecp5-25k", "ecp5-85k", "ice40-up5k"))
    p.add_argument("--pe", default="rf8", choices=("rf8", "rf8_signlate", "rf8_lean", "rf8_pipe"),
                   help="RF8 PE micro-architecture (rf8hw.accel.synth.PE_KINDS; default rf8)")
    p.add_argument("--batch", type=int, default=1,
                   help="inferences streamed through each weight tile together (default 1)")
    p.add_argument("--rounding", default="nearest", choices=("nearest", "paper"), help="RF8 rounding")
    p.add_argument("--calibrate", type=int, default=0, metavar="N",
                   help="static activation scales from N training batches (default 0: per-call absmax)")
    p.add_argument("--seed", type=int, default=1, help="nextpnr placement seed")
    p.add_argument("--no-synth", action="store_true",
                   help="skip synthesis: the report then has no area, Fmax or inferences/s")
    p.add_argument("--synth-cache", default=None, metavar="DIR",
                   help="synthesis result cache (default ~/.cache/rf8hw/synth)")
    p.add_argument("--out", default=None, metavar="DIR",
                   help="report directory (default: estimate_<model>_<R>x<C>_<device> next to the checkpoint)")
    p.add_argument("--json", action="store_true", help="print the report as one JSON object")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.set_defaults(func=run)


def run(args) -> int:
    from pathlib import Path

    from rf8hw.accel.estimate import EstimateConfig, estimate, render_markdown, write_report

    cfg = EstimateConfig(model=args.model, checkpoint=args.checkpoint, rows=args.rows, cols=args.cols,
                         acc_bits=args.acc_bits, overflow=args.overflow, device=args.device,
                         pe=args.pe, batch=args.batch, rounding=args.rounding, calibrate_batches=args.calibrate,
                         synth=not args.no_synth, seed=args.seed, synth_cache=args.synth_cache)
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
