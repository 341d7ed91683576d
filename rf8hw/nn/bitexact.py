"""Bit-exact hardware path of an RF8 :class:`~rf8hw.nn.quant.QuantLinear` (``mode="bitexact"``).

What one layer computes, step by step (``docs/estimates.md`` has the same rules in prose):

1. **Activations to integers.**  The input ``x [..., K]`` is flattened to ``[M, K]`` and quantized to
   signed ``act_bits`` integers, symmetric, no zero point::

       qmax      = 2**(act_bits - 1) - 1                        (127 for 8 bits; -128 is never used)
       act_scale = float32(absmax / qmax)                       (1.0 when absmax == 0)
       a         = clip(round_half_even(x / act_scale), -qmax, qmax)

   ``absmax`` is ``max|x|`` of this call's whole tensor (per-tensor dynamic, the default) or a fixed
   value found by :func:`calibrate` (static; inputs beyond it are clipped and counted).
2. **Integer GEMM on the array.**  ``acc = golden.matmul(a, codes, acc_bits, overflow, act_bits)``:
   exactly what the RF8 MAC array returns (``docs/rf8-format.md`` sections 4-5).
3. **Dequantize** on the host, in float64, rounded once to float32, then the float32 bias::

       y[m, n] = float32(acc[m, n] * 2**(X[n] - spec.PRODUCT_SHIFT) * act_scale) + bias[n]

   ``X`` is the layer's shared exponent (per output channel or per tensor).  ``acc * 2**(X-18)`` is
   exact in float64 (``|acc| < 2**53`` for ``acc_bits <= 53``; wider accumulators round once).

Bias, activation functions, LayerNorm, softmax, attention score matmuls and everything outside
the ``QuantLinear`` layers stay in float32.

**Overflow events.**  Each call also computes the exact sum ``golden.matmul(..., acc_bits=64)``
(no product sum of a real layer comes near ``2**63``).  When ``K * max|a| * max|W| <
2**(acc_bits-1)`` no partial sum can leave the accumulator's range, so step 2's result *is* the
exact sum and the second GEMM is skipped.  An *overflow event* is one output
accumulation ``(m, n)`` whose ``acc_bits`` result differs from that exact sum.  In ``wrap`` mode this
is exactly "the exact sum lies outside ``[-2**(acc_bits-1), 2**(acc_bits-1) - 1]``" (wrapping is
order-independent); in ``saturate`` mode it also counts sums that saturated on the way (in k order)
and came back into range with a wrong value.  Events are counted per layer in
:class:`OverflowStats` (``layer.bitexact_stats``).

Tiling note: the array has ``rows`` PE rows, so a layer with ``K > rows`` runs as several k-tiles
whose results the host adds.  In ``wrap`` mode any such split gives the same result as one
``golden.matmul`` over all of K.  In ``saturate`` mode the result also depends on how the host
combines tile results; this module follows the contract of ``docs/rf8-format.md`` (one saturating
accumulator over k = 0..K-1).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import torch
import torch.nn as nn

from rf8hw.format import golden, spec

__all__ = ["HardwareConfig", "OverflowStats", "quantize_activations", "rf8_gemm", "linear",
           "set_mode", "calibrate", "overflow_report", "reset_stats"]


@dataclass(frozen=True)
class HardwareConfig:
    """Arithmetic of the MAC array a bit-exact layer runs on.

    Parameters
    ----------
    acc_bits : int
        Accumulator width, ``spec.min_acc_bits(act_bits) .. 64`` (27..64 for 8-bit activations).
    overflow : {"wrap", "saturate"}
        Accumulator overflow rule (``docs/rf8-format.md`` section 5).
    act_bits : int
        Signed activation width, ``spec.ACT_BITS_MIN .. spec.ACT_BITS_MAX``.
    """

    acc_bits: int = 40
    overflow: str = "wrap"
    act_bits: int = 8

    def __post_init__(self):
        if isinstance(self.act_bits, bool) or not isinstance(self.act_bits, (int, np.integer)) or not (
                spec.ACT_BITS_MIN <= self.act_bits <= spec.ACT_BITS_MAX):
            raise ValueError(f"act_bits must be an integer in {spec.ACT_BITS_MIN}..{spec.ACT_BITS_MAX}, "
                             f"not {self.act_bits!r}")
        lo = spec.min_acc_bits(self.act_bits)
        if isinstance(self.acc_bits, bool) or not isinstance(self.acc_bits, (int, np.integer)) or not (
                lo <= self.acc_bits <= spec.ACC_BITS_MAX):
            raise ValueError(f"acc_bits must be an integer in {lo}..{spec.ACC_BITS_MAX} for "
                             f"{self.act_bits}-bit activations, not {self.acc_bits!r}")
        if self.overflow not in spec.OVERFLOW_MODES:
            raise ValueError(f"overflow must be one of {', '.join(spec.OVERFLOW_MODES)}, "
                             f"not {self.overflow!r}")

    @property
    def qmax(self) -> int:
        """Largest activation magnitude used: ``2**(act_bits-1) - 1``."""
        return (1 << (self.act_bits - 1)) - 1


@dataclass
class OverflowStats:
    """What the bit-exact path of one layer saw since the last :func:`reset_stats`.

    Attributes
    ----------
    calls : int
        Forward calls.
    outputs : int
        Output accumulations computed (``M * N`` per call).
    events : int
        Overflow events: outputs whose ``acc_bits`` result differs from the exact sum.
    max_abs_sum : int
        Largest ``|exact sum|`` seen; ``bit_length() + 1`` is the accumulator width this layer needed.
    clipped_acts : int
        Activations clipped to ``+-qmax`` by a static scale (always 0 with dynamic scales).
    acts : int
        Activations quantized.
    """

    calls: int = 0
    outputs: int = 0
    events: int = 0
    max_abs_sum: int = 0
    clipped_acts: int = 0
    acts: int = 0

    def as_dict(self) -> dict:
        d = asdict(self)
        d["acc_bits_needed"] = self.max_abs_sum.bit_length() + 1
        return d


@dataclass
class _LayerState:
    """Per-layer bit-exact settings and counters, kept on the layer as ``bitexact_*`` attributes."""

    hw: HardwareConfig = field(default_factory=HardwareConfig)
    absmax: float | None = None        # static calibration; None: per-call absmax


def quantize_activations(x: np.ndarray, act_bits: int = 8, absmax: float | None = None):
    """Signed symmetric integer activations of a float array (rule 1 of the module docstring).

    Parameters
    ----------
    x : numpy.ndarray, float
        Any shape.
    act_bits : int
        Signed integer width; values lie in ``-(2**(act_bits-1) - 1) .. 2**(act_bits-1) - 1``.
    absmax : float or None
        Static clipping level (from :func:`calibrate`); None uses ``max|x|`` of this array.

    Returns
    -------
    a : numpy.ndarray of int64, same shape as ``x``
    act_scale : float
        ``float32(absmax / qmax)`` as a Python float; ``x ~ a * act_scale``.
    clipped : int
        How many ``|x / act_scale|`` exceeded ``qmax`` (0 for dynamic scales).
    """
    qmax = HardwareConfig(act_bits=act_bits, acc_bits=spec.ACC_BITS_MAX).qmax
    x = np.asarray(x)
    if not np.isfinite(x).all():
        raise ValueError(f"activations contain {int((~np.isfinite(x)).sum())} NaN/Inf value(s); "
                         "the bit-exact path needs finite inputs")
    if absmax is None:
        absmax = float(np.abs(x).max()) if x.size else 0.0
    elif not (np.isfinite(absmax) and absmax >= 0):
        raise ValueError(f"static absmax must be a finite number >= 0, not {absmax!r}")
    scale = float(np.float32(absmax / qmax)) if absmax > 0 else 1.0
    if scale == 0.0:              # absmax / qmax underflows float32: treat as all-zero input
        scale = 1.0
    u = np.rint(x.astype(np.float64) / scale)
    clipped = int((np.abs(u) > qmax).sum())
    return np.clip(u, -qmax, qmax).astype(np.int64), scale, clipped


def _cannot_overflow(a: np.ndarray, codes: np.ndarray, acc_bits: int) -> bool:
    """True when ``K * max|a| * max|W(codes)| < 2**(acc_bits-1)``: then every prefix sum of every
    output fits the accumulator, so its result is the exact sum (one GEMM instead of two)."""
    if a.size == 0 or codes.size == 0:
        return True
    bound = a.shape[1] * int(np.abs(a).max()) * int(np.abs(golden.weight_int(codes)).max())
    return bound < (1 << (acc_bits - 1))


def rf8_gemm(a: np.ndarray, act_scale: float, codes: np.ndarray, exponent: np.ndarray,
             hw: HardwareConfig = HardwareConfig()):
    """Run ``a @ codes`` on the array model and dequantize (rules 2-3 of the module docstring).

    Parameters
    ----------
    a : int array [M, K]
        Signed ``hw.act_bits`` activations.
    act_scale : float
    codes : uint8 array [K, N]
        RF8 codes (``QuantLinear.codes``).
    exponent : int array [N] or [1]
        Shared exponents X (``QuantLinear.exponent``).
    hw : HardwareConfig

    Returns
    -------
    y : numpy.ndarray of float64 [M, N]
        ``acc * 2**(X - 18) * act_scale`` (no bias).
    acc : numpy.ndarray of int64 [M, N]
        The accumulator contents (``acc_bits`` two's complement, as signed integers).
    exact : numpy.ndarray of int64 [M, N]
        The exact sums (64-bit accumulation).
    """
    exact = golden.matmul(a, codes, acc_bits=spec.ACC_BITS_MAX, overflow="wrap", act_bits=hw.act_bits)
    if _cannot_overflow(a, codes, hw.acc_bits):
        acc = exact          # no partial or final sum leaves the range: every overflow rule is the identity
    else:
        acc = golden.matmul(a, codes, acc_bits=hw.acc_bits, overflow=hw.overflow, act_bits=hw.act_bits)
    step = np.ldexp(1.0, np.asarray(exponent, dtype=np.int64).reshape(-1) - spec.PRODUCT_SHIFT)
    y = acc.astype(np.float64) * step * act_scale
    return y, acc, exact


def _state(layer) -> _LayerState:
    st = getattr(layer, "bitexact_state", None)
    if st is None:
        st = layer.bitexact_state = _LayerState()
    if getattr(layer, "bitexact_stats", None) is None:
        layer.bitexact_stats = OverflowStats()
    return st


def linear(layer, x: torch.Tensor) -> torch.Tensor:
    """Forward of a ``QuantLinear`` in ``mode="bitexact"`` (called by ``QuantLinear.forward``).

    Inference only: the result carries no gradient.  Updates ``layer.bitexact_stats``.
    """
    if layer.fmt != "rf8":
        raise ValueError(f"mode 'bitexact' needs an RF8 layer, this one is {layer.fmt!r}; "
                         "quantize with fmt='rf8'")
    st = _state(layer)
    stats = layer.bitexact_stats
    lead = x.shape[:-1]
    x2 = x.detach().reshape(-1, x.shape[-1]).to(torch.float32).cpu().numpy()
    a, scale, clipped = quantize_activations(x2, st.hw.act_bits, st.absmax)
    y, acc, exact = rf8_gemm(a, scale, layer.codes.cpu().numpy(), layer.exponent.cpu().numpy(), st.hw)
    stats.calls += 1
    stats.outputs += acc.size
    stats.events += int((acc != exact).sum())
    if exact.size:
        stats.max_abs_sum = max(stats.max_abs_sum, int(np.abs(exact).max()))
    stats.clipped_acts += clipped
    stats.acts += a.size
    out = torch.from_numpy(y.astype(np.float32)).reshape(*lead, y.shape[1]).to(x.device)
    if layer.bias is not None:
        out = out + layer.bias.detach().to(out.dtype)
    return out


def _rf8_layers(model: nn.Module) -> dict:
    from rf8hw.nn.quant import QuantLinear

    layers = {n: m for n, m in model.named_modules() if isinstance(m, QuantLinear) and m.fmt == "rf8"}
    if not layers:
        raise ValueError("model has no RF8 QuantLinear layer; call rf8hw.quantize(model, fmt='rf8') first")
    return layers


def set_mode(model: nn.Module, mode: str = "bitexact", hw: HardwareConfig | None = None,
             absmax: dict | None = None) -> nn.Module:
    """Switch every RF8 ``QuantLinear`` of ``model`` to ``mode`` (in place) and reset its counters.

    Parameters
    ----------
    model : torch.nn.Module
        A model returned by ``rf8hw.quantize(model, fmt="rf8")``.
    mode : {"bitexact", "fake"}
    hw : HardwareConfig, optional
        Array arithmetic (default ``HardwareConfig()``: 8-bit activations, 40-bit wrapping accumulator).
    absmax : dict of str to float, optional
        Static activation clipping levels per layer name (:func:`calibrate`); layers not named
        keep per-call absmax.  A name that is not an RF8 layer is an error.

    Returns
    -------
    torch.nn.Module
        ``model`` itself.
    """
    from rf8hw.nn.quant import MODES

    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; choose one of {', '.join(MODES)}")
    hw = HardwareConfig() if hw is None else hw
    layers = _rf8_layers(model)
    absmax = absmax or {}
    unknown = sorted(set(absmax) - set(layers))
    if unknown:
        raise ValueError(f"absmax names {unknown} which are not RF8 layers; layers are: {', '.join(layers)}")
    for name, layer in layers.items():
        layer.mode = mode
        layer.bitexact_state = _LayerState(hw=hw, absmax=absmax.get(name))
        layer.bitexact_stats = OverflowStats()
    return model


@torch.no_grad()
def calibrate(model: nn.Module, batches) -> dict:
    """Static activation ranges: ``max|x|`` at the input of every RF8 layer over ``batches``.

    Parameters
    ----------
    model : torch.nn.Module
        A quantized model; it runs in whatever mode its layers are in (use ``"fake"`` to calibrate
        on the float path, as a deployment flow would).
    batches : iterable
        Each item is passed to ``model`` (a tuple is unpacked as positional arguments).

    Returns
    -------
    dict of str to float
        Layer name -> absmax; pass it to :func:`set_mode` as ``absmax=``.
    """
    layers = _rf8_layers(model)
    seen = {name: 0.0 for name in layers}
    hooks = [layer.register_forward_pre_hook(
        lambda mod, args, name=name: seen.__setitem__(name, max(seen[name], float(args[0].abs().max()))))
        for name, layer in layers.items()]
    n = 0
    try:
        for batch in batches:
            model(*batch) if isinstance(batch, tuple) else model(batch)
            n += 1
    finally:
        for h in hooks:
            h.remove()
    if n == 0:
        raise ValueError("calibrate got no batches")
    return seen


def overflow_report(model: nn.Module) -> dict:
    """Per-layer :class:`OverflowStats` as dicts, plus ``"total"`` (sums; max of ``max_abs_sum``)."""
    out = {}
    for name, layer in _rf8_layers(model).items():
        _state(layer)
        out[name] = layer.bitexact_stats.as_dict()
    keys = ("calls", "outputs", "events", "clipped_acts", "acts")
    total = {k: sum(v[k] for v in out.values()) for k in keys}
    total["max_abs_sum"] = max(v["max_abs_sum"] for v in out.values())
    total["acc_bits_needed"] = total["max_abs_sum"].bit_length() + 1
    out["total"] = total
    return out


def reset_stats(model: nn.Module) -> None:
    """Zero the overflow counters of every RF8 layer."""
    for layer in _rf8_layers(model).values():
        layer.bitexact_stats = OverflowStats()
