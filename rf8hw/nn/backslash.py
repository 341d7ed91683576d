"""BackSlash: rate-constrained training with a generalized-Gaussian rate term.

Rules (``docs/frontend.md``, "BackSlash"): with ``N`` the number of selected parameters and ``nu``
re-estimated from the current weights (no gradient) at every call,

* loss form: ``J = task_loss + lam * (1/N) * sum_i (|theta_i| + eps)**nu``
  (:meth:`BackSlash.penalty` returns the second term, differentiable);
* step form (the authors' reproduction), after every ``optimizer.step()``:
  ``theta <- theta - (lam * nu / N) * sign(theta) * (|theta| + eps)**(nu - 1)``
  (:meth:`BackSlash.step`); this is exactly one SGD step of learning rate 1 on the loss-form term.

``nu`` comes from :func:`pooled_shape` by default: one shape for all selected tensors, the moment
ratio ``sum(theta^2) N / sum(|theta|)^2`` without mean subtraction (the authors' pooled estimate)
inverted by interpolation in a precomputed table (``rf8hw.nn.gg.shape_from_ratio(how="table")``).
It reads every selected element once per norm (two fused reductions per tensor) -- no subsample.

Parameters are picked by :func:`rf8hw.nn.params.select_params` (shared with DeepShape and GG fits).

API
---
``BackSlash(params, lam, eps=1.0, form="loss"|"step", shape_estimator=pooled_shape)``
    ``.penalty()``, ``.step()``, ``.estimate_nu()``, ``.nu``, ``.last_rate_term``,
    ``.log(quant_step=None) -> dict``
``pooled_shape(tensors, how="table"|"grid") -> float``
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping

from rf8hw import checks
from rf8hw.nn import gg, rate
from rf8hw.nn.params import non_negative, positive, select_params

__all__ = ["pooled_shape", "BackSlash"]


def pooled_shape(tensors, how: str = "table") -> float:
    """One GG shape for all tensors: moment ratio ``N sum(x^2) / sum(|x|)^2`` (no centring), inverted.

    ``how`` is passed to :func:`rf8hw.nn.gg.shape_from_ratio`: ``"table"`` (default) raises when no GG
    shape in [0.05, 20] matches, e.g. for a single ``nn.Linear`` straight from PyTorch's uniform
    default init; ``"grid"`` is the authors' nearest-grid-point rule, which saturates at 2.99
    there (``shape_estimator=functools.partial(pooled_shape, how="grid")``).
    """
    import torch

    s1 = s2 = 0.0
    n = 0
    with torch.no_grad():
        for t in tensors:
            dt = torch.promote_types(t.dtype, torch.float32)     # half types accumulate in float32
            s1 += float(torch.linalg.vector_norm(t, 1, dtype=dt))
            s2 += float(torch.linalg.vector_norm(t, 2, dtype=dt)) ** 2
            n += t.numel()
    if not (math.isfinite(s1) and math.isfinite(s2)):
        raise ValueError("cannot estimate the GG shape: the parameters contain NaN/Inf")
    if s1 == 0.0:
        raise ValueError("cannot estimate the GG shape: all selected parameters are zero")
    return gg.shape_from_ratio(n * s2 / (s1 * s1), how=how)


class BackSlash:
    """Rate term of a GG prior on the weights, in the loss form or as a decoupled step.

    Parameters
    ----------
    params : torch.nn.Module, iterable of tensors, or mapping of name -> tensor
        A module means :func:`rf8hw.nn.params.select_params` (module, "matrices").
    lam : float
        ``lambda >= 0``, the rate weight (the authors use 2000 with the step form).
    eps : float
        ``eps > 0`` inside ``(|theta| + eps)``; 1 in the authors' code.
    form : {"loss", "step"}
        Which of :meth:`penalty` (``"loss"``) or :meth:`step` (``"step"``) the training loop calls;
        calling the other raises.
    shape_estimator : callable
        ``list of tensors -> nu``; default :func:`pooled_shape`.

    Attributes
    ----------
    nu : float or None
        Shape used by the last call.
    last_rate_term : float or None
        ``mean((|theta|+eps)^nu)`` (without ``lam``) at the last :meth:`penalty` or :meth:`log`.
    n : int
        Number of selected parameters ``N``.
    """

    def __init__(self, params, lam: float, eps: float = 1.0, form: str = "loss",
                 shape_estimator: Callable = pooled_shape):
        if hasattr(params, "named_parameters") or isinstance(params, Mapping):
            params = select_params(params, "matrices").values()
        elif hasattr(params, "detach"):                    # one tensor, not an iterable of rows
            params = [params]
        if not isinstance(params, Iterable):
            raise ValueError(f"params must be a module, a mapping or an iterable of tensors, not {params!r}")
        self.params = list(params)
        if not self.params or not all(hasattr(p, "detach") for p in self.params):
            raise ValueError("BackSlash needs at least one parameter tensor, and only tensors")
        lam, eps = non_negative("lam", lam), positive("eps", eps)
        checks.choice("form", form, ("loss", "step"))
        if not callable(shape_estimator):
            raise ValueError(f"shape_estimator must be callable, not {shape_estimator!r}")
        self.lam, self.eps, self.form = float(lam), float(eps), form
        self.shape_estimator = shape_estimator
        self.n = sum(p.numel() for p in self.params)
        self.nu = None
        self.last_rate_term = None

    def estimate_nu(self) -> float:
        """Re-estimate ``nu`` from the current weights (no gradient) and store it in ``.nu``."""
        nu = float(self.shape_estimator(self.params))
        if not (math.isfinite(nu) and nu > 0):
            raise ValueError(f"shape_estimator returned {nu!r}; a GG shape must be finite and > 0")
        self.nu = nu
        return nu

    def penalty(self):
        """Loss-form term ``lam * (1/N) * sum (|theta| + eps)^nu`` (a differentiable scalar tensor)."""
        if self.form != "loss":
            raise ValueError("penalty() belongs to form='loss'; with form='step' call step() after "
                             "optimizer.step()")
        nu = self.estimate_nu()
        total = sum((p.abs() + self.eps).pow(nu).sum() for p in self.params)
        rate = total / self.n
        self.last_rate_term = float(rate.detach())
        return self.lam * rate

    def step(self) -> None:
        """Decoupled update ``theta -= (lam nu / N) sign(theta) (|theta| + eps)^(nu-1)``, in place."""
        import torch

        if self.form != "step":
            raise ValueError("step() belongs to form='step'; with form='loss' add penalty() to the loss")
        nu = self.estimate_nu()
        c = self.lam * nu / self.n
        with torch.no_grad():
            for p in self.params:
                t = p.abs().add_(self.eps).pow_(nu - 1.0)
                p.addcmul_(p.sign(), t, value=-c)

    def rate_term(self, nu: float | None = None) -> float:
        """``(1/N) sum (|theta| + eps)^nu`` at the current weights (no gradient); ``nu`` default ``.nu``."""
        import torch

        nu = self.estimate_nu() if nu is None else float(nu)
        with torch.no_grad():
            return float(sum(float((p.abs() + self.eps).pow_(nu).sum()) for p in self.params) / self.n)

    def log(self, quant_step: float | None = None) -> dict:
        """Logging record: ``nu``, ``rate_term`` and, with ``quant_step``, the coded size.

        Returns
        -------
        dict
            ``nu``, ``rate_term``, ``lam``, ``n_params``; with ``quant_step`` also
            ``exp_golomb_bpp``, ``exp_golomb_with_table_bpp``, ``zigzag_bpp``, ``entropy_bpp`` and
            ``zero_fraction`` from :func:`rf8hw.nn.rate.report` over the selected parameters pooled.
        """
        nu = self.estimate_nu()
        self.last_rate_term = self.rate_term(nu)
        out = {"nu": nu, "rate_term": self.last_rate_term, "lam": self.lam, "n_params": self.n}
        if quant_step is not None:
            r = rate.report(self.params, quant_step)
            out.update({k: r[k] for k in ("exp_golomb_bpp", "exp_golomb_with_table_bpp", "zigzag_bpp",
                                          "entropy_bpp", "zero_fraction")})
        return out
