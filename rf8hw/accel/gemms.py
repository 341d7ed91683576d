"""Every matrix product a model executes, captured at the op level from one real forward pass.

:func:`capture` runs the model under a :class:`torch.overrides.TorchFunctionMode` (PyTorch's public
op-level interception: every torch function call, whoever makes it) and records each matrix
product — ``F.linear``, ``torch.matmul`` / ``@``, ``mm``, ``addmm``, ``bmm``, ``baddbmm``,
``F.scaled_dot_product_attention`` (split into its ``Q K^T`` and ``P V`` products) and the
convolutions ``F.conv1d/2d/3d`` and ``F.conv_transpose1d/2d/3d`` (as their im2col GEMMs) —
whatever module class runs it.  Modules that do not run (e.g. a BERT pooler under mean
pooling) contribute nothing.  RF8 ``QuantLinear`` layers are seen through a forward pre-hook (their
bit-exact path runs outside torch), so they count as the weight GEMMs they are.

Each GEMM is **on the array** when one operand is a model weight (an ``nn.Parameter`` or a
``QuantLinear``'s codes, i.e. something the weight-stationary RF8 array can hold) and **off the
array** when both are activations (attention scores and their mix).  Convolutions are off the
array too: RF8 quantization takes linear layers only, so they stay in float on the host; their
MACs are counted (never dropped) and :func:`off_array_notes` says what the cycles leave out.
Identical products of one call (attention heads times batch, convolution groups) are one
:class:`rf8hw.accel.cycles.Gemm` with ``count``.

Nothing is dropped: a :class:`torch.utils._python_dispatch.TorchDispatchMode` underneath counts the
ATen matrix products (``mm``, ``addmm``, ``bmm``, ``baddbmm``; convolutions and attention through
:data:`torch.utils.flop_counter.flop_registry`) of every call.  A call that executes more MACs
than the rules above record (``torch.einsum``, ``torch.tensordot``, ``F.bilinear``,
``F.multi_head_attention_forward``, ...: functions run as one opaque call) adds its ATen GEMMs
with exact shapes, off the array, ``op`` ``"other"`` and named after the function; those stay in
float (RF8 quantization takes linear layers), and :func:`off_array_notes` names them.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode
from torch.utils.flop_counter import flop_registry

from rf8hw.accel.cycles import Gemm

__all__ = ["capture", "run_example", "summarize", "check_on_array", "off_array_notes"]

_LINEAR = {F.linear}
_MATMUL = {torch.matmul, torch.Tensor.matmul, torch.Tensor.__matmul__, torch.Tensor.__rmatmul__}
_MM = {torch.mm, torch.Tensor.mm}
_ADDMM = {torch.addmm, torch.Tensor.addmm}
_BMM = {torch.bmm, torch.Tensor.bmm}
_BADDBMM = {torch.baddbmm, torch.Tensor.baddbmm}
_SDPA = {F.scaled_dot_product_attention}
_CONV = {F.conv1d, F.conv2d, F.conv3d}
_CONV_T = {F.conv_transpose1d, F.conv_transpose2d, F.conv_transpose3d}


def _is_weight(t, weights) -> bool:
    return isinstance(t, torch.Tensor) and (isinstance(t, nn.Parameter) or id(t) in weights
                                            or (t._base is not None and id(t._base) in weights))


_ATEN_MM = {torch.ops.aten.mm, torch.ops.aten.addmm}
_ATEN_BMM = {torch.ops.aten.bmm, torch.ops.aten.baddbmm}


def _aten_products():
    """A ``TorchDispatchMode`` whose ``products`` list every ATen matrix product, in order:
    ``(M, K, N, count)``, or ``(1, macs, 1, 1)`` for the products known only by their FLOPs
    (convolutions, fused attention).  PyTorch has the class only in a private module (no public
    alias), hence the import here."""
    from torch.utils._python_dispatch import TorchDispatchMode

    class AtenProducts(TorchDispatchMode):
        def __init__(self):
            super().__init__()
            self.products: list[tuple[int, int, int, int]] = []

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            kwargs = kwargs or {}
            out = func(*args, **kwargs)
            packet = func._overloadpacket
            if packet in _ATEN_MM:
                a, b = args[-2], args[-1]
                self.products.append((a.shape[0], a.shape[1], b.shape[1], 1))
            elif packet in _ATEN_BMM:
                a, b = args[-2], args[-1]
                self.products.append((a.shape[1], a.shape[2], b.shape[2], a.shape[0]))
            elif packet in flop_registry:
                flops = flop_registry[packet](*args, **kwargs, out_val=out)
                self.products.append((1, int(flops) // 2, 1, 1))
            return out

    return AtenProducts()


class _Capture(TorchFunctionMode):
    def __init__(self, weights: set[int], names: dict[int, str], where, aten):
        super().__init__()
        self.weights, self.names, self.where, self.aten = weights, names, where, aten
        self.gemms: list[Gemm] = []
        self.inside_quant = 0

    def _add(self, kind, M, K, N, on, count=1, w=None, op=None):
        where = self.where()
        if on or op == "conv":
            base = getattr(w, "_base", None) if w is not None else None
            label = where or self.names.get(id(w)) or self.names.get(id(base)) or kind
        else:
            label = f"{where or 'model'}.{kind}"
        self.gemms.append(Gemm(label, int(M), int(K), int(N), on_array=on, count=int(count),
                               op=op or kind.split(".")[0]))

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        first_aten = len(self.aten.products)
        out = func(*args, **kwargs)          # the mode is off inside: nested calls are not seen
        if self.inside_quant:                # a QuantLinear's own arithmetic: counted by its hook
            return out
        first = len(self.gemms)
        try:
            self._record(func, args, kwargs, out)
        except (AttributeError, IndexError, KeyError, TypeError):
            del self.gemms[first:]           # an unusual call signature: its ATen products below
        inside = self.aten.products[first_aten:]
        if sum(m * k * n * c for m, k, n, c in inside) > sum(g.macs for g in self.gemms[first:]):
            del self.gemms[first:]           # more work than the rules saw: take ATen's products
            name = getattr(func, "__name__", "function")
            for m, k, n, c in inside:
                self._add(name, m, k, n, False, c, op="other")
        return out

    def _conv(self, func, args, kwargs, out):
        """A convolution as its im2col GEMM(s), one per group, from the operand and result shapes:
        ``[N * out positions, C_in/g * kernel] x [C_in/g * kernel, C_out/g]`` (transposed:
        ``[N * in positions, C_in/g] x [C_in/g, C_out/g * kernel]``)."""
        x = args[0] if args else kwargs["input"]
        w = args[1] if len(args) > 1 else kwargs["weight"]
        nd = w.dim() - 2
        batch = x.shape[0] if x.dim() == nd + 2 else 1
        kernel = 1
        for d in w.shape[2:]:
            kernel *= d
        positions = 1
        if func in _CONV:
            for d in out.shape[-nd:]:
                positions *= d
            groups = x.shape[-nd - 1] // w.shape[1]
            self._add(func.__name__, batch * positions, w.shape[1] * kernel, w.shape[0] // groups, False,
                      groups, w, op="conv")
        else:
            for d in x.shape[-nd:]:
                positions *= d
            groups = out.shape[-nd - 1] // w.shape[1]
            self._add(func.__name__, batch * positions, w.shape[0] // groups, w.shape[1] * kernel, False,
                      groups, w, op="conv")

    def _record(self, func, args, kwargs, out):
        if func in _LINEAR:
            x, w = args[0], args[1] if len(args) > 1 else kwargs["weight"]
            M = x.numel() // x.shape[-1] if x.dim() else 1
            self._add("linear", M, w.shape[1], w.shape[0], True, 1, w)
        elif func in _MATMUL:
            a, b = (args[1], args[0]) if func is torch.Tensor.__rmatmul__ else (args[0], args[1])
            on = _is_weight(b, self.weights) or _is_weight(a, self.weights)
            if b.dim() == 2 and on:
                self._add("matmul", a.numel() // a.shape[-1], a.shape[-1], b.shape[-1], True, 1, b)
            else:
                count = 1
                batch = a.dim() > 2 or b.dim() > 2
                for d in torch.broadcast_shapes(a.shape[:-2], b.shape[:-2]) if batch else ():
                    count *= d
                M = a.shape[-2] if a.dim() > 1 else 1
                N = b.shape[-1] if b.dim() > 1 else 1
                self._add("matmul", M, a.shape[-1], N, on, count)
        elif func in _MM or func in _ADDMM:
            a, b = (args[0], args[1]) if func in _MM else (args[1], args[2])
            on = _is_weight(b, self.weights) or _is_weight(a, self.weights)
            w = b if _is_weight(b, self.weights) else a if on else None
            self._add("mm", a.shape[0], a.shape[1], b.shape[1], on, 1, w)
        elif func in _BMM or func in _BADDBMM:
            a, b = (args[0], args[1]) if func in _BMM else (args[1], args[2])
            on = _is_weight(b, self.weights) or _is_weight(a, self.weights)
            self._add("bmm", a.shape[1], a.shape[2], b.shape[2], on, a.shape[0])
        elif func in _SDPA:
            q, k, v = (list(args) + [kwargs.get(n) for n in ("query", "key", "value")[len(args):]])[:3]
            count = 1
            for d in q.shape[:-2]:
                count *= d
            L, E, S, Ev = q.shape[-2], q.shape[-1], k.shape[-2], v.shape[-1]
            self._add("sdpa.scores(q@kT)", L, E, S, False, count)
            self._add("sdpa.mix(att@v)", L, S, Ev, False, count)
        elif func in _CONV or func in _CONV_T:
            self._conv(func, args, kwargs, out)


def _weight_map(model: nn.Module):
    weights, names = set(), {}
    for n, p in model.named_parameters(remove_duplicate=False):
        weights.add(id(p))
        names.setdefault(id(p), n.rsplit(".", 1)[0])
    return weights, names


@torch.no_grad()
def run_example(model: nn.Module, example):
    """One forward pass of ``model`` on ``example``: ``example(model)`` when it is a callable, else
    ``model(**example)`` (dict), ``model(*example)`` (tuple) or ``model(example)``; returns the
    model's output."""
    if callable(example) and not isinstance(example, (torch.Tensor, nn.Module)):
        return example(model)
    if isinstance(example, dict):
        return model(**example)
    if isinstance(example, tuple):
        return model(*example)
    return model(example)


def capture(model: nn.Module, run) -> list[Gemm]:
    """The GEMMs of one forward pass, in execution order.

    Parameters
    ----------
    model : torch.nn.Module
        Its parameters tell weight operands from activations.
    run : callable
        ``run(model)`` executes one forward pass (the user's own input format), or a tensor /
        tuple / dict passed to ``model``.
    """
    from rf8hw.nn.quant import QuantLinear

    weights, names = _weight_map(model)
    stack: list[str] = []
    hooks = []
    aten = _aten_products()
    mode = _Capture(weights, names, lambda: stack[-1] if stack else "", aten)

    def pre(name):
        def hook(m, args):
            stack.append(name)
            if isinstance(m, QuantLinear):
                x = args[0]
                if not mode.inside_quant:
                    mode.gemms.append(Gemm(name, x.numel() // x.shape[-1], m.in_features, m.out_features))
                mode.inside_quant += 1
        return hook

    def post(m, args, out):
        if stack:
            stack.pop()
        if isinstance(m, QuantLinear):
            mode.inside_quant -= 1

    for name, mod in model.named_modules():
        if name:
            hooks.append(mod.register_forward_pre_hook(pre(name)))
            hooks.append(mod.register_forward_hook(post))
    was_training = model.training
    model.eval()
    try:
        with aten, mode:
            run_example(model, run)
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    return mode.gemms


def summarize(gemms: list[Gemm]) -> dict:
    """Totals: on/off-array GEMM counts and MACs; ``macs_conv``: the convolutions' (off the array)."""
    on = [g for g in gemms if g.on_array]
    off = [g for g in gemms if not g.on_array]
    return {"gemms_on_array": sum(g.count for g in on), "gemms_off_array": sum(g.count for g in off),
            "macs_on_array": sum(g.macs for g in on), "macs_off_array": sum(g.macs for g in off),
            "macs_conv": sum(g.macs for g in off if g.op == "conv")}


def check_on_array(gemms: list[Gemm], what: str) -> None:
    """ValueError when ``gemms`` (one forward pass of ``what``) hold no on-array GEMM: a run
    that executes no layer the array can take has no cycles to count, and a report of 0 cycles
    (or an infinite throughput) would be wrong."""
    if any(g.on_array for g in gemms):
        return
    off = sum(g.macs for g in gemms)
    ran = (f"only {off:,} off-array MACs ({', '.join(sorted({g.op for g in gemms}))})" if gemms
           else "no matrix product at all")
    raise ValueError(f"{what} ran no layer the array can take ({ran}): nothing to count cycles for; "
                     "the example must run the model's linear layers")


def off_array_notes(gemms: list[Gemm], batch: int) -> list[str]:
    """Report notes naming the work the cycles leave out: activation x activation products,
    convolutions and other functions' products (kept in float), each with its MACs per ``batch``
    inference(s) and its share of all MACs."""
    total = sum(g.macs for g in gemms) or 1
    conv = [g for g in gemms if not g.on_array and g.op == "conv"]
    other = [g for g in gemms if not g.on_array and g.op == "other"]
    act = [g for g in gemms if not g.on_array and g.op not in ("conv", "other")]
    notes = []
    if act:
        macs = sum(g.macs for g in act)
        notes.append(f"{macs:,} MACs per {batch} inference(s) ({100 * macs / total:.1f} % of all) are "
                     "activation x activation products (attention scores and mix): they do not map "
                     "onto the weight-stationary RF8 array and are not counted in the cycles")
    if conv:
        macs = sum(g.macs for g in conv)
        names = ", ".join(dict.fromkeys(g.name for g in conv))
        notes.append(f"{macs:,} MACs per {batch} inference(s) ({100 * macs / total:.1f} % of all) are "
                     f"convolutions ({names}; counted as im2col GEMMs) that stay in float off the "
                     "array (RF8 quantization takes linear layers): the cycles, inferences/s and GMAC/s "
                     "count the array's work only and leave them out")
    if other:
        macs = sum(g.macs for g in other)
        names = ", ".join(dict.fromkeys(g.name for g in other))
        notes.append(f"{macs:,} MACs per {batch} inference(s) ({100 * macs / total:.1f} % of all) are "
                     f"matrix products inside functions the capture does not map onto the array "
                     f"({names}; counted from their ATen GEMMs): they stay in float off the array and "
                     "are not counted in the cycles")
    return notes
