"""The GEMM of one layer of a real, quantized model through the RTL (``rf8hw cosim --layer``).

:func:`capture_layer` quantizes a model to RF8 on the bit-exact hardware path
(:mod:`rf8hw.nn.bitexact`), runs one real forward pass and, with a forward hook on the chosen
layer, takes the layer's input on its first call: the INT8 activations ``a [M, K]`` the array
would see (the layer's own quantization rule, :func:`rf8hw.nn.bitexact.quantize_activations`),
its RF8 codes ``[K, N]`` and the bit-exact path's integer accumulator ``acc [M, N]``
(:func:`rf8hw.nn.bitexact.rf8_gemm`).  The replay is checked against the layer's real output
(float32 equality), so the integers are the ones that forward pass used.

:func:`cosim_layer` streams that GEMM through the RTL (:func:`rf8hw.sim.run.run_gemm`; the scoreboard
compares every result row with the golden model) and compares the assembled ``[M, N]`` result
with ``acc``.  Both equalities are reported.

With ``out_bits`` (``rf8hw cosim --layer --accel``) the layer runs through the GEMM accelerator
instead (:func:`rf8hw.sim.accel_cosim.run_accel_cosim`, ``RF8AccelAxiTop``), post-processing
included: the captured input is quantized with one scale (the accelerator's commands take one per
column, so per-tensor), the layer's bit-exact path computes its INT8 or INT32 output as the
accelerator does (:meth:`rf8hw.nn.quant.QuantLinear.set_postprocess`,
:func:`rf8hw.nn.bitexact.accel_linear`), and the accelerator's output beats must equal those
integers, and the golden rule's (:func:`rf8hw.format.postproc.gemm`), entry for entry.

Models: the zoo models (``mlp_digits``, ``tinygpt``: a checkpoint written by ``rf8hw train``;
the forward pass is a batch of their own training data) and any model the estimate command
accepts through an adapter (``minilm``, ``smollm2``, ``package.module:function``; the forward
pass is the adapter's example).  Imports torch (on demand).  It lives in ``rf8hw.accel``, not
``rf8hw.sim``: the co-simulation stays below the PyTorch front end (docs/architecture.md, package
map).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from rf8hw import checks
from rf8hw.arch import ArrayConfig

if TYPE_CHECKING:
    from rf8hw.sim import CosimResult

__all__ = ["LayerResult", "AccelRun", "capture_layer", "check_accel_run", "cosim_layer", "MAX_LAYER_ROWS",
           "ZOO_BATCH", "ACCEL_MAX_M", "load_quantized", "build_key", "cached_build",
           "command_jobs", "assemble_output", "beats_off_schedule", "max_cycles_for",
           "default_engine", "accel_build"]

#: Most activation rows (tokens) of a captured layer input that are co-simulated.
MAX_LAYER_ROWS = 1 << 16

#: Accumulator-buffer depth (``AccelConfig.max_m``) of ``--accel`` runs: a layer with more rows
#: runs as several commands of at most this many rows.
ACCEL_MAX_M = 128


@dataclass(frozen=True)
class AccelRun:
    """A layer's GEMM through the accelerator (:func:`cosim_layer` with ``out_bits``).

    Attributes
    ----------
    acfg : rf8hw.arch.AccelConfig
    commands : int
        Commands sent (``ceil(M / acfg.max_m)``, each loading its rows).
    tiles, macs : int
        Array tiles (``kt * nt`` per command) and multiply-accumulates (``M * K * N``).
    mismatches : int
        Output entries that differ from the golden rule (:func:`rf8hw.format.postproc.gemm`);
        -1 when the simulation returned another number of result beats.
    cycle_mismatches : int or None
        Result beats taken at another cycle than :func:`rf8hw.accel.accel_cycles.accel_schedule`
        gives (only at full rate: no stalls; else None).
    err_cmd, err_w_tlast : int
        The accelerator's sticky error flags at the end (0 expected).
    cycles : int
    wall_s : float
        The simulation (build excluded).
    build_s : float or None
        The simulator build, None when reused from the cache.
    out_dir, log, result_json : pathlib.Path
    y : numpy.ndarray int64 [M, N] or None
        The accelerator's output, assembled.
    """

    acfg: object
    commands: int
    tiles: int
    macs: int
    mismatches: int
    cycle_mismatches: int | None
    err_cmd: int
    err_w_tlast: int
    cycles: int
    wall_s: float
    build_s: float | None
    out_dir: object
    log: object
    result_json: object
    y: np.ndarray | None

    @property
    def cycles_per_s(self) -> float:
        return self.cycles / self.wall_s if self.wall_s > 0 else 0.0

    @property
    def ok(self) -> bool:
        return (self.mismatches == 0 and not self.cycle_mismatches and not self.err_cmd
                and not self.err_w_tlast)

    def summary_line(self) -> str:
        """``tiles=T macs=N mismatches=E cycles=C cycles/s=R`` (as the array's runs)."""
        return (f"tiles={self.tiles} macs={self.macs} mismatches={self.mismatches} "
                f"cycles={self.cycles} cycles/s={self.cycles_per_s:.0f}")


@dataclass(frozen=True)
class LayerResult:
    """The GEMM of one model layer through the RTL (``rf8hw cosim --layer``,
    :func:`cosim_layer`).

    Attributes
    ----------
    layer : str
    cosim : rf8hw.sim.CosimResult or None
        The bare array's run (its one :class:`GemmResult` holds the assembled result);
        ``mismatches`` counts result rows against the golden model.  None for an accelerator run.
    replay_matches_layer : bool
        The replay of the layer from the captured integers equals its float32 output (with
        post-processing: also the post-processed layer's output equals the replay of its
        integers).
    bitexact_mismatches : int
        Entries of the assembled RTL result that differ from the bit-exact path's integers (the
        accumulator; with post-processing its INT8/INT32 output); -1 when not every tile or beat
        was seen.
    accel : AccelRun or None
        The accelerator's run (``out_bits`` given).
    shape : (M, K, N) or None
        The GEMM's shape (accelerator runs).
    out_bits : int or None
        The accelerator's output width (accelerator runs).
    """

    layer: str
    cosim: CosimResult | None
    replay_matches_layer: bool
    bitexact_mismatches: int
    accel: AccelRun | None = None
    shape: tuple[int, int, int] | None = None
    out_bits: int | None = None

    @property
    def gemm_shape(self) -> tuple[int, int, int]:
        return self.shape if self.cosim is None else self.cosim.gemms[0].gemm_shape

    @property
    def equals_bitexact(self) -> bool:
        return self.bitexact_mismatches == 0

    @property
    def ok(self) -> bool:
        """The golden model, the replay and the bit-exact integers all agree."""
        run = self.cosim if self.accel is None else self.accel
        return run.ok and self.replay_matches_layer and self.equals_bitexact


#: Inferences in a zoo model's forward pass when ``batch`` is not given.
ZOO_BATCH = 8


def load_quantized(model_name: str, checkpoint, batch: int | None):
    """``(model, run)``: the model, RF8-quantized as the estimate quantizes it, and a callable
    running its source's forward pass (:mod:`rf8hw.accel.source`: a zoo model's first ``batch``
    training inputs, an adapter's example)."""
    from rf8hw.accel import source as sources
    from rf8hw.accel.gemms import run_example
    from rf8hw.nn import quant

    spec = sources.resolve(model_name, checkpoint)
    if batch is not None:
        batch = checks.integer("batch", batch, 1, MAX_LAYER_ROWS)
    src = sources.load(spec, batch=(batch or ZOO_BATCH) if spec.is_zoo else batch)
    model = quant.quantize_(src.model, quant.QuantConfig(), warn=False, **src.quantize_options)
    return model, lambda m: run_example(m, src.example)


def capture_layer(model_name: str, layer: str, array: ArrayConfig, *, checkpoint=None,
                  batch: int | None = None, out_bits: int | None = None) -> dict:
    """The integer GEMM of ``layer`` in one real forward pass of the RF8 bit-exact model.

    Parameters
    ----------
    model_name : str
        ``mlp_digits`` / ``tinygpt`` (with ``checkpoint``), or an adapter name as
        ``rf8hw estimate --model`` takes it.
    layer : str
        The layer's module name; a wrong name is a ``ValueError`` listing the RF8 layers.
    array : ArrayConfig
        Its ``act_bits``, ``acc_bits`` and ``overflow`` are the bit-exact path's arithmetic.
    batch : int, optional
        Inferences in a zoo model's forward pass (default :data:`ZOO_BATCH`); an adapter brings
        its own example (giving ``batch`` is then an error).
    out_bits : {8, 32}, optional
        Also the layer with the accelerator's post-processing on the same input
        (:meth:`~rf8hw.nn.quant.QuantLinear.set_postprocess`): one activation scale for the
        whole input (per tensor), INT8 output at the scale of the bit-exact output's largest
        magnitude on this forward pass (a calibration on this input), or INT32.

    Returns
    -------
    dict
        ``layer``, ``a`` (int64 ``[M, K]``), ``codes`` (uint8 ``[K, N]``), ``acc`` (the bit-exact
        path's int64 ``[M, N]``), ``shape`` ``(M, K, N)`` and ``replay_matches_layer`` (the replay
        of the layer from these integers equals the layer's float32 output, element for element).
        With ``out_bits``, ``post``: :func:`rf8hw.nn.bitexact.accel_gemm`'s dict of the
        post-processed layer (``a`` its per-tensor INT8 input, ``y_int`` its output integers,
        ``bias``/``mult``/``shift`` the parameter stream, ``out_absmax``) with
        ``replay_matches_layer``: the post-processed layer's float32 output equals the one
        rebuilt from ``y_int``.
    """
    import torch

    from rf8hw.nn import bitexact, quant

    model, run = load_quantized(model_name, checkpoint, batch)
    quant.set_mode(model, "bitexact", array=array)
    layers = quant.rf8_layers(model)
    if layer not in layers:
        raise ValueError(f"layer {layer!r} is not an RF8 layer of {model_name}; its RF8 layers "
                         f"are: {', '.join(layers)}")
    q = layers[layer]
    seen = []

    def hook(module, args, output):
        if not seen:
            seen.append((args[0].detach(), output.detach()))

    handle = q.register_forward_hook(hook)
    try:
        with torch.no_grad():
            run(model)
    finally:
        handle.remove()
    if not seen:
        raise ValueError(f"layer {layer!r} of {model_name} was not called in the forward pass")
    x, out = seen[0]
    if q.smooth is not None:                   # QuantLinear.forward divides by it first (exact)
        x = x.float() / q.smooth
    x2 = x.reshape(-1, x.shape[-1]).to(torch.float32).cpu().numpy()
    if len(x2) > MAX_LAYER_ROWS:
        raise ValueError(f"layer {layer!r} saw {len(x2)} activation rows; at most "
                         f"{MAX_LAYER_ROWS} are co-simulated (lower the batch)")
    a, scale, _ = bitexact.quantize_activations(x2, array.act_bits, q.act_absmax,
                                                q.act_granularity)
    codes = q.codes.cpu().numpy()
    cs = None if q.channel_scale is None else q.channel_scale.detach().cpu().numpy()
    y, acc, _ = bitexact.rf8_gemm(a, scale, codes, q.exponent.cpu().numpy(), array,
                                  channel_scale=cs)
    replay = torch.from_numpy(y.astype(np.float32))
    if q.bias is not None:
        replay = replay + q.bias.detach().cpu().to(torch.float32)
    same = bool(torch.equal(replay, out.reshape(replay.shape).cpu().to(torch.float32)))
    got = {"layer": layer, "a": a, "codes": codes, "acc": acc, "shape": (*a.shape, codes.shape[1]),
           "replay_matches_layer": same}
    if out_bits is not None:
        got["post"] = _postprocessed(q, seen[0][0], x, out, out_bits)
    return got


def _postprocessed(q, x_in, x, out, out_bits: int) -> dict:
    """The layer ``q`` with the accelerator's post-processing on its captured input ``x_in``
    (``x``: after its smoothing), INT8 output scaled by its bit-exact output ``out``'s largest
    magnitude; :func:`rf8hw.nn.bitexact.accel_gemm`'s dict, the input ``a``, ``out_absmax`` and
    ``replay_matches_layer`` (the layer's forward equals ``y`` rebuilt from the integers)."""
    import torch

    from rf8hw.nn import bitexact

    out_absmax = float(out.abs().max()) if out_bits == 8 else None
    q.set_postprocess(out_bits, out_absmax)
    try:
        with torch.no_grad():
            y_layer = q(x_in)
        details = []
        w_f64, w_absmax = q._weight_int()
        bitexact.accel_linear(x, q.codes, q.exponent, q.bias, q.array, q.act_absmax, out_bits,
                              out_absmax, None, w_f64, w_absmax, q.channel_scale, details)
    finally:
        q.set_postprocess(None)
    post = details[0]
    y = torch.from_numpy(post["y"]).reshape(y_layer.shape)
    post["replay_matches_layer"] = bool(torch.equal(y, y_layer.cpu().to(torch.float32)))
    post["out_absmax"] = out_absmax
    return post


def check_accel_run(cfg: ArrayConfig, options, out_bits: int, what: str) -> None:
    """The options a run through the accelerator refuses, before any work (``what`` names the
    run in the waveform refusal): ``out_bits`` other than 8 or 32, waveforms, a bare array's
    ``--rtl``, an array the accelerator does not take."""
    from rf8hw.arch import AccelConfig

    if out_bits not in (8, 32) or isinstance(out_bits, bool):
        raise ValueError(f"out_bits must be 8 or 32, not {out_bits!r}")
    if options.waves:
        raise ValueError(f"waves: the accelerator's co-simulation records no waveform; leave it "
                         f"out with {what}")
    if options.rtl is not None:
        raise ValueError(f"rtl {options.rtl.verilog} is a bare array's Verilog; the accelerator "
                         f"run generates its own")
    AccelConfig(array=cfg, max_m=1, max_k=1, out_bits=out_bits)     # its array rules, early


def cosim_layer(model_name: str, layer: str, cfg: ArrayConfig, options, *, checkpoint=None,
                batch: int | None = None, captured: dict | None = None, progress=None,
                out_bits: int | None = None):
    """Co-simulate the GEMM of :func:`capture_layer` on the array ``cfg``.

    ``options``: the run's :class:`rf8hw.sim.options.CosimOptions` (simulator, bench, stalls,
    seed, ``out_dir``, cache, ...); without ``out_dir`` the run directory's name says
    ``layer-<model>-<layer>`` (:meth:`rf8hw.sim.options.CosimOptions.run_dir`).  ``captured``:
    the :func:`capture_layer` dict of the same arguments, if already taken (the benchmark times
    the RTL run apart from the model's loading and forward pass).  ``batch``: as
    :func:`capture_layer` (None: its default).  ``progress`` goes to
    :func:`rf8hw.sim.run.run_gemm`.  ``out_bits`` (8 or 32): through the accelerator
    ``AccelConfig(cfg, max_m=min(M, ACCEL_MAX_M), max_k=K, out_bits=out_bits)`` instead, its
    output compared with the post-processed bit-exact layer (module docstring; ``options``: its
    simulator, seed, ``stall_prob`` as the producers' idle probability, ``backpressure`` as the
    consumer's, ``out_dir``, ``cache_root``; its bench is the accelerator's own per-cycle cocotb
    test, ``waves`` is refused).  Needs ``cfg.overflow == "wrap"``: with a saturating
    accumulator the array's per-tile results, added by the host, are not the layer's one
    saturating sum over all of K (:mod:`rf8hw.nn.bitexact`, tiling note).

    Returns
    -------
    LayerResult
        The run (:func:`rf8hw.sim.run.run_gemm`'s :class:`~rf8hw.sim.result.CosimResult`:
        ``mismatches`` counts result rows against the golden model), ``replay_matches_layer``
        and ``bitexact_mismatches`` (entries of the assembled RTL result that differ from the
        bit-exact path's integers; -1 when not every tile was seen).
    """
    from rf8hw.sim.run import run_gemm

    if cfg.overflow != "wrap":
        raise ValueError(f"--layer compares the RTL with the bit-exact layer, which needs "
                         f"overflow 'wrap' (per-tile saturation is not the layer's), not "
                         f"{cfg.overflow!r}")
    if out_bits is not None:
        check_accel_run(cfg, options, out_bits, "accel")
    got = captured or capture_layer(model_name, layer, cfg, checkpoint=checkpoint,
                                    out_bits=out_bits,
                                    **({} if batch is None else {"batch": batch}))
    M, K, N = got["shape"]
    if out_bits is not None:
        run = _accel_run(got, cfg, options, out_bits, f"layer-{model_name}-{layer}", progress)
        post = got["post"]
        bad = -1 if run.y is None else int((run.y != post["y_int"]).sum())
        return LayerResult(layer, None, got["replay_matches_layer"] and post["replay_matches_layer"],
                           bad, accel=run, shape=(M, K, N), out_bits=out_bits)
    result = run_gemm(M, K, N, cfg, options, a=got["a"], codes=got["codes"],
                      label=f"layer-{model_name}-{layer}", progress=progress)
    gemm = result.gemms[0].gemm
    bad = -1 if gemm is None else int((gemm != got["acc"]).sum())
    return LayerResult(layer, result, got["replay_matches_layer"], bad)


def build_key(acfg, simulator: str) -> str:
    """The simulator build's cache key: the configuration, the simulator, the sources of
    :mod:`rf8hw.hdl` and the Amaranth version (any change rebuilds)."""
    import hashlib
    from dataclasses import asdict
    from importlib.metadata import version
    from pathlib import Path

    import rf8hw.hdl

    h = hashlib.sha256(repr((asdict(acfg), simulator, version("amaranth"))).encode())
    for path in sorted(Path(rf8hw.hdl.__file__).parent.glob("*.py")):
        h.update(path.name.encode() + b"\0" + path.read_bytes())
    return h.hexdigest()[:20]


def cached_build(acfg, options, run_dir, progress) -> float | None:
    """Put the simulator build of ``acfg`` at ``run_dir/build-<simulator>`` (a link into the
    cache, built there first if absent); the build's seconds, None when reused."""
    import os
    import shutil
    import tempfile
    import time
    from pathlib import Path

    from rf8hw.sim.accel_cosim import build_accel

    sim = options.simulator
    root = Path(options.cache_dir) / "accel"
    final = root / f"{acfg.module_name}-{sim}-{build_key(acfg, sim)}"
    built_s = None
    if not (final / "build.ok").is_file():
        if progress:
            progress(f"building {acfg.module_name} for {sim} (once; cached in {final})")
        root.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        tmp = Path(tempfile.mkdtemp(prefix=".build-", dir=root))
        try:
            build = build_accel(acfg, sim, tmp)
            try:
                os.replace(build, final)         # atomic; another run may have won the race
            except OSError:
                if not (final / "build.ok").is_file():
                    raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        built_s = time.perf_counter() - t0
    link = Path(run_dir) / f"build-{sim}"
    if link.is_symlink() or link.exists():
        if link.is_symlink() or link.is_file():
            link.unlink()
        else:
            shutil.rmtree(link)
    link.symlink_to(final, target_is_directory=True)
    return built_s


def _accel_run(got: dict, cfg: ArrayConfig, options, out_bits: int, label: str,
               progress) -> AccelRun:
    """The post-processed GEMM of ``got`` (:func:`capture_layer` with ``out_bits``) through the
    accelerator's Verilog; the assembled output and its comparisons."""
    import json
    import time

    from rf8hw.accel.accel_cycles import accel_schedule
    from rf8hw.arch import AccelConfig
    from rf8hw.files import write_files
    from rf8hw.sim.accel_cosim import run_accel_cosim

    post = got["post"]
    a, codes = post["a"], got["codes"]
    M, K, N = got["shape"]
    acfg = AccelConfig(array=cfg, max_m=min(M, ACCEL_MAX_M), max_k=K, out_bits=out_bits)
    options.check_run_dir()
    run_dir = options.run_dir(acfg.module_name, label)
    run_dir.mkdir(parents=True, exist_ok=True)
    engine = default_engine(options.simulator)
    built_s = accel_build(acfg, options, run_dir, engine, progress)
    chunks, jobs, commands = command_jobs(acfg, a, codes, post["bias"], post["mult"],
                                          post["shift"])
    schedule = accel_schedule(commands, acfg)
    full_rate = schedule[-1]["out_last"] + 1
    p = max(options.stall_prob, options.backpressure)
    max_cycles = max_cycles_for(full_rate, p)
    R, C = cfg.rows, cfg.cols
    kt, nt = -(-K // R), -(-N // C)
    if progress:
        progress(f"accelerator {acfg.module_name}: {len(jobs)} command(s), {kt * nt * len(jobs)} "
                 f"tiles, {full_rate} cycles at full rate; simulating")
    t0 = time.perf_counter()
    rec = run_accel_cosim(acfg, jobs, simulator=options.simulator, work_dir=run_dir,
                          seed=options.seed, p_idle=options.stall_prob,
                          p_out_stall=options.backpressure, max_cycles=max_cycles,
                          engine=engine, cache_dir=options.cache_dir)
    wall = time.perf_counter() - t0
    results, expected = rec["results"], np.concatenate([j.expected for j in jobs])
    y = None
    mismatches = -1
    if results.shape == expected.shape:
        mismatches = int((results != expected).sum())
        y = assemble_output(results, chunks, N, C)
    cycle_bad = beats_off_schedule(rec["out_cycles"], schedule) if p == 0 else None
    result_json = run_dir / "result.json"
    summary = {"layer": got["layer"], "gemm": [M, K, N], "module": acfg.module_name,
               "accel_config": {"max_m": acfg.max_m, "max_k": acfg.max_k,
                                "act_depth": acfg.act_depth, "out_bits": acfg.out_bits,
                                "array": cfg.as_dict()},
               "simulator": options.simulator, "seed": options.seed,
               "stall_prob": options.stall_prob, "backpressure_prob": options.backpressure,
               "commands": len(jobs), "tiles": kt * nt * len(jobs), "macs": M * K * N,
               "mismatches_golden": mismatches, "cycle_mismatches": cycle_bad,
               "cycles": rec["cycles"], "full_rate_cycles": full_rate, "wall_s": wall,
               "build_s": built_s, "err_cmd": rec["err_cmd"], "err_w_tlast": rec["err_w_tlast"],
               "at_output_limit": int((np.abs(post["y_int"]) >= (1 << (out_bits - 1)) - 1).sum()),
               "act_scale": post["act_scale"], "out_scale": post["out_scale"],
               "out_absmax": post["out_absmax"]}
    write_files({result_json: json.dumps(summary, indent=2) + "\n"})
    return AccelRun(acfg, len(jobs), kt * nt * len(jobs), M * K * N, mismatches, cycle_bad,
                    rec["err_cmd"], rec["err_w_tlast"], rec["cycles"], wall, built_s, run_dir,
                    run_dir / f"job-{options.seed}.log", result_json, y)


def command_jobs(acfg, a, codes, bias, mult, shift):
    """A GEMM ``a [M, K] @ codes [K, N]`` with its parameter stream as accelerator commands of
    at most ``acfg.max_m`` rows, each loading its rows (``act_base = 0``): ``(chunks, jobs,
    commands)``, ``chunks`` the ``(m0, m1)`` row ranges, ``jobs`` their
    :class:`rf8hw.sim.accel_stimulus.AccelJob` (expected results by the golden rule
    :func:`rf8hw.format.postproc.gemm`), ``commands`` the ``(M, K, N, load)`` tuples
    :func:`rf8hw.accel.accel_cycles.accel_schedule` takes."""
    from rf8hw.sim.accel_stimulus import accel_job

    M, K = a.shape
    N = codes.shape[1]
    chunks = [(m, min(M, m + acfg.max_m)) for m in range(0, M, acfg.max_m)]
    jobs = [accel_job(acfg, a[m0:m1], codes, bias, mult, shift) for m0, m1 in chunks]
    return chunks, jobs, [(m1 - m0, K, N, 1) for m0, m1 in chunks]


def assemble_output(results: np.ndarray, chunks, N: int, cols: int) -> np.ndarray:
    """The ``[M, N]`` output of :func:`command_jobs`' commands from their result beats in stream
    order (per command: N tile outer, row inner; ``cols`` values per beat, padding dropped)."""
    M = chunks[-1][1]
    nt = -(-N // cols)
    y = np.zeros((M, nt * cols), np.int64)
    row = 0
    for m0, m1 in chunks:
        for j in range(nt):
            y[m0:m1, j * cols:(j + 1) * cols] = results[row:row + m1 - m0]
            row += m1 - m0
    return y[:, :N]


def beats_off_schedule(out_cycles, schedule) -> int:
    """Result beats taken at another cycle than the schedule's
    (:func:`rf8hw.accel.accel_cycles.accel_schedule`), plus the beats missing or extra."""
    want = [c for s in schedule for c in s["out"]]
    got = list(out_cycles)
    return sum(x != w for x, w in zip(got, want)) + abs(len(got) - len(want))


def max_cycles_for(full_rate: int, p: float) -> int:
    """The simulation's cycle limit for a program of ``full_rate`` cycles at full rate with
    stall probability ``p``: ``(2 * full_rate + 10,000) / (1 - p)^2``."""
    return int((2 * full_rate + 10_000) / (1 - p) ** 2)


def default_engine(simulator: str) -> str:
    """:func:`rf8hw.sim.accel_cosim.run_accel_cosim`'s engine for ``simulator``: ``lib`` (the
    Verilated model in a shared library) on Verilator, ``cocotb`` on Icarus."""
    return "lib" if simulator == "verilator" else "cocotb"


def accel_build(acfg, options, run_dir, engine: str, progress=None) -> float | None:
    """The simulator build of ``acfg`` for ``engine``, timed apart from the GEMMs: the cocotb
    engine's cached build (:func:`cached_build`; None when reused), or for the library engine
    (built into ``options.cache_dir`` on its first run, keyed by content) a run of one 1 x 1 x 1
    command, whose seconds are the build's (about a second when the library is cached)."""
    import time

    from rf8hw.sim.accel_cosim import run_accel_cosim
    from rf8hw.sim.accel_stimulus import accel_job

    if engine == "cocotb":
        return cached_build(acfg, options, run_dir, progress)
    if progress:
        progress(f"building (or loading from the cache) the {engine} engine's "
                 f"{acfg.module_name}")
    t0 = time.perf_counter()
    job = accel_job(acfg, np.ones((1, 1), np.int64), np.zeros((1, 1), np.uint8), 0, 1, 0)
    run_accel_cosim(acfg, [job], simulator=options.simulator, work_dir=run_dir,
                    max_cycles=10_000, engine=engine, cache_dir=options.cache_dir)
    return time.perf_counter() - t0
