"""The weight formats of :mod:`rf8hw.nn.quant`: RF8 and the INT8 / FP8 E4M3 / APoT baselines, each
encoded and decoded in one place (:func:`encode_weight`, :func:`decode_weight`).

A weight ``[K, N]`` (``in_features x out_features``, the transpose of ``nn.Linear.weight``) is
stored as ``codes``, ``uint8 [K, N]`` (the ``[K, N]`` weight operand of
:func:`rf8hw.format.golden.matmul`, so ``y = x @ decode(codes)``), and per format:

* ``rf8``: ``exponent``, ``int32 [N]`` (``granularity="channel"``: one shared exponent X per output
  channel = per column of ``codes``) or ``[1]`` (``"tensor"``).  Codes and X follow
  ``docs/rf8-format.md`` exactly (:mod:`rf8hw.format.codec` encodes and decodes; nothing is
  re-implemented).  X is the absmax rule of :func:`rf8hw.format.codec.shared_exponent`, so no
  weight saturates.
* ``int8``: ``scale``, ``float32 [N]`` or ``[1]``; codes are two's complement bytes of
  ``q = round_half_even(w / scale)`` with ``scale = max|w| / 127`` (symmetric; -128 never used).
* ``fp8_e4m3``: ``scale``, ``float32 [1]`` or ``[N]``; codes are the bits of ``torch.float8_e4m3fn``
  of ``w / scale`` with ``scale = max|w| / 448`` (round to nearest even, done by torch's cast).
* ``apot``: ``scale``, ``float32 [N]`` or ``[1]``; code ``s iiii jjj`` means
  ``(-1)**s * scale * (P1[i] + P2[j])`` with ``P1 = (0, 2**0, 2**-2, ..., 2**-28)`` (even powers) and
  ``P2 = (0, 2**-1, 2**-3, ..., 2**-13)`` (odd powers): two additive power-of-two terms (APoT, Li et
  al., ICLR 2020) in 1 + 4 + 3 bits.  The 128 sums are distinct (binary digits of disjoint
  positions); the largest is 1.5, so ``scale = max|w| / 1.5``.  Encoding picks the nearest level,
  ties to the smaller magnitude.

A weight that is all zero gets ``scale = 1`` / ``X = 0`` (zeros encode exactly).
"""

from __future__ import annotations

import numpy as np
import torch

from rf8hw import checks
from rf8hw.format import codec
from rf8hw.nn.grid import INT8_MAX, absmax_scale, int8_round

FORMATS = ("rf8", "int8", "fp8_e4m3", "apot")
ROUNDINGS = ("paper", "nearest")        # RF8 only; the baselines always round to nearest
GRANULARITIES = ("tensor", "channel")
#: the granularity each format gets when ``granularity=None``
DEFAULT_GRANULARITY = {"rf8": "channel", "int8": "channel", "fp8_e4m3": "tensor", "apot": "channel"}

FP8_E4M3_MAX = 448.0
APOT_P1 = tuple([0.0] + [2.0 ** (-2 * i) for i in range(15)])     # 4 bits: 0, 1, 2^-2 ... 2^-28
APOT_P2 = tuple([0.0] + [2.0 ** (-2 * j - 1) for j in range(7)])   # 3 bits: 0, 2^-1 ... 2^-13
#: magnitude of code bits 6..0 (``iiii jjj``): ``P1[i] + P2[j]``, exact in float32
APOT_LEVELS = np.array([APOT_P1[c >> 3] + APOT_P2[c & 7] for c in range(128)], dtype=np.float32)
APOT_MAX = float(APOT_LEVELS.max())     # 1.5


def _absmax(w: np.ndarray, granularity: str) -> np.ndarray:
    """max|w| over K per output column of ``w [K, N]`` -> [N], or over everything -> [1]."""
    a = np.abs(w).max(axis=0) if granularity == "channel" else np.abs(w).max(keepdims=True).reshape(1)
    return a.astype(np.float32)


def _apot_encode(u: np.ndarray) -> np.ndarray:
    """Nearest APoT code (ties to the smaller magnitude) of ``u`` in units of ``scale``."""
    order = np.argsort(APOT_LEVELS, kind="stable")
    levels = APOT_LEVELS[order].astype(np.float64)
    mids = (levels[:-1] + levels[1:]) / 2
    idx = np.searchsorted(mids, np.abs(u).astype(np.float64), side="left")   # |u| == mid -> lower level
    return (order[idx].astype(np.uint8) | np.where(u < 0, 0x80, 0).astype(np.uint8)).astype(np.uint8)


def encode_weight(w_kn: np.ndarray, fmt: str, granularity: str, rounding: str = "nearest"):
    """Encode a ``[K, N]`` float32 weight; returns ``(codes uint8 [K, N], params dict of arrays)``.

    ``params`` holds ``exponent`` (int32, RF8) or ``scale`` (float32, the baselines), shape ``[N]``
    or ``[1]``.
    """
    checks.choice("fmt", fmt, FORMATS)
    checks.choice("granularity", granularity, GRANULARITIES)
    checks.choice("rounding", rounding, ROUNDINGS)
    w = np.ascontiguousarray(w_kn, dtype=np.float32)
    if not np.isfinite(w).all():
        k, n = (int(i) for i in np.argwhere(~np.isfinite(w))[0])
        raise ValueError(f"weight contains NaN/Inf (first {float(w[k, n])!r} at out-feature {n}, "
                         f"in-feature {k}); quantization needs finite weights")
    if fmt == "rf8":
        X = codec.shared_exponent(w, axis=0 if granularity == "channel" else None)
        X = np.asarray(X, dtype=np.int32).reshape(-1)
        codes = codec.encode(w, _rf8_exponent_arg(X), rounding=rounding, on_saturate="error")
        return codes, {"exponent": X}
    top = {"int8": INT8_MAX, "fp8_e4m3": FP8_E4M3_MAX, "apot": APOT_MAX}[fmt]
    scale = absmax_scale(_absmax(w, granularity), top)
    u = w / scale                                                   # [K, N] / [N] or [1]
    if fmt == "int8":
        codes = int8_round(u)[0].view(np.uint8)
    elif fmt == "fp8_e4m3":
        # |u| <= 448 up to one float32 rounding of the division; the clip only absorbs that ulp
        t = torch.from_numpy(np.clip(u, -FP8_E4M3_MAX, FP8_E4M3_MAX))
        codes = t.to(torch.float8_e4m3fn).view(torch.uint8).numpy()
    else:
        codes = _apot_encode(u)
    return np.ascontiguousarray(codes), {"scale": scale}


def _rf8_exponent_arg(X: np.ndarray):
    return int(X[0]) if X.size == 1 else X.astype(np.int64)


def decode_weight(codes: torch.Tensor, fmt: str, params: dict) -> torch.Tensor:
    """Float32 ``[K, N]`` weight from the stored codes and ``exponent``/``scale`` buffers; a
    ``channel_scale`` entry (float32 ``[N]``) multiplies each column, rounded once to float32."""
    checks.choice("fmt", fmt, FORMATS)
    if "channel_scale" in params:
        rest = {k: v for k, v in params.items() if k != "channel_scale"}
        return decode_weight(codes, fmt, rest) * params["channel_scale"]
    if fmt == "rf8":
        X = params["exponent"].numpy()
        return torch.from_numpy(codec.decode(codes.numpy(), _rf8_exponent_arg(X)))
    scale = params["scale"]
    if fmt == "int8":
        return codes.view(torch.int8).to(torch.float32) * scale
    if fmt == "fp8_e4m3":
        return codes.view(torch.float8_e4m3fn).to(torch.float32) * scale
    mag = torch.from_numpy(APOT_LEVELS)[(codes & 0x7F).long()]          # apot
    return torch.where(codes >= 0x80, -mag, mag) * scale
