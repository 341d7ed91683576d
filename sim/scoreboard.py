"""The golden model's side of both testbenches: expected rows of tiles
(:func:`rf8hw.format.golden.matmul`), the watchdog budget, the wall clock.

Imported by the cocotb test modules of both benches (:mod:`rf8hw.sim.hdl_bench.cocotb_test`,
:mod:`rf8hw.sim.python_bench.cocotb_test`), which check result rows against these expectations in
their own ways (a chunk of rows at a time, or one row per cycle).
"""

from __future__ import annotations

import math
import time

import numpy as np

from rf8hw.format import golden, spec

from .records import Mismatch

__all__ = ["GoldenModel", "BatchScoreboard", "expected_rows", "watchdog_cycles", "wall_clock"]


class GoldenModel:
    """Expected result of a tile: :func:`rf8hw.format.golden.matmul` with the DUT's parameters."""

    def __init__(self, act_bits: int, acc_bits: int, overflow: str):
        self.act_bits, self.acc_bits, self.overflow = act_bits, acc_bits, overflow
        # One Numba thread in the simulator process: a tile is tiny, and waking the parallel
        # loop's thread pool per call cost ~12 ms a tile on the loaded 2-core machine (1 thread:
        # ~0.1 ms).  Only this process (the simulator's embedded Python) is affected.
        import numba

        numba.set_num_threads(1)

    def wrap_rows(self, tiles) -> np.ndarray | None:
        """The rows of ``tiles`` (all of ``rows`` weight rows) in wrap mode, every tile at once,
        or None where this path is not exact (saturating sums, or sums beyond 2**53).

        Each tile's sums are exact float64 products of the activations and the integer weights
        of its codes (:func:`rf8hw.format.golden.weight_int`; exact while ``rows * max|a| *
        max|W| < 2**53``, the condition of :func:`golden.matmul`'s ``f64`` path), reduced modulo
        ``2**acc_bits`` to two's complement: the wrapping accumulator's rule
        (``docs/rf8-format.md``), whose order of additions does not matter.  Tiles of equal ``M``
        go through one batched ``numpy.matmul``.  Tested against ``golden.matmul`` tile by
        tile (``tests/sim/test_hdlbench.py``)."""
        if self.overflow != "wrap" or not tiles:
            return None
        ms = np.fromiter((len(a) for _, a in tiles), dtype=np.int64, count=len(tiles))
        return self.wrap_rows_of(np.concatenate([c for c, _ in tiles]),
                                 np.concatenate([a for _, a in tiles]), ms)

    def wrap_rows_of(self, codes: np.ndarray, acts: np.ndarray, ms: np.ndarray) -> np.ndarray | None:
        """:meth:`wrap_rows` of tiles given as arrays: the weight tiles stacked (uint8 ``[T *
        rows, cols]``), their activation rows stacked (``[sum ms, rows]``) and each tile's row
        count ``ms``."""
        rows, cols = acts.shape[1], codes.shape[1]
        if self.overflow != "wrap" or not len(ms) or \
                rows * (1 << (self.act_bits - 1)) * spec.max_abs_weight_int() >= 2**53:
            return None
        weights = golden.weight_int(codes).astype(np.float64).reshape(len(ms), rows, cols)
        if (ms == ms[0]).all():                     # one size: no gathering
            out = np.matmul(acts.astype(np.float64).reshape(len(ms), int(ms[0]), rows), weights)
            out = out.astype(np.int64).reshape(-1, cols)
        else:
            bounds = np.concatenate([[0], np.cumsum(ms)])
            out = np.empty((int(bounds[-1]), cols), dtype=np.int64)
            for m in np.unique(ms):
                picked = np.flatnonzero(ms == m)
                idx = (bounds[picked][:, None] + np.arange(m)).ravel()
                sums = np.matmul(acts[idx].astype(np.float64).reshape(len(picked), m, rows),
                                 weights[picked])
                out[idx] = sums.astype(np.int64).reshape(-1, cols)
        if self.acc_bits < 64:
            shift = np.uint64(64 - self.acc_bits)
            out = (out.view(np.uint64) << shift).view(np.int64) >> np.int64(64 - self.acc_bits)
        return out

    def tile(self, codes: np.ndarray, a: np.ndarray) -> np.ndarray:
        """int64 ``[M, cols]``: ``golden.matmul(a, codes)`` in this accumulator."""
        # impl="loop": the Numba path (equal to the others, tests/format/test_golden.py); the default
        # int8 path would import torch into the simulator process (~3 s per start).
        return golden.matmul(a, codes, acc_bits=self.acc_bits, overflow=self.overflow,
                             act_bits=self.act_bits, impl="loop")


def expected_rows(model: GoldenModel, tiles, budget: int = 32_768) -> np.ndarray:
    """The golden model's result rows of ``tiles`` (in order), int64 ``[sum M, cols]``.

    Consecutive small tiles go through ``model.tile`` together as one block-diagonal product:
    activations ``[sum M, g*rows]`` with tile ``j``'s rows in columns ``j*rows ..`` (zeros
    elsewhere) against the stacked weight tiles ``[g*rows, cols]``.  A zero activation adds a zero
    product, which leaves every wrapping or saturating sum unchanged, so each row equals its
    tile's own product (``tests/sim/test_hdlbench.py`` checks it).  A group grows while
    ``sum M * g * rows <= budget`` entries.  In wrap mode every tile goes through one batched,
    exact product instead (:meth:`GoldenModel.wrap_rows`), where that is exact.
    """
    fast = model.wrap_rows(tiles)
    if fast is not None:
        return fast
    out = []
    i = 0
    while i < len(tiles):
        rows = tiles[i][0].shape[0]
        j, m_sum = i, 0
        while j < len(tiles) and (j == i or (m_sum + len(tiles[j][1])) * (j - i + 1) * rows
                                  <= budget):
            m_sum += len(tiles[j][1])
            j += 1
        if j == i + 1:
            out.append(model.tile(tiles[i][0], np.asarray(tiles[i][1])))
        else:
            a = np.zeros((m_sum, (j - i) * rows), dtype=np.int64)
            r = 0
            for g, (_, act) in enumerate(tiles[i:j]):
                a[r:r + len(act), g * rows:(g + 1) * rows] = act
                r += len(act)
            out.append(model.tile(np.concatenate([c for c, _ in tiles[i:j]]), a))
        i = j
    return np.concatenate(out) if out else np.zeros((0, 0), dtype=np.int64)


def watchdog_cycles(rows: int, cols: int, probs) -> int:
    """Cycles without a result row (while rows are outstanding) after which a run is a hang.

    ``ceil((200 * (rows + cols) + 10_000) / (1 - max(probs)))``: the fixed budget of the full-rate
    bench, stretched by the mean wait ``1 / (1 - p)`` of a beat on the slowest stream.
    """
    worst = max(probs, default=0.0)
    return math.ceil((200 * (rows + cols) + 10_000) / (1.0 - worst))


def wall_clock() -> float:
    """Seconds of a monotonic clock (:func:`time.perf_counter`)."""
    return time.perf_counter()


class BatchScoreboard:
    """In-order checker of result rows, a chunk at a time, against the golden model (the HDL
    bench's and the library bench's).

    ``mismatches`` counts wrong values, wrong ``tlast`` flags and rows beyond the expected ones
    (as :class:`rf8hw.sim.python_bench.testbench.Scoreboard`); :attr:`first` is the earliest.
    """

    def __init__(self, model: GoldenModel, tiles, first_tile: int, cols: int, corrupt=None,
                 ahead: int = 4096, rows_of=None):
        self.model, self.tiles, self.first_tile, self.cols = model, tiles, first_tile, cols
        self.bounds = np.concatenate([[0], np.cumsum([len(a) for _, a in tiles])]).astype(np.int64)
        self.total = int(self.bounds[-1])
        self.last = np.zeros(self.total, dtype=np.int64)
        self.last[self.bounds[1:] - 1] = 1
        self.corrupt = corrupt
        self.ahead = ahead                  # golden rows computed ahead of the received ones
        # expected rows of tiles [i, j) (default: expected_rows of those tiles)
        self.rows_of = rows_of or (lambda i, j: expected_rows(self.model, self.tiles[i:j]))
        self.seen = 0                       # rows received
        self.mismatches = 0
        self.first: Mismatch | None = None
        self._exp = np.zeros((0, cols), dtype=np.int64)   # expected rows [_exp_lo, ...)
        self._exp_lo = 0
        self._next_tile = 0                 # tiles whose expected rows are in _exp (or before)

    def _expected(self, lo: int, hi: int) -> np.ndarray:
        """Expected rows ``[lo, hi)`` (``lo`` never decreases between calls)."""
        if self._next_tile < len(self.tiles) and self.bounds[self._next_tile] < hi:
            stop = int(np.searchsorted(self.bounds, max(hi, lo + self.ahead), side="left"))
            stop = min(max(stop, self._next_tile + 1), len(self.tiles))
            new = self.rows_of(self._next_tile, stop)
            if self.corrupt is not None:
                t = self.corrupt[0] - self.first_tile
                if self._next_tile <= t < stop:
                    new[self.bounds[t] - self.bounds[self._next_tile] + self.corrupt[1],
                        self.corrupt[2]] += 1
            keep = self._exp[lo - self._exp_lo:]
            self._exp_lo = lo
            self._exp = np.concatenate([keep, new]) if len(keep) else new
            self._next_tile = stop
        return self._exp[lo - self._exp_lo:hi - self._exp_lo]

    def _where(self, row: int) -> tuple[int, int]:
        t = int(np.searchsorted(self.bounds, row, side="right")) - 1
        return self.first_tile + t, row - int(self.bounds[t])

    def check(self, data: np.ndarray, last: np.ndarray, cycle: np.ndarray, words) -> None:
        """Check the next ``len(data)`` rows: values int64 ``[n, cols]``, ``tlast`` and cycles."""
        lo = self.seen
        n_ok = max(0, min(len(data), self.total - lo))
        exp = self._expected(lo, lo + n_ok)
        bad_val = data[:n_ok] != exp
        bad_last = last[:n_ok] != self.last[lo:lo + n_ok]
        self.mismatches += int(bad_val.sum()) + int(bad_last.sum()) + (len(data) - n_ok)
        if self.first is None and self.mismatches:
            rows_bad = bad_val.any(axis=1) | bad_last
            i = int(np.flatnonzero(rows_bad)[0]) if rows_bad.any() else n_ok
            if i < n_ok:
                tile, m = self._where(lo + i)
                if bad_val[i].any():
                    n = int(np.flatnonzero(bad_val[i])[0])
                    self.first = Mismatch(tile, m, n, int(exp[i, n]), int(data[i, n]),
                                          int(cycle[i]))
                else:
                    self.first = Mismatch(tile, m, -1, int(self.last[lo + i]), int(last[i]),
                                          int(cycle[i]))
            else:
                self.first = Mismatch(-1, -1, -1, None, words(i), int(cycle[i]))
        self.seen += len(data)

    @property
    def rows_checked(self) -> int:
        return min(self.seen, self.total)
