"""Host side of the co-simulation: write a job, run the simulator through cocotb's runner, read
the result.  The library functions behind ``rf8hw cosim``.

Every entry point takes the array as one :class:`~rf8hw.arch.ArrayConfig` (validated when it
was built; RF8 PE kinds only).  Flow of :func:`run_tiles`: :func:`rf8hw.sim.build.prepare` (generate or
reuse the Verilog, or take a given file, and build or reuse the simulator build) ->
``<out_dir>/job.json`` + ``tiles.npz`` -> ``Runner.test`` with the cocotb test module
:mod:`rf8hw.sim.cosim_test` -> ``<out_dir>/result.json`` -> ``<out_dir>/cycles.json`` (the per-tile cycle
accounting of ``docs/cosim.md``) and the returned dict.
"""

from __future__ import annotations

import json
import math
import os
import re
import signal
import subprocess
import tempfile
import threading
from pathlib import Path

import numpy as np

from rf8hw import checks
from rf8hw.arch import ArrayConfig

from rf8hw.toolchain import cache

from .build import check_cosim_config, check_simulator, default_cache_root, prepare
from .hdlbench import BENCHES
from .job import PROGRESS_PREFIX, write_job, write_json
from .stimulus import assemble_gemm, gemm_tiles, random_tiles

__all__ = ["check_stall_prob", "run_tiles", "run_cosim", "run_gemm", "run_gemms", "run_dir_name",
           "new_run_dir", "check_m_rows", "summary_line", "CYCLES_FORMAT", "MAX_TILES",
           "MAX_STIMULUS_ROWS", "SimulationInterrupted"]

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


class SimulationInterrupted(KeyboardInterrupt):
    """``SIGTERM`` (``signum``) arrived while a simulation ran; the simulator has been ended."""

    def __init__(self, signum: int):
        super().__init__(f"signal {signum}")
        self.signum = signum


def run_dir_name(module: str, simulator: str, bench: str, tiles: int, m_rows, stall_prob: float,
                 backpressure_prob: float, seed: int) -> str:
    """The name of a run directory, from every parameter of the run:
    ``<module>-<simulator>-<bench>-tiles<T>-m<M>-stall<p>-bp<q>-seed<S>`` (:func:`new_run_dir`
    adds a unique suffix)."""
    m = "x".join(map(str, m_rows)) if isinstance(m_rows, (tuple, list)) else m_rows
    return (f"{module}-{simulator}-{bench}-tiles{tiles}-m{m}-stall{stall_prob:g}"
            f"-bp{backpressure_prob:g}-seed{seed}")


def new_run_dir(parent, name: str) -> Path:
    """A new, empty directory ``<parent>/<name>-<unique>`` (:func:`tempfile.mkdtemp`: two runs at
    once never share one)."""
    parent = Path(parent)
    parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=name + "-", dir=parent))


def _run_simulator(build, out_dir: Path, plusargs, test_module: str, waves: bool,
                   progress) -> None:
    """``Runner.test`` in a thread while this thread relays the progress lines of its log.

    The simulator is started in its own process group; if this thread is interrupted
    (``KeyboardInterrupt``, or ``SIGTERM``, which is turned into one while the run lasts) the
    whole group is killed before the exception goes on, so no simulator outlives the caller.
    """
    from cocotb_tools.runner import get_runner

    log = out_dir / "sim.log"
    runner = get_runner(build.simulator)
    failure: list[BaseException] = []
    procs: list[subprocess.Popen] = []
    stop = threading.Event()

    def execute(cmds, cwd, stdout=None):
        # cocotb's runner would subprocess.run() each command; this starts it in a process
        # group of its own and keeps the handle, so that an interrupt can end it.
        for cmd in cmds:
            if stop.is_set():
                raise RuntimeError("interrupted")
            proc = subprocess.Popen(cmd, cwd=cwd, env=runner.env, stdout=stdout,
                                    stderr=None if stdout is None else subprocess.STDOUT,
                                    start_new_session=True)
            procs.append(proc)
            if proc.wait() != 0:
                raise RuntimeError(f"Command failed with return code: {proc.returncode}")

    runner._execute_cmds = execute

    def target():
        try:
            runner.test(test_module=test_module, hdl_toplevel=build.toplevel,
                        build_dir=build.build_dir, test_dir=out_dir, plusargs=plusargs,
                        hdl_toplevel_lang="verilog", waves=waves, log_file=log,
                        results_xml=str(out_dir / "results.xml"))
        except BaseException as exc:      # the runner calls sys.exit() when the test fails
            failure.append(exc)

    in_main = threading.current_thread() is threading.main_thread()
    if in_main:
        def on_term(signum, frame):
            raise SimulationInterrupted(signum)    # ends the loop below, then goes on
        saved = signal.signal(signal.SIGTERM, on_term)
    worker = threading.Thread(target=target, name="rf8hw-cosim", daemon=True)
    seen = 0
    pattern = re.compile(re.escape(PROGRESS_PREFIX) + r"\s*(.*)")
    try:
        worker.start()
        while worker.is_alive():
            worker.join(0.5)
            if progress is not None and log.is_file():
                lines = log.read_text(errors="replace").splitlines()
                for line in lines[seen:]:
                    match = pattern.search(line)
                    if match:
                        progress(f"[{build.simulator}] {match.group(1)}")
                seen = max(seen, len(lines))
    except BaseException:
        stop.set()
        for proc in procs:
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                proc.wait()
        raise
    finally:
        if in_main:
            signal.signal(signal.SIGTERM, saved)
    if failure and not isinstance(failure[0], (SystemExit, RuntimeError)):
        raise failure[0]


def run_tiles(tiles, cfg: ArrayConfig, *, simulator: str = "verilator", rtl=None,
              stall_prob: float = 0.0, seed: int = 0, waves: bool = False, out_dir=None,
              cache_root=None, reset_at_cycle: int | None = None, tiles_after_reset: int = 0,
              corrupt=None, keep_results: bool = False, backpressure_prob: float | None = None,
              progress=None, groups=None, bench: str = "hdl", run_name: str | None = None) -> dict:
    """Co-simulate the array ``cfg`` on ``tiles`` and check every result row.

    Parameters
    ----------
    tiles : list of (uint8 [rows, cols], int [M, rows])
        Weight tile and activation rows of each tile, streamed back to back in this order.
    cfg : ArrayConfig
        The array; an RF8 PE kind (:func:`rf8hw.sim.build.check_cosim_config`).
    simulator : {"verilator", "icarus"}
    rtl : str or Path, optional
        Co-simulate this generated ``.v`` file (its manifest's parameters must equal ``cfg``)
        instead of generating the Verilog of ``cfg`` (:func:`rf8hw.sim.build.prepare`).
    stall_prob : float in [0, 1)
        Each input producer idles before a beat with this probability (per cycle) and the result
        consumer drops ``tready`` with it.  0: full rate, no backpressure.
    seed : int
        Seed of the stall/idle choices.
    waves : bool
        Record a waveform (Verilator: ``dump.vcd``, Icarus: ``<module>.fst`` in ``out_dir``).
    out_dir : str or Path, optional
        Directory for the job, logs, ``result.json`` and ``cycles.json`` (held under a lock for
        the run, so two runs given one directory run one after the other); default a new,
        uniquely named directory under ``<cache_root>/runs`` (:func:`new_run_dir`).
    cache_root : str or Path, optional
        RTL and build cache (:func:`rf8hw.sim.build.default_cache_root`).
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
        several independent GEMMs, :func:`run_gemms`).  Not with ``reset_at_cycle``; more than
        one group needs ``bench="python"``.
    bench : {"hdl", "python"}
        The testbench: ``hdl`` (stimulus, stalls and the result sink in the Verilog wrapper of
        :mod:`rf8hw.sim.hdlbench`, Python woken once per batch; the default) or ``python`` (the
        per-cycle cocotb testbench :mod:`rf8hw.sim.testbench`, for debugging).  Both check every row
        and give the same cycle records at full rate.
    run_name : str, optional
        Name stem of the default ``out_dir`` (default :func:`run_dir_name` of this run's
        parameters).

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
        If the simulation hung (the watchdog, :func:`rf8hw.sim.hdlbench.watchdog_cycles`), crashed or
        ended without a result: one line naming the log.
    """
    check_cosim_config(cfg)
    checks.choice("bench", bench, BENCHES)
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
        if bench == "hdl" and len(groups) > 1:
            raise ValueError(f"groups of tiles ({len(groups)} given) need bench='python'; the "
                             f"HDL bench streams one group")
    if out_dir is not None:
        out_dir = Path(checks.output_dir("out_dir", out_dir)).resolve()
    build = prepare(cfg, simulator, rtl=rtl, waves=waves, cache_root=cache_root, bench=bench)
    root = Path(cache_root) if cache_root is not None else default_cache_root()
    bp = stall_prob if backpressure_prob is None else backpressure_prob
    if out_dir is None:
        ms = sorted({len(a) for _, a in tiles})
        m = ms[0] if len(ms) == 1 else (ms[0], ms[-1])
        out_dir = new_run_dir(root / "runs", run_name or run_dir_name(
            build.module, simulator, bench, len(tiles), m, stall_prob, bp, seed))
    with cache.locked(out_dir):
        return _run_locked(tiles, cfg, build, out_dir, bench=bench, stall_prob=stall_prob,
                           backpressure_prob=backpressure_prob, bp=bp, seed=seed, waves=waves,
                           reset_at_cycle=reset_at_cycle, tiles_after_reset=tiles_after_reset,
                           corrupt=corrupt, keep_results=keep_results, progress=progress,
                           groups=groups)


def _run_locked(tiles, cfg, build, out_dir: Path, *, bench, stall_prob, backpressure_prob, bp,
                seed, waves, reset_at_cycle, tiles_after_reset, corrupt, keep_results, progress,
                groups) -> dict:
    simulator = build.simulator
    for stale in ("result.json", "results.npz", "cycles.json"):
        (out_dir / stale).unlink(missing_ok=True)
    config = {"simulator": simulator, "bench": bench, "module": build.module,
              "stall_prob": stall_prob, "backpressure_prob": bp,
              "seed": seed, "verilog": str(build.verilog), "manifest": str(build.manifest),
              "verilog_sha256": build.verilog_sha256,
              "verilog_matches_manifest": build.matches_manifest,
              "build_dir": str(build.build_dir), **build.parameters}
    job = {"parameters": build.parameters, "ports": build.clock_reset, "stall_prob": stall_prob,
           "backpressure_prob": backpressure_prob, "seed": seed,
           "reset_at_cycle": reset_at_cycle, "tiles_after_reset": tiles_after_reset,
           "corrupt": list(corrupt) if corrupt is not None else None,
           "keep_results": keep_results, "groups": groups}
    write_job(out_dir, job, tiles)
    plusargs = [f"+rf8hw_job={out_dir}"]
    if bench == "hdl":
        plusargs += [f"+rf8hw_{s}={out_dir / (s + '.hex')}" for s in ("w", "a", "r", "tw", "ta")]
        os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    waves_path = None
    if waves:
        waves_path = out_dir / ("dump.vcd" if simulator == "verilator" else f"{build.module}.fst")
        if simulator == "icarus":
            plusargs.append(f"+rf8hw_dumpfile={waves_path}")
    _run_simulator(build, out_dir, plusargs, "rf8hw.sim.batch_test" if bench == "hdl"
                   else "rf8hw.sim.cosim_test", waves, progress)
    result_path = out_dir / "result.json"
    log = out_dir / "sim.log"
    if not result_path.is_file():
        raise RuntimeError(f"the {simulator} simulation ended without a result; see {log}")
    report = json.loads(result_path.read_text())
    if report.get("error"):
        raise RuntimeError(f"the {simulator} simulation failed: {report['error']} (see {log})")
    records = report["tiles"]
    checked = [r["tile"] for r in records]
    macs = sum(r["m_rows"] for r in records) * cfg.rows * cfg.cols
    cycles, wall = report["cycles"], report["wall_s"]
    cycles_json = out_dir / "cycles.json"
    write_json(cycles_json, {
        "format": CYCLES_FORMAT, "definitions": "docs/cosim.md", "config": config,
        "cycles": cycles, "dropped_tiles": report["dropped_tiles"], "tiles": records,
    })
    result = {
        "tiles": len(checked), "macs": macs, "mismatches": report["mismatches"],
        "first_mismatch": report["first_mismatch"], "cycles": cycles, "wall_s": wall,
        "cycles_per_s": report["loop_cycles"] / wall if wall > 0 else math.inf,
        "rows_checked": report["rows_checked"], "values_checked": report["values_checked"],
        "err_w_tlast": report["err_w_tlast"], "dropped_tiles": report["dropped_tiles"],
        "tile_cycles": records, "cycles_json": str(cycles_json), "log": str(log),
        "waves": str(waves_path) if waves_path else None, "out_dir": str(out_dir),
        "config": config,
    }
    if "python_s" in report:
        result["python_s"] = report["python_s"]
    if keep_results:
        with np.load(out_dir / "results.npz") as z:
            result["results"] = {int(k.split("_")[1]): z[k] for k in z.files}
    return result


def check_m_rows(m_rows, tiles: int, cfg: ArrayConfig) -> int:
    """``m_rows`` (default ``cfg.rows``) if ``tiles * m_rows``, the activation rows held in memory,
    is at most :data:`MAX_STIMULUS_ROWS`, else ``ValueError`` naming it (``tiles`` is checked
    too)."""
    tiles = checks.integer("tiles", tiles, 1, MAX_TILES,
                           " (one run's stimulus is held in memory; split larger runs)")
    return checks.integer("m_rows", cfg.rows if m_rows is None else m_rows, 1,
                          MAX_STIMULUS_ROWS // tiles,
                          f" (tiles x m_rows, the activation rows held in memory, is at most "
                          f"{MAX_STIMULUS_ROWS:,})")


def run_cosim(cfg: ArrayConfig, tiles: int, seed: int, *, m_rows=None,
              simulator: str = "verilator", stall_prob: float = 0.1, **kwargs) -> dict:
    """Co-simulate ``tiles`` random tiles (:func:`rf8hw.sim.stimulus.random_tiles`, seeded by ``seed``)
    on the array ``cfg``.

    ``m_rows`` (activation rows per tile) defaults to ``cfg.rows``.  Other keyword arguments
    (``rtl``, ``out_dir``, ``cache_root``, ...) go to :func:`run_tiles`; the return value is its
    dict.
    """
    check_cosim_config(cfg)
    if not isinstance(m_rows, tuple):
        m_rows = check_m_rows(m_rows, tiles, cfg)
    tiles = checks.integer("tiles", tiles, 1, MAX_TILES,
                           " (one run's stimulus is held in memory; split larger runs)")
    seed = checks.integer("seed", seed, 0, 2**63 - 1)
    check_simulator(simulator)
    check_stall_prob(stall_prob)
    rng = np.random.default_rng(seed)
    stimulus = random_tiles(rng, cfg.rows, cfg.cols, tiles, act_bits=cfg.act_bits, m_rows=m_rows)
    return run_tiles(stimulus, cfg, simulator=simulator, stall_prob=stall_prob, seed=seed,
                     **kwargs)


def run_gemm(M: int, K: int, N: int, cfg: ArrayConfig, *, a=None, codes=None, seed: int = 0,
             simulator: str = "verilator", stall_prob: float = 0.0, bench: str = "hdl",
             **kwargs) -> dict:
    """Co-simulate a whole ``[M, K] x [K, N]`` GEMM split into array tiles.

    Tiling is :func:`rf8hw.sim.stimulus.gemm_tiles`: ``ceil(N/cfg.cols) * ceil(K/cfg.rows)`` tiles, K
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
        observed tile results (:func:`rf8hw.sim.stimulus.assemble_gemm`).
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
                       bench=bench, **kwargs)
    gemm = result.pop("gemms")[0]
    result.update(blocks=gemm["blocks"], gemm_shape=gemm["gemm_shape"])
    if "gemm" in gemm:
        result["gemm"] = gemm["gemm"]
    return result


def run_gemms(gemms, cfg: ArrayConfig, *, simulator: str = "verilator", stall_prob: float = 0.0,
              seed: int = 0, bench: str = "python", **kwargs) -> dict:
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
    bench : {"python", "hdl"}
        The testbench (:func:`run_tiles`); groups of tiles need the Python bench, so ``hdl``
        takes one GEMM only (:func:`run_gemm` uses it by default).
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
                       keep_results=True, groups=[n for _, n, *_ in per_gemm], bench=bench,
                       **kwargs)
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
