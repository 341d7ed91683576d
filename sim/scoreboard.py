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

from rf8hw.format import golden

__all__ = ["GoldenModel", "expected_rows", "watchdog_cycles", "wall_clock"]


class GoldenModel:
    """Expected result of a tile: :func:`rf8hw.format.golden.matmul` with the DUT's parameters."""

    def __init__(self, act_bits: int, acc_bits: int, overflow: str):
        self.act_bits, self.acc_bits, self.overflow = act_bits, acc_bits, overflow
        # One Numba thread in the simulator process: a tile is tiny, and waking the parallel
        # loop's thread pool per call cost ~12 ms a tile on the loaded 2-core machine (1 thread:
        # ~0.1 ms).  Only this process (the simulator's embedded Python) is affected.
        import numba

        numba.set_num_threads(1)

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
    ``sum M * g * rows <= budget`` entries.
    """
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
