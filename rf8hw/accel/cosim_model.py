"""A whole model's forward pass with every RF8 GEMM through the simulated accelerator
(``rf8hw cosim --model M`` without ``--layer``).

**The rule** (``docs/accelerator.md``, "A whole model through the RTL").  Every RF8
``QuantLinear`` of the model runs as the accelerator computes it
(:meth:`rf8hw.nn.quant.QuantLinear.set_postprocess`, :func:`rf8hw.nn.bitexact.accel_linear`):
its input quantized with **one** activation scale per call (its static ``act_absmax``, else per
tensor, ``max|x|`` of the call: a command takes one scale, so per-token scales are not used),
the exact integer sums, then the post-processing rule (:mod:`rf8hw.format.postproc`: bias in
accumulator units, 16-bit multiplier, rounding shift, saturation) to INT8 or INT32; the layer's
float output is :func:`rf8hw.nn.bitexact.accel_output` of those integers.  INT8 needs each
layer's output clipping level: a calibration pass on the same example with INT32 output (the
exact ``acc + bias`` dequantized) takes ``max|y|`` of each layer over the pass (as ``cosim
--layer --accel`` calibrates one layer on its own output).  Everything else (embeddings,
attention products ``Q K^T`` and ``P V``, softmax, norms, activations, residual adds, layers that
are not RF8, e.g. a tied ``lm_head``) stays in PyTorch, in float32, and the report lists it.

:func:`cosim_model` runs the example twice on that rule: the **reference pass** on the bit-exact
PyTorch path alone (its output, every RF8 call's shape, the ops that run in PyTorch), then the
**RTL pass**: each RF8 layer's forward is replaced (for the pass) by one that computes the
call's INT8 input and parameter stream on the rule above, streams the GEMM (its INT8 input,
codes, bias/mult/shift; rows beyond ``max_m`` as further commands) through the accelerator's
Verilog (:func:`rf8hw.sim.accel_cosim.run_accel_cosim`) and **returns the output built from the
RTL's integers**, so later layers consume what the RTL produced.  Consecutive calls on the same
INT8 input (Q, K and V; found in the reference pass) run as one simulation: the first command
loads the input, the others read it from the activation buffer (``load = 0``).  Checked: per
call, the
bit-exact layer on the RTL pass's input against the reference pass's output of the same call,
the RTL's integers against the golden rule (:func:`rf8hw.format.postproc.gemm`) and against the
bit-exact layer on the same input, result beats against the cycle model
(:func:`rf8hw.accel.accel_cycles.accel_schedule`, at full rate); at the end, the RTL pass's
outputs equal the reference pass's (``torch.equal`` on every output tensor).

**Resumable.**  Each call's simulation is stored under ``<cache>/model-gemms/`` (``.npz`` of the
result beats and handshake cycles plus ``.json``, written atomically, the ``.json`` last) under a
SHA-256 of everything that feeds it: model, checkpoint, layer, accelerator configuration,
simulator and engine, seed and stall probabilities, the RTL's build key
(:func:`rf8hw.accel.cosim_layer.build_key`: ``rf8hw/hdl`` sources and Amaranth version) and the
bytes of the INT8 input, codes and parameter stream.  A rerun (after a kill) recomputes the
PyTorch passes and takes every stored call from the store: nothing finished is simulated again.
"""

from __future__ import annotations

import hashlib
import io
import json
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from rf8hw.arch import ArrayConfig

__all__ = ["GemmCall", "ModelRun", "GemmStore", "gemm_key", "cosim_model", "model_outputs",
           "STORE_FORMAT"]

#: Version of the stored per-GEMM records (part of every key).
STORE_FORMAT = 2

#: torch functions that only move or view data: not listed among the ops run in PyTorch.
_MOVES = frozenset(
    "view reshape transpose permute contiguous __getitem__ __setitem__ to float double half "
    "bfloat16 type_as expand expand_as unsqueeze squeeze chunk split narrow flatten clone detach "
    "cat stack size dim __get__ __len__ unbind masked_fill_ copy_ cpu cuda t repeat "
    "repeat_interleave new_zeros new_ones zeros ones arange full ones_like zeros_like "
    "index_select gather select movedim unflatten tolist item long int bool".split())


@dataclass
class GemmCall:
    """One RF8 layer call of the forward pass through the accelerator (a row of the report).

    ``cycles``: the simulated cycle of the last result beat plus one; ``model_cycles``: the
    cycle model's (``accel_schedule``, ``out_last + 1``); ``beats_off_model``: result beats at
    another cycle than the model's (None with stalls); ``golden_mismatches`` /
    ``bitexact_mismatches``: output integers that differ from the golden rule / from the
    bit-exact layer (-1: the simulation returned another number of beats);
    ``load``: 0 when the call reused the previous call's input from the accelerator's
    activation buffer (``shared_with`` calls, e.g. Q, K and V, ran as one simulation of one
    command each; their cycles are each command's share: from the previous command's last result
    beat to its own); ``replay_matches_layer``: the bit-exact layer on this call's input (in the
    RTL pass) equals
    the reference pass's output of the same call (``torch.equal``); ``wall_s``: the
    simulation (0 when ``reused`` from the store); ``bitexact_s``, ``stimulus_s``, ``schedule_s``:
    host time of the call's bit-exact layer, its stream beats and golden results
    (:func:`rf8hw.accel.cosim_layer.command_jobs`) and its cycle model."""

    index: int
    layer: str
    call: int
    shape: tuple[int, int, int]
    commands: int
    macs: int
    cycles: int = 0
    model_cycles: int = 0
    sim_cycles: int = 0
    beats_off_model: int | None = None
    golden_mismatches: int = -1
    bitexact_mismatches: int = -1
    replay_matches_layer: bool = False
    err_cmd: int = 0
    err_w_tlast: int = 0
    wall_s: float = 0.0
    reused: bool = False
    key: str = ""
    bitexact_s: float = 0.0
    stimulus_s: float = 0.0
    schedule_s: float = 0.0
    load: int = 1
    shared_with: int = 1

    @property
    def ok(self) -> bool:
        return (self.golden_mismatches == 0 and self.bitexact_mismatches == 0
                and self.replay_matches_layer and not self.beats_off_model and not self.err_cmd
                and not self.err_w_tlast and (self.beats_off_model is None
                                              or self.cycles == self.model_cycles))

    def as_dict(self) -> dict:
        d = asdict(self)
        d["shape"] = list(self.shape)
        return d


@dataclass
class ModelRun:
    """The result of :func:`cosim_model`.

    ``outputs_equal``: every output tensor of the RTL pass equals the reference pass's
    (``torch.equal``); ``output_values``: how many values were compared.  ``pytorch_gemms``:
    the matrix products that ran in PyTorch (``name``, ``op``, ``M``, ``K``, ``N``, ``count``,
    ``macs``); ``pytorch_ops``: the other torch functions by name, with their call counts.
    ``totals``: sums over ``gemms`` and ``wall_s`` of the RTL pass's simulations."""

    model: str
    acfg: object
    out_bits: int
    gemms: list[GemmCall]
    outputs_equal: bool
    output_values: int
    pytorch_gemms: list[dict]
    pytorch_ops: dict
    out_absmax: dict
    build_s: float | None
    wall_s: float
    result_json: Path
    run_dir: Path
    totals: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.outputs_equal and bool(self.gemms) and all(g.ok for g in self.gemms)

    def summary_line(self) -> str:
        t = self.totals
        return (f"gemms={t['gemms']} macs={t['macs']} mismatches={t['golden_mismatches']} "
                f"bitexact_mismatches={t['bitexact_mismatches']} cycles={t['cycles']} "
                f"model_cycles={t['model_cycles']} outputs_equal={self.outputs_equal} "
                f"cycles/s={t['cycles_per_s']:.0f}")


class GemmStore:
    """Finished GEMM simulations by key (:func:`gemm_key`): ``<root>/<key>.npz`` (the result
    beats and handshake cycles) and ``<root>/<key>.json`` (the scalars), written as one unit
    (:func:`rf8hw.files.write_files`, the ``.json`` renamed last: a ``.json`` means both are
    whole).  Loaded without pickle."""

    ARRAYS = ("results", "out_cycles", "cmd_cycles", "a_cycles")

    def __init__(self, root):
        self.root = Path(root)

    def _paths(self, key: str):
        return self.root / f"{key}.npz", self.root / f"{key}.json"

    def get(self, key: str) -> dict | None:
        npz, meta = self._paths(key)
        if not meta.is_file() or not npz.is_file():
            return None
        rec = json.loads(meta.read_text())
        with np.load(npz, allow_pickle=False) as z:
            for name in self.ARRAYS:
                rec[name] = z[name]
        return rec

    def put(self, key: str, rec: dict, extra: dict) -> None:
        from rf8hw.files import write_files

        self.root.mkdir(parents=True, exist_ok=True)
        buf = io.BytesIO()
        np.savez(buf, **{n: np.asarray(rec[n], dtype=np.int64) for n in self.ARRAYS})
        scalars = {k: v for k, v in rec.items() if k not in self.ARRAYS
                   and isinstance(v, (int, float, str, bool, type(None)))}
        npz, meta = self._paths(key)
        write_files({npz: buf.getvalue(),
                     meta: json.dumps({**scalars, **extra}, indent=1, sort_keys=True) + "\n"})


def gemm_key(header: dict, *arrays) -> str:
    """SHA-256 (hex) of ``header`` (JSON, sorted keys) and the bytes, dtype and shape of each
    array: the store key of one GEMM's simulation."""
    h = hashlib.sha256(json.dumps(header, sort_keys=True, default=str).encode())
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(f"|{a.dtype.str}{a.shape}|".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def model_outputs(out) -> list:
    """The tensors of a forward pass's output, in a fixed order: a tensor, a (nested) tuple /
    list, or a dict / Hugging Face ``ModelOutput`` (its values, by key order)."""
    import torch

    if isinstance(out, torch.Tensor):
        return [out]
    if isinstance(out, dict):
        return [t for v in out.values() for t in model_outputs(v)]
    if isinstance(out, (tuple, list)):
        return [t for v in out for t in model_outputs(v)]
    return []


def _op_counter(layers: dict):
    """A ``TorchFunctionMode`` counting the torch functions called outside the RF8 layers
    (``counts``: name -> calls), with the forward hooks that mark those layers; data movement
    (:data:`_MOVES`) is not counted.  Returns ``(mode, hooks)``."""
    from torch.overrides import TorchFunctionMode

    class OpCounter(TorchFunctionMode):
        def __init__(self):
            super().__init__()
            self.counts: Counter = Counter()
            self.inside = 0

        def __torch_function__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            name = getattr(func, "__name__", str(func))
            if not self.inside and name not in _MOVES and getattr(out, "is_floating_point",
                                                                    lambda: False)():
                self.counts[name] += 1
            return out

    mode = OpCounter()

    def pre(m, args):
        mode.inside += 1

    def post(m, args, out):
        mode.inside -= 1

    hooks = [h for q in layers.values() for h in (q.register_forward_pre_hook(pre),
                                                  q.register_forward_hook(post))]
    return mode, hooks


def _calibrate_int8(model, run, layers: dict) -> dict:
    """INT8 output clipping levels: ``max|y|`` of each RF8 layer over one pass with INT32
    output (every layer set to it here); layers not called keep none."""
    import torch

    seen: dict = {}

    def hook(name):
        def f(m, args, out):
            v = float(out.detach().abs().max()) if out.numel() else 0.0
            seen[name] = max(seen.get(name, 0.0), v)
        return f

    for q in layers.values():
        q.set_postprocess(32)
    hooks = [q.register_forward_hook(hook(n)) for n, q in layers.items()]
    try:
        with torch.no_grad():
            run(model)
    finally:
        for h in hooks:
            h.remove()
    return seen


def _default_simulate(acfg, jobs, work_dir, options, max_cycles, engine):
    from rf8hw.sim.accel_cosim import run_accel_cosim

    return run_accel_cosim(acfg, jobs, simulator=options.simulator, work_dir=work_dir,
                           seed=options.seed, p_idle=options.stall_prob,
                           p_out_stall=options.backpressure, max_cycles=max_cycles,
                           engine=engine, cache_dir=options.cache_dir)


def cosim_model(model_name: str, cfg: ArrayConfig, options, *, checkpoint=None,
                batch: int | None = None, out_bits: int = 8, progress=None, bar: bool = True,
                engine: str | None = None, simulate=None, store_root=None,
                rtl_key: str | None = None, share_inputs: bool = True) -> ModelRun:
    """Run the model's example with every RF8 GEMM through the accelerator (module docstring).

    Parameters
    ----------
    model_name, checkpoint, batch
        As :func:`rf8hw.accel.cosim_layer.capture_layer` (zoo model with its checkpoint and
        batch, or an adapter).
    cfg : ArrayConfig
        The array (``overflow`` must be ``"wrap"``, ``acc_bits <= 46``); the accelerator is
        ``AccelConfig(cfg, max_m=min(rows of the largest call, ACCEL_MAX_M), max_k=largest K,
        out_bits=out_bits)``, one Verilog build for every call.
    options : rf8hw.sim.options.CosimOptions
        Simulator, seed, ``stall_prob`` (producers' idle probability), ``backpressure``
        (consumer's), ``out_dir`` (the run directory; default a new one under ``cosim_runs``),
        ``cache_dir`` (builds, and the GEMM store ``model-gemms/``).
    out_bits : {8, 32}
    progress : callable(str), optional
        Status lines.
    bar : bool
        A tqdm progress bar over the GEMMs (on stderr).
    engine : {"lib", "cocotb"}, optional
        ``run_accel_cosim``'s engine (None: its default, ``lib`` on Verilator, ``cocotb`` on
        Icarus).
    simulate : callable, optional
        ``simulate(acfg, jobs, work_dir, options, max_cycles, engine) -> dict`` in place of the
        simulator (``run_accel_cosim``'s return dict); for tests of the orchestration.
    store_root : path, optional
        The GEMM store (default ``options.cache_dir / "model-gemms"``).
    rtl_key : str, optional
        The RTL's key in the store keys (default :func:`rf8hw.accel.cosim_layer.build_key`).

    Returns
    -------
    ModelRun
    """
    import torch

    from rf8hw import checks
    from rf8hw.accel import gemms as gemm_capture
    from rf8hw.accel.accel_cycles import accel_schedule
    from rf8hw.accel.cosim_layer import (
        ACCEL_MAX_M,
        accel_build,
        assemble_output,
        beats_off_schedule,
        build_key,
        check_accel_run,
        command_jobs,
        default_engine,
        load_quantized,
        max_cycles_for,
    )
    from rf8hw.arch import AccelConfig
    from rf8hw.files import write_files
    from rf8hw.format import postproc
    from rf8hw.nn import bitexact, quant
    from rf8hw.sim.accel_stimulus import accel_job

    t_start = time.perf_counter()
    if cfg.overflow != "wrap":
        raise ValueError(f"a model through the accelerator needs overflow 'wrap' (its sums are "
                         f"exact, K <= max_k), not {cfg.overflow!r}")
    check_accel_run(cfg, options, out_bits, "a whole model")
    say = progress or (lambda line: None)

    model, run = load_quantized(model_name, checkpoint, batch)
    quant.set_mode(model, "bitexact", array=cfg)
    layers = quant.rf8_layers(model)

    # 1. the rule: every RF8 layer with the accelerator's post-processing
    out_absmax: dict = {}
    if out_bits == 8:
        say("calibrating the INT8 output levels (one pass, INT32 output)")
        out_absmax = _calibrate_int8(model, run, layers)
        for name, q in layers.items():
            q.set_postprocess(8, out_absmax.get(name, 0.0))
    else:
        for q in layers.values():
            q.set_postprocess(32)

    # 2. the reference pass: bit-exact PyTorch alone; the RF8 calls and the ops left in PyTorch
    say("reference pass (bit-exact PyTorch path)")
    plan: list[tuple[str, int, int, int]] = []
    name_of = {id(q): n for n, q in layers.items()}

    layer_outputs: list = []

    digests: list = []

    def record(m, args, out):
        x = args[0]
        plan.append((name_of[id(m)], x.numel() // x.shape[-1], m.in_features, m.out_features))
        layer_outputs.append(out.detach().clone())
        xs = x.float() / m.smooth if m.smooth is not None else x
        a, scale, _ = bitexact.quantize_activations(
            xs.detach().reshape(-1, xs.shape[-1]).to(torch.float32).cpu().numpy(), cfg.act_bits,
            m.act_absmax, "tensor")
        digests.append(gemm_key({"act_scale": float(scale)}, a))

    held: list = []
    hooks = [q.register_forward_hook(record) for q in layers.values()]
    counter, count_hooks = _op_counter(layers)
    try:
        with counter:
            captured = gemm_capture.capture(model, lambda m: held.append(run(m)))
    finally:
        for h in hooks + count_hooks:
            h.remove()
    reference = [t.detach().clone() for t in model_outputs(held[0])]
    if not plan:
        raise ValueError(f"the example of {model_name} called none of its RF8 layers")
    pytorch_gemms = [{"name": g.name, "op": g.op, "M": g.M, "K": g.K, "N": g.N, "count": g.count,
                      "macs": g.macs} for g in captured if g.name not in layers]
    max_k_rule = postproc.max_k(cfg.act_bits, cfg.acc_bits)
    K_max = max(k for _, _, k, _ in plan)
    checks.integer("K", K_max, 1, min(65535, max_k_rule),
                   f" for the accelerator's exact sums (act_bits={cfg.act_bits}, "
                   f"acc_bits={cfg.acc_bits})")
    acfg = AccelConfig(array=cfg, max_m=min(max(m for _, m, _, _ in plan), ACCEL_MAX_M),
                       max_k=K_max, out_bits=out_bits)

    # 3. the build (cached) and the store
    options.check_run_dir()
    run_dir = options.run_dir(acfg.module_name, f"model-{model_name}")
    run_dir.mkdir(parents=True, exist_ok=True)
    built_s = None
    engine = default_engine(options.simulator) if engine is None else engine
    if simulate is None:
        built_s = accel_build(acfg, options, run_dir, engine, say)
        simulate = _default_simulate
    store = GemmStore(store_root or Path(options.cache_dir) / "model-gemms")
    rtl = rtl_key or build_key(acfg, options.simulator)
    p = max(options.stall_prob, options.backpressure)
    header = {"format": STORE_FORMAT, "model": model_name,
              "checkpoint": None if checkpoint is None else str(Path(checkpoint).resolve()),
              "accel": asdict(acfg), "simulator": options.simulator, "engine": engine,
              "seed": options.seed, "p_idle": options.stall_prob,
              "p_out_stall": options.backpressure, "rtl": rtl}

    # 4. the RTL pass: each RF8 layer's output replaced by the accelerator's
    calls: list[GemmCall] = []
    per_layer = Counter()
    heads: dict[int, list[int]] = {}               # consecutive calls on one INT8 input
    i = 0
    while i < len(plan):
        j = i + 1
        while (share_inputs and j < len(plan) and digests[j] == digests[i]
               and plan[j][2] == plan[i][2] and plan[i][1] <= acfg.max_m):
            j += 1
        heads[i] = list(range(i, j))
        i = j
    pending: dict[int, dict] = {}                  # call index -> its share of a simulation
    say(f"RTL pass: {len(plan)} GEMM(s) through {acfg.module_name} ({options.simulator}, "
        f"engine {engine})")
    tqdm_bar = None
    if bar:
        from tqdm import tqdm

        tqdm_bar = tqdm(total=len(plan), desc="GEMMs through the RTL", unit="gemm")

    def bitexact_call(q, x):
        if q.smooth is not None:                   # as QuantLinear.forward: divide first
            x = x.float() / q.smooth
        details: list = []
        y = bitexact.accel_linear(x, q.codes, q.exponent, q.bias, q.array, q.act_absmax,
                                  q.out_bits, q.out_absmax, None, channel_scale=q.channel_scale,
                                  details=details)
        return y, details[0]

    def simulate_unit(members, a):
        """One simulation of the calls ``members`` ((name, layer, details) on the INT8 input
        ``a``): one call's commands of at most max_m rows, or one command per call, the first
        loading ``a``, the others reusing it from the activation buffer (load = 0).  Returns
        each call's share: result beats, expected beats, cycles, timing."""
        t0 = time.perf_counter()
        jobs, commands, spans, chunks = [], [], [], None
        for t, (_, qm, dm) in enumerate(members):
            codes_m = qm.codes.cpu().numpy()
            if len(members) == 1:
                chunks, js, cmds = command_jobs(acfg, a, codes_m, dm["bias"], dm["mult"],
                                                dm["shift"])
            else:
                js = [accel_job(acfg, a, codes_m, dm["bias"], dm["mult"], dm["shift"],
                                load=int(t == 0))]
                cmds = [(a.shape[0], a.shape[1], codes_m.shape[1], int(t == 0))]
            spans.append((len(jobs), len(jobs) + len(js)))
            jobs += js
            commands += cmds
        t1 = time.perf_counter()
        schedule = accel_schedule(commands, acfg)
        t2 = time.perf_counter()
        key = gemm_key({**header, "layers": [n for n, _, _ in members]}, a.astype(np.int8),
                       *[x for _, qm, dm in members for x in (
                           qm.codes.cpu().numpy(), dm["bias"], dm["mult"], dm["shift"])],
                       np.asarray(commands, np.int64))
        rec = store.get(key)
        reused = rec is not None
        if rec is None:
            ts = time.perf_counter()
            rec = simulate(acfg, jobs, run_dir, options,
                           max_cycles_for(schedule[-1]["out_last"] + 1, p), engine)
            rec["wall_s"] = time.perf_counter() - ts
            store.put(key, rec, {"layers": [n for n, _, _ in members], "shape": list(a.shape)})
        results = np.asarray(rec["results"], np.int64).reshape(-1, acfg.array.cols)
        out_cycles = np.asarray(rec["out_cycles"], np.int64).reshape(-1).tolist()
        sizes = [sum(len(jobs[c].expected) for c in range(c0, c1)) for c0, c1 in spans]
        whole = results.shape[0] == sum(sizes)
        total = schedule[-1]["out_last"] + 1
        parts, beat, prev_model, prev_sim = [], 0, 0, 0
        for t, ((c0, c1), size) in enumerate(zip(spans, sizes)):
            last = t == len(spans) - 1
            model_end = schedule[c1 - 1]["out_last"] + 1
            sim_end = (int(out_cycles[beat + size - 1]) + 1 if whole and size
                       else (int(out_cycles[-1]) + 1 if out_cycles and last else prev_sim))
            part = {"members": len(members), "load": commands[c0][3], "head": t == 0,
                    "a": a, "d": members[t][2], "key": key, "reused": reused,
                    "commands": c1 - c0, "chunks": chunks if len(members) == 1 else
                    [(0, a.shape[0])],
                    "expected": np.concatenate([jobs[c].expected for c in range(c0, c1)]),
                    "results": results[beat:beat + size] if whole else None,
                    "model_cycles": model_end - prev_model, "cycles": sim_end - prev_sim,
                    "sim_cycles": (int(rec["cycles"]) if last else sim_end) - prev_sim,
                    "beats_off": (beats_off_schedule(out_cycles[beat:beat + size] if whole
                                                     else out_cycles, schedule[c0:c1])
                                  if p == 0 else None),
                    "err": (int(rec["err_cmd"]), int(rec["err_w_tlast"])),
                    "wall_s": 0.0 if reused else float(rec["wall_s"]) * (model_end - prev_model)
                    / total,
                    "stimulus_s": (t1 - t0) if t == 0 else 0.0,
                    "schedule_s": (t2 - t1) if t == 0 else 0.0}
            parts.append(part)
            beat, prev_model, prev_sim = beat + size, model_end, sim_end
        return parts

    def through_rtl(q, name):
        def forward(x_in):
            t_be = time.perf_counter()
            y_layer, d = bitexact_call(q, x_in)
            t_bx = time.perf_counter() - t_be
            dtype = x_in.dtype if x_in.dtype.is_floating_point else torch.float32
            shape = (*x_in.shape[:-1], q.out_features)
            a, codes = d["a"], q.codes.cpu().numpy()
            M, K = a.shape
            N = codes.shape[1]
            i = len(calls)
            call = GemmCall(i, name, per_layer[name], (M, K, N), 0, M * K * N)
            per_layer[name] += 1
            in_plan = i < len(plan) and plan[i][0] == name
            call.replay_matches_layer = in_plan and bool(
                torch.equal(y_layer.reshape(shape).to(dtype), layer_outputs[i]))
            part = pending.pop(i, None)
            if part is not None and not (np.array_equal(part["a"], a) and all(
                    np.array_equal(part["d"][k], d[k]) for k in ("bias", "mult", "shift"))):
                part = None                        # not the input the group was run on
            if part is None:
                members = [(name, q, d)]
                for j in (heads.get(i, [i]) if in_plan else [i])[1:]:
                    qj = layers[plan[j][0]]
                    t0 = time.perf_counter()
                    _, dj = bitexact_call(qj, x_in)
                    t_bx += time.perf_counter() - t0
                    if not (np.array_equal(dj["a"], a) and dj["act_scale"] == d["act_scale"]):
                        break
                    members.append((plan[j][0], qj, dj))
                parts = simulate_unit(members, a)
                part = parts[0]
                for t, other in enumerate(parts[1:], 1):
                    pending[i + t] = other
            call.bitexact_s = t_bx
            call.key, call.reused, call.commands = part["key"], part["reused"], part["commands"]
            call.load = part["load"]
            call.shared_with = part["members"]
            call.stimulus_s, call.schedule_s = part["stimulus_s"], part["schedule_s"]
            call.model_cycles, call.cycles = part["model_cycles"], part["cycles"]
            call.sim_cycles, call.wall_s = part["sim_cycles"], part["wall_s"]
            call.err_cmd, call.err_w_tlast = part["err"]
            if part["beats_off"] is not None:
                call.beats_off_model = int(part["beats_off"])
            results, expected = part["results"], part["expected"]
            if results is not None and results.shape == expected.shape:
                call.golden_mismatches = int((results != expected).sum())
                y_int = assemble_output(results, part["chunks"], N, acfg.array.cols)
                call.bitexact_mismatches = int((y_int != d["y_int"]).sum())
            else:                                  # no output to pass on: the run fails
                y_int = np.zeros((M, N), np.int64)
            calls.append(call)
            if tqdm_bar is not None:
                tqdm_bar.update(1)
            y = bitexact.accel_output(y_int, q.exponent.cpu().numpy(), d["act_scale"],
                                      d["out_scale"], q.out_bits,
                                      None if q.channel_scale is None
                                      else q.channel_scale.detach().cpu().numpy())
            return torch.from_numpy(y).reshape(shape).to(dtype).to(x_in.device)
        return forward

    for n, q in layers.items():                    # the layer's forward, replaced
        q.forward = through_rtl(q, n)
    t_rtl = time.perf_counter()
    try:
        with torch.no_grad():
            got = model_outputs(run(model))
    finally:
        for q in layers.values():
            del q.forward
        if tqdm_bar is not None:
            tqdm_bar.close()
    rtl_wall = time.perf_counter() - t_rtl
    equal = len(got) == len(reference) and all(
        a.shape == b.shape and a.dtype == b.dtype and bool(torch.equal(a, b))
        for a, b in zip(got, reference))
    n_values = sum(t.numel() for t in reference)
    if [(c.layer, *c.shape) for c in calls] != [(n, m, k, nn) for n, m, k, nn in plan]:
        equal = False                              # another sequence of calls than the reference

    sim_wall = sum(c.wall_s for c in calls)
    cycles = sum(c.cycles for c in calls)
    simulated = [c for c in calls if not c.reused]
    sim_cycles_new = sum(c.sim_cycles for c in simulated)
    totals = {"gemms": len(calls), "simulated": len(simulated), "reused": len(calls) - len(simulated),
              "macs": sum(c.macs for c in calls), "cycles": cycles,
              "model_cycles": sum(c.model_cycles for c in calls),
              "sim_cycles": sum(c.sim_cycles for c in calls),
              "beats_off_model": None if p else sum(c.beats_off_model for c in calls),
              "golden_mismatches": sum(abs(c.golden_mismatches) for c in calls),
              "bitexact_mismatches": sum(abs(c.bitexact_mismatches) for c in calls),
              "outputs_checked": sum(c.shape[0] * c.shape[2] for c in calls),
              "sim_wall_s": sim_wall, "rtl_pass_wall_s": rtl_wall,
              "bitexact_s": sum(c.bitexact_s for c in calls),
              "stimulus_s": sum(c.stimulus_s for c in calls),
              "schedule_s": sum(c.schedule_s for c in calls),
              "cycles_per_s": sim_cycles_new / sim_wall if sim_wall > 0 else 0.0,
              "pytorch_macs": sum(g["macs"] for g in pytorch_gemms)}
    result_json = run_dir / "result.json"
    result = ModelRun(model_name, acfg, out_bits, calls, equal, n_values, pytorch_gemms,
                      dict(sorted(counter.counts.items())), out_absmax, built_s,
                      time.perf_counter() - t_start, result_json, run_dir, totals)
    summary = {"model": model_name, "checkpoint": header["checkpoint"], "module": acfg.module_name,
               "accel_config": {"max_m": acfg.max_m, "max_k": acfg.max_k,
                                "act_depth": acfg.act_depth, "out_bits": out_bits,
                                "array": cfg.as_dict()},
               "simulator": options.simulator, "engine": engine, "seed": options.seed,
               "stall_prob": options.stall_prob, "backpressure_prob": options.backpressure,
               "rule": "accel_post_processing_per_tensor_act_scale",
               "outputs_equal": equal, "output_values": n_values, "build_s": built_s,
               "wall_s": result.wall_s, "totals": totals, "gemms": [c.as_dict() for c in calls],
               "pytorch_gemms": pytorch_gemms, "pytorch_ops": result.pytorch_ops,
               "out_absmax": out_absmax, "ok": result.ok, "summary": result.summary_line()}
    write_files({result_json: json.dumps(summary, indent=2) + "\n"})
    return result
