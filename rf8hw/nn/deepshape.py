"""DeepShape: rank-preserving histogram specification of weights onto a narrower GG.

Steps for each selected tensor (``docs/frontend.md``, "DeepShape"), with grid ``g``:

1. ``q = rint(w / g)``: integer levels.
2. Window: start at the most populated level and extend left and right over consecutive levels
   while each holds at least ``min_count`` weights; the window is the level range ``[L, R]``.
   Weights with ``L <= q <= R`` are "in the window"; all others are left exactly as they were.
3. Fit a GG (moment method, centred) to the in-window weights: ``(nu, alpha, mu)``.
4. Target ``GG(shape_factor * nu, scale_factor * alpha, mu)`` discretised on the levels:
   ``P_k = F((k + 1/2) g) - F((k - 1/2) g)`` for ``k = L..R``, renormalised over the window, turned
   into integer counts summing to the in-window population by largest remainders (ties: lower level).
5. Sort the in-window weights (stable) and hand out the target levels in that order: the smallest
   ``c_L`` weights become ``L g``, the next ``c_{L+1}`` become ``(L+1) g``, and so on.

The order of all weights is preserved (weakly: equal outputs can come from distinct inputs), and
outputs stay inside ``[L g, R g]`` so in-window weights never cross out-of-window ones.  A short
fine-tune afterwards is the training loop's job (``rf8hw train --deepshape``).

API
---
``deepshape_(params_or_model, grid=2**-13, min_count=1000, shape_factor=0.8, scale_factor=0.6,
which="matrices") -> dict`` (in place; the report is JSON-serialisable).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from rf8hw import checks
from rf8hw.nn import gg
from rf8hw.nn.params import positive, select_params

__all__ = ["deepshape_", "find_window", "target_counts"]


def find_window(levels: np.ndarray, counts: np.ndarray, min_count: int) -> tuple[int, int] | None:
    """Widest run of consecutive levels around the mode with ``count >= min_count`` each.

    ``levels`` are sorted distinct integers with their ``counts``; returns ``(L, R)`` or ``None``
    when even the most populated level holds fewer than ``min_count`` weights.
    """
    i = int(np.argmax(counts))
    if counts[i] < min_count:
        return None
    lo = hi = i
    while lo > 0 and levels[lo - 1] == levels[lo] - 1 and counts[lo - 1] >= min_count:
        lo -= 1
    while hi < len(levels) - 1 and levels[hi + 1] == levels[hi] + 1 and counts[hi + 1] >= min_count:
        hi += 1
    return int(levels[lo]), int(levels[hi])


def target_counts(p: gg.GGParams, lo: int, hi: int, grid: float, n: int) -> np.ndarray:
    """Integer counts of ``n`` weights over levels ``lo..hi`` following the discretised GG ``p``.

    Bin ``k`` has probability ``F((k+1/2) grid) - F((k-1/2) grid)`` renormalised over the window;
    counts are ``floor(n P_k)`` plus one for the largest remainders (ties to the lower level).
    """
    k = np.arange(lo, hi + 1, dtype=np.float64)
    mass = gg.cdf((k + 0.5) * grid, p) - gg.cdf((k - 0.5) * grid, p)
    total = mass.sum()
    if not total > 0:
        raise ValueError(f"target GG {p} puts no mass on the window [{lo}, {hi}] x {grid}")
    expect = n * mass / total
    base = np.floor(expect).astype(np.int64)
    extra = n - int(base.sum())
    base[np.argsort(-(expect - base), kind="stable")[:extra]] += 1
    return base


def _params_dict(p: gg.GGParams) -> dict:
    return {"shape": p.shape, "scale": p.scale, "mean": p.mean}


def _reshape_one(t, grid, min_count, shape_factor, scale_factor) -> dict:
    import torch

    a = t.detach().to("cpu", torch.float64).numpy().ravel().copy()
    if a.size == 0 or not np.all(np.isfinite(a)):
        raise ValueError("DeepShape needs non-empty tensors of finite values")
    x = a / grid
    if np.max(np.abs(x)) >= 2.0 ** 52:                 # int64 levels, exact in float64
        raise ValueError(f"grid {grid!r} is too small for these weights: level {np.max(np.abs(x)):.3g} is "
                         "beyond the 2**52 levels DeepShape supports")
    q = np.rint(x).astype(np.int64)
    levels, counts = np.unique(q, return_counts=True)
    rec = {"n": int(a.size), "n_in_window": 0, "n_changed": 0, "window": None, "fit": None,
           "target": None, "skipped": None}
    win = find_window(levels, counts, min_count)
    if win is None:
        rec["skipped"] = f"no level holds min_count={min_count} weights (largest: {int(counts.max())})"
        return rec
    lo, hi = win
    if lo == hi:
        rec["skipped"] = f"window is a single level ({lo}); nothing to reshape"
        return rec
    inside = (q >= lo) & (q <= hi)
    a_in = a[inside]
    fitted = gg.fit(a_in, method="moment")
    target = gg.GGParams(shape_factor * fitted.shape, scale_factor * fitted.scale, fitted.mean)
    counts_t = target_counts(target, lo, hi, grid, a_in.size)
    new_in = np.empty_like(a_in)
    new_in[np.argsort(a_in, kind="stable")] = np.repeat(np.arange(lo, hi + 1) * grid, counts_t)
    out = a.copy()
    out[inside] = new_in
    new = torch.from_numpy(out).reshape(t.shape).to(t.dtype)
    with torch.no_grad():
        changed = int(torch.count_nonzero(new != t.detach().cpu()))
        t.copy_(new)
    rec.update(n_in_window=int(a_in.size), n_changed=changed, window=[lo, hi],
               window_values=[lo * grid, hi * grid], fit=_params_dict(fitted), target=_params_dict(target))
    return rec


def deepshape_(params_or_model, grid: float = 2.0 ** -13, min_count: int = 1000, shape_factor: float = 0.8,
               scale_factor: float = 0.6, which="matrices") -> dict:
    """Reshape weights in place onto a GG with ``shape_factor x`` shape and ``scale_factor x`` scale.

    Parameters
    ----------
    params_or_model : torch.nn.Module, mapping of name -> tensor, or iterable of tensors
        A module or mapping goes through :func:`rf8hw.nn.params.select_params` with ``which``.
    grid : float
        Level spacing (the authors' 2^-13).
    min_count : int
        Minimum population of every level in the window (the authors' 1000).
    shape_factor, scale_factor : float
        Target shape and scale relative to the in-window fit (the authors' 0.8 and 0.6); > 0.
    which : {"matrices", "all"} or callable

    Returns
    -------
    dict
        ``{"tensors": {name: record}, "n_params", "n_in_window", "n_changed", "grid", ...}``; a
        record holds ``n``, ``n_in_window``, ``n_changed``, ``window`` (levels ``[L, R]``),
        ``window_values``, ``fit`` and ``target`` (shape/scale/mean) and ``skipped`` (a reason
        or ``None``).
    """
    grid, shape_factor, scale_factor = (positive(name, v) for name, v in (
        ("grid", grid), ("shape_factor", shape_factor), ("scale_factor", scale_factor)))
    min_count = checks.integer("min_count", min_count, 1)
    if hasattr(params_or_model, "named_parameters") or isinstance(params_or_model, Mapping):
        named = select_params(params_or_model, which)
    elif hasattr(params_or_model, "detach"):
        named = {"param0": params_or_model}
    else:
        named = {f"param{i}": t for i, t in enumerate(params_or_model)}
    if not named:
        raise ValueError("DeepShape got no parameters to reshape")
    tensors = {}
    for name, t in named.items():
        try:
            tensors[name] = _reshape_one(t, grid, min_count, shape_factor, scale_factor)
        except ValueError as exc:
            raise ValueError(f"{name}: {exc}") from exc
    return {
        "grid": grid, "min_count": min_count, "shape_factor": shape_factor,
        "scale_factor": scale_factor, "tensors": tensors,
        "n_params": sum(r["n"] for r in tensors.values()),
        "n_in_window": sum(r["n_in_window"] for r in tensors.values()),
        "n_changed": sum(r["n_changed"] for r in tensors.values()),
    }
