"""Rate measurement: how many bits a weight set costs after uniform quantization and entropy coding.

Rules (``docs/frontend.md``, "Rate measurement"):

* Quantize: ``q = round(w / step)`` to integers, ties to even (``numpy.rint``).
* Authors' scheme: the distinct values of ``q`` are ranked by frequency (most frequent gets rank 0;
  equal counts in increasing value order) and each weight's rank ``k`` is written with the order-0
  Exp-Golomb code of length ``2 * floor(log2(k + 1)) + 1`` bits.  :func:`exp_golomb_bits` is this
  payload; the decoder also needs the rank table, whose size :func:`rank_table_bits` reports
  separately: the Exp-Golomb code of the number of distinct values, then each value in rank order,
  zig-zag mapped and Exp-Golomb coded.
* Table-free variant: each ``q`` is zig-zag mapped (``0, -1, 1, -2, 2 -> 0, 1, 2, 3, 4``) and
  Exp-Golomb coded directly (:func:`zigzag_exp_golomb_bits`).
* Bound: the empirical entropy ``n * H(q)`` (:func:`entropy_bits`); every prefix code of the
  symbols, both schemes above included, costs at least that.

All totals are in bits; :func:`report` divides by the parameter count.  :func:`exp_golomb_encode`
and :func:`exp_golomb_decode` are plain-Python bit-string references.
"""

from __future__ import annotations

import numpy as np

from rf8hw.nn.params import as_array, positive

__all__ = [
    "quantize", "exp_golomb_length", "zigzag", "unzigzag", "rank_by_frequency", "exp_golomb_bits",
    "rank_table_bits", "zigzag_exp_golomb_bits", "entropy_bits", "report", "exp_golomb_encode",
    "exp_golomb_decode",
]


def _check_step(step) -> float:
    return positive("quantization step", step)


def _flatten(w) -> np.ndarray:
    """One float64 vector from an array, a tensor, a module (all parameters) or an iterable of them."""
    if hasattr(w, "named_parameters"):                       # torch.nn.Module
        w = [p for p in w.parameters()]
    if isinstance(w, dict):
        w = list(w.values())
    elif not isinstance(w, (list, tuple)) and not hasattr(w, "__array__") and hasattr(w, "__iter__"):
        w = list(w)                                          # e.g. model.parameters()
    if isinstance(w, (list, tuple)) and w and (hasattr(w[0], "detach") or isinstance(w[0], np.ndarray)):
        return np.concatenate([as_array(t, f"weights[{i}]") for i, t in enumerate(w)])
    return as_array(w, "weights")


def quantize(w, step) -> np.ndarray:
    """``rint(w / step)`` as int64 (ties to even), refusing levels of magnitude ``>= 2**52``.

    The limit keeps zig-zag codes below ``2**53``, where code lengths are computed exactly.
    """
    step = _check_step(step)
    x = _flatten(w) / step
    if x.size and np.max(np.abs(x)) >= 2.0 ** 52:
        raise ValueError(f"step {step!r} is too small for these weights: level {np.max(np.abs(x)):.3g} "
                         "is beyond the 2**52 levels the coder supports")
    return np.rint(x).astype(np.int64)


def exp_golomb_length(k) -> np.ndarray:
    """Order-0 Exp-Golomb code length ``2 * floor(log2(k + 1)) + 1`` for integers ``k >= 0``."""
    k = np.asarray(k, dtype=np.int64)
    if np.any(k < 0):
        raise ValueError(f"Exp-Golomb codes non-negative integers; got {k[k < 0].ravel()[0]} (zig-zag first)")
    if np.any(k >= 2 ** 53):
        raise ValueError(f"Exp-Golomb length supports k < 2**53, got {k[k >= 2 ** 53].ravel()[0]}")
    # k + 1 = f * 2**e with f in [0.5, 1): e is the bit length (exact: k + 1 <= 2**53 is a float64)
    _, e = np.frexp((k + 1).astype(np.float64))
    return 2 * e.astype(np.int64) - 1


def zigzag(q) -> np.ndarray:
    """Map signed to unsigned: ``n >= 0 -> 2n``, ``n < 0 -> -2n - 1``."""
    q = np.asarray(q, dtype=np.int64)
    return np.where(q >= 0, 2 * q, -2 * q - 1)


def unzigzag(z) -> np.ndarray:
    """Inverse of :func:`zigzag`."""
    z = np.asarray(z, dtype=np.int64)
    return np.where(z % 2 == 0, z // 2, -(z + 1) // 2)


def rank_by_frequency(q) -> tuple[np.ndarray, np.ndarray]:
    """Distinct values of integer array ``q`` and their counts, most frequent first.

    Equal counts are ordered by increasing value.  Returns ``(values, counts)``; the rank of
    ``values[k]`` is ``k``.
    """
    values, counts = np.unique(np.asarray(q, dtype=np.int64), return_counts=True)
    order = np.lexsort((values, -counts))
    return values[order], counts[order]


# Each rule once, on the (values, counts) of the ranked histogram; the public functions wrap them.
def _payload_bits(counts: np.ndarray) -> int:
    return int(np.sum(counts * exp_golomb_length(np.arange(counts.size))))


def _table_bits(values: np.ndarray) -> int:
    return int(exp_golomb_length(values.size) + np.sum(exp_golomb_length(zigzag(values))))


def _zigzag_bits(values: np.ndarray, counts: np.ndarray) -> int:
    return int(np.sum(counts * exp_golomb_length(zigzag(values))))


def _entropy_total(counts: np.ndarray) -> float:
    n = counts.sum()
    p = counts / n
    return float(-n * np.sum(p * np.log2(p)))


def exp_golomb_bits(w, step) -> int:
    """Total order-0 Exp-Golomb bits of the frequency ranks of ``round(w / step)`` (payload only)."""
    return _payload_bits(rank_by_frequency(quantize(w, step))[1])


def rank_table_bits(w, step) -> int:
    """Bits of the rank table the decoder needs: EG(count of values) + EG(zigzag(value)) per value."""
    return _table_bits(rank_by_frequency(quantize(w, step))[0])


def zigzag_exp_golomb_bits(w, step) -> int:
    """Total bits of the table-free code: each ``round(w/step)`` zig-zag mapped, then Exp-Golomb."""
    return _zigzag_bits(*rank_by_frequency(quantize(w, step)))


def entropy_bits(w, step) -> float:
    """Empirical entropy bound ``-sum_v c_v log2(c_v / n)`` in total bits."""
    return _entropy_total(rank_by_frequency(quantize(w, step))[1])


def report(w_or_params, step) -> dict:
    """Coded size of weights at quantization step ``step``, all schemes, per parameter.

    Parameters
    ----------
    w_or_params : array, tensor, torch.nn.Module, or list/dict of tensors
        A module contributes all its parameters; several tensors are pooled into one stream.
    step : float
        Uniform quantization step.

    Returns
    -------
    dict
        ``n_params``, ``step``, ``distinct_values``, ``zero_fraction`` (exact zeros after
        quantization), ``exp_golomb_bits``, ``rank_table_bits``, ``zigzag_bits``, ``entropy_bits``
        (totals) and ``*_bpp`` (bits per parameter: ``exp_golomb_bpp`` payload only,
        ``exp_golomb_with_table_bpp``, ``zigzag_bpp``, ``entropy_bpp``).
    """
    q = quantize(w_or_params, step)
    values, counts = rank_by_frequency(q)
    n = int(q.size)
    eg, table = _payload_bits(counts), _table_bits(values)
    zz, ent = _zigzag_bits(values, counts), _entropy_total(counts)
    return {
        "n_params": n, "step": _check_step(step), "distinct_values": int(values.size),
        "zero_fraction": float(np.count_nonzero(q == 0) / n),
        "exp_golomb_bits": eg, "rank_table_bits": table, "zigzag_bits": zz, "entropy_bits": ent,
        "exp_golomb_bpp": eg / n, "exp_golomb_with_table_bpp": (eg + table) / n,
        "zigzag_bpp": zz / n, "entropy_bpp": ent / n,
    }


def exp_golomb_encode(ints) -> str:
    """Order-0 Exp-Golomb bit string (``'0'``/``'1'``) of non-negative integers; plain Python.

    ``k`` is written as ``m`` zeros followed by the ``m + 1``-bit binary of ``k + 1``, where
    ``m = floor(log2(k + 1))``: 0 -> ``1``, 1 -> ``010``, 2 -> ``011``, 3 -> ``00100``.
    """
    out = []
    for k in ints:
        k = int(k)
        if k < 0:
            raise ValueError(f"Exp-Golomb codes non-negative integers; got {k} (zig-zag first)")
        b = bin(k + 1)[2:]
        out.append("0" * (len(b) - 1) + b)
    return "".join(out)


def exp_golomb_decode(bits: str) -> list[int]:
    """Inverse of :func:`exp_golomb_encode`; refuses characters other than 0/1 and truncated codes."""
    if set(bits) - {"0", "1"}:
        raise ValueError(f"bit string may only contain '0' and '1', got {sorted(set(bits) - {'0', '1'})!r}")
    out, i = [], 0
    while i < len(bits):
        m = 0
        while i + m < len(bits) and bits[i + m] == "0":
            m += 1
        end = i + 2 * m + 1
        if end > len(bits):
            raise ValueError(f"truncated Exp-Golomb code at bit {i}: need {2 * m + 1} bits, "
                             f"{len(bits) - i} left")
        out.append(int(bits[i + m:end], 2) - 1)
        i = end
    return out
