"""Per-output-channel quantization grids of a weight and the per-channel scale search.

A :class:`ChannelGrid` is the set of values each output channel ``n`` of a ``[K, N]`` weight can
take, with the exact rounding rule onto it (nearest), for the two formats whose error-compensated
rounding (:mod:`rf8hw.nn.gptq`) is compared:

* ``"rf8"``: ``w_hat = float32(channel_scale[n] * decode(code, X[n]))`` with the shared power-of-two
  exponent ``X[n]`` of the array (``docs/rf8-format.md``) and a real-valued ``channel_scale[n]``
  (1 unless a scale search chose another): ``code = codec.encode(float32(w / channel_scale[n]),
  X[n], "nearest")``.  ``channel_scale`` is applied after the array, in the dequantization stage,
  so the MAC array stays multiplier-free (``docs/quantization.md``, "Per-column scale search and
  GPTQ rounding").
* ``"int8"``: ``w_hat = q * scale[n]``, ``q = clip(round_half_even(float32(w / scale[n])), -127,
  127)`` with ``scale = max|w| / 127`` (:func:`absmax_scale`, :func:`int8_round`): the rule of
  :func:`rf8hw.nn.quant.encode_weight`, which uses these two functions.

Values beyond the grid's largest magnitude round to it (the nearest grid point); :meth:`round`
counts them (``saturated``), so nothing is clamped unseen.  With ``channel_scale = 1`` the codes
are exactly those of :func:`rf8hw.nn.quant.encode_weight` (``granularity="channel"``, nearest).

:func:`search_scale` picks ``channel_scale[n]`` among ``factors`` (default 32 points
``2**(-i/32)``, ``i = 0..31``: one octave, which is every distinct RF8 grid -- a factor of 2 only
moves ``X``) by the smallest weighted squared error ``sum_k importance[k] (w[k, n] -
w_hat[k, n])**2`` per channel, ``X[n]`` re-derived by the absmax rule for each factor (so no
weight saturates).  ``importance = None`` is plain weight MSE; the diagonal of a layer's input
Hessian (:func:`rf8hw.nn.gptq.hessians`) makes it an output-error proxy.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rf8hw import checks
from rf8hw.format import codec

__all__ = ["GRID_FORMATS", "DEFAULT_FACTORS", "INT8_MAX", "absmax_scale", "int8_round", "ChannelGrid",
           "fit_grid", "search_scale"]

GRID_FORMATS = ("rf8", "int8")
#: largest INT8 weight code magnitude (symmetric: -128 is never used)
INT8_MAX = 127
#: one octave of scale factors, log-spaced: 1, 2**(-1/32), ..., 2**(-31/32)
DEFAULT_FACTORS = tuple(float(2.0 ** (-i / 32)) for i in range(32))
_LUT0 = codec.value_table(0)      # decode(c, 0) of every code byte


def absmax_scale(absmax, top) -> np.ndarray:
    """float32 ``absmax / top`` where ``absmax > 0``, else 1 (an all-zero channel encodes exactly)."""
    a = np.asarray(absmax, dtype=np.float32)
    return np.where(a > 0, a / np.float32(top), np.float32(1)).astype(np.float32)


def int8_round(u) -> tuple[np.ndarray, int]:
    """``(clip(round_half_even(u), -INT8_MAX, INT8_MAX) as int8, how many |u| rounded beyond INT8_MAX)``."""
    r = np.rint(u)
    return np.clip(r, -INT8_MAX, INT8_MAX).astype(np.int8), int((np.abs(r) > INT8_MAX).sum())


@dataclass
class ChannelGrid:
    """The grid of each output channel of a ``[K, N]`` weight (see the module docstring).

    Attributes
    ----------
    fmt : {"rf8", "int8"}
    exponent : numpy.ndarray of int32 [N] (RF8) or None
    channel_scale : numpy.ndarray of float32 [N] (RF8; ones when no search ran) or None
    scale : numpy.ndarray of float32 [N] (INT8) or None
    """

    fmt: str
    exponent: np.ndarray | None = None
    channel_scale: np.ndarray | None = None
    scale: np.ndarray | None = None

    @property
    def n(self) -> int:
        return int((self.exponent if self.fmt == "rf8" else self.scale).size)

    def round(self, w) -> tuple[np.ndarray, np.ndarray, int]:
        """Nearest grid point of ``w`` (``[..., N]``, any float; rounded to float32 first).

        Returns ``(codes uint8, w_hat float32, saturated)``, same shape as ``w``; ``saturated``
        counts values beyond the largest magnitude (rounded to it)."""
        w = np.asarray(w, dtype=np.float32)
        if w.shape[-1:] != (self.n,):
            raise ValueError(f"values of shape {w.shape} do not end in the grid's {self.n} channels")
        if self.fmt == "rf8":
            # encode(v, X[n]) == encode(v * 2**-X[n], 0): the rules depend on the exponent of v
            # minus X only (a value the scaling makes subnormal lies far below the flush
            # threshold under both); the scalar-X kernel is the fast one
            u = np.ldexp(w / self.channel_scale, -self.exponent.astype(np.int32)).astype(np.float32)
            codes, st = codec.encode(u, 0, "nearest", on_saturate="ignore", return_stats=True)
            return codes, self.decode(codes), st.saturated
        q, sat = int8_round(w / self.scale)
        return q.view(np.uint8), q.astype(np.float32) * self.scale, sat

    def rounder(self):
        """:meth:`round` of one ``[N]`` vector with the per-channel factors worked out once (the
        GPTQ loop calls it once per input feature); the same results, exactly: multiplying by a
        power of two is exact in float32 like ``ldexp``, and ``decode(c, 0) * 2**X * s`` rounds
        once either way."""
        if self.fmt != "rf8":
            return self.round
        inv = np.ldexp(np.float32(1), -self.exponent.astype(np.int32)).astype(np.float32)
        mult = (np.ldexp(np.float32(1), self.exponent.astype(np.int32))
                * self.channel_scale).astype(np.float32)
        cs = self.channel_scale

        def rnd(w):
            u = (np.asarray(w, dtype=np.float32) / cs) * inv
            codes, st = codec.encode(u, 0, "nearest", on_saturate="ignore", return_stats=True)
            return codes, _LUT0[codes] * mult, st.saturated
        return rnd

    def decode(self, codes) -> np.ndarray:
        """float32 values of ``codes`` (``[..., N]``) on this grid."""
        codes = np.asarray(codes, dtype=np.uint8)
        if self.fmt == "rf8":     # decode(c, X) is decode(c, 0) * 2**X exactly (codec.decode)
            step = np.ldexp(np.float32(1), self.exponent.astype(np.int32)).astype(np.float32)
            return _LUT0[codes] * step * self.channel_scale
        return codes.view(np.int8).astype(np.float32) * self.scale


def _finite_kn(w_kn) -> np.ndarray:
    w = np.asarray(w_kn, dtype=np.float32)
    if w.ndim != 2 or w.size == 0:
        raise ValueError(f"weight must be a non-empty [K, N] matrix, not shape {w.shape}")
    if not np.isfinite(w).all():
        raise ValueError("weight contains NaN/Inf; quantization needs finite weights")
    return w


def fit_grid(w_kn, fmt: str, channel_scale=None) -> ChannelGrid:
    """The absmax grid of ``w_kn [K, N]`` per output channel: RF8 ``X[n]`` by
    :func:`rf8hw.format.codec.shared_exponent` of ``w / channel_scale`` (no weight saturates),
    INT8 ``scale[n] = max|w| / 127`` (1 for an all-zero channel, :func:`absmax_scale`)."""
    checks.choice("grid format", fmt, GRID_FORMATS)
    w = _finite_kn(w_kn)
    N = w.shape[1]
    if fmt == "rf8":
        s = np.ones(N, np.float32) if channel_scale is None else np.asarray(channel_scale, np.float32)
        if s.shape != (N,) or not (np.isfinite(s).all() and (s > 0).all()):
            raise ValueError(f"channel_scale must be {N} finite positive values, got shape {s.shape}")
        X = np.asarray(codec.shared_exponent(w / s, axis=0), dtype=np.int32)
        return ChannelGrid("rf8", exponent=X, channel_scale=s)
    if channel_scale is not None:
        raise ValueError("channel_scale belongs to the rf8 grid; the int8 grid's scale is max|w| / 127")
    return ChannelGrid("int8", scale=absmax_scale(np.abs(w).max(axis=0), INT8_MAX))


def search_scale(w_kn, factors=DEFAULT_FACTORS, importance=None,
                 sample_rows: int | None = None) -> np.ndarray:
    """RF8 ``channel_scale [N]`` (float32) minimising each channel's weighted squared error
    (module docstring); ties go to the earlier factor (the first, 1, is plain RF8).

    ``sample_rows``: measure the error on that many input features only (drawn once without
    replacement, ``numpy.random.default_rng(0)``; all when None or ``>= K``) -- a speed option for
    large models; ``X[n]`` still comes from the whole column."""
    w = _finite_kn(w_kn)
    f = np.asarray(factors, dtype=np.float64).reshape(-1)
    if f.size == 0 or not (np.isfinite(f).all() and (f > 0).all()):
        raise ValueError(f"factors must be a non-empty list of finite positive numbers, not {factors!r}")
    imp = np.ones(w.shape[0]) if importance is None else np.asarray(importance, dtype=np.float64)
    if imp.shape != (w.shape[0],) or not (np.isfinite(imp).all() and (imp >= 0).all()):
        raise ValueError(f"importance must be {w.shape[0]} finite non-negative values (one per input "
                         f"feature), got shape {imp.shape}")
    K, N = w.shape
    if sample_rows is not None and checks.integer("sample_rows", sample_rows, 1) < K:
        rows = np.sort(np.random.default_rng(0).choice(K, sample_rows, replace=False))
        w_err, imp = w[rows], imp[rows]
    else:
        w_err = w
    colmax = np.abs(w).max(axis=0, keepdims=True)      # max|w / s| = max|w| / s (monotonic)
    best_err = np.full(N, np.inf)
    best = np.ones(N, np.float32)
    w64 = w_err.astype(np.float64)
    for fac in f:
        s = np.full(N, fac, np.float32)
        X = np.asarray(codec.shared_exponent(colmax / s, axis=0), dtype=np.int32)
        _, w_hat, _ = ChannelGrid("rf8", exponent=X, channel_scale=s).round(w_err)
        err = imp @ (w64 - w_hat) ** 2
        better = err < best_err
        best_err = np.where(better, err, best_err)
        best = np.where(better, s, best)
    return best
