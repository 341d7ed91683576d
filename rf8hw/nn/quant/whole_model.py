"""Whole-model functions of :mod:`rf8hw.nn.quant`: the quantized layers of a model
(:func:`quant_layers`, :func:`rf8_layers`), its weight SQNR (:func:`sqnr_db`) and the bit-exact
path's switches and counters (:func:`set_mode`, :func:`calibrate`, :func:`overflow_report`,
:func:`reset_stats`; the per-layer arithmetic is :mod:`rf8hw.nn.bitexact`).
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn

from rf8hw import checks
from rf8hw.arch import ArrayConfig
from rf8hw.nn.bitexact import ACT_DYNAMIC, OverflowStats
from rf8hw.nn.quant.layer import BITEXACT_FORMATS, MODES, QuantLinear, array_for, check_absmax, check_array


def quant_layers(model: nn.Module) -> dict[str, QuantLinear]:
    """The :class:`~rf8hw.nn.quant.QuantLinear` layers of ``model`` by name (any format)."""
    return {n: m for n, m in model.named_modules() if isinstance(m, QuantLinear)}


def sqnr_db(model: nn.Module, qmodel: nn.Module) -> float:
    """Weight SQNR in dB, ``10 log10(sum w^2 / sum (w - w_hat)^2)``, pooled over the quantized layers."""
    sig = err = 0.0
    for name, q in quant_layers(qmodel).items():
        w = model.get_submodule(name).weight.detach().double().T
        w_hat = q.weight_kn().double()
        sig += float((w ** 2).sum())
        err += float(((w - w_hat) ** 2).sum())
    return math.inf if err == 0 else 10 * math.log10(sig / err)


def rf8_layers(model: nn.Module) -> dict[str, QuantLinear]:
    """The RF8 :class:`~rf8hw.nn.quant.QuantLinear` layers of ``model`` by name; refuses a model
    without any."""
    layers = {n: m for n, m in model.named_modules() if isinstance(m, QuantLinear) and m.fmt == "rf8"}
    if not layers:
        raise ValueError("model has no RF8 QuantLinear layer; call rf8hw.quantize(model, fmt='rf8') first")
    return layers


def bitexact_layers(model: nn.Module) -> dict[str, QuantLinear]:
    """The :class:`~rf8hw.nn.quant.QuantLinear` layers of ``model`` that have a bit-exact path (RF8,
    INT8, FP8-E4M3: ``BITEXACT_FORMATS``) by name; refuses a model without any."""
    layers = {n: m for n, m in model.named_modules()
              if isinstance(m, QuantLinear) and m.fmt in BITEXACT_FORMATS}
    if not layers:
        raise ValueError("model has no QuantLinear layer with a bit-exact path (fmt "
                         f"{', '.join(BITEXACT_FORMATS)}); quantize it with one of them first")
    return layers


def set_mode(model: nn.Module, mode: str = "bitexact", array: ArrayConfig | None = None,
             absmax: dict | None = None, act_granularity: str = "token") -> nn.Module:
    """Switch every RF8, INT8 and FP8-E4M3 ``QuantLinear`` of ``model`` (:func:`bitexact_layers`) to
    ``mode`` (in place) and reset its counters.  An INT8 / FP8-E4M3 layer runs W8A8 on the same
    array with its format's PE kind (:func:`rf8hw.nn.quant.layer.array_for`): the same activation
    quantization and accumulator as the RF8 layers, for a like-for-like comparison.

    Parameters
    ----------
    model : torch.nn.Module
        A model returned by ``rf8hw.quantize(model, fmt="rf8")``.
    mode : {"bitexact", "fake"}
    array : ArrayConfig, optional
        The array every layer's bit-exact arithmetic follows (``act_bits``, ``acc_bits``,
        ``overflow``; ``pe`` must be an RF8 kind).  Default ``ArrayConfig()``: 8-bit activations,
        40-bit wrapping accumulator.
    absmax : dict of str to float, optional
        Static activation clipping levels per layer name (:func:`calibrate`); layers not named
        keep dynamic scales.  A name that is not an RF8 layer is an error.
    act_granularity : {"token", "tensor"}
        Dynamic activation scales of the layers without a static level: per token (the default)
        or per tensor (:mod:`rf8hw.nn.bitexact`, rule 1).

    Returns
    -------
    torch.nn.Module
        ``model`` itself.
    """
    checks.choice("mode", mode, MODES)
    array = check_array(array)
    checks.choice("act_granularity", act_granularity, ACT_DYNAMIC)
    layers = bitexact_layers(model)
    absmax = absmax or {}
    unknown = sorted(set(absmax) - set(layers))
    if unknown:
        raise ValueError(f"absmax names {unknown} which are not bit-exact layers; layers are: "
                         f"{', '.join(layers)}")
    levels = {name: check_absmax(f"absmax[{name!r}]", absmax.get(name)) for name in layers}
    for name, layer in layers.items():
        layer.mode = mode
        layer.array = array_for(array, layer.fmt)
        layer.act_absmax = levels[name]
        layer.act_granularity = act_granularity
        layer.overflow_stats = OverflowStats()
    return model


@torch.no_grad()
def calibrate(model: nn.Module, batches) -> dict:
    """Static activation ranges: ``max|x|`` at the input of every bit-exact layer (RF8, INT8,
    FP8-E4M3) over ``batches``.

    Parameters
    ----------
    model : torch.nn.Module
        A quantized model; it runs in whatever mode its layers are in (use ``"fake"`` to calibrate
        on the float path, as a deployment flow would).
    batches : iterable or callable
        Each item is passed to ``model`` (a tuple is unpacked as positional arguments, a dict as
        keyword arguments); or a callable ``run(model)`` that runs the model on the user's own
        batches in whatever format it takes (e.g. ``lambda m: m.encode(sentences)``).

    Returns
    -------
    dict of str to float
        Layer name -> absmax; pass it to :func:`set_mode` as ``absmax=``.
    """
    layers = bitexact_layers(model)
    seen = {name: 0.0 for name in layers}
    hooks = [layer.register_forward_pre_hook(
        lambda mod, args, name=name: seen.__setitem__(name, max(seen[name], float(args[0].abs().max()))))
        for name, layer in layers.items()]
    n = 0
    try:
        if callable(batches) and not isinstance(batches, nn.Module):
            batches(model)
            n = 1
        else:
            for batch in batches:
                if isinstance(batch, tuple):
                    model(*batch)
                elif isinstance(batch, dict):
                    model(**batch)
                else:
                    model(batch)
                n += 1
    finally:
        for h in hooks:
            h.remove()
    if n == 0:
        raise ValueError("calibrate got no batches")
    return seen


def overflow_report(model: nn.Module) -> dict:
    """Per-layer :class:`~rf8hw.nn.bitexact.OverflowStats` as dicts (``OverflowStats.as_dict``),
    plus ``"total"`` (sums; max of ``max_abs_sum`` and the ``acc_bits_needed`` of that)."""
    out = {name: layer.overflow_stats.as_dict() for name, layer in bitexact_layers(model).items()}
    keys = ("calls", "outputs", "events", "clipped_acts", "acts")
    total = {k: sum(v[k] for v in out.values()) for k in keys}
    total["max_abs_sum"] = max(v["max_abs_sum"] for v in out.values())
    total["acc_bits_needed"] = total["max_abs_sum"].bit_length() + 1
    out["total"] = total
    return out


def reset_stats(model: nn.Module) -> None:
    """Zero the overflow counters of every bit-exact layer."""
    for layer in bitexact_layers(model).values():
        layer.overflow_stats = OverflowStats()
