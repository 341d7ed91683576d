"""Host side of the co-simulation: write a job, run the simulator through cocotb's runner, read
the result.  The library functions behind ``rf8hw cosim``.

Every entry point takes the array as one :class:`~rf8hw.arch.ArrayConfig` (validated when it
was built; RF8 PE kinds only) and the run's options as one
:class:`~rf8hw.sim.options.CosimOptions` (validated when it was built), plus what is its own.
Flow of :func:`run_tiles`: :func:`rf8hw.sim.build.prepare` (generate or reuse the Verilog, or
take a given file, and build or reuse the simulator build) -> the run directory
(:meth:`~rf8hw.sim.options.CosimOptions.run_dir`) -> ``job.json`` + ``tiles.npz`` ->
``Runner.test`` with the bench's cocotb test module, in a process group of its own ->
``result.json`` -> ``cycles.json`` (the per-tile cycle accounting of ``docs/cosim.md``) and the
returned :class:`~rf8hw.sim.result.CosimResult`.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import numpy as np

from rf8hw import checks
from rf8hw.arch import ArrayConfig
from rf8hw.toolchain import cache

from .build import Build, check_cosim_config, check_options, prepare
from .hdl_bench.wrapper import chunk_plusargs
from .job import (
    PROGRESS_PREFIX,
    RESULT_FILE,
    RESULTS_FILE,
    Job,
    read_report,
    read_results,
    write_error,
    write_job,
    write_json,
    write_report,
    write_results,
)
from .options import RUNS_DIR, CosimOptions
from .records import BenchReport
from .result import CosimResult, GemmResult
from .stimulus import assemble_gemm, gemm_tiles, random_tiles

__all__ = ["TEST_MODULES", "CYCLES_FORMAT", "MAX_TILES", "MAX_STIMULUS_ROWS",
           "SimulationInterrupted", "run_tiles", "run_cosim", "run_gemm", "run_gemms"]

#: The cocotb test module of each bench, which the simulator's embedded Python imports.
TEST_MODULES = {"hdl": "rf8hw.sim.hdl_bench.cocotb_test",
                "python": "rf8hw.sim.python_bench.cocotb_test"}

#: Most random tiles one :func:`run_cosim` generates (their stimulus is held in memory at once).
MAX_TILES = 1_000_000

#: Most activation rows (tiles x m_rows) one :func:`run_cosim` generates.
MAX_STIMULUS_ROWS = 2**24

#: Version tag of the ``cycles.json`` layout (``docs/cosim.md``).
CYCLES_FORMAT = "rf8hw-cosim-cycles/1"


class SimulationInterrupted(KeyboardInterrupt):
    """``SIGTERM`` (``signum``) arrived while a simulation ran; the simulator has been ended."""

    def __init__(self, signum: int):
        super().__init__(f"signal {signum}")
        self.signum = signum


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


def _relay(log: Path, seen: int, progress, simulator: str) -> int:
    """Pass the progress lines of ``log`` after the first ``seen`` lines to ``progress``."""
    if progress is None or not log.is_file():
        return seen
    lines = log.read_text(errors="replace").splitlines()
    pattern = re.compile(re.escape(PROGRESS_PREFIX) + r"\s*(.*)")
    for line in lines[seen:]:
        match = pattern.search(line)
        if match:
            progress(f"[{simulator}] {match.group(1)}")
    return max(seen, len(lines))


def _run_simulator(build: Build, out_dir: Path, plusargs: list[str], progress) -> None:
    """``Runner.test`` (public cocotb API) in a child Python process
    (:mod:`rf8hw.sim.simulator_process`) started in a session, hence a process group, of its
    own; the simulator it starts stays in that group.  This process relays the progress lines of
    the log meanwhile.  If it is interrupted (``KeyboardInterrupt``, or ``SIGTERM``, which is
    turned into one while the run lasts) the whole group is killed before the exception goes on,
    so no simulator outlives the caller; a caller killed outright (``SIGKILL``) is noticed by the
    child's watchdog, which kills the group.  A failed test or simulator is not an error here (the
    caller reads ``result.json``); a failure of the runner itself is a ``RuntimeError``.
    """
    log, runner_log = out_dir / "sim.log", out_dir / "runner.log"
    request = {"simulator": build.simulator, "host_pid": os.getpid(),
               "test_module": TEST_MODULES[build.bench], "hdl_toplevel": build.toplevel,
               "build_dir": str(build.build_dir),
               "test_dir": str(out_dir), "plusargs": plusargs, "hdl_toplevel_lang": "verilog",
               "waves": build.waves, "log_file": str(log),
               "results_xml": str(out_dir / "results.xml")}
    in_main = threading.current_thread() is threading.main_thread()   # may set signal handlers
    if in_main:
        def on_term(signum, frame):
            raise SimulationInterrupted(signum)    # ends the wait below, then goes on
        saved = signal.signal(signal.SIGTERM, on_term)
    proc, seen = None, 0
    try:
        with open(runner_log, "w") as out:
            proc = subprocess.Popen([sys.executable, "-m", "rf8hw.sim.simulator_process",
                                     json.dumps(request)], cwd=out_dir, stdout=out,
                                    stderr=subprocess.STDOUT, start_new_session=True)
        while True:
            try:
                proc.wait(0.5)
                break
            except subprocess.TimeoutExpired:
                seen = _relay(log, seen, progress, build.simulator)
    except BaseException:
        if proc is not None:                 # the runner's process group, simulator included
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait()
        raise
    finally:
        if in_main:
            signal.signal(signal.SIGTERM, saved)
    _relay(log, seen, progress, build.simulator)
    if proc.returncode != 0:
        last = (runner_log.read_text(errors="replace").strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(f"the cocotb runner failed ({last}); see {runner_log}")


def run_tiles(tiles, cfg: ArrayConfig, options: CosimOptions, *, reset_at_cycle: int | None = None,
              tiles_after_reset: int = 0, corrupt=None, keep_results: bool = False, groups=None,
              label: str | None = None, progress=None) -> CosimResult:
    """Co-simulate the array ``cfg`` on ``tiles`` and check every result row.

    Parameters
    ----------
    tiles : list of (uint8 [rows, cols], int [M, rows])
        Weight tile and activation rows of each tile, streamed back to back in this order.
    cfg : ArrayConfig
        The array; an RF8 PE kind (:func:`rf8hw.sim.build.check_cosim_config`).
    options : CosimOptions
        Simulator, bench, stall probabilities and seed, waves, the run directory (``out_dir``,
        held under a lock for the run, so two runs given one directory run one after the other;
        default a new directory by :meth:`~rf8hw.sim.options.CosimOptions.run_dir`), the cache,
        and ``rtl``: a generated file to co-simulate instead of the Verilog of ``cfg``.
    reset_at_cycle : int, optional
        Assert the reset (``aresetn`` low, or ``rst`` high) after this cycle; tiles then in
        flight are dropped (listed in ``dropped_tiles``) and the last ``tiles_after_reset`` tiles
        are sent after the reset.
    tiles_after_reset : int
    corrupt : (tile, row, column), optional
        Add 1 to that expected value: a wrong model, to show the scoreboard failing.
    keep_results : bool
        Return the observed result rows (``results``: int64 [M, cols] per tile).
    groups : sequence of int, optional
        Split ``tiles`` into consecutive groups of these sizes (summing to ``len(tiles)``): the
        beats of group ``g`` are offered only after every result of group ``g - 1`` was taken,
        so each group starts on an idle, empty array, as after reset (one simulator run for
        several independent GEMMs, :func:`run_gemms`).  Not with ``reset_at_cycle``; more than
        one group needs ``bench="python"``.
    label : str, optional
        What the stimulus is, in the default run directory's name (default
        ``tiles<T>-m<M>``, ``M`` the rows per tile or ``lo`` x ``hi``).
    progress : callable(str), optional
        Receives a line when the Verilog is generated or the simulator model is built (and every
        few seconds of a build: :func:`rf8hw.sim.build.prepare`), then about every tenth of the
        tiles.

    Returns
    -------
    CosimResult

    Raises
    ------
    ValueError
        On bad arguments or tiles (before anything is built).
    TypeError
        If ``cfg`` or ``options`` is not of its type.
    RuntimeError
        If the simulation hung (the watchdog, :func:`rf8hw.sim.scoreboard.watchdog_cycles`),
        crashed or ended without a result: one line naming the log.
    """
    check_cosim_config(cfg)
    check_options(options)
    _check_tiles(tiles, cfg)
    tiles_after_reset = checks.integer("tiles_after_reset", tiles_after_reset, 0, len(tiles))
    if reset_at_cycle is not None:
        reset_at_cycle = checks.integer("reset_at_cycle", reset_at_cycle, 0)
    if groups is not None:
        groups = tuple(checks.integer(f"groups[{i}]", g, 1) for i, g in enumerate(groups))
        if sum(groups) != len(tiles) or reset_at_cycle is not None:
            raise ValueError(f"groups must be tile counts summing to the {len(tiles)} tiles, "
                             f"without reset_at_cycle; got {list(groups)} (sum {sum(groups)})"
                             + (" and a reset" if reset_at_cycle is not None else ""))
        if options.bench != "python" and len(groups) > 1:
            raise ValueError(f"groups of tiles ({len(groups)} given) need bench='python'; the "
                             f"{options.bench} bench streams one group")
    options.check_run_dir()
    build = prepare(cfg, options, progress)
    if label is None:
        ms = sorted({len(a) for _, a in tiles})
        label = f"tiles{len(tiles)}-m{ms[0] if len(ms) == 1 else f'{ms[0]}x{ms[-1]}'}"
    # the directories this run makes (removed again if its files cannot be written)
    target = Path(RUNS_DIR if options.out_dir is None else options.out_dir).absolute()
    made = [d for d in (target, *target.parents) if not d.exists()]
    out_dir = options.run_dir(build.module, label)
    if options.out_dir is None:
        made.insert(0, out_dir)
    job = Job(build.manifest, options.stall_prob, options.backpressure, options.seed,
              reset_at_cycle, tiles_after_reset,
              None if corrupt is None else tuple(corrupt), bool(keep_results), groups)
    with cache.locked(out_dir):
        return _run_locked(tiles, build, options, out_dir, job, progress, made)


def _remove_dirs(made: list[Path]) -> None:
    """Remove the directories a run made (deepest first): the run directory with what it holds,
    the ones above it only while empty (another run may be using them)."""
    if made:
        shutil.rmtree(made[0], ignore_errors=True)
    for d in made[1:]:
        try:
            d.rmdir()
        except OSError:
            break


def _last_error(log: Path) -> str | None:
    """The last line of a simulator or runner log that names an exception or a failed file
    (``OSError: [Errno 28] No space left on device``), trimmed, or None."""
    try:
        lines = log.read_text(errors="replace").splitlines()
    except OSError:
        return None
    pattern = re.compile(r"\b\w*(?:Error|Exception)\b: .*|Unable to open .*|.*: No such file.*")
    for line in reversed(lines):
        match = pattern.search(line)
        if match:
            return match.group(0).strip()[:300]
    return None


def _run_locked(tiles, build: Build, options: CosimOptions, out_dir: Path, job: Job,
                progress, made: list[Path]) -> CosimResult:
    simulator = build.simulator
    for stale in (RESULT_FILE, RESULTS_FILE, "cycles.json"):
        (out_dir / stale).unlink(missing_ok=True)
    try:
        write_job(out_dir, job, tiles)
    except OSError as exc:                    # a full disk: no run directory left half-made
        _remove_dirs(made)
        raise OSError(exc.errno, f"{exc.strerror or exc}; the run's job.json and tiles.npz were not "
                                 f"written{' and its directory was removed' if made else ''}",
                      str(out_dir)) from None
    if build.bench == "lib":
        report, results = _run_lib(tiles, build, options, out_dir, job, progress)
    else:
        report, results = _run_cocotb(build, out_dir, job, progress)
    log = out_dir / "sim.log"
    cycles_json = out_dir / "cycles.json"
    try:
        write_json(cycles_json, {
            "format": CYCLES_FORMAT, "definitions": "docs/cosim.md",
            "config": _cycles_config(build, options), "cycles": report.cycles,
            "dropped_tiles": list(report.dropped_tiles),
            "tiles": [t.as_dict() for t in report.tiles]})
    except OSError as exc:
        raise OSError(exc.errno, f"{exc.strerror or exc}; the simulation ended ({report.mismatches} "
                                 f"mismatches) but its cycle accounting was not written",
                      str(cycles_json)) from None
    waves = None
    if build.waves:
        waves = out_dir / ("dump.vcd" if simulator == "verilator" else f"{build.module}.fst")
    return _result(report, build, options, out_dir, cycles_json, log, waves, results)


@contextmanager
def _sigterm_as_interrupt():
    """While the body runs (in the main thread), ``SIGTERM`` raises :class:`SimulationInterrupted`."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_term(signum, frame):
        raise SimulationInterrupted(signum)
    saved = signal.signal(signal.SIGTERM, on_term)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, saved)


def _run_lib(tiles, build: Build, options: CosimOptions, out_dir: Path, job: Job, progress):
    """The library bench in this process (:func:`rf8hw.sim.lib_bench.run_lib_bench`); its
    progress lines also go to ``sim.log``, its report to ``result.json`` (and ``results.npz``)
    as the cocotb benches write them."""
    from .lib_bench import array_harness, run_lib_bench

    log = out_dir / "sim.log"
    total = sum(len(a) for _, a in tiles)
    every = max(1, total // 10)
    state = {"next": every}
    with _sigterm_as_interrupt(), open(log, "w") as out:
        def say(line: str) -> None:
            out.write(line + "\n")
            out.flush()
            if progress is not None:
                progress(f"[verilator] {line}")

        def tick(sb, cycle):
            if sb.seen >= state["next"]:
                say(f"rows {sb.seen}/{sb.total} cycles {cycle} mismatches {sb.mismatches}")
                state["next"] = sb.seen + every

        harness = array_harness(build.manifest, build.design.data.decode())
        say(f"running the library bench: {build.library}")
        try:
            report, results = run_lib_bench(
                build.library, harness, build.manifest, tiles, stall_prob=job.stall_prob,
                backpressure_prob=job.backpressure_prob, seed=job.seed,
                reset_at_cycle=job.reset_at_cycle, tiles_after_reset=job.tiles_after_reset,
                corrupt=job.corrupt, keep_results=job.keep_results, progress=tick)
        except TimeoutError as exc:
            say(f"error: {exc}")
            write_error(out_dir, str(exc))
            raise RuntimeError(f"the verilator simulation failed: {exc} (see {log})") from None
        say(f"done cycles {report.cycles} mismatches {report.mismatches}")
    write_report(out_dir, report)
    if results is not None:
        write_results(out_dir, results)
    return report, results


def _run_cocotb(build: Build, out_dir: Path, job: Job, progress):
    """The HDL or Python bench through cocotb's runner; ``(report, results)``."""
    simulator = build.simulator
    # Every path handed to the simulator is relative to the run directory, its working directory
    # (cocotb's Runner.test runs it in test_dir): Icarus' $readmemh/$writememh/$dumpfile cannot
    # open a path with non-ASCII characters, and the run directory's path may have them.
    plusargs = ["+rf8hw_job=."]
    if build.bench == "hdl":
        plusargs += chunk_plusargs(Path("."))
        os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    if build.waves and simulator == "icarus":
        plusargs.append(f"+rf8hw_dumpfile={build.module}.fst")
    _run_simulator(build, out_dir, plusargs, progress)
    log = out_dir / "sim.log"
    report = read_report(out_dir)
    if report is None:
        why = _last_error(log) or _last_error(out_dir / "runner.log")
        raise RuntimeError(f"the {simulator} simulation ended without a result"
                           f"{f' ({why})' if why else ''}; see {log}")
    if isinstance(report, str):
        raise RuntimeError(f"the {simulator} simulation failed: {report} (see {log})")
    return report, read_results(out_dir) if job.keep_results else None


def _cycles_config(build: Build, options: CosimOptions) -> dict:
    """The ``config`` block of ``cycles.json``: how the run was made."""
    return {"simulator": build.simulator, "bench": build.bench, "module": build.module,
            "stall_prob": options.stall_prob, "backpressure_prob": options.backpressure,
            "seed": options.seed, "verilog": str(build.verilog),
            "manifest": str(build.design.manifest_path.resolve()),
            "verilog_sha256": build.design.sha256,
            "verilog_matches_manifest": build.design.matches_manifest,
            "build_dir": str(build.build_dir), **build.manifest.parameters.as_dict()}


def _result(report: BenchReport, build: Build, options: CosimOptions, out_dir: Path,
            cycles_json: Path, log: Path, waves: Path | None, results) -> CosimResult:
    cfg = build.config
    wall = report.wall_s
    return CosimResult(
        tiles=len(report.tiles), macs=sum(r.m_rows for r in report.tiles) * cfg.rows * cfg.cols,
        mismatches=report.mismatches, first_mismatch=report.first_mismatch,
        cycles=report.cycles, wall_s=wall,
        cycles_per_s=report.loop_cycles / wall if wall > 0 else math.inf,
        rows_checked=report.rows_checked, values_checked=report.values_checked,
        err_w_tlast=report.err_w_tlast, dropped_tiles=report.dropped_tiles,
        tile_cycles=report.tiles, python_s=report.python_s, build=build, options=options,
        out_dir=out_dir, cycles_json=cycles_json, log=log, waves=waves, results=results)


def _check_counts(tiles, m_rows, cfg: ArrayConfig) -> tuple[int, int]:
    """``tiles`` and ``m_rows`` (default ``cfg.rows``) if ``tiles * m_rows``, the activation rows
    held in memory, is at most :data:`MAX_STIMULUS_ROWS`, else ``ValueError`` naming them."""
    tiles = checks.integer("tiles", tiles, 1, MAX_TILES,
                           " (one run's stimulus is held in memory; split larger runs)")
    m_rows = checks.integer("m_rows", cfg.rows if m_rows is None else m_rows, 1,
                            MAX_STIMULUS_ROWS // tiles,
                            f" (tiles x m_rows, the activation rows held in memory, is at most "
                            f"{MAX_STIMULUS_ROWS:,})")
    return tiles, m_rows


def run_cosim(tiles: int, cfg: ArrayConfig, options: CosimOptions, *, m_rows: int | None = None,
              progress=None) -> CosimResult:
    """Co-simulate ``tiles`` random tiles (:func:`rf8hw.sim.stimulus.random_tiles`, seeded by
    ``options.seed``) of ``m_rows`` activation rows each (default ``cfg.rows``) on the array
    ``cfg`` (``rf8hw cosim``); :func:`run_tiles` does the rest."""
    check_cosim_config(cfg)
    check_options(options)
    tiles, m_rows = _check_counts(tiles, m_rows, cfg)
    rng = np.random.default_rng(options.seed)
    stimulus = random_tiles(rng, cfg.rows, cfg.cols, tiles, act_bits=cfg.act_bits, m_rows=m_rows)
    return run_tiles(stimulus, cfg, options, progress=progress)


def run_gemm(M: int, K: int, N: int, cfg: ArrayConfig, options: CosimOptions, *, a=None,
             codes=None, label: str | None = None, progress=None) -> CosimResult:
    """Co-simulate a whole ``[M, K] x [K, N]`` GEMM split into array tiles.

    Tiling is :func:`rf8hw.sim.stimulus.gemm_tiles`: ``ceil(N/cfg.cols) * ceil(K/cfg.rows)``
    tiles, K blocks fastest, ragged edges zero-padded, every tile carrying all ``M`` activation
    rows.  With ``options.stall_prob == 0`` the cycle records are those of a full-rate source and
    sink, the setting a throughput model is compared against.

    Parameters
    ----------
    M, K, N : int
        GEMM shape.
    cfg : ArrayConfig
    options : CosimOptions
    a, codes : arrays, optional
        Activations int ``[M, K]`` and RF8 codes uint8 ``[K, N]``; random (from
        ``options.seed``) if not given.
    label, progress
        As :func:`run_tiles`.

    Returns
    -------
    CosimResult
        With one :class:`~rf8hw.sim.result.GemmResult` in ``gemms`` (its ``gemm``: the
        assembled ``[M, N]`` result, for ``overflow="wrap"``).
    """
    M, K, N = (checks.integer(name, value, 1) for name, value in (("M", M), ("K", K), ("N", N)))
    check_cosim_config(cfg)
    check_options(options)
    rng = np.random.default_rng(options.seed)
    lo, hi = -(1 << (cfg.act_bits - 1)), (1 << (cfg.act_bits - 1)) - 1
    a = rng.integers(lo, hi + 1, size=(M, K)) if a is None else np.asarray(a)
    codes = rng.integers(0, 256, size=(K, N), dtype=np.uint8) if codes is None else codes
    if np.shape(a) != (M, K) or np.shape(codes) != (K, N):
        raise ValueError(f"a must be [{M}, {K}] and codes [{K}, {N}], not {np.shape(a)} and "
                         f"{np.shape(codes)}")
    return run_gemms([(a, codes)], cfg, options, label=label, progress=progress)


def run_gemms(gemms, cfg: ArrayConfig, options: CosimOptions, *, label: str | None = None,
              progress=None) -> CosimResult:
    """Co-simulate several GEMMs in one simulator run, each one on an idle, empty array.

    Each GEMM is tiled as in :func:`run_gemm`; GEMM ``g``'s beats are offered only once every
    result of GEMM ``g - 1`` has been taken (:func:`run_tiles` ``groups``), so each runs as
    right after reset and the cycle model of one GEMM (:func:`rf8hw.accel.cycles.gemm_cycles`)
    applies to each, while the simulator and its Python start only once.  More than one GEMM
    needs the Python bench (``options.bench == "python"``).

    Parameters
    ----------
    gemms : sequence of (int [M, K], uint8 [K, N])
        Activations and RF8 codes of each GEMM.
    cfg : ArrayConfig
    options : CosimOptions
    label, progress
        As :func:`run_tiles` (whose ``keep_results`` is on).

    Returns
    -------
    CosimResult
        With a :class:`~rf8hw.sim.result.GemmResult` per GEMM in ``gemms``.
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
        per_gemm.append((len(tiles), len(t), tuple(blocks), (a.shape[0], a.shape[1], codes.shape[1])))
        tiles += t
    if not tiles:
        raise ValueError("gemms is empty: give at least one (a[M, K], codes[K, N]) pair")
    result = run_tiles(tiles, cfg, options, keep_results=True, groups=[n for _, n, *_ in per_gemm],
                       label=label, progress=progress)
    records = {r.tile: r for r in result.tile_cycles}
    out = []
    for first, n, blocks, shape in per_gemm:
        own = range(first, first + n)
        gemm = None
        if cfg.overflow == "wrap" and all(t in result.results for t in own):
            gemm = assemble_gemm([result.results[t] for t in own], blocks, shape[2], cfg.cols,
                                 cfg.acc_bits)
        out.append(GemmResult(shape, blocks, tuple(records[t] for t in own if t in records), gemm))
    return replace(result, gemms=tuple(out))
