"""``rf8hw train``: train a model of the zoo (thin over :func:`rf8hw.nn.train.train`).

Runs alone or under ``torchrun --nproc_per_node=N -m rf8hw train ...`` (DDP, gloo, CPU; tested by
``tests/nn/test_ddp.py``).
"""

from __future__ import annotations

import json
import os


def register(subparsers, name: str, help_text: str) -> None:
    from rf8hw.nn.train import BACKSLASH_FORMS, GG_FANS, INITS

    p = subparsers.add_parser(name, help=help_text, description=help_text)
    p.add_argument("--model", required=True, choices=("tinygpt", "mlp_digits"))
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True,
                   help="output directory (metrics.jsonl, model.safetensors, model.json); written "
                        "atomically: it must not exist, be empty, or hold a run and --overwrite be given")
    p.add_argument("--overwrite", action="store_true",
                   help="replace the run in --out (the whole directory) when this run has finished")
    p.add_argument("--init", default="default", choices=INITS)
    p.add_argument("--init-from", default=None, metavar="CHECKPOINT",
                   help="start from a checkpoint of the same model (model.safetensors) instead of a fresh init")
    p.add_argument("--gg-shape", type=float, default=2.0, help="GG shape for --init gg (default 2 = Gaussian)")
    p.add_argument("--gg-fan", default="in", choices=GG_FANS,
                   help="variance xi/fan_in, or xi/fan_out as in the authors' code")
    p.add_argument("--backslash", type=float, default=0.0, metavar="LAMBDA",
                   help="BackSlash rate weight lambda (0: off)")
    p.add_argument("--backslash-form", default="step", choices=BACKSLASH_FORMS)
    p.add_argument("--backslash-epochs", type=int, default=None, metavar="N",
                   help="apply BackSlash in the first N epochs only (default: all)")
    p.add_argument("--deepshape", action="store_true", help="DeepShape after training, then fine-tune")
    p.add_argument("--deepshape-epochs", type=int, default=1, help="fine-tune epochs after DeepShape")
    p.add_argument("--deepshape-grid", type=float, default=2.0 ** -13, help="DeepShape level spacing")
    p.add_argument("--deepshape-min-count", type=int, default=1000,
                   help="DeepShape window: minimum population per level (authors: 1000; small models need less)")
    p.add_argument("--rate-step", type=float, default=2.0 ** -7,
                   help="quantization step of the Exp-Golomb coded-size measurement")
    p.add_argument("--lr", type=float, default=None)
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--steps-per-epoch", type=int, default=None)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args) -> int:
    from rf8hw.nn.checkpoint import json_safe
    from rf8hw.nn.train import TrainConfig, train

    cfg = TrainConfig(model=args.model, epochs=args.epochs, seed=args.seed, init=args.init,
                      init_from=args.init_from,
                      gg_shape=args.gg_shape, gg_fan=args.gg_fan, backslash=args.backslash,
                      backslash_form=args.backslash_form, backslash_epochs=args.backslash_epochs,
                      deepshape=args.deepshape, deepshape_epochs=args.deepshape_epochs,
                      deepshape_grid=args.deepshape_grid, deepshape_min_count=args.deepshape_min_count,
                      rate_step=args.rate_step, lr=args.lr, batch_size=args.batch_size,
                      steps_per_epoch=args.steps_per_epoch)
    final = train(cfg, args.out, progress=not args.quiet, overwrite=args.overwrite)
    if int(os.environ.get("RANK", "0")) == 0:
        print(json.dumps(json_safe(final), allow_nan=False))
    return 0
