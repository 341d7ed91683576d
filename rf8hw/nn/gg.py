"""Generalized Gaussian (GG) statistics for weights: fit, density, sampling, plots and GG-init.

The written rules (formulas, estimator choices, how GG-init treats embeddings, norms and biases)
are in ``docs/frontend.md``; this module implements each of them once.

The GG density with shape ``nu``, scale ``alpha`` and mean ``mu`` is::

    f(x) = nu / (2 alpha Gamma(1/nu)) * exp(-(|x - mu| / alpha)**nu)

``nu = 2`` is a Gaussian (``alpha = sqrt(2) sigma``), ``nu = 1`` a Laplacian.

API
---
``fit(x, method="moment"|"ml", center=True) -> GGParams``
    Moment-ratio estimate (authors' grid, then a continuous solve), optional ML refinement.
``fit_gaussian(x) -> GGParams``
    The best Gaussian (shape 2, ML mean and variance), for log-likelihood comparisons.
``pdf``, ``logpdf``, ``cdf`` (elementwise, numpy) and ``loglik`` (sum of ``logpdf``).
``sample(n_or_shape, shape, scale, mean=0.0, generator=None, dtype=torch.float32)``
    Exact torch sampling through the Gamma distribution.
``shape_from_ratio(ratio, how="solve"|"table"|"grid")``, ``moment_ratio(nu)``
    The moment-ratio rule in both directions.
``fit_model(model_or_tensors, by="tensor"|"type"|"model", which="matrices", on_error="raise")``
    Fits per tensor, per layer type or pooled over the whole model (groups: ``group_params``).
``plot_fits(named_tensors, path)``
    Histogram (log y) with the fitted GG and the best Gaussian per layer, one PNG.
``gg_init_(module, shape=1.0, xi=2.0, fan="in", embeddings="keep", generator=None)``
    GG initialisation with variance ``xi / fan``.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import optimize, special

from rf8hw import checks
from rf8hw.nn.params import as_array, finite, positive, select_params

__all__ = [
    "GGParams", "NU_GRID", "SHAPE_MIN", "SHAPE_MAX", "moment_ratio", "shape_from_ratio", "fit",
    "fit_gaussian", "pdf", "logpdf", "cdf", "loglik", "sample", "variance_scale", "group_params",
    "fit_model", "layer_type", "plot_fits", "gg_init_",
]

#: The authors' estimation grid: nu = 0.10, 0.11, ..., 2.99.
NU_GRID = np.round(np.arange(10, 300) / 100.0, 2)
#: Range of shapes the continuous moment solve and the ML refinement search.
SHAPE_MIN, SHAPE_MAX = 0.05, 20.0
# Dense table of (log nu, log rho(nu)) for the fast interpolated lookup ("table"): 4096 log-spaced
# shapes over [SHAPE_MIN, SHAPE_MAX].  Relative shape error of the interpolation < 5e-7 (measured).
_TABLE_LOG_NU = np.linspace(math.log(SHAPE_MIN), math.log(SHAPE_MAX), 4096)


@dataclass(frozen=True)
class GGParams:
    """Parameters of a generalized Gaussian.

    Parameters
    ----------
    shape : float
        ``nu > 0``; 2 is Gaussian, 1 Laplacian, smaller is peakier with heavier tails.
    scale : float
        ``alpha > 0``.
    mean : float
        ``mu``, the centre.
    """

    shape: float
    scale: float
    mean: float = 0.0

    def __post_init__(self):
        object.__setattr__(self, "shape", positive("GG shape", self.shape))
        object.__setattr__(self, "scale", positive("GG scale", self.scale))
        object.__setattr__(self, "mean", finite("GG mean", self.mean))

    @property
    def std(self) -> float:
        """Standard deviation ``alpha * sqrt(Gamma(3/nu) / Gamma(1/nu))``."""
        return self.scale / variance_scale(self.shape)


def variance_scale(shape: float) -> float:
    """``sqrt(Gamma(1/nu) / Gamma(3/nu))``: the scale of a unit-variance GG of this shape."""
    return math.exp(0.5 * (special.gammaln(1.0 / shape) - special.gammaln(3.0 / shape)))


def _log_rho(nu):
    nu = np.asarray(nu, dtype=np.float64)
    return special.gammaln(1 / nu) + special.gammaln(3 / nu) - 2 * special.gammaln(2 / nu)


def moment_ratio(nu):
    """``rho(nu) = Gamma(1/nu) Gamma(3/nu) / Gamma(2/nu)**2 = E[x^2] / E[|x|]^2`` of a centred GG.

    Decreasing in ``nu``: ``rho(2) = pi/2``, ``rho(1) = 2``, and ``rho -> 4/3`` (uniform) as
    ``nu -> inf``.
    """
    nu = np.asarray(nu, dtype=np.float64)
    if np.any(~np.isfinite(nu) | (nu <= 0)):
        raise ValueError(f"GG shape must be finite and > 0, got "
                         f"{nu[~np.isfinite(nu) | (nu <= 0)].ravel()[:3]}")
    out = np.exp(_log_rho(nu))
    return float(out) if out.ndim == 0 else out


_TABLE_LOG_RHO = _log_rho(np.exp(_TABLE_LOG_NU))
_GRID_RHO = np.exp(_log_rho(NU_GRID))


def shape_from_ratio(ratio: float, how: str = "solve") -> float:
    """Invert the moment ratio: the GG shape ``nu`` with ``rho(nu) == ratio``.

    Parameters
    ----------
    ratio : float
        ``E[x^2] / E[|x|]^2`` of centred data; always >= 1 by Jensen.
    how : {"solve", "table", "grid"}
        ``"grid"``: the authors' rule, the point of :data:`NU_GRID` (0.10..2.99 step 0.01) whose
        ``rho`` is nearest to ``ratio``; it saturates at 2.99 for flatter data and 0.10 for
        peakier data, exactly as their code does (the one opt-in rule that does).
        ``"table"``: linear interpolation of ``log rho`` against
        ``log nu`` on a precomputed 4096-point table over [SHAPE_MIN, SHAPE_MAX] (a few
        microseconds; used by BackSlash every step).  ``"solve"``: Brent's method on
        ``log rho(nu) = log ratio`` to ~1e-12, bracketed by the table.

    Returns
    -------
    float

    Raises
    ------
    ValueError
        If ``ratio`` is not finite, or (``"solve"``, ``"table"``) lies outside ``rho`` over the
        allowed shapes: bimodal or near-uniform data that no GG fits.  ``"grid"`` refuses only
        ratios below 1, which no data can have.
    """
    checks.choice("how", how, ("solve", "table", "grid"))
    if not math.isfinite(ratio):
        raise ValueError(f"moment ratio must be finite, not {ratio!r}")
    if how == "grid":
        if ratio < 1.0:
            raise ValueError(f"moment ratio {ratio:.6g} is below 1, impossible for E[x^2] / E[|x|]^2")
        return float(NU_GRID[np.argmin(np.abs(_GRID_RHO - ratio))])
    lr = math.log(ratio) if ratio > 0 else -math.inf
    lo, hi = _TABLE_LOG_RHO[-1], _TABLE_LOG_RHO[0]
    if not lo <= lr <= hi:
        raise ValueError(f"moment ratio {ratio:.6g} is outside [{math.exp(lo):.6g}, {math.exp(hi):.6g}], "
                         f"the range of GG shapes {SHAPE_MIN}..{SHAPE_MAX}; the data are not GG-like "
                         "(e.g. bimodal, near-uniform or extremely heavy-tailed)")
    # log rho is decreasing in log nu: interpolate on the reversed (increasing) table
    log_nu = float(np.interp(lr, _TABLE_LOG_RHO[::-1], _TABLE_LOG_NU[::-1]))
    if how == "table":
        return math.exp(log_nu)
    i = int(np.searchsorted(-_TABLE_LOG_RHO, -lr))       # bracket [i-1, i] in the table
    a, b = _TABLE_LOG_NU[max(i - 1, 0)], _TABLE_LOG_NU[min(i, len(_TABLE_LOG_NU) - 1)]
    if a == b:
        return math.exp(a)
    f = lambda t: float(_log_rho(math.exp(t))) - lr
    return math.exp(optimize.brentq(f, a, b, xtol=1e-13, rtol=1e-13))


def _numeric(x) -> np.ndarray:
    """float64 array of the same shape from numpy, torch or a sequence (no other checks)."""
    if hasattr(x, "detach"):
        x = x.detach().to("cpu").double().numpy()
    return np.asarray(x, dtype=np.float64)


def _check_params(p) -> GGParams:
    if not isinstance(p, GGParams):
        raise ValueError(f"expected GGParams, not {type(p).__name__}")
    return p


def logpdf(x, p: GGParams) -> np.ndarray:
    """Elementwise log density ``log nu - log(2 alpha) - lgamma(1/nu) - (|x-mu|/alpha)^nu``."""
    p = _check_params(p)
    x = _numeric(x)
    return (math.log(p.shape) - math.log(2 * p.scale) - special.gammaln(1 / p.shape)
            - (np.abs(x - p.mean) / p.scale) ** p.shape)


def pdf(x, p: GGParams) -> np.ndarray:
    """Elementwise density ``exp(logpdf(x, p))``."""
    return np.exp(logpdf(x, p))


def cdf(x, p: GGParams) -> np.ndarray:
    """Elementwise distribution function ``1/2 + sign(x-mu)/2 * P(1/nu, (|x-mu|/alpha)^nu)``.

    ``P`` is the regularised lower incomplete gamma function.
    """
    p = _check_params(p)
    z = _numeric(x) - p.mean
    return 0.5 + 0.5 * np.sign(z) * special.gammainc(1 / p.shape, (np.abs(z) / p.scale) ** p.shape)


def loglik(x, p: GGParams) -> float:
    """Total log-likelihood ``sum(logpdf(x, p))`` of finite, non-empty data."""
    return float(np.sum(logpdf(as_array(x), p)))


def fit_gaussian(x) -> GGParams:
    """The maximum-likelihood Gaussian, as a GG of shape 2 (``alpha = sqrt(2) * sigma``)."""
    a = as_array(x)
    mu = float(a.mean())
    var = float(np.mean((a - mu) ** 2))
    if var <= 0:
        raise ValueError(f"cannot fit a distribution to constant data (all values {float(a[0])!r})")
    return GGParams(2.0, math.sqrt(2 * var), mu)


def _ml_shape(a: np.ndarray, mu: float) -> float:
    """Profile-likelihood maximisation over nu with the mean fixed and the scale in closed form."""
    d = np.abs(a - mu)
    d = d[d > 0]
    logd = np.log(d)
    n = a.size

    def neg_profile(log_nu):
        nu = math.exp(log_nu)
        # alpha^nu = (nu/n) * sum |x-mu|^nu maximises the likelihood for fixed nu
        m = logd.max()
        s = math.log(np.sum(np.exp(nu * (logd - m)))) + nu * m      # log sum |x-mu|^nu, stable
        log_alpha = (math.log(nu / n) + s) / nu
        return -(n * (math.log(nu) - math.log(2) - log_alpha - special.gammaln(1 / nu)) - n / nu)

    res = optimize.minimize_scalar(neg_profile, bounds=(math.log(SHAPE_MIN), math.log(SHAPE_MAX)),
                                   method="bounded", options={"xatol": 1e-7})
    return math.exp(res.x)


def fit(x, method: str = "moment", center: bool = True) -> GGParams:
    """Fit a generalized Gaussian to data of any shape.

    Parameters
    ----------
    x : array_like or torch.Tensor
        Finite values, at least two distinct; flattened.
    method : {"moment", "ml"}
        ``"moment"``: ``rho_hat = mean((x-mu)^2) / mean(|x-mu|)^2`` is looked up on the authors'
        grid and then solved continuously (:func:`shape_from_ratio`); the scale matches the
        variance, ``alpha = sqrt(mean((x-mu)^2) * Gamma(1/nu) / Gamma(3/nu))``.  ``"ml"``: starts
        there and maximises the likelihood over the shape, with the scale in closed form
        ``alpha = (nu/n * sum|x-mu|^nu)^(1/nu)``; the mean stays the sample mean.
    center : bool
        ``True``: ``mu`` is the sample mean.  ``False``: ``mu = 0`` (the authors' pooled estimate,
        no mean subtraction).

    Returns
    -------
    GGParams

    Raises
    ------
    ValueError
        Empty, non-finite or constant data; a moment ratio no GG shape in [0.05, 20] explains.
    """
    checks.choice("method", method, ("moment", "ml"))
    a = as_array(x)
    mu = float(a.mean()) if center else 0.0
    d = a - mu
    m1 = float(np.mean(np.abs(d)))
    m2 = float(np.mean(d * d))
    if m1 == 0.0:
        raise ValueError(f"cannot fit a GG to constant data (all values {float(a[0])!r})")
    nu = shape_from_ratio(m2 / (m1 * m1), how="solve")
    if method == "ml":
        nu = _ml_shape(a, mu)
        d_nu = np.abs(d) ** nu
        return GGParams(nu, float(np.mean(d_nu) * nu) ** (1 / nu), mu)
    return GGParams(nu, math.sqrt(m2) * variance_scale(nu), mu)


def sample(n_or_shape, shape: float, scale: float, mean: float = 0.0, generator=None, dtype=None):
    """Draw exact GG samples in torch.

    If ``G ~ Gamma(1/nu, 1)`` then ``mu + S * alpha * G**(1/nu)`` with a random sign ``S`` is GG.

    Parameters
    ----------
    n_or_shape : int or tuple of int
        Number of samples or the output tensor's shape.
    shape, scale, mean : float
        GG parameters (validated as :class:`GGParams`).
    generator : torch.Generator, optional
        Source of randomness (for reproducibility).
    dtype : torch.dtype, optional
        Output dtype, default ``torch.float32`` (computed in float64 first).

    Returns
    -------
    torch.Tensor
    """
    import torch

    p = GGParams(shape, scale, mean)
    if isinstance(n_or_shape, (int, np.integer)):
        size = (checks.integer("sample count", n_or_shape, 0),)
    else:
        try:
            dims = tuple(n_or_shape)
        except TypeError:
            raise ValueError(f"sample size must be an integer >= 0 or a tuple of them, "
                             f"not {n_or_shape!r}") from None
        size = tuple(checks.integer(f"sample shape[{i}]", s, 0) for i, s in enumerate(dims))
    conc = torch.full(size, 1.0 / p.shape, dtype=torch.float64)
    g = torch._standard_gamma(conc, generator=generator)
    sign = torch.randint(0, 2, size, generator=generator, dtype=torch.int8).to(torch.float64) * 2 - 1
    out = p.mean + sign * p.scale * g.pow(1.0 / p.shape)
    return out.to(dtype or torch.float32)


# --------------------------------------------------------------------------------- whole models

def layer_type(name: str) -> str:
    """Layer-type key: the parameter name with every numeric component replaced by ``*``.

    ``blocks.3.attn.c_attn.weight`` -> ``blocks.*.attn.c_attn.weight``.
    """
    return ".".join("*" if re.fullmatch(r"\d+", part) else part for part in name.split("."))


def group_params(model, by: str = "tensor", which="matrices") -> dict[str, np.ndarray]:
    """Flattened float64 values of a model's parameters, grouped per tensor, layer type or model.

    Parameters
    ----------
    model : torch.nn.Module or mapping of name -> tensor
        A module or a state dict (e.g. a safetensors checkpoint).
    by : {"tensor", "type", "model"}
        ``"tensor"``: one group per parameter (key: its name).  ``"type"``: parameters with the same
        :func:`layer_type` pooled (key: the type).  ``"model"``: all selected parameters pooled
        (key ``"model"``).
    which : {"matrices", "all"} or callable
        Which parameters, as :func:`rf8hw.nn.params.select_params`.

    Returns
    -------
    dict of str -> 1-D numpy array
    """
    checks.choice("by", by, ("tensor", "type", "model"))
    params = select_params(model, which)
    if not params:
        raise ValueError(f"no parameters selected by which={which!r}")
    if by == "tensor":
        keys = {n: n for n in params}
    elif by == "type":
        keys = {n: layer_type(n) for n in params}
    else:
        keys = {n: "model" for n in params}
    groups: dict[str, list] = {}
    for n, t in params.items():
        groups.setdefault(keys[n], []).append(as_array(t, n))
    return {k: np.concatenate(v) for k, v in groups.items()}


def fit_model(model, by: str = "tensor", which="matrices", method: str = "moment",
              center: bool = True, on_error: str = "raise") -> dict[str, GGParams | str]:
    """Fit GGs to a model's parameters: per tensor, per layer type, or pooled.

    Parameters
    ----------
    model, by, which
        As :func:`group_params`.
    method, center
        Passed to :func:`fit`.
    on_error : {"raise", "record"}
        A group no GG fits (e.g. uniform weights straight from ``nn.Linear``'s default init, whose
        moment ratio is at the uniform limit 4/3): ``"raise"`` a ValueError naming the group, or
        ``"record"`` the reason as that key's value instead of a GGParams.

    Returns
    -------
    dict of str -> GGParams (or str, the reason, with ``on_error="record"``)
    """
    checks.choice("on_error", on_error, ("raise", "record"))
    out = {}
    for key, data in group_params(model, by, which).items():
        try:
            out[key] = fit(data, method=method, center=center)
        except ValueError as exc:
            if on_error == "raise":
                raise ValueError(f"{key}: {exc}") from exc
            out[key] = str(exc)
    return out


def plot_fits(named_tensors, path, method: str = "moment", bins: int = 101) -> dict[str, dict]:
    """Histogram (log y) of each tensor with the fitted GG and the best Gaussian, one PNG.

    Each panel is one tensor (or group): x is the value of a weight, y its probability density on
    a log scale (so the tails show); grey bars are the histogram, the solid line the fitted
    generalized Gaussian (its shape ``nu`` and scale ``alpha`` in the legend), the dashed line
    the Gaussian of the same mean and variance (GG shape 2); the title gives the group, the
    number of values and the log-likelihood gain of the GG over the Gaussian per value (nats;
    > 0: the GG fits better).  The figure's title says what the curves are and the estimator.

    Parameters
    ----------
    named_tensors : mapping of name -> tensor/array, or torch.nn.Module
        One panel per entry (a module contributes its weight matrices).
    path : str or Path
        Output PNG.
    method : {"moment", "ml"}
        GG estimator.
    bins : int
        Histogram bins per panel.

    Returns
    -------
    dict of name -> {"gg": GGParams, "gauss": GGParams, "loglik_gg": float, "loglik_gauss": float}
    """
    from matplotlib.figure import Figure
    from matplotlib.ticker import NullFormatter

    if hasattr(named_tensors, "named_parameters"):
        named_tensors = select_params(named_tensors, "matrices")
    items = list(named_tensors.items())
    if not items:
        raise ValueError("plot_fits needs at least one tensor")
    ncol = min(4, len(items))
    nrow = -(-len(items) // ncol)
    fig = Figure(figsize=(4 * ncol, 3 * nrow + 0.6), layout="constrained")
    estimator = {"moment": "moment-ratio", "ml": "maximum-likelihood"}.get(method, method)
    fig.suptitle(f"Weight distributions: histogram, fitted generalized Gaussian (GG, {estimator} "
                 "estimate) and Gaussian (GG shape 2)\nllr = log-likelihood gain of the GG over the "
                 "Gaussian per value (nats; > 0: GG fits better)", fontsize=9)
    results = {}
    for k, (name, t) in enumerate(items):
        a = as_array(t, name)
        p, g = fit(a, method=method), fit_gaussian(a)
        results[name] = {"gg": p, "gauss": g, "loglik_gg": loglik(a, p), "loglik_gauss": loglik(a, g)}
        llr = (results[name]["loglik_gg"] - results[name]["loglik_gauss"]) / a.size
        ax = fig.add_subplot(nrow, ncol, k + 1)
        ax.hist(a, bins=bins, density=True, color="0.75", label=f"weights ({bins} bins)")
        xs = np.linspace(a.min(), a.max(), 512)
        ax.plot(xs, pdf(xs, p), "C0", label=f"GG fit: nu={p.shape:.2f}, alpha={p.scale:.3g}")
        ax.plot(xs, pdf(xs, g), "C3--", label=f"Gaussian: sigma={g.std:.3g}")
        ax.set_yscale("log")
        ax.yaxis.set_minor_formatter(NullFormatter())   # a short log range labels its minor ticks
        ax.set_ylim(bottom=max(0.5 / (a.size * (a.max() - a.min()) / bins), 1e-12))
        ax.set_title(f"{name}  (n={a.size:,}, llr={llr:+.3f})", fontsize=8)
        ax.set_xlabel("weight value", fontsize=8)
        ax.set_ylabel("probability density (log)", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.legend(fontsize=7)
    fig.savefig(Path(path), dpi=90)
    return results


# --------------------------------------------------------------------------------------- GG-init

def _fan(weight, fan: str) -> int:
    if fan == "in":
        return int(np.prod(weight.shape[1:]))         # in_features x kernel size (torch's fan_in)
    return int(weight.shape[0])                       # the authors' n = shape[0]


def gg_init_(module, shape: float = 1.0, xi: float = 2.0, fan: str = "in", embeddings: str = "keep",
             generator=None) -> dict[str, str]:
    """Initialise a module's parameters in place with GG weights of variance ``xi / n``.

    Rules (``docs/frontend.md``, "GG-init"):

    * ``nn.Linear`` and ``nn.ConvNd`` weights: GG of ``shape`` with variance ``xi / n`` where
      ``n = fan_in = in_features * kernel size`` (``fan="in"``) or ``n = weight.shape[0]``
      (``fan="out"``; the authors' released behaviour: fan-out for Linear, out_channels for conv).
    * ``nn.Embedding`` weights: kept as the model initialised them (``embeddings="keep"``), or GG
      like a matrix with the same ``n`` rule (``embeddings="gg"``; with ``fan="out"`` this is the
      authors' ``n = num_embeddings``).  A Linear weight tied to an embedding follows the embedding rule.
    * Parameters named ``bias``: 0.  Other 1-D ``weight`` parameters (norm gains): 1.
    * Anything else (scalars, >= 2-D parameters of other modules) is left untouched and reported.

    Parameters
    ----------
    module : torch.nn.Module
    shape : float
        GG shape nu (2 = Gaussian, as He/LeCun); >= ``SHAPE_MIN`` (0.05).
    xi : float
        Variance gain: 2 for ReLU, 1 for linear/sigmoid, 2/(1+k^2) for LeakyReLU(k).
    fan : {"in", "out"}
    embeddings : {"keep", "gg"}
    generator : torch.Generator, optional

    Returns
    -------
    dict of parameter name -> action (``"gg var=..."``, ``"zeros"``, ``"ones"``, ``"kept"``)
    """
    import torch
    from torch import nn

    if not isinstance(module, nn.Module):
        raise ValueError(f"gg_init_ needs a torch.nn.Module, not {type(module).__name__}")
    checks.choice("fan", fan, ("in", "out"))
    checks.choice("embeddings", embeddings, ("keep", "gg"))
    positive("xi", xi)
    GGParams(shape, 1.0)                                   # validates shape
    if shape < SHAPE_MIN:
        raise ValueError(f"GG-init shape must be a finite number >= {SHAPE_MIN} (the smallest GG shape rf8hw "
                         f"fits; below it the scale of the requested variance underflows), not {shape!r}")
    emb_ids = {id(m.weight) for m in module.modules() if isinstance(m, nn.Embedding)}
    matrix_types = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)
    report, done = {}, set()
    with torch.no_grad():
        for mname, m in module.named_modules():
            for pname, p in m.named_parameters(recurse=False):
                name = f"{mname}.{pname}" if mname else pname
                if id(p) in done:
                    continue
                done.add(id(p))
                is_emb = id(p) in emb_ids
                if pname == "bias":
                    p.zero_()
                    report[name] = "zeros"
                elif pname == "weight" and p.ndim >= 2 and (is_emb or isinstance(m, matrix_types)):
                    if is_emb and embeddings == "keep":
                        report[name] = "kept"
                        continue
                    var = xi / _fan(p, fan)
                    p.copy_(sample(tuple(p.shape), shape, math.sqrt(var) * variance_scale(shape),
                                   generator=generator, dtype=p.dtype))
                    report[name] = f"gg shape={shape:g} var={var:.6g}"
                elif pname == "weight" and p.ndim == 1:
                    p.fill_(1.0)
                    report[name] = "ones"
                else:
                    report[name] = "kept"
    return report
