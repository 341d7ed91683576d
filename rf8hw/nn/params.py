"""Helpers the other :mod:`rf8hw.nn` modules share: picking parameters, flattening them to numpy,
and checking real-valued arguments.

This is the bottom of :mod:`rf8hw.nn`: it imports only numpy and :mod:`rf8hw.checks` (no torch, no
other module of this package), so :mod:`~rf8hw.nn.gg`, :mod:`~rf8hw.nn.rate`,
:mod:`~rf8hw.nn.backslash` and :mod:`~rf8hw.nn.deepshape` all import it at module level without
creating an import cycle.

API
---
``select_params(model, which="matrices"|"all"|callable) -> dict name -> tensor``
``as_array(x, what="x") -> 1-D float64 numpy array`` (finite, non-empty, real)
``finite(name, value)``, ``positive(name, value)``, ``non_negative(name, value)`` -> float
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

from rf8hw import checks

__all__ = ["select_params", "as_array", "finite", "positive", "non_negative"]


def select_params(model, which="matrices") -> dict:
    """Pick parameters by rule; the one selector that BackSlash, DeepShape and GG fits share.

    Parameters
    ----------
    model : torch.nn.Module or mapping of name -> tensor
        Parameters shared between modules are listed once (first name).
    which : {"matrices", "all"} or callable
        ``"matrices"``: every tensor with ``ndim >= 2`` (Linear/conv weights and embeddings; not
        biases or norm gains).  ``"all"``: every tensor.  A callable ``(name, tensor) -> bool``
        keeps the tensors it accepts.

    Returns
    -------
    dict of str -> tensor (in model order; the tensors themselves, not copies)
    """
    if hasattr(model, "named_parameters"):
        items = list(model.named_parameters())
    elif isinstance(model, Mapping):
        items = list(model.items())
    else:
        raise ValueError(f"select_params needs a torch.nn.Module or a name -> tensor mapping, "
                         f"not {type(model).__name__}")
    if which == "matrices":
        keep = lambda name, t: t.ndim >= 2
    elif which == "all":
        keep = lambda name, t: True
    elif callable(which):
        keep = which
    else:
        raise ValueError("which must be 'matrices', 'all' or a callable (name, tensor) -> bool, "
                         f"not {which!r}")
    return {name: t for name, t in items if keep(name, t)}


def as_array(x, what: str = "x") -> np.ndarray:
    """Flatten numpy/torch/sequence input to float64, refusing empty, non-finite or non-real data.

    ``what`` names the input in the error message (e.g. a parameter name).
    """
    if hasattr(x, "detach"):                    # torch tensor, without importing torch here
        x = x.detach().to("cpu")
        if x.is_complex():
            raise ValueError(f"{what} must be real, got a complex tensor of dtype {x.dtype}")
        x = x.double().numpy()
    a = np.asarray(x)
    if a.dtype == object or not (np.issubdtype(a.dtype, np.floating) or np.issubdtype(a.dtype, np.integer)):
        raise ValueError(f"{what} must be a real numeric array or tensor, got dtype {a.dtype}")
    a = a.astype(np.float64, copy=False).ravel()
    if a.size == 0:
        raise ValueError(f"{what} is empty; need at least one value")
    bad = ~np.isfinite(a)
    if bad.any():
        raise ValueError(f"{what} contains {int(bad.sum())} non-finite value(s) (NaN/Inf), "
                         f"e.g. {float(a[bad][0])!r}")
    return a


def _finite(name: str, value, above: str = "") -> float:
    # checks.number carries the type rule (a real number, never bool); it converts with float(),
    # which would also parse strings, so those are refused first.  Its interval is closed below,
    # so "> 0" and "not -inf" are one more comparison here.  One message for every way the value
    # can be wrong: "<name> must be a finite number[ > 0 | >= 0], not <value>".
    message = f"{name} must be a finite number{above}, not {value!r}"
    lo = -math.inf if not above else 0.0
    if isinstance(value, (str, bytes)):
        raise ValueError(message)
    try:
        v = checks.number(name, value, lo, math.inf, hi_open=True)
    except ValueError:
        raise ValueError(message) from None
    if v == -math.inf or (above == " > 0" and v == 0.0):
        raise ValueError(message)
    return v


def finite(name: str, value) -> float:
    """``value`` as a float if it is a finite real number (int, float or numpy scalar; never bool
    or str); else :class:`ValueError` ``"<name> must be a finite number, not <value>"``."""
    return _finite(name, value)


def positive(name: str, value) -> float:
    """``value`` as a float if it is a finite real number ``> 0`` (as :func:`finite`)."""
    return _finite(name, value, " > 0")


def non_negative(name: str, value) -> float:
    """``value`` as a float if it is a finite real number ``>= 0`` (as :func:`finite`)."""
    return _finite(name, value, " >= 0")
