"""The proofs rf8hw runs, their configuration and the cached runner behind ``rf8hw prove`` and
``tests/formal``.

:func:`properties` lists every task (:class:`Task`): the product + overflow proof of every PE
kind of the registry, the equivalence of every RF8 kind with ``RF8PE`` and the AXI4-Stream
protocol of the top for the configured shapes.  :func:`run_task` runs one under SymbiYosys
(:mod:`rf8hw.formal.sby`), cached content-addressed like synthesis
(:func:`rf8hw.toolchain.cache.source_key` over the RTL sources plus this package, the task's
parameters and the tool versions; entry ``<cache>/formal/<key>/``, holding the work directory,
its logs, any trace, and ``result.json``).  Widths and depths: :class:`ProveConfig`.
"""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

from rf8hw import checks
from rf8hw.arch import DEFAULT_PE, MAX_DIM, PE_KINDS, AccelConfig, ArrayConfig
from rf8hw.files import write_atomic
from rf8hw.formal import sby
from rf8hw.format import spec
from rf8hw.toolchain import cache

__all__ = ["ProveConfig", "Task", "TaskResult", "properties", "build", "run_task", "prove",
           "CACHE_KIND", "mutant_tasks", "mutant_failed", "run_all"]

#: Base-case depth of the product mutants: one more than the last cycle before the checks
#: start (cycle 2 + L), so a mutant fails in the base case with a real trace.  The product
#: *proofs* run at k = 2 + L (:data:`rf8hw.formal.pe_checks.READY_CYCLES`, 3 or 4): the
#: induction step checks cycle k given k earlier cycles, enough to load and switch the weight
#: and fill a product register from any state; their base case then ends before the checks
#: start, which k-induction does not need (the mutants show the checks fail).  Measured (int8,
#: a4, load 10-12): k = 5 took 21 s of CPU, k = 3 11 s.
PRODUCT_DEPTH = 5

#: From this activation width on, each product proof is split by the code's top
#: :data:`CODE_SPLIT_BITS` bits into ``2**CODE_SPLIT_BITS`` tasks that together cover all 256
#: codes (one free code per task, ``Assume``d into its group).  At a8 one unsplit proof did not
#: finish in 8 minutes; a 16-code group takes seconds (``docs/verification.md``).
CODE_SPLIT_FROM = 6
CODE_SPLIT_BITS = 4

#: Shapes whose generated Verilog (full widths) the combinational-path check reads besides
#: ``ProveConfig.shapes``: the shipped default size.
PATH_SHAPES = ("8x8",)

#: The accelerator top's port proofs (``accel_ports_*``): shape -> (acc_bits, max_k), the
#: narrowest accumulator at a2 whose exact-sum bound allows ``max_k`` (``AccelConfig``), and
#: ``max_m`` (:data:`ACCEL_MAX_M`), a buffer of one largest command.
ACCEL_SHAPES = {"1x1": (21, 1), "2x2": (22, 2)}
ACCEL_MAX_M = 2

#: Base-case depth of the mutants whose bug needs more cycles to show than the proofs' k: a
#: stage register reached through a stall (``rf8_pipe``), a 2x2 array that must fill before a
#: result is offered, the accelerator's first result beat behind its post-processing pipeline
#: (at 12 the out-hold mutant stayed UNKNOWN once the pipeline had 9 stages).  Measured: at k = 4
#: their proofs fail only in the induction step (UNKNOWN, a trace from an arbitrary state); at
#: these depths from reset (FAIL, a real trace).
MUTANT_DEPTH = {"equivalence": 6, "protocol": 10, "accel_protocol": 24}

#: Cache kind (:func:`rf8hw.toolchain.cache.cache_root`).
CACHE_KIND = "formal"


@dataclass(frozen=True)
class ProveConfig:
    """What ``rf8hw prove`` proves.  Validated on construction (one-line ``ValueError``)."""

    pe_act_bits: int = field(default=4, metadata={
        "help": "activation width of the PE product and equivalence proofs (8 takes the solver "
                "many minutes: docs/verification.md)"})
    shapes: tuple = field(default=("1x1", "2x2", "2x3", "3x2", "3x3"), metadata={
        "help": "array shapes ROWSxCOLS of the AXI4-Stream protocol proofs", "item": str})
    protocol_pes: tuple = field(default=("rf8", DEFAULT_PE), metadata={
        "help": "PE kinds of the arrays in the protocol and combinational-path proofs (default: "
                "the reference and the default kind)", "item": str, "choices": tuple(PE_KINDS)})
    only: tuple = field(default=(), metadata={
        "help": "run only the tasks whose name contains one of these words (default: all)",
        "item": str})
    depth: int = field(default=4, metadata={
        "help": "k of the k-induction (and base-case depth) of the equivalence and protocol "
                "proofs; the product proofs use 2 + their product latency (3 or 4)"})
    jobs: int = field(default=2, metadata={"help": "tasks run in parallel"})
    cache: bool = field(default=True, metadata={"help": "reuse cached verdicts"})

    def __post_init__(self):
        checks.integer("pe_act_bits", self.pe_act_bits, spec.ACT_BITS_MIN, spec.ACT_BITS_MAX)
        object.__setattr__(self, "shapes", tuple(self.shapes))
        for s in self.shapes:
            _shape(s)
        object.__setattr__(self, "protocol_pes", tuple(dict.fromkeys(self.protocol_pes)))
        if not self.protocol_pes:
            raise ValueError("protocol_pes needs at least one PE kind")
        for pe in self.protocol_pes:
            checks.choice("protocol_pes", pe, tuple(PE_KINDS))
        object.__setattr__(self, "only", tuple(self.only))
        checks.integer("depth", self.depth, 2, 30)
        checks.integer("jobs", self.jobs, 1, 64)


def _shape(text) -> tuple[int, int]:
    parts = str(text).lower().split("x")
    if len(parts) != 2 or not all(p.isdigit() for p in parts):
        raise ValueError(f"shape must be ROWSxCOLS such as 2x3, not {text!r}")
    rows, cols = (checks.integer(n, int(p), 1, MAX_DIM) for n, p in zip(("rows", "cols"), parts))
    return rows, cols


@dataclass(frozen=True)
class Task:
    """One SymbiYosys task: a harness (``family`` + ``params``), its mode and depth."""

    name: str
    family: str          #: "product", "equivalence", "protocol", "accel_protocol" or "comb_path"
    params: dict
    mode: str = "prove"
    depth: int = 4
    mutant: str | None = None   #: a mutant of :mod:`rf8hw.formal.mutants` in place of the design

    def key(self) -> str:
        """The cache key: sources, this package, parameters, tool versions."""
        formal = sorted(p.relative_to(cache.package_root()).as_posix()
                        for p in (cache.package_root() / "formal").glob("*.py"))
        meta = {"task": asdict(self), "tools": sby.tool_versions()}
        return cache.source_key(meta, formal)


@dataclass(frozen=True)
class TaskResult:
    """A task's verdict (``PASS``: proved; ``FAIL``: counterexample at ``trace``)."""

    task: Task
    status: str
    seconds: float        #: wall time of this call (a cache hit takes milliseconds)
    sby_seconds: float
    workdir: str
    trace: str | None
    failed_step: str | None
    cached: bool


def _pe_acc(act_bits: int) -> int:
    return spec.min_acc_bits(act_bits)


def properties(config: ProveConfig = ProveConfig()) -> list[Task]:
    """Every task of ``config``, in report order (products, equivalences, protocol)."""
    from rf8hw.formal.pe_checks import EQUIVALENCE_KINDS, READY_CYCLES
    from rf8hw.formal.protocol import PROPERTIES

    b = config.pe_act_bits
    groups = [None] if b < CODE_SPLIT_FROM else list(range(1 << CODE_SPLIT_BITS))
    span = 256 >> CODE_SPLIT_BITS
    tasks = [Task(f"product_{kind}_a{b}_acc{_pe_acc(b)}"
                  + ("" if g is None else f"_codes{g * span:02x}-{g * span + span - 1:02x}"),
                  "product", {"kind": kind, "act_bits": b, "acc_bits": _pe_acc(b)}
                  | ({} if g is None else {"code_high": g, "code_high_bits": CODE_SPLIT_BITS}),
                  depth=READY_CYCLES[PE_KINDS[kind].product_latency])
             for kind in PE_KINDS for g in groups]
    tasks += [Task(f"equivalence_{kind}_{ov}_a{b}_acc{_pe_acc(b)}", "equivalence",
                   {"kind": kind, "act_bits": b, "acc_bits": _pe_acc(b), "overflow": ov},
                   depth=config.depth)
              for kind in EQUIVALENCE_KINDS for ov in spec.OVERFLOW_MODES]
    for pe in config.protocol_pes:
        for text in config.shapes:
            rows, cols = _shape(text)
            tasks.append(Task(f"protocol_{pe}_{rows}x{cols}_a2_acc21", "protocol",
                              {"rows": rows, "cols": cols, "act_bits": 2, "acc_bits": 21,
                               "pe": pe, "properties": list(PROPERTIES)}, depth=config.depth))
    for pe in config.protocol_pes:
        for text, (acc, max_k) in ACCEL_SHAPES.items():
            rows, cols = _shape(text)
            tasks.append(Task(f"accel_ports_{pe}_{text}_a2_acc{acc}_m{ACCEL_MAX_M}_k{max_k}",
                              "accel_protocol", _accel_params(rows, cols, acc, max_k, pe),
                              depth=config.depth))
    for pe in config.protocol_pes:
        for text in dict.fromkeys((*config.shapes, *PATH_SHAPES)):
            rows, cols = _shape(text)
            cfg = ArrayConfig(rows, cols, pe=pe)          # full default widths
            tasks.append(Task(f"no_comb_path_{pe}_{rows}x{cols}_a{cfg.act_bits}_acc{cfg.acc_bits}",
                              "comb_path", {"rows": rows, "cols": cols, "act_bits": cfg.act_bits,
                                            "acc_bits": cfg.acc_bits, "pe": pe},
                              mode="structure", depth=0))
    return _only(tasks, config.only, [t.name for t, _ in mutant_tasks(config)])


def _accel_params(rows, cols, acc_bits, max_k, pe, properties=None) -> dict:
    from rf8hw.formal.protocol import ACCEL_PROPERTIES

    return {"rows": rows, "cols": cols, "act_bits": 2, "acc_bits": acc_bits, "max_m": ACCEL_MAX_M,
            "max_k": max_k, "pe": pe, "properties": list(properties or ACCEL_PROPERTIES)}


def _only(tasks, words, other_names=()):
    """The tasks whose name contains one of ``words`` (all when there are none); a word in no
    task name (nor in ``other_names``: the mutants') is refused, never an empty run."""
    if not words:
        return tasks
    names = [t.name for t in tasks] + list(other_names)
    unmatched = [w for w in words if not any(w in n for n in names)]
    if unmatched:
        raise ValueError(f"only: no task name contains {', '.join(map(repr, unmatched))} "
                         "(rf8hw prove --list names them)")
    return [t for t in tasks if any(w in t.name for w in words)]


def mutant_failed(result: TaskResult) -> bool:
    """A mutant's proof failed as it must: a counterexample from the initial state (``FAIL``), or
    an induction step that fails (``UNKNOWN``, ``failed_step`` ``induction``: the base case was
    too shallow to reach the bug, and the mutant is not proved), each with its trace."""
    return bool(result.trace) and (result.status == "FAIL" or (
        result.status == "UNKNOWN" and result.failed_step == "induction"))


def build(task: Task):
    """The harness of ``task`` (:class:`rf8hw.formal.harness.Harness`)."""
    from rf8hw.formal import mutants, pe_checks, protocol

    p = dict(task.params)
    if task.family == "product":
        pe_class = getattr(mutants, task.mutant) if task.mutant else None
        group = (p["code_high"], p["code_high_bits"]) if "code_high" in p else None
        return pe_checks.product_harness(p["kind"], p["act_bits"], p["acc_bits"], pe_class=pe_class,
                                         code_group=group)
    if task.family == "equivalence":
        pe_class = getattr(mutants, task.mutant) if task.mutant else None
        return pe_checks.equivalence_harness(p["kind"], p["act_bits"], p["acc_bits"],
                                             p["overflow"], pe_class=pe_class)
    if task.family == "protocol":
        cfg = ArrayConfig(p["rows"], p["cols"], p["act_bits"], p["acc_bits"], pe=p["pe"])
        kwargs = {"top_class": mutants.mutant_axi_top(task.mutant)} if task.mutant else {}
        return protocol.protocol_harness(cfg, tuple(p["properties"]), **kwargs)
    if task.family == "accel_protocol":
        acfg = AccelConfig(ArrayConfig(p["rows"], p["cols"], p["act_bits"], p["acc_bits"], pe=p["pe"]),
                           max_m=p["max_m"], max_k=p["max_k"])
        return protocol.accel_protocol_harness(acfg, tuple(p["properties"]), mutation=task.mutant)
    raise ValueError("task family must be product, equivalence, protocol or accel_protocol, not "
                     f"{task.family!r}")


def _run_comb_path(task: Task, entry: Path) -> sby.Verdict:
    """The structural check of a ``comb_path`` task on the generated Verilog of its array (the
    mutant: with the path injected); a path found is written to ``path.txt`` (its trace)."""
    from rf8hw.formal import comb_paths
    from rf8hw.hdl.generate import render

    p = task.params
    cfg = ArrayConfig(p["rows"], p["cols"], p["act_bits"], p["acc_bits"], pe=p["pe"])
    verilog, _ = render(cfg)
    if task.mutant:
        verilog = comb_paths.inject_tready_path(verilog)
    entry.mkdir(parents=True, exist_ok=True)
    (entry / "top.v").write_text(verilog)
    t0 = time.monotonic()
    module = comb_paths.netlist(entry / "top.v", cfg.module_name, entry / "yosys")
    path = comb_paths.find_comb_path(module, comb_paths.SOURCE, comb_paths.SINKS)
    seconds = round(time.monotonic() - t0, 2)
    if path is None:
        return sby.Verdict("PASS", seconds)
    (entry / "path.txt").write_text("\n".join(path) + "\n")
    return sby.Verdict("FAIL", seconds, trace="path.txt", failed_step="structure")


def run_task(task: Task, use_cache: bool = True, root=None) -> TaskResult:
    """Run ``task`` (or return its cached verdict) in ``<root>/<key>`` (default root: the
    ``formal`` cache, :func:`rf8hw.toolchain.cache.cache_root`)."""
    from rf8hw.formal.harness import to_rtlil

    t0 = time.monotonic()
    entry = Path(root if root is not None else cache.cache_root(CACHE_KIND)) / task.key()
    with cache.locked(entry):
        result_file = entry / "result.json"
        if use_cache and result_file.is_file():
            try:
                saved = json.loads(result_file.read_text())
                return TaskResult(task, saved["status"], round(time.monotonic() - t0, 2),
                                  saved["sby_seconds"], str(entry), saved["trace"],
                                  saved["failed_step"], cached=True)
            except (ValueError, KeyError):
                pass                                   # unreadable: run again
        result_file.unlink(missing_ok=True)
        if task.family == "comb_path":
            verdict = _run_comb_path(task, entry)
        else:
            verdict = sby.run_sby(to_rtlil(build(task)), entry, task.mode, task.depth)
        traces = entry if task.family == "comb_path" else entry / "task"
        trace = None if verdict.trace is None else str(traces / verdict.trace)
        write_atomic(result_file, json.dumps({
            "task": asdict(task), "status": verdict.status, "sby_seconds": verdict.seconds,
            "trace": trace, "failed_step": verdict.failed_step,
            "seconds": round(time.monotonic() - t0, 2)}, indent=2) + "\n")
        return TaskResult(task, verdict.status, round(time.monotonic() - t0, 2), verdict.seconds,
                          str(entry), trace, verdict.failed_step, cached=False)


def prove(config: ProveConfig = ProveConfig(), progress=None, root=None) -> list[TaskResult]:
    """Run every task of ``config`` (``config.jobs`` at a time); ``progress(result)`` after each;
    ``root``: the cache root (default the user's ``formal`` cache)."""
    return run_all(properties(config), config.cache, config.jobs, progress, root)


def mutant_tasks(config: ProveConfig = ProveConfig(), select: bool = False) -> list[tuple[Task, str]]:
    """One mutant per property, as ``(task, what the mutant breaks)``; each must fail
    (:func:`mutant_failed`).  Shapes and widths are the smallest of ``config``'s; ``select``:
    only those named by ``config.only``."""
    from rf8hw.formal.mutants import AXI_MUTATIONS

    b = config.pe_act_bits
    acc = _pe_acc(b)
    pe = {"act_bits": b, "acc_bits": acc}
    d = config.depth
    out = [
        (Task("mutant_product_rf8", "product", {"kind": "rf8", **pe}, depth=PRODUCT_DEPTH,
              mutant="ResidualSignFlippedPE"), "product (residual add/subtract mux flipped)"),
        (Task("mutant_product_int8_pipe", "product", {"kind": "int8_pipe", **pe}, depth=PRODUCT_DEPTH,
              mutant="UnregisteredInt8PipePE"), "product latency (product register dropped)"),
        (Task("mutant_overflow_rf8", "product", {"kind": "rf8", **pe}, depth=PRODUCT_DEPTH,
              mutant="SaturateLimitsSwappedPE"), "overflow rule (saturation limit mux flipped)"),
        (Task("mutant_equivalence_rf8_signlate", "equivalence",
              {"kind": "rf8_signlate", "overflow": "wrap", **pe}, depth=d,
              mutant="SignCarryDroppedPE"), "equivalence (sign carry-in dropped)"),
        (Task("mutant_equivalence_rf8_pipe", "equivalence",
              {"kind": "rf8_pipe", "overflow": "wrap", **pe}, depth=max(d, MUTANT_DEPTH["equivalence"]),
              mutant="StageIgnoresCePE"), "equivalence (stage register's enable dropped)"),
    ]
    out.append((Task("mutant_no_comb_path_2x2", "comb_path",
                     {"rows": 2, "cols": 2, "act_bits": 8, "acc_bits": 40, "pe": config.protocol_pes[0]},
                     mode="structure", depth=0, mutant="tready_path"),
                "no combinational path (m_axis_acc_tready ANDed into s_axis_a_tready)"))
    for prop, what in AXI_MUTATIONS.items():
        out.append((Task(f"mutant_protocol_{prop}", "protocol",
                         {"rows": 2, "cols": 2, "act_bits": 2, "acc_bits": 21,
                          "pe": config.protocol_pes[0], "properties": [prop]},
                         depth=max(d, MUTANT_DEPTH["protocol"]), mutant=prop),
                    f"{prop} ({what})"))
    from rf8hw.formal.protocol import ACCEL_MUTATIONS

    for prop, what in ACCEL_MUTATIONS.items():
        acc, max_k = ACCEL_SHAPES["1x1"]
        out.append((Task(f"mutant_{prop}", "accel_protocol",
                         _accel_params(1, 1, acc, max_k, config.protocol_pes[0], [prop]),
                         depth=max(d, MUTANT_DEPTH["accel_protocol"]), mutant=prop),
                    f"{prop} ({what})"))
    if select and config.only:
        out = [(t, w) for t, w in out if any(word in t.name for word in config.only)]
    return out


def run_all(tasks, use_cache: bool = True, jobs: int = 2, progress=None, root=None) -> list[TaskResult]:
    """:func:`run_task` on each of ``tasks``, ``jobs`` at a time, in order (``root``: as
    :func:`run_task`).  An exception (a failed run, Ctrl-C, ``rf8hw prove``'s SIGTERM handler)
    ends the tools still running, with their process trees (:func:`rf8hw.formal.sby.stop_all`),
    and cancels the tasks not started before it propagates."""
    def one(task):
        r = run_task(task, use_cache=use_cache, root=root)
        if progress is not None:
            progress(r)
        return r

    pool = ThreadPoolExecutor(max_workers=jobs)
    try:
        return list(pool.map(one, tasks))
    except BaseException:
        pool.shutdown(wait=False, cancel_futures=True)
        sby.stop_all()
        raise
    finally:
        pool.shutdown(wait=True)
        sby.allow_runs()
