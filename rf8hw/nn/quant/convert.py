"""Quantizing a whole model: :func:`quantize_` (any model, in place, torchao style) and
:func:`quantize` (the zoo's copy of a model with every exact ``nn.Linear`` replaced), the layer
selection they share (:func:`default_filter`, tied weights, ``nn.MultiheadAttention``) and
SmoothQuant-style smoothing (:func:`smoothing_factors`).

Each selected layer becomes a :class:`~rf8hw.nn.quant.QuantLinear` of a
:class:`~rf8hw.nn.quant.QuantConfig`; with ``scale_search`` / ``gptq`` its codes are re-derived
from the float weight (:mod:`rf8hw.nn.grid`, :mod:`rf8hw.nn.gptq`).
"""

from __future__ import annotations

import copy
import fnmatch

import numpy as np
import torch
import torch.nn as nn

from rf8hw import checks
from rf8hw.nn.gptq import gptq as gptq_round
from rf8hw.nn.gptq import hessians
from rf8hw.nn.grid import DEFAULT_FACTORS, fit_grid, search_scale
from rf8hw.nn.params import non_negative
from rf8hw.nn.quant.config import QuantConfig
from rf8hw.nn.quant.formats import DEFAULT_GRANULARITY, FORMATS, GRANULARITIES, ROUNDINGS
from rf8hw.nn.quant.layer import MODES, QuantLinear, is_conv1d, is_linear_like, set_child, weight_kn_of
from rf8hw.nn.quant.saveload import mark_hf_configs


def _tied_to_embedding(model: nn.Module) -> set[str]:
    """Names of linear-like modules whose weight is the very tensor of an ``nn.Embedding``."""
    emb = {id(m.weight) for m in model.modules() if isinstance(m, nn.Embedding)}
    return {n for n, m in model.named_modules() if is_linear_like(m) and id(m.weight) in emb}


def _mha_projections(model: nn.Module) -> set[str]:
    """``out_proj`` of every ``nn.MultiheadAttention``: its forward reads the weight tensors itself."""
    return {f"{n}.out_proj" if n else "out_proj" for n, m in model.named_modules()
            if isinstance(m, nn.MultiheadAttention)}


def _refine(q: QuantLinear, w_kn: np.ndarray, config: QuantConfig, H) -> int:
    """Re-derive ``q``'s codes (and exponent/scale, ``channel_scale``) from its float weight
    ``w_kn [K, N]`` by ``config``'s scale search and/or GPTQ with input Hessian ``H``; returns how
    many values GPTQ moved beyond the grid (rounded to its largest magnitude)."""
    s = None
    if config.scale_search:
        imp = np.diag(np.asarray(H, dtype=np.float64)).copy() if config.scale_objective == "hessian" else None
        s = search_scale(w_kn, DEFAULT_FACTORS, imp, config.scale_sample_rows)
    grid = fit_grid(w_kn, config.fmt, s)
    if config.gptq:
        res = gptq_round(w_kn, H, grid, config.gptq_damp, config.gptq_block, config.gptq_order)
        codes, saturated = res.codes, res.saturated
    else:
        codes, _, saturated = grid.round(w_kn)
    dev = q.codes.device
    q.codes.copy_(torch.from_numpy(codes))
    if config.fmt == "rf8":
        q.exponent.copy_(torch.from_numpy(grid.exponent))
    else:
        q.scale.copy_(torch.from_numpy(grid.scale))
    if s is not None:
        q.channel_scale = torch.from_numpy(s).to(dev)
    return saturated


def _check_float_model(model) -> None:
    """Refuse what is not a torch module, or is a module already quantized."""
    if not isinstance(model, nn.Module):
        raise ValueError(f"model must be a torch.nn.Module, not {type(model).__name__}")
    already = [n for n, m in model.named_modules() if isinstance(m, QuantLinear)]
    if already:
        raise ValueError(f"model is already quantized ({len(already)} QuantLinear layers, first "
                         f"{already[0]!r}); re-quantizing is not supported: quantize the float model")


def default_filter(module: nn.Module, fqn: str) -> bool:
    """The default layer selection of :func:`quantize_`: every linear-like layer."""
    return is_linear_like(module)


def _input_absmax(model: nn.Module, names, run) -> dict:
    """Per-input-channel ``max|x|`` at the input of each named module over ``run(model)``."""
    seen = {}

    def hook(name):
        def f(mod, args):
            a = args[0].detach().abs().reshape(-1, args[0].shape[-1]).amax(0).float().cpu()
            seen[name] = a if name not in seen else torch.maximum(seen[name], a)
        return f

    hooks = [model.get_submodule(n).register_forward_pre_hook(hook(n)) for n in names]
    try:
        with torch.no_grad():
            run(model)
    finally:
        for h in hooks:
            h.remove()
    return seen


def smoothing_factors(act_absmax: torch.Tensor, w_kn: torch.Tensor, alpha: float = 0.5) -> torch.Tensor:
    """SmoothQuant-style per-input-channel factors (Xiao et al. 2023), rounded to powers of two:
    ``s_k = 2**round(log2(max|x_k|**alpha / max_n |W[k, n]|**(1 - alpha)))``; 1 where either is 0.
    Powers of two make the rescaling ``(x / s) @ (diag(s) W) = x @ W`` exact in float (barring
    under/overflow) and a shift in hardware."""
    a = act_absmax.double()
    w = w_kn.detach().abs().amax(1).double().cpu()
    ok = (a > 0) & (w > 0)
    raw = torch.where(ok, a.clamp_min(1e-30) ** alpha / w.clamp_min(1e-30) ** (1 - alpha), torch.ones_like(a))
    return torch.exp2(torch.round(torch.log2(raw))).float()


def quantize_(model: nn.Module, config: QuantConfig | None = None, filter_fn=None, *,
              quantize_tied_lm_head: bool = False, warn: bool = True, smooth=None,
              smooth_alpha: float = 0.5, calibrate=None) -> nn.Module:
    """Quantize ``model`` **in place** (torchao style): every layer selected by ``filter_fn``
    becomes a :class:`~rf8hw.nn.quant.QuantLinear` of ``config``.

    Parameters
    ----------
    model : torch.nn.Module
        Any model (a Hugging Face transformer, a ``SentenceTransformer``, a zoo model).
    config : QuantConfig, optional
        Format, rounding, granularity, mode (default ``QuantConfig()``: RF8, nearest, per channel,
        fake-quant).
    filter_fn : callable ``(module, fqn) -> bool``, optional
        Which modules to quantize; only linear-like ones can be (``nn.Linear`` and subclasses, HF
        ``Conv1D``).  Default :func:`default_filter`: all of them, except (1) a layer whose weight
        is tied to an ``nn.Embedding`` (the LM head of most causal LMs; ``quantize_tied_lm_head=True``
        quantizes it, the embedding stays float and the tie is broken: ``config.tie_word_embeddings``
        is set False so that ``tie_weights()`` does not re-attach the float weight) and (2) the
        ``out_proj`` of ``nn.MultiheadAttention`` (its forward reads the weights directly).
    warn : bool
        Warn (``UserWarning``) naming every linear-like layer left in float and why.
    smooth : callable ``run(model)``, optional
        SmoothQuant-style smoothing: ``run`` is called once on the float model to measure each
        layer's per-input-channel activation range; each layer then stores power-of-two factors
        ``smooth`` (:func:`smoothing_factors`, ``smooth_alpha``), encodes ``diag(smooth) W`` and
        divides its input by ``smooth`` (exact) before quantizing it.  In hardware the division is
        a shift in the activation quantizer (or folds into a preceding LayerNorm's gain).
    calibrate : callable ``run(model)`` or dict, optional
        Calibration data for ``config.gptq`` / a Hessian-weighted scale search (required then,
        refused otherwise): ``run`` is called once on the float model (before any layer is
        replaced) and must run held-in data only, never evaluation data; each selected layer's
        input Hessian ``H = 2 X^T X / M`` is measured (:func:`rf8hw.nn.gptq.hessians`).  A dict
        ``{layer name: H}`` (what ``hessians`` returns) reuses an earlier measurement.  With
        ``smooth``, the Hessian of the smoothed input ``x / smooth`` is used.  Values GPTQ moves
        beyond the grid are rounded to its largest magnitude and reported in the warning.

    Returns ``model``.  Errors: a model already holding a :class:`~rf8hw.nn.quant.QuantLinear`
    (re-quantizing an already quantized model is refused), a ``filter_fn`` that selects a module
    that is not linear-like, or nothing selected at all.  Layers sharing one weight tensor share one
    ``QuantLinear``.
    """
    import warnings

    config = QuantConfig() if config is None else config
    if not isinstance(config, QuantConfig):
        raise ValueError(f"config must be an rf8hw.nn.quant.QuantConfig or None, not {type(config).__name__}")
    _check_float_model(model)
    granularity = DEFAULT_GRANULARITY[config.fmt] if config.granularity is None else config.granularity
    tied = _tied_to_embedding(model)
    mha = _mha_projections(model)
    chosen, left = [], {}
    for name, m in model.named_modules():
        if not name:
            continue
        if filter_fn is not None:
            if not filter_fn(m, name):
                if is_linear_like(m):
                    left[name] = "excluded by filter_fn"
                continue
            if not is_linear_like(m):
                raise ValueError(f"filter_fn selected {name!r}, a {type(m).__name__}; only nn.Linear "
                                 "(and subclasses) and Hugging Face Conv1D can be quantized")
        elif not is_linear_like(m):
            continue
        if name in mha:
            left[name] = "out_proj of nn.MultiheadAttention (its forward reads the weight directly)"
        elif name in tied and not quantize_tied_lm_head:
            left[name] = "weight tied to an nn.Embedding (quantize_tied_lm_head=True to quantize it)"
        else:
            chosen.append(name)
    if not chosen:
        kinds = sorted({type(m).__name__ for m in model.modules()})
        raise ValueError(f"nothing to quantize in {type(model).__name__}: no selected nn.Linear / "
                         f"Conv1D layer (module types present: {', '.join(kinds)})")
    if config.needs_calibration and calibrate is None:
        raise ValueError("QuantConfig(gptq=True) / scale_objective='hessian' needs calibrate=run, a "
                         "callable running the model on held-in calibration data (or a dict of "
                         "Hessians from rf8hw.nn.gptq.hessians)")
    if calibrate is not None and not config.needs_calibration:
        raise ValueError("calibrate= is used only by QuantConfig(gptq=True) or "
                         "scale_objective='hessian'; this config needs no calibration data")
    H = {}
    if config.needs_calibration:
        if isinstance(calibrate, dict):
            missing = [n for n in chosen if n not in calibrate]
            if missing:
                raise ValueError(f"calibrate (a dict of Hessians) has no entry for {len(missing)} "
                                 f"selected layer(s), first {missing[0]!r}")
            H = calibrate
        elif callable(calibrate):
            H = hessians(model, chosen, calibrate)
        else:
            raise ValueError(f"calibrate must be a callable run(model) or a dict of Hessians, "
                             f"not {type(calibrate).__name__}")
    factors = {}
    if smooth is not None:
        non_negative("smooth_alpha", smooth_alpha)
        ranges = _input_absmax(model, chosen, smooth)
        factors = {n: smoothing_factors(r, weight_kn_of(model.get_submodule(n)), smooth_alpha)
                   for n, r in ranges.items()}
    shared: dict[int, QuantLinear] = {}
    saturated = {}
    for name in chosen:
        old = model.get_submodule(name)
        if not old.weight.dtype.is_floating_point:
            raise ValueError(f"layer {name!r}: weight dtype {old.weight.dtype} is not floating point")
        key = id(old.weight)
        if key in shared and shared[key].bias is None and old.bias is None:
            q = shared[key]
        else:
            try:
                src = old
                if name in factors:
                    src = copy.deepcopy(old)
                    with torch.no_grad():
                        fac = factors[name].to(src.weight.device, src.weight.dtype)
                        if is_conv1d(src):
                            src.weight.mul_(fac[:, None])
                        else:
                            src.weight.mul_(fac[None, :])
                q = QuantLinear.from_linear(src, config.fmt, granularity, config.rounding, config.mode)
                if name in factors:
                    q.smooth = factors[name].to(q.codes.device)
                if config.refined:
                    h = H.get(name)
                    if h is not None and name in factors:      # Hessian of x / smooth
                        f = factors[name].double()
                        h = torch.as_tensor(h, dtype=torch.float64) / (f[:, None] * f[None, :])
                    w_kn = weight_kn_of(src).detach().cpu().float().numpy()
                    n_sat = _refine(q, w_kn, config, h)
                    if n_sat:
                        saturated[name] = n_sat
            except ValueError as exc:
                raise ValueError(f"layer {name!r} ({old.weight.dtype}): {exc}") from exc
            q.act_granularity = config.act_granularity
            shared.setdefault(key, q)
        set_child(model, name, q)
    if quantize_tied_lm_head and any(n in tied for n in chosen):
        cfg = getattr(model, "config", None)
        if cfg is not None and hasattr(cfg, "tie_word_embeddings"):
            cfg.tie_word_embeddings = False
    mark_hf_configs(model)
    # modules with weights that are not linear-like: named in the warning too
    other = sorted({type(m).__name__ for m in model.modules()
                    if not isinstance(m, (QuantLinear, nn.Embedding, nn.LayerNorm)) and not is_linear_like(m)
                    and isinstance(getattr(m, "weight", None), torch.Tensor) and m.weight.dim() >= 2})
    if warn and (left or other):
        parts = [f"{n} ({why})" for n, why in left.items()]
        if other:
            parts.append(f"modules of type {', '.join(other)} (not linear-like)")
        warnings.warn(f"rf8hw.quantize_: left in float: {'; '.join(parts)}", UserWarning, stacklevel=2)
    if warn and saturated:
        warnings.warn(f"rf8hw.quantize_: GPTQ moved {sum(saturated.values())} weight(s) beyond the grid "
                      f"in {len(saturated)} layer(s) (first {next(iter(saturated))!r}); they were rounded "
                      "to the grid's largest magnitude", UserWarning, stacklevel=2)
    return model

def quantize(model: nn.Module, fmt: str = "rf8", rounding: str = "nearest", granularity: str | None = None,
             skip=(), mode: str = "fake") -> nn.Module:
    """A copy of ``model`` with every exact ``nn.Linear`` replaced by a :class:`~rf8hw.nn.quant.QuantLinear`.

    The zoo's function (kept for its models and checkpoints): it selects ``type(m) is nn.Linear``
    only (no subclasses, no HF ``Conv1D``), never warns and ignores weight tying.  For any other
    model use :func:`quantize_` (in place, ``filter_fn``, warnings, tied weights); ``quantize`` is
    ``quantize_`` of a deep copy with a filter of exact ``nn.Linear`` minus ``skip`` semantically,
    apart from those checks.

    Parameters
    ----------
    model : torch.nn.Module
        Left unchanged.
    fmt : {"rf8", "int8", "fp8_e4m3", "apot"}
    rounding : {"paper", "nearest"}
        RF8 rounding rule (``docs/rf8-format.md``).
    granularity : {"tensor", "channel"} or None
        One scale/exponent per layer or per output channel; None: ``DEFAULT_GRANULARITY[fmt]``.
    skip : sequence of str
        Module names (``fnmatch`` patterns, e.g. ``"lm_head"`` or ``"blocks.0.*"``) left in float.
        A pattern that matches no ``nn.Linear`` is an error.
    mode : {"fake", "bitexact"}

    Returns
    -------
    torch.nn.Module

    A model that is already quantized, or one without an ``nn.Linear``, is refused with a
    ``ValueError``, as :func:`quantize_` refuses it (``skip`` may name every layer: a float copy).
    """
    checks.choice("fmt", fmt, FORMATS)
    checks.choice("rounding", rounding, ROUNDINGS)
    granularity = DEFAULT_GRANULARITY[fmt] if granularity is None else granularity
    checks.choice("granularity", granularity, GRANULARITIES)
    checks.choice("mode", mode, MODES)
    if isinstance(skip, str):
        skip = [skip]
    _check_float_model(model)
    linears = [n for n, m in model.named_modules() if type(m) is nn.Linear]
    for pattern in skip:
        if not any(fnmatch.fnmatchcase(n, pattern) for n in linears):
            raise ValueError(f"skip pattern {pattern!r} matches no nn.Linear; linear layers are: "
                             f"{', '.join(linears) or '(none)'}")
    if not linears:
        kinds = sorted({type(m).__name__ for m in model.modules()})
        raise ValueError(f"nothing to quantize in {type(model).__name__}: no nn.Linear layer (module types "
                         f"present: {', '.join(kinds)})")
    qmodel = copy.deepcopy(model)
    for name in linears:
        if any(fnmatch.fnmatchcase(name, p) for p in skip):
            continue
        try:
            q = QuantLinear.from_linear(qmodel.get_submodule(name), fmt, granularity, rounding, mode)
        except ValueError as exc:
            raise ValueError(f"layer {name!r}: {exc}") from exc
        set_child(qmodel, name, q)
    return qmodel

