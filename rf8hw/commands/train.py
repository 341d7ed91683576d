"""``rf8hw train``: train a model of the zoo (thin over :func:`rf8hw.nn.train.train`).

The training options are the fields of :class:`rf8hw.nn.train.TrainConfig` (names, defaults,
choices and help live there; ``--model`` is required here although the library has a default);
``--out``, ``--overwrite`` and ``--quiet`` belong to the command.  Every value is checked by
``TrainConfig`` itself.  Runs alone or under ``torchrun --nproc_per_node=N -m rf8hw train ...``
(DDP, gloo, CPU; tested by ``tests/nn/test_ddp.py``).
"""

from __future__ import annotations

import json
import os
import sys


def register(subparsers, name: str, help_text: str) -> None:
    from rf8hw.commands.options import add_config_args
    from rf8hw.nn.train import TrainConfig  # no torch at import time

    p = subparsers.add_parser(name, help=help_text, description=help_text)
    add_config_args(p, TrainConfig)
    p.add_argument("--out", required=True,
                   help="output directory (metrics.jsonl, model.safetensors, model.json); written "
                        "atomically: it must not exist, be empty, or hold a run and --overwrite be given")
    p.add_argument("--overwrite", action="store_true",
                   help="replace the run in --out (the whole directory) when this run has finished")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args) -> int:
    from rf8hw.commands.options import config_from_args
    from rf8hw.nn.checkpoint import json_safe
    from rf8hw.nn.train import TrainConfig, train

    cfg = config_from_args(TrainConfig, args)
    try:
        final = train(cfg, args.out, progress=not args.quiet, overwrite=args.overwrite)
    except KeyboardInterrupt:                 # Ctrl-C: train() has removed its partial directory
        if int(os.environ.get("RANK", "0")) == 0:
            print(f"rf8hw train: interrupted; {args.out} was left as it was", file=sys.stderr, flush=True)
        return 130
    if int(os.environ.get("RANK", "0")) == 0:
        print(json.dumps(json_safe(final), allow_nan=False))
    return 0
