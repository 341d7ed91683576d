"""Tiles for the co-simulation: random, exhaustive and GEMM-tiled, plus bus packing.

A *tile* is ``(codes, a)``: ``codes`` uint8 ``[rows, cols]`` (the weight tile, row k = weight beat
k) and ``a`` int64 ``[M, rows]`` (M activation rows, any ``M >= 1``).  The array computes
``golden.matmul(a, codes)`` for it (``docs/architecture.md``, "Tile protocol").
"""

from __future__ import annotations

import math
import numbers

import numpy as np

from rf8hw import checks
from rf8hw.format import spec

__all__ = ["TILE_KINDS", "random_tiles", "exhaustive_tiles", "exhaustive_pairs", "gemm_tiles",
           "assemble_gemm", "pack_rows", "unpack_row"]

#: Kinds of random tile and the probability of each in :func:`random_tiles`.
#: ``uniform``: any code, any activation; ``overflow``: E = 15 codes and extreme activations (their
#: column sums leave a narrow accumulator's range, so ``wrap`` and ``saturate`` really act);
#: ``sparse``: about half the codes are zero codes (E = 0, any sign/residual bits).
TILE_KINDS = {"uniform": 0.5, "overflow": 0.3, "sparse": 0.2}

# Code-byte fields, from the format's constants (``s | E | R``, sign on top).
_EXP_FIELD = np.uint8(((1 << spec.EXP_BITS) - 1) << spec.RES_BITS)              # the E bits
_SIGN_RES_FIELDS = np.uint8((1 << spec.SIGN_BIT) | ((1 << spec.RES_BITS) - 1))  # s and R bits
_EXP_MAX_CODE = np.uint8(spec.EXP_MAX << spec.RES_BITS)                # E = EXP_MAX, s = R = 0


def _act_range(act_bits: int) -> tuple[int, int]:
    return -(1 << (act_bits - 1)), (1 << (act_bits - 1)) - 1


def _is_count(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def random_tiles(rng: np.random.Generator, rows: int, cols: int, n_tiles: int | None = None, *,
                 act_bits: int = 8, m_rows=None, ms=None,
                 kind: str | None = None) -> list[tuple[np.ndarray, np.ndarray]]:
    """Random tiles, each of a kind drawn from :data:`TILE_KINDS` (or all of one ``kind``).

    Parameters
    ----------
    rng : numpy.random.Generator
    rows, cols : int
        Array size: weight tiles are ``[rows, cols]``, activation rows have ``rows`` elements.
    n_tiles : int, optional
        Number of tiles; may be left out when ``ms`` is given (then it must equal ``len(ms)``).
    act_bits : int
        Signed activation width.
    m_rows : int or (int, int), optional
        Activation rows per tile: a fixed ``M``, or ``(lo, hi)`` for ``M`` uniform in ``lo..hi``.
        Default ``rows`` (square tiles).  Not together with ``ms``.
    ms : sequence of int, optional
        The ``M`` of each tile, in order (``len(ms)`` tiles; no ``M`` is drawn).
    kind : str, optional
        Make every tile of this kind of :data:`TILE_KINDS` (no kind is drawn); e.g.
        ``"overflow"`` for tiles whose sums leave a narrow accumulator's range.

    With ``ms`` and ``kind`` left out, the same ``rng`` state and arguments give the same tiles
    as ever (:func:`rf8hw.sim.run.run_cosim` relies on that for its ``seed``).

    Returns
    -------
    list of (uint8 [rows, cols], int64 [M, rows])
    """
    lo, hi = _act_range(act_bits)
    if ms is not None:
        if m_rows is not None:
            raise ValueError("give m_rows or ms, not both")
        ms = list(ms)
        if not ms or not all(_is_count(m) and m >= 1 for m in ms):
            raise ValueError(f"ms must be a non-empty sequence of integers >= 1, not {ms!r}")
        if n_tiles is not None and n_tiles != len(ms):
            raise ValueError(f"n_tiles={n_tiles!r} disagrees with len(ms)={len(ms)}")
        n_tiles = len(ms)
    elif n_tiles is None:
        raise ValueError("random_tiles needs n_tiles or ms")
    m_lo, m_hi = (rows, rows) if m_rows is None else (
        (m_rows, m_rows) if isinstance(m_rows, int) else m_rows)
    if not 1 <= m_lo <= m_hi:
        raise ValueError(f"m_rows must be an integer >= 1 or a pair 1 <= lo <= hi, not {m_rows!r}")
    if kind is None:
        kinds = rng.choice(list(TILE_KINDS), size=n_tiles, p=list(TILE_KINDS.values()))
    else:
        kinds = [checks.choice("kind", kind, tuple(TILE_KINDS))] * n_tiles
    tiles = []
    for t, tile_kind in enumerate(kinds):
        m = int(ms[t]) if ms is not None else int(rng.integers(m_lo, m_hi + 1))
        codes = rng.integers(0, 256, size=(rows, cols), dtype=np.uint8)
        a = rng.integers(lo, hi + 1, size=(m, rows), dtype=np.int64)
        if tile_kind == "overflow":
            codes = (codes & _SIGN_RES_FIELDS) | _EXP_MAX_CODE      # keep s, R; E = EXP_MAX
            a = rng.choice(np.array([lo, hi], dtype=np.int64), size=(m, rows))
        elif tile_kind == "sparse":
            zero = rng.random((rows, cols)) < 0.5
            codes = np.where(zero, codes & ~_EXP_FIELD, codes).astype(np.uint8)   # E := 0
        tiles.append((codes.astype(np.uint8), a))
    return tiles


def exhaustive_tiles(rows: int, cols: int, act_bits: int = 8) -> list[tuple[np.ndarray, np.ndarray]]:
    """Tiles that put every (activation, code) product through the array exactly once, alone.

    The 256 codes fill ``ceil(256 / (rows*cols))`` weight tiles in order (the last one padded with
    code 0, the zero).  Each tile gets ``2**act_bits * rows`` activation rows: row ``(x, k)`` holds
    ``x`` at position ``k`` and zeros elsewhere, so result ``acc[(x, k), n]`` is the single product
    ``P(x, codes[k, n])``.  For 8-bit activations that is all 65,536 pairs (see
    :func:`exhaustive_pairs`).
    """
    per_tile = rows * cols
    lo, hi = _act_range(act_bits)
    xs = np.arange(lo, hi + 1, dtype=np.int64)
    a = np.zeros((len(xs) * rows, rows), dtype=np.int64)
    for k in range(rows):
        a[k::rows, k] = xs                      # row x_index*rows + k holds x at position k
    tiles = []
    for start in range(0, 256, per_tile):
        flat = np.zeros(per_tile, dtype=np.uint8)
        chunk = np.arange(start, min(start + per_tile, 256), dtype=np.uint8)
        flat[:len(chunk)] = chunk
        tiles.append((flat.reshape(rows, cols), a))
    return tiles


def exhaustive_pairs(tiles) -> set[tuple[int, int]]:
    """The (activation, code) pairs that :func:`exhaustive_tiles` isolates, one result each.

    Reads the stimulus back: activation row ``i`` of a tile must be zero except at position
    ``k = i % rows``, and then result ``acc[i, n]`` is the single product ``P(a[i, k], codes[k, n])``.
    A row breaking that layout raises ``ValueError``.
    """
    pairs = set()
    for codes, a in tiles:
        rows = codes.shape[0]
        for i, row in enumerate(a):
            k = i % rows
            if np.count_nonzero(np.delete(row, k)):
                raise ValueError(f"activation row {i} has nonzeros outside position {k}: {row}")
            pairs.update((int(row[k]), int(c)) for c in codes[k])
    return pairs


def gemm_tiles(a: np.ndarray, codes: np.ndarray, rows: int, cols: int):
    """Split ``a[M, K] @ W(codes[K, N])`` into array tiles, zero-padding the ragged edges.

    Tiles go N-block by N-block and, inside one, K-block by K-block (``kb`` fastest).  A ragged
    K block pads its weight rows with code 0 and its activation columns with 0; a ragged N block
    pads its weight columns with code 0 (the extra result columns are then 0 and dropped by
    :func:`assemble_gemm`).  Every tile carries all ``M`` activation rows.

    Returns
    -------
    tiles : list of (uint8 [rows, cols], int64 [M, rows])
    blocks : list of (kb, nb)
        K-block and N-block index of each tile.
    """
    a = np.asarray(a, dtype=np.int64)
    codes = np.asarray(codes)
    if codes.dtype != np.uint8:
        raise TypeError(f"codes must be a uint8 array of RF8 codes, not {codes.dtype}")
    if a.ndim != 2 or codes.ndim != 2 or a.shape[1] != codes.shape[0] or 0 in a.shape + codes.shape:
        raise ValueError(f"need a[M, K] and codes[K, N] with M, K, N >= 1; got shapes {a.shape} "
                         f"and {codes.shape}")
    m, k_dim = a.shape
    n_dim = codes.shape[1]
    tiles, blocks = [], []
    for nb in range(math.ceil(n_dim / cols)):
        n0, n1 = nb * cols, min((nb + 1) * cols, n_dim)
        for kb in range(math.ceil(k_dim / rows)):
            k0, k1 = kb * rows, min((kb + 1) * rows, k_dim)
            w = np.zeros((rows, cols), dtype=np.uint8)
            w[:k1 - k0, :n1 - n0] = codes[k0:k1, n0:n1]
            x = np.zeros((m, rows), dtype=np.int64)
            x[:, :k1 - k0] = a[:, k0:k1]
            tiles.append((w, x))
            blocks.append((kb, nb))
    return tiles, blocks


def assemble_gemm(tile_results, blocks, n_dim: int, cols: int, acc_bits: int) -> np.ndarray:
    """Sum the per-tile results of :func:`gemm_tiles` over K blocks into ``[M, N]``, modulo
    ``2**acc_bits`` (two's complement): what an accelerator accumulating tile outputs in
    ``acc_bits``-bit ``wrap`` registers returns.  Equal to ``golden.matmul(..., overflow="wrap")``.
    """
    m = tile_results[0].shape[0]
    out = np.zeros((m, math.ceil(n_dim / cols) * cols), dtype=object)
    for res, (_, nb) in zip(tile_results, blocks):
        out[:, nb * cols:(nb + 1) * cols] += res.astype(object)
    half = 1 << (acc_bits - 1)
    wrapped = (out + half) % (1 << acc_bits) - half
    return wrapped[:, :n_dim].astype(np.int64)


def pack_rows(values, width: int) -> list[int]:
    """Pack each row of ``values[M, n]`` into one bus word: element i in bits ``[width*i +: width]``
    (two's complement), as the AXI4-Stream ``tdata`` ports carry them.  Returns M Python ints."""
    values = np.asarray(values, dtype=np.int64)
    mask = (1 << width) - 1
    words = np.zeros(values.shape[0], dtype=object)
    for i in range(values.shape[1]):
        words += (values[:, i] & mask).astype(object) << (width * i)
    return words.tolist()


def unpack_row(word: int, width: int, count: int) -> np.ndarray:
    """Inverse of :func:`pack_rows` for one word: ``count`` signed ``width``-bit fields (int64)."""
    mask = (1 << width) - 1
    fields = np.array([(word >> (width * i)) & mask for i in range(count)], dtype=object)
    return np.where(fields >> (width - 1) != 0, fields - (1 << width), fields).astype(np.int64)
