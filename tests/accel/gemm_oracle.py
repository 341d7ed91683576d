"""An independent count of a zoo model's GEMMs, written differently from the op-level capture
(:func:`rf8hw.accel.gemms.capture`): module hooks on every ``nn.Linear`` / ``QuantLinear`` and on
the attention modules of :mod:`rf8hw.zoo.tinygpt`.  Tests compare the two."""

from __future__ import annotations

import torch
import torch.nn as nn

from rf8hw.accel.cycles import Gemm


@torch.no_grad()
def model_gemms(model: nn.Module, x) -> list[Gemm]:
    """The GEMMs of one forward pass of ``model`` on ``x``, in execution order.

    Every ``nn.Linear`` and ``QuantLinear`` call is an on-array GEMM ``[rows of its input,
    in_features] x [in_features, out_features]``.  A module with an ``n_head`` attribute and a
    ``c_attn`` child (causal self-attention, ``models.tinygpt``) adds two off-array GEMMs per call:
    ``q @ k^T`` (``[T, hs] x [hs, T]``) and ``att @ v`` (``[T, T] x [T, hs]``), each ``B * n_head``
    times (full ``T x T``, causal masking not subtracted).
    """
    from rf8hw.nn.quant import QuantLinear

    gemms: list[Gemm] = []
    hooks = []

    def linear_hook(name):
        def hook(mod, args):
            inp = args[0]
            gemms.append(Gemm(name, inp.numel() // inp.shape[-1], mod.in_features, mod.out_features))
        return hook

    def attn_hook(name):
        def hook(mod, args):
            B, T, C = args[0].shape
            hs = C // mod.n_head
            gemms.append(Gemm(f"{name}.scores(q@kT)", T, hs, T, on_array=False, count=B * mod.n_head))
            gemms.append(Gemm(f"{name}.mix(att@v)", T, T, hs, on_array=False, count=B * mod.n_head))
        return hook

    for name, mod in model.named_modules():
        if isinstance(mod, (nn.Linear, QuantLinear)):
            hooks.append(mod.register_forward_pre_hook(linear_hook(name)))
        elif hasattr(mod, "n_head") and hasattr(mod, "c_attn"):
            hooks.append(mod.register_forward_hook(
                lambda mod, args, out, name=name: attn_hook(name)(mod, args)))
    was_training = model.training
    model.eval()
    try:
        model(x)
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    return gemms


