"""Error-compensated rounding of a layer's weight onto a grid (the GPTQ idea, Frantar et al. 2022).

Written from the paper's description.  For a linear layer ``y = x W^T`` (``W [N, K]``) and
calibration inputs ``X [M, K]`` the rounded weight should keep ``||X W^T - X W_hat^T||^2`` small.
Its Hessian with respect to one output row is ``H = 2 X^T X`` (the same for every row).  The input
features (columns of ``W``) are rounded one after the other, in order ``k = 0, 1, ..., K-1``:

1. ``H`` is dampened, ``H + damp * mean(diag H) * I`` (``damp`` default 0.01); an input feature
   that never fired (``H[k, k] == 0``) gets ``H[k, k] = 1`` first (it is then rounded to nearest
   and spreads no error; its weight is kept, not zeroed).
2. ``U`` = the upper Cholesky factor of ``H^-1`` (``H^-1 = U^T U``; computed from the Cholesky
   factor of ``H`` with its order reversed, see :func:`gptq`).  Row ``k`` of ``U`` divided by
   ``U[k, k]`` is how the optimal correction of the not-yet-rounded columns ``k+1..K-1`` depends on
   the rounding error of column ``k``, given that columns ``0..k-1`` are already fixed.
3. Column ``k`` (all ``N`` output channels at once) is rounded to its nearest grid point,
   ``q = grid.round(W[:, k])``; its scaled error ``e = (W[:, k] - q) / U[k, k]`` is spread over the
   later columns, ``W[:, j] -= e * U[k, j]`` for ``j > k``.
4. Lazy blocks: inside a block of ``block`` columns (default 128) the update touches only the
   block; the rest of the matrix gets the block's errors at once, ``W[:, i2:] -= E @ U[i1:i2, i2:]``
   (one matrix product per block; the same numbers as column-by-column updates up to float
   rounding).

Order (``order``): ``"natural"`` rounds the input features in their index order; ``"act"``
rounds them in order of decreasing ``H[k, k]`` (the inputs with the largest mean square first, ties
by index; the "activation order" of GPTQ's later reference code): the features whose error costs
most are rounded while the most not-yet-rounded columns remain to absorb it.  It is the same
algorithm on ``W`` and ``H`` with rows and columns permuted; the codes are put back in index order.

With a diagonal ``H`` (``U`` diagonal) nothing is spread and the result is nearest rounding,
code for code, in either order.  The result lies exactly on the grid: it is ``grid.decode(codes)``.

Hessians come from the float model in one pass (:func:`hessians`): every layer sees float inputs,
not those of already-quantized earlier layers (the paper's sequential variant is not done here).
Arithmetic: float64 for ``H``, ``U`` and the updates; each column is rounded to float32 before it
is quantized (:meth:`rf8hw.nn.grid.ChannelGrid.round`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from rf8hw import checks
from rf8hw.nn.grid import ChannelGrid
from rf8hw.nn.params import non_negative

__all__ = ["ORDERS", "GPTQResult", "gptq", "hessians"]


@dataclass
class GPTQResult:
    """``codes uint8 [K, N]`` (the :class:`~rf8hw.nn.quant.QuantLinear` layout), ``w_hat float32
    [K, N]`` (= ``grid.decode(codes)``) and how many values were beyond the grid (rounded to its
    largest magnitude)."""

    codes: np.ndarray
    w_hat: np.ndarray
    saturated: int


ORDERS = ("natural", "act")


def gptq(w_kn, H, grid: ChannelGrid, damp: float = 0.01, block: int = 128,
         order: str = "natural") -> GPTQResult:
    """Round ``w_kn [K, N]`` onto ``grid`` with error compensation by the input Hessian ``H [K, K]``
    in ``order`` (module docstring).  ``w_kn`` and ``H`` may be numpy arrays or tensors; neither is
    modified."""
    if isinstance(w_kn, torch.Tensor):
        w_kn = w_kn.detach().cpu().numpy()
    W = torch.from_numpy(np.asarray(w_kn, dtype=np.float64)).T.contiguous()   # [N, K]
    N, K = W.shape
    if grid.n != N:
        raise ValueError(f"grid has {grid.n} channels, the weight {N} output features")
    H = (H.detach().cpu().to(torch.float64).clone() if isinstance(H, torch.Tensor)
         else torch.from_numpy(np.array(H, dtype=np.float64)))                 # a copy
    if H.shape != (K, K):
        raise ValueError(f"Hessian of shape {tuple(H.shape)} does not match {K} input features")
    if not bool(torch.isfinite(H).all()):
        raise ValueError("Hessian contains NaN/Inf")
    non_negative("damp", damp)
    block = checks.integer("block", block, 1)
    checks.choice("GPTQ order", order, ORDERS)
    perm = None
    if order == "act":
        perm = torch.from_numpy(np.argsort(-torch.diag(H).numpy(), kind="stable"))
        W, H = W[:, perm].contiguous(), H[perm][:, perm].contiguous()
    dead = torch.diag(H) <= 0
    H[dead, dead] = 1.0
    H += damp * float(torch.diag(H).mean()) * torch.eye(K, dtype=H.dtype)
    try:
        # U without forming H^-1: with J the order reversal, J H J = R R^T (R lower) gives
        # H = V V^T for the upper V = J R J, so H^-1 = U^T U with U = V^-1 = J R^-1 J: one
        # Cholesky factorisation and one triangular inverse (about 2.5x fewer operations than
        # Cholesky, inverse, Cholesky; the same U up to float64 rounding)
        R = torch.linalg.cholesky(H.flip(0, 1))
        U = torch.linalg.solve_triangular(R, torch.eye(K, dtype=H.dtype), upper=False).flip(0, 1)
    except RuntimeError as exc:     # torch.linalg.LinAlgError subclasses RuntimeError
        raise ValueError(f"Hessian is not positive definite after dampening {damp}; raise damp") from exc
    # row k of Wt is input feature k of every output channel: each step reads one contiguous row
    # and updates the rows below it; the arithmetic is elementwise that of the module docstring
    Wt, U = W.numpy().T.copy(), U.numpy()
    codes = np.empty((K, N), dtype=np.uint8)
    w_hat = np.empty((K, N), dtype=np.float32)
    saturated = 0
    rnd = grid.rounder()
    for i1 in range(0, K, block):
        i2 = min(i1 + block, K)
        W1 = Wt[i1:i2].copy()
        U1 = U[i1:i2, i1:i2]
        E1 = np.empty_like(W1)
        for i in range(i2 - i1):
            w = W1[i]
            c, q, sat = rnd(w)
            codes[i1 + i], w_hat[i1 + i] = c, q
            saturated += sat
            e = (w - q) / U1[i, i]
            W1[i + 1:] -= U1[i, i + 1:, None] * e
            E1[i] = e
        Wt[i2:] -= U[i1:i2, i2:].T @ E1
    if perm is not None:                # back to index order: row perm[i] of the result is row i here
        inv = np.argsort(perm.numpy())
        codes, w_hat = codes[inv], w_hat[inv]
    return GPTQResult(codes, w_hat, saturated)


@torch.no_grad()
def hessians(model: torch.nn.Module, names, run, require_all: bool = True) -> dict:
    """``H = 2 X^T X / M`` (float64 ``[K, K]``) at the input of each named module over ``run(model)``
    (a callable running the model on calibration data; ``M`` = tokens seen by that module).

    A named module the run never reaches is an error, or left out of the result with
    ``require_all=False``.  Consecutive layers called with the very same input tensor (q/k/v,
    gate/up of a transformer block) share one ``X^T X`` product (the same numbers, computed once)."""
    acc: dict = {}
    # (input tensor, its version, its X^T X): layers reading one unchanged tensor share the product
    # (an inference-mode tensor has no version counter: never shared)
    last = [None, None, None]

    def version(t):
        try:
            return t._version
        except RuntimeError:
            return None

    def hook(name):
        def f(mod, args):
            v = version(args[0])
            if args[0] is not last[0] or v is None or v != last[1]:
                x = args[0].detach().reshape(-1, args[0].shape[-1]).to(torch.float64).cpu()
                last[:] = [args[0], v, (x.T @ x, x.shape[0])]
            xtx, rows = last[2]
            g, m = acc.get(name, (0, 0))
            acc[name] = (g + xtx, m + rows)
        return f

    handles = [model.get_submodule(n).register_forward_pre_hook(hook(n)) for n in names]
    try:
        run(model)
    finally:
        for h in handles:
            h.remove()
        last[:] = [None, None, None]
    missing = [n for n in names if n not in acc]
    if missing and require_all:
        raise ValueError(f"calibration run never reached {len(missing)} layer(s), first {missing[0]!r}")
    return {n: 2 * g / m for n, (g, m) in acc.items()}
