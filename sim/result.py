"""What the entry points of :mod:`rf8hw.sim.run` return: :class:`CosimResult` (one simulator run),
with a :class:`GemmResult` per GEMM for the GEMM entry points.  Typed objects; JSON only where
files are written (``cycles.json``, :func:`rf8hw.sim.run.run_tiles`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .build import Build
from .options import CosimOptions
from .records import Mismatch, TileCycles

__all__ = ["CosimResult", "GemmResult"]


@dataclass(frozen=True)
class GemmResult:
    """One GEMM of a run (:func:`rf8hw.sim.run.run_gemm`, :func:`rf8hw.sim.run.run_gemms`).

    Attributes
    ----------
    gemm_shape : (M, K, N)
    blocks : tuple of (kb, nb)
        K-block and N-block of each of its tiles (:func:`rf8hw.sim.stimulus.gemm_tiles`).
    tile_cycles : tuple of TileCycles
        Its tiles' records (cycle numbers count from reset release, as in the run).
    gemm : numpy.ndarray or None
        The int64 ``[M, N]`` result assembled from the observed tile results
        (:func:`rf8hw.sim.stimulus.assemble_gemm`) for ``overflow="wrap"`` when every tile was
        seen; else None.
    """

    gemm_shape: tuple[int, int, int]
    blocks: tuple[tuple[int, int], ...]
    tile_cycles: tuple[TileCycles, ...]
    gemm: np.ndarray | None


@dataclass(frozen=True)
class CosimResult:
    """One co-simulation run.

    Attributes
    ----------
    tiles : int
        Tiles checked (completed; a reset drops the ones in flight).
    macs : int
        ``M * rows * cols`` summed over the checked tiles.
    mismatches : int
        Wrong values, wrong ``tlast`` flags and unexpected rows.
    first_mismatch : Mismatch or None
    cycles : int
        Rising edges from reset release to the last result handshake (plus those before a
        mid-run reset).
    wall_s, cycles_per_s : float
        Wall time of the simulator's loop and the cycles it simulated per second.
    rows_checked, values_checked, err_w_tlast : int
    dropped_tiles : tuple of int
        Tiles a mid-run reset interrupted.
    tile_cycles : tuple of TileCycles
        Per-tile records (``docs/cosim.md``, "Cycle accounting").
    python_s : float or None
        The HDL bench's wall time in Python (None for the Python bench).
    build : Build
        The design (its file and manifest) and the simulator build that ran.
    options : CosimOptions
    out_dir, cycles_json, log : Path
        The run directory, its ``cycles.json`` and the simulator log.
    waves : Path or None
        The waveform, when recorded.
    results : dict of int -> numpy.ndarray, or None
        Observed result rows (int64 ``[M, cols]``) per tile, when kept.
    gemms : tuple of GemmResult
        Per GEMM (the GEMM entry points; empty otherwise).
    """

    tiles: int
    macs: int
    mismatches: int
    first_mismatch: Mismatch | None
    cycles: int
    wall_s: float
    cycles_per_s: float
    rows_checked: int
    values_checked: int
    err_w_tlast: int
    dropped_tiles: tuple[int, ...]
    tile_cycles: tuple[TileCycles, ...]
    python_s: float | None
    build: Build
    options: CosimOptions
    out_dir: Path
    cycles_json: Path
    log: Path
    waves: Path | None
    results: dict[int, np.ndarray] | None = None
    gemms: tuple[GemmResult, ...] = ()

    @property
    def ok(self) -> bool:
        """Every result row matched the golden model."""
        return self.mismatches == 0

    def summary_line(self) -> str:
        """``tiles=T macs=N mismatches=E cycles=C cycles/s=R``: the last line ``rf8hw cosim``
        prints."""
        return (f"tiles={self.tiles} macs={self.macs} mismatches={self.mismatches} "
                f"cycles={self.cycles} cycles/s={self.cycles_per_s:.0f}")
