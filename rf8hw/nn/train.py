"""Training loop for the model zoo (``models/``): one visible loop inside :func:`train`, as in nanoGPT.

The same function runs alone or under ``torchrun --nproc_per_node=N`` (DDP, gloo backend, CPU):
every rank starts from the same seeded weights, draws its own batches (generator seeded with
``seed * 1000 + rank``) and DDP averages the gradients, so parameters stay identical across ranks.
BackSlash only reads the (identical) weights, so its shape estimate ``nu`` agrees across ranks too.

Files written to ``out_dir`` (rank 0; other ranks add ``.rank{r}`` before the suffix, which the DDP
test compares):

* ``metrics.jsonl`` -- one JSON object per line: ``{"kind": "step", ...}`` per optimizer step
  (loss, and BackSlash ``nu``/``penalty`` when active), ``{"kind": "eval", ...}`` per epoch and
  ``{"kind": "final", ...}`` at the end.
* ``model.safetensors`` + ``model.json`` -- the checkpoint (:func:`rf8hw.nn.checkpoint.save_checkpoint`).

JSON has no NaN or Infinity: a non-finite number in a record is written as ``null``.  A training
loss that is not finite stops the run with a ``ValueError`` naming the epoch, the step, the loss
and the learning rate ("training diverged ..."); non-finite parameters after an epoch do too.

**The run directory is written atomically.**  Everything goes into a temporary sibling directory
(``.<name>.<random>.partial``), which is renamed to ``out_dir`` only when the run has finished:
a run that fails or is killed leaves ``out_dir`` as it was (a killed run leaves its ``.partial``
directory behind; a failed one removes it).  ``out_dir`` may be missing or empty; one that holds
a run (``model.json``, ``model.safetensors`` or ``metrics.jsonl``) is refused unless
``overwrite=True`` (``rf8hw train --overwrite``), which replaces the whole directory: the old one
is renamed aside (``.<name>.<random>.old``), the new one renamed into place, then the old one
deleted, so ``out_dir`` always holds one complete run, old or new (a kill between the two renames
leaves the old run in its ``.old`` directory).  Any other non-empty directory is refused.

Checkpoints are written and read by :mod:`rf8hw.nn.checkpoint`.
"""

from __future__ import annotations

import errno
import json
import math
import os
import shutil
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from rf8hw import checks, zoo
from rf8hw.nn.checkpoint import json_safe, load_checkpoint, save_checkpoint
from rf8hw.nn.params import non_negative, positive

INITS = ("default", "gg")
BACKSLASH_FORMS = ("loss", "step")
GG_FANS = ("in", "out")
#: the files of a finished run (rank 0); an output directory holding one of them holds a run
RUN_FILES = ("metrics.jsonl", "model.safetensors", "model.json")


#: Largest training seed: ``seed * 1000 + rank`` must stay a signed 64-bit integer.
MAX_SEED = (2**63 - 1) // 1000 - 1


def _opt(default, help_text: str, **more):
    """A :class:`TrainConfig` field: its default and the metadata ``rf8hw train`` builds its option
    from (:func:`rf8hw.commands.options.add_config_args`: ``help``, ``choices``, ``metavar``, ...)."""
    return field(default=default, metadata={"help": help_text, **more})


@dataclass
class TrainConfig:
    """Everything one training run depends on; stored in the checkpoint sidecar.

    Each field is an option of ``rf8hw train`` (``init_from`` -> ``--init-from``; a ``bool`` gives
    ``--deepshape`` / ``--no-deepshape``), with the help, choices and default written here.  Every
    rule on the values is checked in the constructor (a rule across fields belongs there too, not in
    the command), so the Python API and the command line refuse the same things with the same words.
    ``None`` for ``lr``, ``batch_size``, ``steps_per_epoch`` and ``eval_batches`` means the model's
    ``RECIPE`` value.
    """

    model: str = _opt("mlp_digits", "the zoo model to train", choices=zoo.MODELS, cli_required=True)
    epochs: int = _opt(10, "training epochs")
    seed: int = _opt(0, "seed of the initial weights and of the batches (rank r draws with seed * 1000 + r)")
    init: str = _opt("default", "initial weights: torch's init ('default') or rf8hw.nn.gg.gg_init_ of the "
                                "weight matrices ('gg')", choices=INITS)
    init_from: str | None = _opt(None, "start from a checkpoint of the same model (model.safetensors) "
                                       "instead of a fresh init", metavar="CHECKPOINT")
    gg_shape: float = _opt(2.0, "GG shape of init 'gg' (2 = Gaussian)")
    gg_fan: str = _opt("in", "GG init variance xi/fan_in, or xi/fan_out as in the authors' code",
                       choices=GG_FANS)
    backslash: float = _opt(0.0, "BackSlash rate weight lambda (0: off)", metavar="LAMBDA")
    backslash_form: str = _opt("step", "BackSlash as a penalty in the loss ('loss') or as a decoupled step "
                                       "after the optimizer ('step')", choices=BACKSLASH_FORMS)
    backslash_epochs: int | None = _opt(None, "apply BackSlash in the first N epochs only (default: all)",
                                        metavar="N")
    backslash_eps: float = _opt(1.0, "BackSlash eps (rf8hw.nn.backslash.BackSlash)")
    deepshape: bool = _opt(False, "DeepShape after training, then fine-tune")
    deepshape_epochs: int = _opt(1, "fine-tune epochs after DeepShape")
    deepshape_grid: float = _opt(2.0 ** -13, "DeepShape level spacing (the authors' default)")
    deepshape_min_count: int = _opt(1000, "DeepShape window: minimum population per level (authors: 1000; "
                                          "small models need less)")
    rate_step: float = _opt(2.0 ** -7, "quantization step of the Exp-Golomb coded-size measurement")
    lr: float | None = _opt(None, "learning rate (default: the model's RECIPE value)")
    batch_size: int | None = _opt(None, "batch size per rank (default: RECIPE)")
    steps_per_epoch: int | None = _opt(None, "optimizer steps per epoch (default: RECIPE; mlp_digits: one "
                                             "pass over the data)")
    eval_batches: int | None = _opt(None, "evaluation batches (default: RECIPE; tinygpt: 20 validation "
                                          "batches, mlp_digits: the whole test set)")

    def __post_init__(self):
        mod = zoo.get(self.model)   # raises for an unknown name
        checks.choice("init", self.init, INITS)
        checks.choice("backslash_form", self.backslash_form, BACKSLASH_FORMS)
        checks.choice("gg_fan", self.gg_fan, GG_FANS)
        for name in ("epochs", "deepshape_epochs"):
            checks.integer(name, getattr(self, name), 0)
        checks.integer("seed", self.seed, 0, MAX_SEED,
                       " (each rank's batch generator is seeded with seed * 1000 + rank, a signed "
                       "64-bit integer)")
        if self.backslash_epochs is not None:
            checks.integer("backslash_epochs", self.backslash_epochs, 0)
        for name in ("batch_size", "steps_per_epoch", "eval_batches"):     # None: the RECIPE value
            if getattr(self, name) is not None:
                checks.integer(name, getattr(self, name), 1)
        checks.integer("deepshape_min_count", self.deepshape_min_count, 1)
        non_negative("backslash", self.backslash)
        if self.lr is not None:
            non_negative("lr", self.lr)
        for name in ("gg_shape", "rate_step", "deepshape_grid", "backslash_eps"):
            positive(name, getattr(self, name))
        self._check_data_sizes(mod)
        self._check_used()
        if self.init == "gg":
            from rf8hw.nn.gg import SHAPE_MIN

            if self.gg_shape < SHAPE_MIN:
                raise ValueError(f"gg_shape must be a finite number >= {SHAPE_MIN} (the smallest GG shape "
                                 f"rf8hw fits; below it GG-init's scale underflows), not {self.gg_shape!r}")
        if self.init_from is not None and self.init != INITS[0]:
            raise ValueError(f"init {self.init!r} initialises fresh weights and init_from starts from "
                             f"the checkpoint's ({self.init_from!r}): give one of them")


    def _check_used(self) -> None:
        """An option that only a switch which is off would read is refused, not ignored: the GG-init
        options without init 'gg', the BackSlash ones without a BackSlash weight, the DeepShape ones
        without deepshape (a value equal to the field's default counts as not given)."""
        default = {f.name: f.default for f in fields(self)}
        for names, on, switch in (
                (("gg_shape", "gg_fan"), self.init == "gg", f"init 'gg' (init is {self.init!r})"),
                (("backslash_form", "backslash_epochs", "backslash_eps"), self.backslash > 0,
                 "a BackSlash weight > 0 (backslash is 0: off)"),
                (("deepshape_epochs", "deepshape_grid", "deepshape_min_count"), self.deepshape,
                 "deepshape on (it is off)")):
            given = [n for n in names if getattr(self, n) != default[n]]
            if given and not on:
                raise ValueError(f"{given[0]} {getattr(self, given[0])!r} is used only with {switch}: "
                                 f"give {given[0]} with it, or leave {given[0]} out")

    def _check_data_sizes(self, mod) -> None:
        """A batch larger than the training set, or more evaluation windows than there are, is
        refused (never clamped): the model's ``train_examples`` / ``eval_examples`` of its default
        configuration, the one :func:`train` builds."""
        cfg = mod.CONFIG()
        batch = mod.RECIPE["batch_size"] if self.batch_size is None else self.batch_size
        n_train = mod.train_examples(cfg)
        if self.batch_size is not None:
            checks.integer("batch_size", self.batch_size, 1, n_train,
                           f" ({self.model} draws each batch from its {n_train} training examples)")
        n_eval = mod.eval_examples(cfg)
        n_batches = mod.RECIPE["eval_batches"] if self.eval_batches is None else self.eval_batches
        if n_eval is not None and n_batches is not None and n_batches * batch > n_eval:
            most = (f"with batch_size {batch} the largest eval_batches is {n_eval // batch}"
                    if batch <= n_eval else f"no eval_batches fits a batch_size over {n_eval}")
            raise ValueError(f"eval_batches x batch_size must be at most {n_eval} ({self.model}'s "
                             f"evaluation examples), not {n_batches} x {batch} = {n_batches * batch}; "
                             f"{most}")


def linear_weights(model) -> list:
    """The weight matrices of every ``nn.Linear``: what BackSlash, the rate and quantization touch."""
    import torch.nn as nn

    return [m.weight for m in model.modules() if isinstance(m, nn.Linear)]


def linear_names(model) -> list[str]:
    """The names of the modules :func:`linear_weights` takes the weights of, in the same order."""
    import torch.nn as nn

    return [n for n, m in model.named_modules() if isinstance(m, nn.Linear)]


def coded_size(weights, step: float) -> dict:
    """Coded size of all ``weights`` pooled at quantization ``step`` (:func:`rf8hw.nn.rate.report`).

    Keys: ``bits_per_param`` (order-0 Exp-Golomb payload of the frequency ranks, the authors'
    scheme), ``bits_per_param_with_table``, ``zigzag_bpp``, ``entropy_bpp``, ``zero_fraction``.
    """
    from rf8hw.nn import rate

    r = rate.report(list(weights), step)
    return {"bits_per_param": r["exp_golomb_bpp"],
            "bits_per_param_with_table": r["exp_golomb_with_table_bpp"],
            "zigzag_bpp": r["zigzag_bpp"], "entropy_bpp": r["entropy_bpp"],
            "zero_fraction": r["zero_fraction"]}


def evaluate_rounded(model, data, recipe, step: float) -> dict:
    """Metrics with every Linear weight rounded to the grid ``step`` (the grid the rate is measured on)."""
    import torch

    weights = linear_weights(model)
    saved = [w.detach().clone() for w in weights]
    with torch.no_grad():
        for w in weights:
            w.copy_(torch.round(w / step) * step)
        out = data.evaluate(model, recipe["eval_batches"], recipe["batch_size"])
        for w, s in zip(weights, saved):
            w.copy_(s)
    return out


class Progress:
    """The progress of one training phase on stderr: a tqdm bar where stderr is a terminal;
    elsewhere (a CI log, a file) at most :attr:`LINES` plain lines, one each tenth of the steps
    and one at the last (``mlp_digits train: step 22/220 (10%), 0.4 s, loss=0.412``), never the
    bar's carriage-return updates.

    Parameters
    ----------
    total : int
        Steps of the phase.
    desc : str
        What the phase is (the bar's description, each line's start).
    enabled : bool
        False: nothing is shown (``--quiet``, ranks other than 0).
    stream : file, optional
        Where to write (default: ``sys.stderr`` at construction).
    """

    LINES = 10

    def __init__(self, total: int, desc: str, enabled: bool = True, stream=None):
        self.total, self.desc, self.enabled, self.n = total, desc, enabled, 0
        self.stream = sys.stderr if stream is None else stream
        self.start = time.monotonic()
        self.every = max(1, math.ceil(total / self.LINES))
        isatty = getattr(self.stream, "isatty", None)
        self.bar = None
        if enabled and callable(isatty) and isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=total, desc=desc, file=self.stream)

    def update(self, **postfix) -> None:
        """One step done; ``postfix``: values to show (the loss, BackSlash's shape)."""
        self.n += 1
        if self.bar is not None:
            self.bar.update()
            self.bar.set_postfix(**postfix)
        elif self.enabled and (self.n % self.every == 0 or self.n == self.total):
            shown = "".join(f", {k}={v}" for k, v in postfix.items())
            print(f"{self.desc}: step {self.n}/{self.total} ({100 * self.n // max(self.total, 1)}%), "
                  f"{time.monotonic() - self.start:.1f} s{shown}", file=self.stream, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _check_out_dir(out: Path, overwrite: bool) -> None:
    """Refuse an output directory this run may not fill or replace (before any work)."""
    checks.output_dir("output directory", out)
    if out == Path.cwd():
        raise ValueError(f"output directory {out} is the current directory; give a directory for the run "
                         "(it is replaced as a whole)")
    if not out.exists():
        return
    names = sorted(p.name for p in out.iterdir())
    if not names:
        return
    run_files = [n for n in names if n in RUN_FILES]
    if not run_files:
        raise ValueError(f"output directory {out} is not empty and holds no training run "
                         f"({checks.listing(names)}); give a new or empty directory")
    if not overwrite:
        raise ValueError(f"output directory {out} already holds a training run ({', '.join(run_files)}); "
                         "pass --overwrite (overwrite=True) to replace it, or give another directory")


def _publish(tmp: Path, out: Path, overwrite: bool) -> None:
    """Rename the finished run ``tmp`` to ``out`` (see the module docstring)."""
    old = None
    if overwrite and out.is_dir() and any(out.iterdir()):
        old = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".old", dir=out.parent))
        try:
            os.replace(out, old)
        except OSError as exc:
            old.rmdir()
            raise ValueError(f"output directory {out} could not be moved aside ({exc.strerror}); this "
                             f"run's results are in {tmp}") from None
    try:
        os.replace(tmp, out)
    except OSError as exc:
        if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST):
            raise ValueError(f"output directory {out} could not be replaced ({exc.strerror}); this run's "
                             f"results are in {tmp}") from None
        raise ValueError(f"output directory {out} was filled by another run while this one trained; "
                         f"this run's results are in {tmp}") from None
    if old is not None:
        shutil.rmtree(old)


def _dist_setup():
    """(world_size, rank); joins the gloo process group when launched by torchrun."""
    import torch.distributed as dist

    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("gloo")
    return world, (dist.get_rank() if world > 1 else 0)


def train(cfg: TrainConfig, out_dir, progress: bool = True, overwrite: bool = False) -> dict:
    """Train ``cfg.model`` as configured, write metrics and the checkpoint to ``out_dir``.

    ``out_dir`` is written atomically (module docstring): it must be missing, empty, or hold a
    run and ``overwrite`` be True; anything else is refused before any work.  Returns the final
    metrics (also the ``final`` line of ``metrics.jsonl``).
    """
    world, rank = _dist_setup()
    out = Path(os.path.realpath(out_dir))           # a symbolic link: the directory it names
    _check_out_dir(out, overwrite)
    tmp = None
    if rank == 0:
        out.parent.mkdir(parents=True, exist_ok=True)
        try:
            tmp = tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".partial", dir=out.parent)
        except OSError as exc:                       # read-only or full: name the directory asked for
            raise OSError(exc.errno, exc.strerror or str(exc), str(out.parent)) from exc
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o777 & ~umask)                # mkdtemp's 0700 would become the run's mode
    if world > 1:
        import torch.distributed as dist

        box = [tmp]
        dist.broadcast_object_list(box, src=0)       # every rank writes into rank 0's directory
        tmp = box[0]
    tmp = Path(tmp)
    try:
        final = _train_into(cfg, tmp, world, rank, progress)
    except BaseException as exc:
        if rank == 0:
            shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(exc, OSError) and exc.filename is not None and Path(exc.filename).is_relative_to(tmp):
            # a full disk: name the file of out_dir it was for (the .partial directory is gone)
            raise OSError(exc.errno, exc.strerror or str(exc),
                          str(out / Path(exc.filename).relative_to(tmp))) from exc
        raise
    if world > 1:
        dist.barrier()                               # every rank's files are written
    if rank == 0:
        _publish(tmp, out, overwrite)
    if world > 1:
        dist.barrier()                               # ... and in place before any rank returns
    return final


def _train_into(cfg: TrainConfig, out_dir: Path, world: int, rank: int, progress: bool) -> dict:
    import torch
    from torch.nn.parallel import DistributedDataParallel as DDP

    from rf8hw import __version__

    suffix = "" if rank == 0 else f".rank{rank}"
    log_path = out_dir / f"metrics{suffix}.jsonl"
    log_file = log_path.open("w")

    def log(record: dict) -> None:
        try:
            log_file.write(json.dumps(json_safe(record), allow_nan=False) + "\n")
            log_file.flush()
        except OSError as exc:                           # a full disk names no file
            raise OSError(exc.errno, exc.strerror or str(exc), str(log_path)) from exc

    def finite_on_every_rank(ok: bool) -> bool:
        if world > 1:
            import torch.distributed as dist

            flag = torch.tensor([0.0 if ok else 1.0])
            dist.all_reduce(flag)
            ok = flag.item() == 0
        return ok

    def diverged(where: str, what: str):
        return ValueError(f"training diverged {where}: {what}; lower the learning rate (lr={recipe['lr']!r}) "
                          "or the BackSlash weight")

    # -- setup: model, init, data, optimizer, BackSlash ---------------------------------------------
    mod = zoo.get(cfg.model)
    recipe = dict(mod.RECIPE)
    for key in ("lr", "batch_size", "steps_per_epoch", "eval_batches"):
        if getattr(cfg, key) is not None:
            recipe[key] = getattr(cfg, key)
    torch.manual_seed(cfg.seed)                      # same initial weights on every rank
    model = mod.build()
    if cfg.init_from is not None:
        start, start_meta = load_checkpoint(cfg.init_from)
        if start_meta["model"] != cfg.model:
            raise ValueError(f"checkpoint {cfg.init_from!r} holds a {start_meta['model']!r} model, "
                             f"not {cfg.model!r}")
        model.load_state_dict(start.state_dict())
    elif cfg.init == "gg":
        from rf8hw.nn import gg

        gg.gg_init_(model, shape=cfg.gg_shape, xi=recipe["xi"], fan=cfg.gg_fan)
    data = mod.Data(model.config)
    steps = recipe["steps_per_epoch"] or data.steps_per_epoch(recipe["batch_size"])
    gen = torch.Generator().manual_seed(cfg.seed * 1000 + rank)   # each rank its own batches
    net = DDP(model) if world > 1 else model
    opt = torch.optim.AdamW(model.parameters(), lr=recipe["lr"], weight_decay=recipe["weight_decay"])
    bs = None
    if cfg.backslash > 0:
        from rf8hw.nn.backslash import BackSlash

        bs = BackSlash(linear_weights(model), lam=cfg.backslash, eps=cfg.backslash_eps,
                       form=cfg.backslash_form)
    bs_epochs = cfg.epochs if cfg.backslash_epochs is None else cfg.backslash_epochs
    n_params = sum(p.numel() for p in model.parameters())
    if rank == 0 and progress:
        print(f"{cfg.model}: {n_params:,} parameters, {steps} steps/epoch x {cfg.epochs} epochs, "
              f"batch {recipe['batch_size']} x {world} rank(s)")

    def run_epochs(n_epochs, first_epoch, phase, use_backslash):
        bar = Progress(n_epochs * steps, f"{cfg.model} {phase}", enabled=rank == 0 and progress)
        for epoch in range(first_epoch, first_epoch + n_epochs):
            for i in range(steps):
                x, y = data.batch(gen, recipe["batch_size"])
                _, loss = net(x, y)
                record = {"kind": "step", "phase": phase, "epoch": epoch, "step": epoch * steps + i,
                          "loss": loss.item()}
                active = bs is not None and use_backslash(epoch)
                if active and cfg.backslash_form == "loss":
                    penalty = bs.penalty()
                    loss = loss + penalty
                    record["penalty"] = penalty.item()
                total = record["loss"] + record.get("penalty", 0.0)
                if not finite_on_every_rank(math.isfinite(total)):
                    shown = f"loss {record['loss']!r}" + (f" + penalty {record['penalty']!r}"
                                                          if "penalty" in record else "")
                    raise diverged(f"in epoch {epoch} at step {record['step']} ({phase})",
                                   shown if not math.isfinite(total)
                                   else "the loss is not finite on another rank")
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                if active and cfg.backslash_form == "step":
                    bs.step()
                if active:
                    record["nu"] = float(bs.nu)
                log(record)
                bar.update(loss=f"{record['loss']:.3f}", **({"nu": f"{bs.nu:.2f}"} if active else {}))
            log({"kind": "eval", "phase": phase, "epoch": epoch, "step": (epoch + 1) * steps,
                 **data.evaluate(model, recipe["eval_batches"], recipe["batch_size"]),
                 **coded_size(linear_weights(model), cfg.rate_step),
                 **({"rate_term": bs.rate_term()} if bs is not None else {})})
            if not finite_on_every_rank(all(bool(torch.isfinite(p).all()) for p in model.parameters())):
                raise diverged(f"in epoch {epoch} ({phase})", "some parameters are no longer finite")
        bar.close()

    # -- the loop: training (BackSlash in the first bs_epochs), then optional DeepShape + fine-tune --
    run_epochs(cfg.epochs, 0, "train", lambda epoch: epoch < bs_epochs)
    final = {"kind": "final", **data.evaluate(model, recipe["eval_batches"], recipe["batch_size"]),
             **coded_size(linear_weights(model), cfg.rate_step)}
    if cfg.deepshape:
        from rf8hw.nn import deepshape

        final["before_deepshape"] = {k: v for k, v in final.items() if k != "kind"}
        named = {f"{n}.weight": w for n, w in zip(linear_names(model), linear_weights(model))}
        with torch.no_grad():
            try:
                report = deepshape.deepshape_(named, grid=cfg.deepshape_grid,
                                              min_count=cfg.deepshape_min_count)
            except ValueError as exc:
                raise ValueError(f"DeepShape: {exc}") from None
        skipped = {n: r["skipped"] for n, r in report["tensors"].items() if r["skipped"]}
        if len(skipped) == len(named):
            raise ValueError(f"DeepShape reshaped no weight matrix (deepshape_grid={cfg.deepshape_grid!r}, "
                             f"deepshape_min_count={cfg.deepshape_min_count}): "
                             + "; ".join(f"{n}: {why}" for n, why in skipped.items()))
        if skipped:
            final["deepshape_skipped"] = skipped
            if rank == 0 and progress:
                print(f"DeepShape left {len(skipped)} of {len(named)} weight matrices as they were: "
                      + "; ".join(f"{n}: {why}" for n, why in skipped.items()), file=sys.stderr)
        final["after_deepshape"] = {**data.evaluate(model, recipe["eval_batches"], recipe["batch_size"]),
                                    **coded_size(linear_weights(model), cfg.rate_step)}
        run_epochs(cfg.deepshape_epochs, cfg.epochs, "deepshape_finetune", lambda epoch: False)
        final.update(data.evaluate(model, recipe["eval_batches"], recipe["batch_size"]),
                     **coded_size(linear_weights(model), cfg.rate_step))
    final["rounded"] = evaluate_rounded(model, data, recipe, cfg.rate_step)
    if bs is not None and bs.nu is not None:
        final["nu"] = float(bs.nu)
    log(final)
    log_file.close()
    meta = {"model": cfg.model, "model_config": asdict(model.config), "train_config": asdict(cfg),
            "seed": cfg.seed, "world_size": world, "recipe": recipe, "n_params": n_params,
            "metrics": {k: v for k, v in final.items() if k != "kind"},
            "rf8hw_version": __version__, "torch_version": torch.__version__}
    save_checkpoint(model, out_dir / f"model{suffix}.safetensors", meta)
    return final


def config_from_dict(d: dict) -> TrainConfig:
    """A :class:`TrainConfig` from a dict, rejecting unknown keys by name."""
    known = {f.name for f in fields(TrainConfig)}
    unknown = sorted(set(d) - known)
    if unknown:
        raise ValueError(f"unknown training option(s) {', '.join(unknown)}; "
                         f"known: {', '.join(sorted(known))}")
    return TrainConfig(**d)
