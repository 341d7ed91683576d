"""Design-space exploration: ``rf8hw sweep`` over PE kinds, array sizes, accumulator widths,
numerics and devices for one model, to a Pareto front (``docs/dse.md``).

The grid is factorised; each factor is computed once, as a Ray task, and cached content-addressed:

* **accuracy** depends on the numerics only: the PE kind's weight format (RF8 on the bit-exact
  path with the point's ``act_bits``, ``acc_bits``, ``overflow``, RF8 rounding and activation
  scheme; INT8 / FP8-E4M3 as the estimate's weight-only fake-quant baselines, which have no
  bit-exact path, so their accumulator does not enter) -- :func:`rf8hw.accel.estimate.estimate`
  for a zoo checkpoint, :func:`rf8hw.accel.estimate.estimate_adapter` otherwise, without
  synthesis.  Cached in ``<cache>/accuracy/<key>.json``, the key covering the parameters, the
  checkpoint's bytes, the model's sources, the numerics sources and the package versions;
* **synthesis** depends on the hardware only (PE kind, rows, cols, act/acc bits, overflow,
  device, seed): :func:`rf8hw.accel.estimate.cached_synthesis`, the toolchain's synthesis cache.
  A design nextpnr cannot place is recorded ``fits: false`` with its utilisation, in
  ``<cache>/nofit/<key>.json`` under the same key, so a rerun does not place it again;
* **cycles** depend on the GEMM shapes (returned by the accuracy factor) and the array: the cycle
  model (:func:`rf8hw.accel.cycles.model_cycles`), computed in the driver, never cached.

A killed sweep resumes from the caches: a rerun submits only the factors that have no entry, and
starts no Ray instance when none is missing.  Tables and plots: :mod:`rf8hw.accel.dse_report`.
"""

from __future__ import annotations

import importlib.util
import json
import os
import socket
import sys
import time
import traceback
from dataclasses import asdict, dataclass
from pathlib import Path

from rf8hw import checks
from rf8hw.accel.estimate import (BUILTIN_ADAPTERS, MODELS, REPORT_PACKAGES, cached_synthesis,
                                  default_synth_cache, load_adapter, synth_cache_key)
from rf8hw.accel.dse_report import pareto_front, pick_best, summarize, write_outputs
from rf8hw.accel.synth import DoesNotFitError, check_device, check_seed
from rf8hw.files import sha256_file, write_atomic
from rf8hw.format import spec
from rf8hw.arch import ArrayConfig
from rf8hw.arch import PE_KINDS
from rf8hw.toolchain import cache

__all__ = ["ACT_SCHEMES", "SweepConfig", "accuracy_key", "accuracy_factor", "synthesis_factor",
           "pareto_front", "pick_best", "sweep", "default_cache"]

#: Activation schemes of the bit-exact path of an adapter model: per-token or per-tensor dynamic
#: INT8 activation scales (``act_granularity``).  A zoo checkpoint has one scheme.
ACT_SCHEMES = ("token", "tensor")
#: Accuracy report key of a non-RF8 weight format (the estimate's weight-only baseline).
FORMAT_BASELINE = {"int8": "int8", "fp8_e4m3": "fp8_e4m3"}
#: Sources of ``rf8hw/`` (besides format/ and hdl/, which every source key covers) whose text
#: shapes an accuracy result.
ACCURACY_FILES = ("accel/dse.py", "accel/estimate.py", "accel/gemms.py", "accel/cycles.py", "nn")


def default_cache() -> Path:
    """``$XDG_CACHE_HOME/rf8hw/dse`` (``~/.cache/rf8hw/dse`` when the variable is unset)."""
    return cache.cache_root("dse")


def _tuple(name, values, check):
    values = (values,) if isinstance(values, (str, int)) else tuple(values)
    if not values:
        raise ValueError(f"{name} must name at least one value")
    return tuple(dict.fromkeys(check(v) for v in values))


@dataclass(frozen=True)
class SweepConfig:
    """One sweep: the grid and how to run it (validated once, here).

    The grid is the product of ``pes x rows x cols x acc_bits x devices`` and, for the RF8 kinds,
    ``roundings x acts`` (numerics that change accuracy only; the INT8 and FP8 kinds have neither).
    ``acts`` other than ``token`` need an adapter model (a zoo checkpoint has one activation
    scheme, the estimate's).
    """

    model: str
    checkpoint: str | None = None
    devices: tuple = ("ecp5-25k",)
    pes: tuple = ("rf8_pipe",)
    rows: tuple = (8,)
    cols: tuple = (8,)
    acc_bits: tuple = (40,)
    roundings: tuple = ("nearest",)
    acts: tuple = ("token",)
    act_bits: int = 8
    overflow: str = "wrap"
    batch: int = 1
    seed: int = 1
    synth_cache: str | None = None
    cache: str | None = None
    address: str | None = None
    num_cpus: int | None = None
    max_luts: int | None = None
    min_accuracy: float | None = None

    def __post_init__(self):
        zoo = self.model in MODELS
        if not isinstance(self.model, str) or not (zoo or self.model in BUILTIN_ADAPTERS or ":" in self.model):
            raise ValueError(f"model must be one of {', '.join(MODELS + tuple(BUILTIN_ADAPTERS))} or "
                             f"package.module:function, not {self.model!r}")
        if zoo and self.checkpoint is None:
            raise ValueError(f"checkpoint is required for the zoo model {self.model!r} "
                             "(a model.safetensors written by rf8hw train)")
        if not zoo and self.checkpoint is not None:
            raise ValueError(f"checkpoint is for the zoo models ({', '.join(MODELS)}); the adapter "
                             f"{self.model!r} loads its own model")
        if not zoo:
            load_adapter(self.model)                # a bad adapter name fails before anything runs
        fields_ = {
            "devices": lambda v: check_device(v).name,
            "pes": lambda v: checks.choice("pe", v, tuple(PE_KINDS)),
            "rows": lambda v: ArrayConfig(rows=v).rows, "cols": lambda v: ArrayConfig(cols=v).cols,
            "acc_bits": lambda v: spec.check_mac(self.act_bits, v, self.overflow)[1],
            "roundings": lambda v: checks.choice("rounding", v, spec.ROUNDING_MODES),
            "acts": lambda v: checks.choice("act", v, ACT_SCHEMES),
        }
        for name, check in fields_.items():
            object.__setattr__(self, name, _tuple(name, getattr(self, name), check))
        if zoo and self.acts != ("token",):
            raise ValueError(f"act {self.acts!r}: a zoo checkpoint has one activation scheme "
                             "(per-call absmax); per-token/per-tensor is for adapter models")
        if not zoo and self.batch != 1:
            raise ValueError("batch is for the zoo models; an adapter's example sets its own batch")
        checks.integer("batch", self.batch, 1)
        check_seed(self.seed)
        if self.num_cpus is not None:
            checks.integer("num_cpus", self.num_cpus, 1)
        if self.max_luts is not None:
            checks.integer("max_luts", self.max_luts, 1)
        if self.min_accuracy is not None:
            checks.number("min_accuracy", self.min_accuracy, -1e300, 1e300)
        if zoo:                         # last: the grid's errors come before the file is read
            from rf8hw.nn.checkpoint import load_checkpoint

            _, meta = load_checkpoint(self.checkpoint)
            if meta.get("model") != self.model:
                raise ValueError(f"checkpoint {self.checkpoint!r} holds a {meta.get('model')!r} model, "
                                 f"not {self.model!r}")

    def points(self) -> list[dict]:
        """Every design point of the grid, in a fixed order (device, pe, rows, cols, acc, numerics)."""
        out = []
        for device in self.devices:
            for pe in self.pes:
                rf8 = PE_KINDS[pe].is_rf8
                for r in self.rows:
                    for c in self.cols:
                        for acc in self.acc_bits:
                            for rnd in self.roundings if rf8 else (None,):
                                for act in self.acts if rf8 else (None,):
                                    out.append({"device": device, "pe": pe, "rows": r, "cols": c,
                                                "acc_bits": acc, "rounding": rnd, "act": act})
        return out

    def array(self, p: dict) -> ArrayConfig:
        return ArrayConfig(p["rows"], p["cols"], act_bits=self.act_bits, acc_bits=p["acc_bits"],
                           overflow=self.overflow, pe=p["pe"])

    def numerics(self, p: dict) -> dict:
        """The accuracy factor of point ``p``: what its accuracy depends on, nothing else."""
        fmt = PE_KINDS[p["pe"]].weight_format
        if fmt != "rf8":
            return {"format": fmt}
        return {"format": "rf8", "rounding": p["rounding"], "act": p["act"], "act_bits": self.act_bits,
                "acc_bits": p["acc_bits"], "overflow": self.overflow}

    def as_dict(self) -> dict:
        return asdict(self)


# ------------------------------------------------------------------------------------ factors

def _model_files(model: str) -> list[Path]:
    """Sources of the model: the whole ``models`` package (zoo and built-in adapters: code and
    shipped data), or the adapter's module file."""
    if model in MODELS or model in BUILTIN_ADAPTERS:
        from rf8hw import zoo

        root = Path(zoo.__file__).resolve().parent
        return sorted(p for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts)
    spec_ = importlib.util.find_spec(BUILTIN_ADAPTERS.get(model, model).partition(":")[0])
    origin = Path(spec_.origin) if spec_ is not None and spec_.origin else None
    return [origin] if origin is not None and origin.is_file() else []      # not "frozen", "built-in"


def accuracy_key(cfg: SweepConfig, numerics: dict) -> str:
    """Content address of one accuracy factor: ``numerics``, the model (name, checkpoint bytes,
    batch), every source that shapes the number (format/, hdl/, nn/, the estimate, GEMM capture
    and cycle modules, the model's files) and the versions of :data:`REPORT_PACKAGES`."""
    root = cache.package_root()
    extra = []
    for rel in ACCURACY_FILES:
        p = root / rel
        extra += sorted(p.rglob("*.py")) if p.is_dir() else [p]
    params = {"kind": "accuracy", "model": cfg.model, "batch": cfg.batch, "numerics": numerics,
              "checkpoint_sha256": None if cfg.checkpoint is None else sha256_file(cfg.checkpoint)}
    return cache.source_key(params, extra + _model_files(cfg.model), packages=REPORT_PACKAGES)


def _node() -> dict:
    node = None
    try:
        import ray

        if ray.is_initialized():
            node = ray.get_runtime_context().get_node_id()
    except ImportError:
        pass
    return {"node_id": node, "host": socket.gethostname(), "pid": os.getpid()}


def accuracy_factor(model: str, checkpoint, batch: int, numerics: dict) -> dict:
    """Accuracy of one numerics factor (no synthesis): ``metric``, ``higher_is_better``,
    ``accuracy``, ``fp32`` (zoo models, where the estimate measures it anyway; None for an
    adapter, whose metric is its own reference), ``path`` (``bitexact`` or ``weight-only
    fake-quant``), ``overflow_events``, ``acc_bits_needed``, ``gemms`` (the GEMMs of one forward
    pass, for the cycle model), ``batch``, ``versions``."""
    from rf8hw.accel import estimate as est

    t0 = time.time()
    rf8 = numerics["format"] == "rf8"
    array = ArrayConfig(1, 1, act_bits=numerics["act_bits"], acc_bits=numerics["acc_bits"],
                        overflow=numerics["overflow"]) if rf8 else ArrayConfig(1, 1)
    if model in MODELS:
        key = "rf8_bitexact" if rf8 else FORMAT_BASELINE[numerics["format"]]
        rep = est.estimate(est.EstimateConfig(model=model, checkpoint=str(checkpoint), array=array,
                                              batch=batch, rounding=numerics.get("rounding") or "nearest",
                                              synth=False), progress=False)
        accuracy, fp32, overflow = rep["accuracy"][key], rep["accuracy"]["fp32"], rep["overflow"] if rf8 else None
        metric, higher, gemms = rep["metric"], rep["higher_is_better"], rep["cycles"]["layers"]
        batch = rep["config"]["batch"]
    else:
        from rf8hw.accel import gemms as gemm_capture

        net, example, fn, info = est.adapter_parts(model)
        net.eval()
        metrics, overflow = est.format_metrics(net, fn, numerics["format"], array,
                                               rounding=numerics.get("rounding") or "nearest",
                                               act_granularity=numerics["act"] if rf8 else None)
        metric = getattr(fn, "name", next(iter(metrics)))
        metric = metric if metric in metrics else next(iter(metrics))
        accuracy, fp32, higher = metrics[metric], None, bool(getattr(fn, "higher_is_better", True))
        gemms = [asdict(g) for g in gemm_capture.capture(net, example)]
        batch = info.get("batch", 1)
    total = (overflow or {}).get("total", {})
    return {"metric": metric, "higher_is_better": higher, "accuracy": accuracy, "fp32": fp32,
            "path": "bitexact" if rf8 else "weight-only fake-quant",
            "overflow_events": total.get("events") if rf8 else None,
            "acc_bits_needed": total.get("acc_bits_needed") if rf8 else None, "batch": batch,
            "gemms": [{k: g[k] for k in ("name", "M", "K", "N", "on_array", "count")} for g in gemms],
            "versions": est.report_versions(), "seconds": round(time.time() - t0, 1), **_node()}


def synthesis_factor(array_dict: dict, device: str, seed: int, synth_cache: str) -> dict:
    """:func:`cached_synthesis` of one array; a design that does not fit is a result
    (``fits: false`` with nextpnr's utilisation), not an error."""
    t0 = time.time()
    array = ArrayConfig.from_dict(array_dict)
    try:
        res, cached = cached_synthesis(array, device, seed, cache_dir=synth_cache, quiet=True)
    except DoesNotFitError as exc:
        return {"fits": False, "utilisation": exc.utilisation, "error": str(exc).splitlines()[0],
                "cached": False, "seconds": round(time.time() - t0, 1), **_node()}
    keep = ("lut4", "lut4_equiv", "ff", "carry", "dsp", "bram", "fmax_mhz", "comb_used",
            "comb_available", "part", "tools")
    return {"fits": True, **{k: res.get(k) for k in keep}, "cached": cached,
            "synth_seconds": res.get("seconds"), "seconds": round(time.time() - t0, 1), **_node()}


def _guarded(fn, *args) -> dict:
    """Run a factor; any exception becomes ``{"error": line, "traceback": text}`` (the driver
    writes the log), so one failed point never stops the others."""
    try:
        return {"ok": True, "value": fn(*args)}
    except Exception as exc:                                     # noqa: BLE001 -- reported per point
        line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        return {"ok": False, "error": f"{type(exc).__name__}: {line}", "traceback": traceback.format_exc(),
                **_node()}


# ------------------------------------------------------------------------------------ the sweep

def _read_json(path: Path):
    try:
        return json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError):
        return None


def _store(path: Path, value: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, json.dumps(value, indent=1, allow_nan=False) + "\n")


def _ray_init(cfg: SweepConfig):
    import ray

    if cfg.address is not None:
        ray.init(address=cfg.address, include_dashboard=False, log_to_driver=False)
    else:
        # "local": a new instance even when a `ray start` cluster runs on this machine
        ray.init(address="local", num_cpus=cfg.num_cpus or os.cpu_count(), include_dashboard=False,
                 log_to_driver=False)
    return ray


def sweep(cfg: SweepConfig, out_dir, progress: bool = True) -> dict:
    """Run the sweep ``cfg``, write ``sweep.json/.csv/.md`` and the plots into ``out_dir``, return
    the summary (``points``, ``failed``, ``best``, ``computed``, ``wall_s``...).  Never raises for
    a failed point: its row carries ``status: "failed"``, ``error`` and ``log``."""
    from tqdm import tqdm

    t0 = time.time()
    out = Path(out_dir)
    checks.output_dir("out", out)
    out.mkdir(parents=True, exist_ok=True)
    root = Path(cfg.cache).resolve() if cfg.cache else default_cache()
    synth_root = Path(cfg.synth_cache).resolve() if cfg.synth_cache else default_synth_cache()
    points = cfg.points()

    acc_jobs, syn_jobs = {}, {}                 # key -> (factor args, cache path)
    for p in points:
        num = cfg.numerics(p)
        p["acc_key"] = accuracy_key(cfg, num)
        acc_jobs.setdefault(p["acc_key"], (num, root / "accuracy" / f"{p['acc_key']}.json"))
        arr = cfg.array(p)
        p["synth_key"] = synth_cache_key(dict(**arr.as_dict(), device=p["device"], seed=cfg.seed))
        syn_jobs.setdefault(p["synth_key"], (arr, p["device"], root / "nofit" / f"{p['synth_key']}.json"))

    results, computed = {}, {"accuracy": 0, "synthesis": 0}
    for k, (_, path) in acc_jobs.items():
        if (hit := _read_json(path)) is not None:
            results[k] = {"ok": True, "value": {**hit, "cached": True}}
    for k, (arr, device, nofit) in syn_jobs.items():
        if (hit := _read_json(nofit)) is not None:
            results[k] = {"ok": True, "value": {**hit, "cached": True}}
        elif (synth_root / f"{k}.json").is_file():         # a hit: cached_synthesis only reads it
            results[k] = _guarded(synthesis_factor, arr.as_dict(), device, cfg.seed, str(synth_root))
    # longest first: synthesis (the bulk) by array size, then the accuracy evaluations
    missing = sorted((k for k in syn_jobs if k not in results),
                     key=lambda k: -syn_jobs[k][0].rows * syn_jobs[k][0].cols)
    missing += [k for k in acc_jobs if k not in results]

    def point_done(p):
        return p["acc_key"] in results and p["synth_key"] in results

    bar = tqdm(total=len(points), desc="sweep", unit="point", disable=not progress, file=sys.stderr)
    bar.update(sum(map(point_done, points)))
    ray_info = {"used": False}
    if missing:
        ray = _ray_init(cfg)
        ray_info = {"used": True, "address": cfg.address or "local",
                    "nodes": [n["NodeID"] for n in ray.nodes() if n.get("Alive")],
                    "cluster_cpus": ray.cluster_resources().get("CPU")}
        task = ray.remote(num_cpus=1, max_retries=0)(_guarded)
        refs = {}
        ckpt = None if cfg.checkpoint is None else str(Path(cfg.checkpoint).resolve())   # workers' cwd differs
        for k in missing:
            if k in acc_jobs:
                refs[task.remote(accuracy_factor, cfg.model, ckpt, cfg.batch, acc_jobs[k][0])] = k
            else:
                arr, device, _ = syn_jobs[k]
                refs[task.remote(synthesis_factor, arr.as_dict(), device, cfg.seed, str(synth_root))] = k
        try:
            pending = list(refs)
            while pending:
                ready, pending = ray.wait(pending, num_returns=1)
                k = refs[ready[0]]
                before = sum(map(point_done, points))
                try:
                    results[k] = ray.get(ready[0])
                except Exception as exc:               # noqa: BLE001 -- a worker died: that point failed
                    results[k] = {"ok": False, "error": f"{type(exc).__name__}: "
                                  f"{(str(exc).strip().splitlines() or [''])[0]}", "traceback": str(exc)}
                if results[k]["ok"]:
                    value = results[k]["value"]
                    if k in acc_jobs:
                        computed["accuracy"] += 1
                        _store(acc_jobs[k][1], value)
                    else:
                        computed["synthesis"] += 0 if value["cached"] else 1
                        if not value["fits"]:
                            _store(syn_jobs[k][2], value)
                bar.update(sum(map(point_done, points)) - before)
        finally:
            ray.shutdown()
    bar.close()

    rows = [_row(cfg, p, results, out) for p in points]
    summary = summarize(cfg, rows, computed, ray_info, time.time() - t0)
    summary["paths"] = write_outputs(summary, out)
    return summary


def _log(out: Path, key: str, res: dict) -> str:
    path = out / "logs" / f"{key}.log"
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, res.get("traceback") or res["error"])
    return str(path)


def _row(cfg: SweepConfig, p: dict, results: dict, out: Path) -> dict:
    """One table row: the point, its factors, cycles and the derived throughput."""
    from rf8hw.accel.cycles import Gemm, model_cycles

    row = {k: p[k] for k in ("device", "pe", "rows", "cols", "acc_bits", "rounding", "act")}
    row.update(weight_format=PE_KINDS[p["pe"]].weight_format, dsp_inference=PE_KINDS[p["pe"]].dsp,
               act_bits=cfg.act_bits, overflow=cfg.overflow, seed=cfg.seed, status="ok",
               acc_key=p["acc_key"], synth_key=p["synth_key"])
    errors = []
    acc, syn = results[p["acc_key"]], results[p["synth_key"]]
    if acc["ok"]:
        a = acc["value"]
        cyc = model_cycles([Gemm(**g) for g in a["gemms"]], cfg.array(p), a["batch"])
        row.update(metric=a["metric"], higher_is_better=a["higher_is_better"], accuracy=a["accuracy"],
                   fp32=a["fp32"], accuracy_path=a["path"], overflow_events=a["overflow_events"],
                   acc_bits_needed=a["acc_bits_needed"], cycles_per_inference=cyc["cycles_per_inference"],
                   array_utilisation=cyc["utilisation"], macs_per_inference=cyc["macs_on_array"] / a["batch"],
                   accuracy_cached=a.get("cached", False), accuracy_node=a.get("node_id"))
    else:
        errors.append((p["acc_key"], acc))
    if syn["ok"]:
        s = syn["value"]
        row.update(fits=s["fits"], synth_cached=s.get("cached", False), synth_node=s.get("node_id"),
                   synth_seconds=None if s.get("synth_seconds") is None else round(sum(s["synth_seconds"].values()), 1))
        if s["fits"]:
            row.update({k: s[k] for k in ("lut4", "lut4_equiv", "ff", "carry", "dsp", "bram", "fmax_mhz")})
        else:
            row.update(status="does not fit", device_utilisation=s["utilisation"])
    else:
        errors.append((p["synth_key"], syn))
    if errors:
        row.update(status="failed", error="; ".join(e["error"] for _, e in errors),
                   log=", ".join(_log(out, k, e) for k, e in errors))
    if row.get("fmax_mhz") and row.get("cycles_per_inference"):
        row["inferences_per_s"] = row["fmax_mhz"] * 1e6 / row["cycles_per_inference"]
        row["gmac_per_s"] = row["inferences_per_s"] * row["macs_per_inference"] / 1e9
    else:
        row["inferences_per_s"] = row["gmac_per_s"] = None
    return row
