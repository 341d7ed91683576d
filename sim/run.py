"""Host side of the co-simulation: write a job, run the simulator through cocotb's runner, read
the result.  The library functions behind ``rf8hw cosim``.

Every entry point takes the array as one :class:`~rf8hw.hdl.config.ArrayConfig` (validated when it
was built; RF8 PE kinds only).  Flow of :func:`run_tiles`: :func:`sim.build.prepare` (generate or
reuse the Verilog, or take a given file, and build or reuse the simulator build) ->
``<out_dir>/job.json`` + ``tiles.npz`` -> ``Runner.test`` with the cocotb test module
:mod:`sim.cosim_test` -> ``<out_dir>/result.json`` -> ``<out_dir>/cycles.json`` (the per-tile cycle
accounting of ``docs/cosim.md``) and the returned dict.
"""

from __future__ import annotations

import json
import math
import os
import re
import threading
import time
from pathlib import Path

import numpy as np

from rf8hw import checks
from rf8hw.hdl.config import ArrayConfig

from .build import check_cosim_config, check_simulator, default_cache_root, prepare
from .stimulus import assemble_gemm, gemm_tiles, random_tiles

__all__ = ["check_stall_prob", "run_tiles", "run_cosim", "run_gemm", "run_gemms", "summary_line",
           "CYCLES_FORMAT", "MAX_TILES", "MAX_STIMULUS_ROWS"]

#: Most random tiles one :func:`run_cosim` generates (their stimulus is held in memory at once).
MAX_TILES = 1_000_000

#: Most activation rows (tiles x m_rows) one :func:`run_cosim` generates.
MAX_STIMULUS_ROWS = 2**24

#: Version tag of the ``cycles.json`` layout (``docs/cosim.md``).
CYCLES_FORMAT = "rf8hw-cosim-cycles/1"


def check_stall_prob(stall_prob, name: str = "stall_prob") -> float:
    """Return ``stall_prob`` as a float if it is in ``[0, 1)``, else raise ``ValueError``."""
    return checks.number(name, stall_prob, 0, 1, hi_open=True,
                         what=" (the probability of an idle or stalled cycle on each stream)")


def _check_tiles(tiles, cfg: ArrayConfig) -> None:
    rows, cols, act_bits = cfg.rows, cfg.cols, cfg.act_bits
    if not tiles:
        raise ValueError("tiles is empty: give at least one (codes[rows, cols], a[M, rows]) tile")
    lo, hi = -(1 << (act_bits - 1)), (1 << (act_bits - 1)) - 1
    for t, (codes, a) in enumerate(tiles):
        codes, a = np.asarray(codes), np.asarray(a)
        if codes.dtype != np.uint8 or codes.shape != (rows, cols):
            raise ValueError(f"tile {t}: codes must be uint8 [{rows}, {cols}], not "
                             f"{codes.dtype} {codes.shape}")
        if a.ndim != 2 or a.shape[1] != rows or a.shape[0] < 1:
            raise ValueError(f"tile {t}: a must be [M >= 1, {rows}], not {a.shape}")
        if a.size and (a.min() < lo or a.max() > hi):
            raise ValueError(f"tile {t}: activations must lie in {lo}..{hi} for act_bits="
                             f"{act_bits}; found {a.min()}..{a.max()}")


def _run_simulator(build, out_dir: Path, waves: bool, progress) -> None:
    """``Runner.test`` in a thread while this thread relays the progress lines of its log."""
    from cocotb_tools.runner import get_runner

    from .cosim_test import PROGRESS_PREFIX

    log = out_dir / "sim.log"
    plusargs = [f"+rf8hw_job={out_dir}"]
    if waves and build.simulator == "icarus":
        plusargs.append(f"+rf8hw_dumpfile={out_dir / (build.module + '.fst')}")
    runner = get_runner(build.simulator)
    failure: list[BaseException] = []

    def target():
        try:
            runner.test(test_module="sim.cosim_test", hdl_toplevel=build.module,
                        build_dir=build.build_dir, test_dir=out_dir, plusargs=plusargs,
                        hdl_toplevel_lang="verilog", waves=waves, log_file=log,
                        results_xml=str(out_dir / "results.xml"))
        except BaseException as exc:      # the runner calls sys.exit() when the test fails
            failure.append(exc)

    worker = threading.Thread(target=target, name="rf8hw-cosim")
    worker.start()
    seen = 0
    pattern = re.compile(re.escape(PROGRESS_PREFIX) + r"\s*(.*)")
    while worker.is_alive() or seen == 0:
        worker.join(0.5)
        if progress is not None and log.is_file():
            lines = log.read_text(errors="replace").splitlines()
            for line in lines[seen:]:
                match = pattern.search(line)
                if match:
                    progress(f"[{build.simulator}] {match.group(1)}")
            seen = max(seen, len(lines))
        if not worker.is_alive():
            break
    if failure and not isinstance(failure[0], SystemExit):
        raise failure[0]


def run_tiles(tiles, cfg: ArrayConfig, *, simulator: str = "verilator", rtl=None,
              stall_prob: float = 0.0, seed: int = 0, waves: bool = False, out_dir=None,
              cache_root=None, reset_at_cycle: int | None = None, tiles_after_reset: int = 0,
              corrupt=None, keep_results: bool = False, backpressure_prob: float | None = None,
              progress=None, groups=None) -> dict:
    """Co-simulate the array ``cfg`` on ``tiles`` and check every result row.

    Parameters
    ----------
    tiles : list of (uint8 [rows, cols], int [M, rows])
        Weight tile and activation rows of each tile, streamed back to back in this order.
    cfg : ArrayConfig
        The array; an RF8 PE kind (:func:`sim.build.check_cosim_config`).
    simulator : {"verilator", "icarus"}
    rtl : str or Path, optional
        Co-simulate this generated ``.v`` file (its manifest's parameters must equal ``cfg``)
        instead of generating the Verilog of ``cfg`` (:func:`sim.build.prepare`).
    stall_prob : float in [0, 1)
        Each input producer idles before a beat with this probability (per cycle) and the result
        consumer drops ``tready`` with it.  0: full rate, no backpressure.
    seed : int
        Seed of the stall/idle choices.
    waves : bool
        Record a waveform (Verilator: ``dump.vcd``, Icarus: ``<module>.fst`` in ``out_dir``).
    out_dir : str or Path, optional
        Directory for the job, logs, ``result.json`` and ``cycles.json``; default a fresh
        directory under ``<cache_root>/runs``.
    cache_root : str or Path, optional
        RTL and build cache (:func:`sim.build.default_cache_root`).
    reset_at_cycle : int, optional
        Assert the reset (``aresetn`` low, or ``rst`` high) after this cycle; tiles then in
        flight are dropped (listed in ``dropped_tiles``) and the last ``tiles_after_reset`` tiles
        are sent after the reset.
    tiles_after_reset : int
    corrupt : (tile, row, column), optional
        Add 1 to that expected value: a wrong model, to show the scoreboard failing.
    keep_results : bool
        Return the observed result rows (``results``: int64 [M, cols] per tile).
    backpressure_prob : float in [0, 1), optional
        Backpressure probability of the result consumer when it should differ from
        ``stall_prob`` (a high value makes the full output FIFO stall the whole array).
    progress : callable(str), optional
        Receives a line about every tenth of the tiles.
    groups : sequence of int, optional
        Split ``tiles`` into consecutive groups of these sizes (summing to ``len(tiles)``): the
        beats of group ``g`` are offered only after every result of group ``g - 1`` was taken,
        so each group starts on an idle, empty array, as after reset (one simulator run for
        several independent GEMMs, :func:`run_gemms`).  Not with ``reset_at_cycle``.

    Returns
    -------
    dict
        ``tiles``, ``macs`` (``M * rows * cols`` summed over checked tiles), ``mismatches``,
        ``first_mismatch`` (dict with tile, row, column, expected, got, cycle; or None),
        ``cycles`` (rising edges from reset release to the last result handshake),
        ``wall_s`` and ``cycles_per_s`` (inside the simulator), ``tile_cycles`` (per-tile
        records of ``docs/cosim.md``), ``cycles_json``, ``log``, ``waves`` (path or None),
        ``err_w_tlast``, ``dropped_tiles``, ``config`` (with ``verilog``, ``verilog_sha256`` and
        ``verilog_matches_manifest``), and ``results`` if asked.

    Raises
    ------
    ValueError
        On bad parameters or tiles (before anything is built).
    RuntimeError
        If the simulation crashed or hung without writing a result (names the log).
    """
    check_cosim_config(cfg)
    stall_prob = check_stall_prob(stall_prob)
    if backpressure_prob is not None:
        backpressure_prob = check_stall_prob(backpressure_prob, "backpressure_prob")
    _check_tiles(tiles, cfg)
    if not 0 <= tiles_after_reset <= len(tiles):
        raise ValueError(f"tiles_after_reset must be in 0..{len(tiles)}, not {tiles_after_reset!r}")
    if groups is not None:
        groups = [checks.integer(f"groups[{i}]", g, 1) for i, g in enumerate(groups)]
        if sum(groups) != len(tiles) or reset_at_cycle is not None:
            raise ValueError(f"groups must be tile counts summing to the {len(tiles)} tiles, "
                             f"without reset_at_cycle; got {groups} (sum {sum(groups)})"
                             + (" and a reset" if reset_at_cycle is not None else ""))
    build = prepare(cfg, simulator, rtl=rtl, waves=waves, cache_root=cache_root)
    root = Path(cache_root) if cache_root is not None else default_cache_root()
    if out_dir is None:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        out_dir = root / "runs" / f"{build.module}-{simulator}-{stamp}-{os.getpid()}"
    out_dir = Path(out_dir).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    for stale in ("result.json", "results.npz", "cycles.json"):
        (out_dir / stale).unlink(missing_ok=True)
    config = {"simulator": simulator, "module": build.module, "stall_prob": stall_prob,
              "backpressure_prob": stall_prob if backpressure_prob is None else backpressure_prob,
              "seed": seed, "verilog": str(build.verilog), "manifest": str(build.manifest),
              "verilog_sha256": build.verilog_sha256,
              "verilog_matches_manifest": build.matches_manifest,
              "build_dir": str(build.build_dir), **build.parameters}
    job = {"parameters": build.parameters, "ports": build.clock_reset, "stall_prob": stall_prob,
           "backpressure_prob": backpressure_prob, "seed": seed,
           "reset_at_cycle": reset_at_cycle, "tiles_after_reset": tiles_after_reset,
           "corrupt": list(corrupt) if corrupt is not None else None,
           "keep_results": keep_results, "groups": groups}
    (out_dir / "job.json").write_text(json.dumps(job, indent=1) + "\n")
    np.savez(out_dir / "tiles.npz",
             codes=np.stack([np.asarray(c, dtype=np.uint8) for c, _ in tiles]),
             a=np.concatenate([np.asarray(a, dtype=np.int64) for _, a in tiles]),
             m_rows=np.array([len(a) for _, a in tiles]))

    _run_simulator(build, out_dir, waves, progress)
    result_path = out_dir / "result.json"
    if not result_path.is_file():
        raise RuntimeError(f"the {simulator} simulation ended without a result; see "
                           f"{out_dir / 'sim.log'}")
    report = json.loads(result_path.read_text())
    records = report["tiles"]
    checked = [r["tile"] for r in records]
    macs = sum(r["m_rows"] for r in records) * cfg.rows * cfg.cols
    cycles, wall = report["cycles"], report["wall_s"]
    cycles_json = out_dir / "cycles.json"
    cycles_json.write_text(json.dumps({
        "format": CYCLES_FORMAT, "definitions": "docs/cosim.md", "config": config,
        "cycles": cycles, "dropped_tiles": report["dropped_tiles"], "tiles": records,
    }, indent=1) + "\n")
    waves_path = None
    if waves:
        waves_path = out_dir / ("dump.vcd" if simulator == "verilator" else f"{build.module}.fst")
    result = {
        "tiles": len(checked), "macs": macs, "mismatches": report["mismatches"],
        "first_mismatch": report["first_mismatch"], "cycles": cycles, "wall_s": wall,
        "cycles_per_s": report["loop_cycles"] / wall if wall > 0 else math.inf,
        "rows_checked": report["rows_checked"], "values_checked": report["values_checked"],
        "err_w_tlast": report["err_w_tlast"], "dropped_tiles": report["dropped_tiles"],
        "tile_cycles": records, "cycles_json": str(cycles_json), "log": str(out_dir / "sim.log"),
        "waves": str(waves_path) if waves_path else None, "out_dir": str(out_dir),
        "config": config,
    }
    if keep_results:
        with np.load(out_dir / "results.npz") as z:
            result["results"] = {int(k.split("_")[1]): z[k] for k in z.files}
    return result


def run_cosim(cfg: ArrayConfig, tiles: int, seed: int, *, m_rows=None,
              simulator: str = "verilator", stall_prob: float = 0.1, **kwargs) -> dict:
    """Co-simulate ``tiles`` random tiles (:func:`sim.stimulus.random_tiles`, seeded by ``seed``)
    on the array ``cfg``.

    ``m_rows`` (activation rows per tile) defaults to ``cfg.rows``.  Other keyword arguments
    (``rtl``, ``out_dir``, ``cache_root``, ...) go to :func:`run_tiles`; the return value is its
    dict.
    """
    check_cosim_config(cfg)
    tiles = checks.integer("tiles", tiles, 1, MAX_TILES,
                           " (one run's stimulus is held in memory; split larger runs)")
    seed = checks.integer("seed", seed, 0, 2**63 - 1)
    if m_rows is not None:
        checks.integer("m_rows", m_rows, 1, MAX_STIMULUS_ROWS // tiles,
                       f" (tiles x m_rows, the activation rows held in memory, is at most "
                       f"{MAX_STIMULUS_ROWS:,})")
    check_simulator(simulator)
    check_stall_prob(stall_prob)
    rng = np.random.default_rng(seed)
    stimulus = random_tiles(rng, cfg.rows, cfg.cols, tiles, act_bits=cfg.act_bits, m_rows=m_rows)
    return run_tiles(stimulus, cfg, simulator=simulator, stall_prob=stall_prob, seed=seed,
                     **kwargs)


def run_gemm(M: int, K: int, N: int, cfg: ArrayConfig, *, a=None, codes=None, seed: int = 0,
             simulator: str = "verilator", stall_prob: float = 0.0, **kwargs) -> dict:
    """Co-simulate a whole ``[M, K] x [K, N]`` GEMM split into array tiles.

    Tiling is :func:`sim.stimulus.gemm_tiles`: ``ceil(N/cfg.cols) * ceil(K/cfg.rows)`` tiles, K
    blocks fastest, ragged edges zero-padded, every tile carrying all ``M`` activation rows.  With
    the default ``stall_prob=0`` the cycle records are those of a full-rate source and sink, the
    setting a throughput model is compared against.

    Parameters
    ----------
    M, K, N : int
        GEMM shape.
    cfg : ArrayConfig
        The array.
    a, codes : arrays, optional
        Activations int ``[M, K]`` and RF8 codes uint8 ``[K, N]``; random (from ``seed``) if not
        given.
    Other parameters as :func:`run_tiles`.

    Returns
    -------
    dict
        :func:`run_tiles`'s dict plus ``blocks`` (K-block, N-block of each tile), ``gemm_shape``
        and, for ``overflow="wrap"``, ``gemm``: the int64 ``[M, N]`` result assembled from the
        observed tile results (:func:`sim.stimulus.assemble_gemm`).
    """
    M, K, N = (checks.integer(name, value, 1) for name, value in (("M", M), ("K", K), ("N", N)))
    check_cosim_config(cfg)
    rng = np.random.default_rng(seed)
    lo, hi = -(1 << (cfg.act_bits - 1)), (1 << (cfg.act_bits - 1)) - 1
    a = rng.integers(lo, hi + 1, size=(M, K)) if a is None else np.asarray(a)
    codes = rng.integers(0, 256, size=(K, N), dtype=np.uint8) if codes is None else codes
    if np.shape(a) != (M, K) or np.shape(codes) != (K, N):
        raise ValueError(f"a must be [{M}, {K}] and codes [{K}, {N}], not {np.shape(a)} and "
                         f"{np.shape(codes)}")
    result = run_gemms([(a, codes)], cfg, simulator=simulator, stall_prob=stall_prob, seed=seed,
                       **kwargs)
    gemm = result.pop("gemms")[0]
    result.update(blocks=gemm["blocks"], gemm_shape=gemm["gemm_shape"])
    if "gemm" in gemm:
        result["gemm"] = gemm["gemm"]
    return result


def run_gemms(gemms, cfg: ArrayConfig, *, simulator: str = "verilator", stall_prob: float = 0.0,
              seed: int = 0, **kwargs) -> dict:
    """Co-simulate several GEMMs in one simulator run, each one on an idle, empty array.

    Each GEMM is tiled as in :func:`run_gemm`; GEMM ``g``'s beats are offered only once every
    result of GEMM ``g - 1`` has been taken (:func:`run_tiles` ``groups``), so each runs as
    right after reset and the cycle model of one GEMM (:func:`rf8hw.accel.cycles.gemm_cycles`)
    applies to each, while the simulator and its Python start only once.

    Parameters
    ----------
    gemms : sequence of (int [M, K], uint8 [K, N])
        Activations and RF8 codes of each GEMM.
    cfg : ArrayConfig
    Other parameters as :func:`run_tiles` (``keep_results`` is always on).

    Returns
    -------
    dict
        :func:`run_tiles`'s dict plus ``gemms``: per GEMM ``gemm_shape``, ``blocks``,
        ``tile_cycles`` (its tiles' records; cycle numbers count from reset release, as in the
        run) and, for ``overflow="wrap"`` when every tile was seen, ``gemm`` (the assembled
        int64 ``[M, N]`` result).
    """
    check_cosim_config(cfg)
    tiles, per_gemm = [], []
    for g, (a, codes) in enumerate(gemms):
        a, codes = np.asarray(a), np.asarray(codes)
        if a.ndim != 2 or codes.ndim != 2 or a.shape[1] != codes.shape[0] or not a.size \
                or not codes.size:
            raise ValueError(f"GEMM {g}: a must be [M, K] and codes [K, N] with M, K, N >= 1, "
                             f"not {a.shape} and {codes.shape}")
        t, blocks = gemm_tiles(a, codes, cfg.rows, cfg.cols)
        per_gemm.append((len(tiles), len(t), blocks, a.shape[0], codes.shape[1], a.shape[1]))
        tiles += t
    if not tiles:
        raise ValueError("gemms is empty: give at least one (a[M, K], codes[K, N]) pair")
    result = run_tiles(tiles, cfg, simulator=simulator, stall_prob=stall_prob, seed=seed,
                       keep_results=True, groups=[n for _, n, *_ in per_gemm], **kwargs)
    records = {r["tile"]: r for r in result["tile_cycles"]}
    out = []
    for first, n, blocks, M, N, K in per_gemm:
        entry = {"gemm_shape": (M, K, N), "blocks": blocks,
                 "tile_cycles": [records[t] for t in range(first, first + n) if t in records]}
        if cfg.overflow == "wrap" and all(t in result["results"] for t in range(first, first + n)):
            entry["gemm"] = assemble_gemm([result["results"][t] for t in range(first, first + n)],
                                          blocks, N, cfg.cols, cfg.acc_bits)
        out.append(entry)
    result["gemms"] = out
    return result


def summary_line(result: dict) -> str:
    """``tiles=T macs=N mismatches=E cycles=C cycles/s=R``: the last line ``rf8hw cosim`` prints."""
    return (f"tiles={result['tiles']} macs={result['macs']} mismatches={result['mismatches']} "
            f"cycles={result['cycles']} cycles/s={result['cycles_per_s']:.0f}")
