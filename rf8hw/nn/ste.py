"""RF8-aware fine-tuning: ``nn.Linear`` weights stay trainable float parameters, the forward pass
uses their RF8 rounding, the backward pass a straight-through estimator (STE).

``STELinear`` (an ``nn.Linear`` subclass, same ``weight`` / ``bias`` parameters) computes
``F.linear(x, Q(weight), bias)`` with ``Q`` = nearest rounding onto the per-output-channel RF8 grid
whose exponent follows the *current* weight by the absmax rule (:func:`rf8hw.nn.grid.fit_grid`):
exactly the weight :func:`rf8hw.nn.quant.quantize` (``fmt="rf8"``, nearest, per channel) would
store for that float weight, so evaluating the STE model *is* evaluating its post-training RF8
quantization.  Backward: ``dL/dweight = dL/dQ(weight)`` (the gradient passes through the rounding).

:func:`ste_` swaps every exact ``nn.Linear`` of a model for an ``STELinear`` in place (parameters
shared, so an optimizer built before or after sees the same tensors); :func:`strip_ste` returns a
copy with plain ``nn.Linear`` layers again.  :func:`finetune` is a short AdamW loop over a zoo
model's ``Data`` (optionally with BackSlash's decoupled step, :class:`rf8hw.nn.backslash.BackSlash`).
:func:`distill` fine-tunes a model that brings no training loss (a pretrained Hugging Face model)
towards the outputs of its float original on held-in inputs (knowledge distillation): the student
learns to be the teacher, not the data, so its evaluation against the teacher stays fair.
"""

from __future__ import annotations

import copy
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from rf8hw import checks
from rf8hw.nn.grid import fit_grid
from rf8hw.nn.params import non_negative

__all__ = ["rf8_round", "STELinear", "ste_", "strip_ste", "finetune", "distill"]


def rf8_round(weight: torch.Tensor) -> torch.Tensor:
    """Nearest per-output-channel RF8 value of an ``nn.Linear`` weight ``[N, K]`` (float32)."""
    w_kn = weight.detach().float().cpu().T.numpy()
    _, w_hat, _ = fit_grid(w_kn, "rf8").round(w_kn)
    return torch.from_numpy(w_hat.T.copy()).to(weight.device, weight.dtype)


class _RoundSTE(torch.autograd.Function):
    @staticmethod
    def forward(ctx, weight):
        return rf8_round(weight)

    @staticmethod
    def backward(ctx, grad):
        return grad


class STELinear(nn.Linear):
    """``nn.Linear`` whose forward uses the RF8-rounded weight (straight-through backward)."""

    def forward(self, x):
        return F.linear(x, _RoundSTE.apply(self.weight), self.bias)


def ste_(model: nn.Module) -> nn.Module:
    """Every exact ``nn.Linear`` of ``model`` becomes an :class:`STELinear` (in place: the same module
    objects change class); returns ``model``.  A model without one is an error."""
    names = [n for n, m in model.named_modules() if type(m) is nn.Linear]
    if not names:
        raise ValueError(f"{type(model).__name__} has no nn.Linear layer to fine-tune on the RF8 grid")
    for name in names:
        model.get_submodule(name).__class__ = STELinear     # same object: parameters, hooks kept
    return model


def strip_ste(model: nn.Module) -> nn.Module:
    """A copy of ``model`` with every :class:`STELinear` back to a plain ``nn.Linear``."""
    out = copy.deepcopy(model)
    for m in out.modules():
        if isinstance(m, STELinear):
            m.__class__ = nn.Linear
    return out


def _step(opt, loss: torch.Tensor, diverged: str, lr: float) -> float:
    """One optimizer step on ``loss``; its value, or a ValueError ``diverged`` if it is not finite."""
    value = loss.item()
    if not math.isfinite(value):
        raise ValueError(f"{diverged}: loss {value!r} (lr={lr!r})")
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return value


def finetune(model: nn.Module, data, steps: int, lr: float, batch_size: int, seed: int = 0,
             backslash: float = 0.0) -> list[float]:
    """``steps`` AdamW steps of ``model(x, y) -> (logits, loss)`` on ``data.batch(gen, batch_size)``
    (``gen`` seeded with ``seed``); ``backslash > 0`` adds BackSlash's decoupled step (lambda) on
    the ``nn.Linear`` weights.  Trains in place; returns the losses."""
    from rf8hw.nn.backslash import BackSlash

    steps = checks.integer("steps", steps, 1)
    batch_size = checks.integer("batch_size", batch_size, 1)
    non_negative("lr", lr)
    non_negative("backslash", backslash)
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    weights = [m.weight for m in model.modules() if isinstance(m, nn.Linear)]
    bs = BackSlash(weights, lam=backslash, form="step") if backslash > 0 else None
    model.train()
    losses = []
    for i in range(steps):
        x, y = data.batch(gen, batch_size)
        _, loss = model(x, y)
        losses.append(_step(opt, loss, f"fine-tuning diverged at step {i}", lr))
        if bs is not None:
            bs.step()
    model.eval()
    return losses


def distill(student: nn.Module, teacher: nn.Module, batches, forward, loss, steps: int, lr: float,
            seed: int = 0, progress: bool = False, backslash: float = 0.0) -> list[float]:
    """``steps`` AdamW steps (no weight decay) of ``loss(forward(student, b), forward(teacher, b))``
    over the inputs ``batches`` (a non-empty list, visited in a random order reshuffled every pass,
    ``torch.Generator`` seeded ``seed``); the teacher's outputs are computed once per batch without
    gradient.  ``student`` is usually :func:`ste_` of a copy of ``teacher``, or a plain copy; it
    trains in place, in eval mode (no dropout: it matches the teacher's deterministic outputs); only
    its parameters with ``requires_grad`` are optimized.  ``backslash > 0`` adds BackSlash's
    decoupled step (lambda, :class:`rf8hw.nn.backslash.BackSlash` with ``form="step"``) on the
    student's ``nn.Linear`` weights after every optimizer step, as :func:`finetune` does.  A
    non-finite loss is an error.  Returns the losses."""
    from tqdm import tqdm

    from rf8hw.nn.backslash import BackSlash

    steps = checks.integer("steps", steps, 1)
    non_negative("lr", lr)
    non_negative("backslash", backslash)
    batches = list(batches)
    if not batches:
        raise ValueError("distill needs at least one input batch")
    teacher.eval()
    with torch.no_grad():
        targets = [forward(teacher, b).detach() for b in batches]
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW([p for p in student.parameters() if p.requires_grad], lr=lr, weight_decay=0.0)
    weights = [m.weight for m in student.modules() if isinstance(m, nn.Linear)]
    bs = BackSlash(weights, lam=backslash, form="step") if backslash > 0 else None
    student.eval()
    losses, order = [], []
    bar = tqdm(range(steps), desc="distill", unit="step", disable=not progress)
    for i in bar:
        if not order:
            order = torch.randperm(len(batches), generator=gen).tolist()
        j = order.pop()
        value = _step(opt, loss(forward(student, batches[j]), targets[j]),
                      f"distillation diverged at step {i}", lr)
        if bs is not None:
            bs.step()
        losses.append(value)
        bar.set_postfix(loss=f"{value:.3g}", refresh=False)
    return losses
