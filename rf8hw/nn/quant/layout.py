"""The layout of a quantized model, shared by every file format that stores one
(:mod:`rf8hw.nn.quant.saveload`'s safetensors + sidecar pair, :mod:`rf8hw.nn.quant.hf`'s Hugging Face
checkpoint): the fields of one layer's metadata (:data:`LAYER_FIELDS`, checked by
:func:`check_layer_meta`), the :class:`~rf8hw.nn.quant.QuantLinear` skeleton built from them
(:func:`quantized_skeleton`) and the checks on stored values (:func:`check_values`).
"""

from __future__ import annotations

import torch
import torch.nn as nn

from rf8hw import checks
from rf8hw.format import spec
from rf8hw.nn.grid import INT8_MAX
from rf8hw.nn.params import positive
from rf8hw.nn.quant.formats import FORMATS, GRANULARITIES, ROUNDINGS
from rf8hw.nn.quant.layer import MODES, QuantLinear, check_mode, is_linear_like, set_child, weight_kn_of

#: the keys of one layer's sidecar entry (:meth:`~rf8hw.nn.quant.QuantLinear.layer_meta`) and their rules
LAYER_FIELDS = {"in_features": "size", "out_features": "size", "fmt": FORMATS,
                "granularity": GRANULARITIES, "rounding": ROUNDINGS, "bias": bool, "mode": MODES,
                "smooth": bool, "channel_scale": bool}


def check_layer_meta(name: str, lm, where: str) -> dict:
    """A sidecar's entry for layer ``name``, checked field by field."""
    at = f"{where}: layer {name!r}"
    if not isinstance(lm, dict):
        raise ValueError(f"{at} must be a JSON object, not {type(lm).__name__}")
    missing = [k for k in LAYER_FIELDS if k not in lm]
    unknown = sorted(set(lm) - set(LAYER_FIELDS))
    if missing or unknown:
        parts = ([f"missing {', '.join(missing)}"] if missing else []) + (
            [f"unknown {', '.join(unknown)}"] if unknown else [])
        raise ValueError(f"{at}: {'; '.join(parts)} (a layer has {', '.join(LAYER_FIELDS)})")
    for key, rule in LAYER_FIELDS.items():
        if rule == "size":
            checks.integer(f"{at}: {key}", lm[key], 1)
        elif rule is bool:
            if not isinstance(lm[key], bool):
                raise ValueError(f"{at}: {key} must be true or false, not {lm[key]!r}")
        else:
            checks.choice(f"{at}: {key}", lm[key], rule)
    check_mode(lm["mode"], lm["fmt"], f"{at}: ")
    return lm


def first_bad(mask: torch.Tensor) -> tuple:
    return tuple(int(i) for i in torch.nonzero(mask)[0])


def check_values(name: str, q: QuantLinear, where: str) -> None:
    """Refuse stored values no encoder writes: RF8 exponents outside ``spec.X_MIN..X_MAX``, scales
    that are not finite and > 0, the INT8 code -128, FP8-E4M3 NaN codes, smoothing factors that are
    not positive powers of two, per-column scales that are not finite and > 0."""
    at = f"{where}: layer {name!r}"
    if q.fmt == "rf8":
        bad = (q.exponent < spec.X_MIN) | (q.exponent > spec.X_MAX)
        if bad.any():
            i = first_bad(bad)[0]
            checks.integer(f"{at}: exponent[{i}]", int(q.exponent[i]), spec.X_MIN, spec.X_MAX)
    else:
        bad = ~torch.isfinite(q.scale) | (q.scale <= 0)
        if bad.any():
            i = first_bad(bad)[0]
            positive(f"{at}: scale[{i}]", float(q.scale[i]))
    if q.fmt == "int8" and (q.codes == 0x80).any():
        k, n = first_bad(q.codes == 0x80)
        raise ValueError(f"{at}: code 0x80 (-128) at [{k}, {n}] is not an INT8 weight code "
                         f"(the symmetric format uses -{INT8_MAX}..{INT8_MAX})")
    if q.fmt == "fp8_e4m3":
        nan = q.codes.view(torch.float8_e4m3fn).float().isnan()
        if nan.any():
            k, n = first_bad(nan)
            raise ValueError(f"{at}: code 0x{int(q.codes[k, n]):02x} at [{k}, {n}] is an FP8-E4M3 NaN, "
                             "not a weight (codes encode finite values)")
    if q.smooth is not None:
        s = q.smooth
        bad = ~torch.isfinite(s) | (s <= 0)
        bad |= ~bad & (s != torch.exp2(torch.round(torch.log2(s.abs().clamp_min(1e-45)))))
        if bad.any():
            i = first_bad(bad)[0]
            raise ValueError(f"{at}: smooth[{i}] must be a positive power of two, not {float(s[i])!r}")
    if q.channel_scale is not None:
        bad = ~torch.isfinite(q.channel_scale) | (q.channel_scale <= 0)
        if bad.any():
            i = first_bad(bad)[0]
            positive(f"{at}: channel_scale[{i}]", float(q.channel_scale[i]))


def quantized_skeleton(model: nn.Module, layers: dict, where: str) -> nn.Module:
    """``model`` (changed in place) with a :class:`~rf8hw.nn.quant.QuantLinear` of each sidecar
    layer in place of the linear-like module of that name, whose shape must agree."""
    for name, lm in layers.items():
        try:
            old = model.get_submodule(name)
        except AttributeError:
            raise ValueError(f"{where}: layer {name!r} is not in the model") from None
        if not is_linear_like(old):
            raise ValueError(f"{where}: layer {name!r} is a {lm['in_features']}x{lm['out_features']} "
                             f"QuantLinear; the model's {name!r} is a {type(old).__name__}, not linear-like")
        K, N = weight_kn_of(old).shape
        if (K, N) != (lm["in_features"], lm["out_features"]):
            raise ValueError(f"{where}: layer {name!r} is {lm['in_features']}x{lm['out_features']} "
                             f"(in x out), the model's is {K}x{N}")
        ql = QuantLinear(lm["in_features"], lm["out_features"], lm["fmt"], lm["granularity"],
                         lm["rounding"], lm["bias"], lm["mode"])
        if lm["smooth"]:
            ql.smooth = torch.ones(lm["in_features"])
        if lm["channel_scale"]:
            ql.channel_scale = torch.ones(lm["out_features"])
        set_child(model, name, ql)
    return model
