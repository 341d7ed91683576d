"""Design-space exploration: ``rf8hw sweep`` over PE kinds, array sizes, accumulator widths,
numerics and devices for one model, to a Pareto front (``docs/dse.md``).

The grid is factorised; each factor is computed once, as a Ray task, and cached content-addressed:

* **accuracy** depends on the numerics only: one accuracy path of the estimate
  (:data:`rf8hw.accel.estimate.PATHS`) measured by the estimate's own
  :func:`rf8hw.accel.estimate.accuracy` on the model :mod:`rf8hw.accel.source` loads -- the PE
  kind's weight format (RF8 on the bit-exact path with the point's ``act_bits``, ``acc_bits``,
  ``overflow``, RF8 rounding and activation scheme; INT8 / FP8-E4M3 as the estimate's weight-only
  fake-quant baselines, which have no bit-exact path, so their accumulator does not enter), plus
  one *reference* factor per sweep (the float model's metric and the GEMMs of one forward pass).
  Cached in ``<cache>/accuracy/<key>.json``, the key covering the parameters, the checkpoint's
  bytes, the model's sources, the numerics sources and the package versions;
* **synthesis** depends on the hardware only (PE kind, rows, cols, act/acc bits, overflow,
  device, seed): :func:`rf8hw.accel.synth_cache.cached_synthesis`, the toolchain's synthesis
  cache.  A design nextpnr cannot place is recorded ``fits: false`` with its utilisation, in
  ``<cache>/nofit/<key>.json`` under the same key, so a rerun does not place it again;
* **cycles** depend on the GEMM shapes (from the reference factor) and the array: the cycle
  model (:func:`rf8hw.accel.cycles.model_cycles`), computed in the driver, never cached.

A killed sweep resumes from the caches: a rerun submits only the factors that have no entry, and
starts no Ray instance when none is missing.  Tables and plots: :mod:`rf8hw.accel.dse_report`.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import socket
import subprocess
import sys
import time
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path

from rf8hw import checks
from rf8hw.accel import source as sources
from rf8hw.accel.dse_report import pareto_front, pick_best, summarize, write_outputs
from rf8hw.accel.estimate import AREA_SOURCES, MAX_BATCH, REPORT_PACKAGES
from rf8hw.accel.synth import DEVICES, DoesNotFitError, check_device, check_seed
from rf8hw.accel.synth_cache import (
    cached_synthesis,
    default_synth_cache,
    read_cached_synthesis,
    read_entry,
    seal_entry,
    synth_cache_key,
)
from rf8hw.arch import MAX_DIM, PE_KINDS, ArrayConfig
from rf8hw.files import sha256_file, write_atomic
from rf8hw.format import spec
from rf8hw.toolchain import cache

__all__ = ["ACT_SCHEMES", "SweepConfig", "accuracy_key", "accuracy_factor", "synthesis_factor",
           "model_factor", "pareto_front", "pick_best", "sweep", "default_cache", "parse_address",
           "check_ray_address", "MAX_CPUS", "CONNECT_TIMEOUT_S"]

#: Largest ``--num-cpus`` of a local Ray instance.
MAX_CPUS = 1024
#: Seconds a sweep waits for a ``--address`` cluster to answer before it gives up (twice: the TCP
#: connection, then the Ray GCS).
CONNECT_TIMEOUT_S = 10.0

#: Activation schemes of the bit-exact path: per-token or per-tensor dynamic INT8 activation
#: scales (the estimate's paths ``rf8_bitexact`` and ``rf8_bitexact_tensor``).
ACT_SCHEMES = ("token", "tensor")
#: Accuracy path (:data:`rf8hw.accel.estimate.PATHS`) of a PE kind's weight format: the RF8 kinds'
#: per activation scheme; the baselines' bit-exact W8A8 path per activation scheme (the default,
#: ``baselines="bitexact"``: like for like) or their weight-only fake-quant path
#: (``baselines="weight-only"``).
RF8_PATHS = {"token": "rf8_bitexact", "tensor": "rf8_bitexact_tensor"}
BITEXACT_PATHS = {"int8": {"token": "int8_bitexact", "tensor": "int8_bitexact_tensor"},
                  "fp8_e4m3": {"token": "fp8_e4m3_bitexact", "tensor": "fp8_e4m3_bitexact_tensor"}}
FORMAT_PATHS = {"int8": "int8", "fp8_e4m3": "fp8_e4m3"}
#: How the INT8 / FP8-E4M3 points' accuracy is measured (``SweepConfig.baselines``)
BASELINE_MODES = ("bitexact", "weight-only")
#: Sources of ``rf8hw/`` (besides the RTL sources, which every source key covers) whose text
#: shapes an accuracy result.
ACCURACY_FILES = ("accel/dse.py", "accel/estimate.py", "accel/source.py", "accel/gemms.py",
                  "accel/cycles.py", "nn")


def default_cache() -> Path:
    """``$XDG_CACHE_HOME/rf8hw/dse`` (``~/.cache/rf8hw/dse`` when the variable is unset)."""
    return cache.cache_root("dse")


def parse_address(address) -> tuple[str, int]:
    """``(host, port)`` of a Ray cluster address ``HOST:PORT`` (an IPv6 host in brackets,
    ``[::1]:6379``); ValueError naming the value otherwise.  Nothing is contacted."""
    host, sep, port = address.rpartition(":") if isinstance(address, str) else ("", "", "")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        host = ""                                   # an IPv6 host needs its brackets
    ok = bool(sep and host and port.isascii() and port.isdigit() and 1 <= int(port) <= 65535
              and not any(c.isspace() or c in "/@?#" for c in host))
    if not ok:
        raise ValueError(f"address must be HOST:PORT with a port in 1..65535 (e.g. 127.0.0.1:6379, "
                         f"the head of `ray start --head --port=6379`), not {address!r}")
    return host, int(port)


#: Run in a child process by :func:`check_ray_address`: connect to the cluster's GCS (Ray's own
#: client, which retries for minutes when nothing answers; the child is stopped first).
_GCS_PROBE = """
import sys
try:
    from ray._raylet import GcsClient
except Exception:          # another Ray: skip this check, ray.init will tell
    sys.exit(0)
GcsClient(address=sys.argv[1])
"""


def check_ray_address(address: str, timeout: float = CONNECT_TIMEOUT_S) -> None:
    """ValueError (one line) unless a Ray cluster answers at ``address`` within ``timeout``
    seconds: the host resolves, the port accepts a TCP connection, and a Ray GCS answers there
    (in a child process, stopped after ``timeout``).  ``ray.init`` itself would retry for more
    than ten minutes."""
    host, port = parse_address(address)
    hint = f"start one with `ray start --head --port={port}` on {host}"
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except socket.gaierror as exc:
        raise ValueError(f"address {address!r}: unknown host {host!r} ({exc.strerror})") from None
    except TimeoutError:
        raise ValueError(f"address {address!r}: no answer within {timeout:g} s; {hint}") from None
    except OSError as exc:
        raise ValueError(f"address {address!r}: no Ray cluster there ({exc.strerror or exc}); "
                         f"{hint}") from None
    try:
        proc = subprocess.run([sys.executable, "-c", _GCS_PROBE, f"{host}:{port}"], capture_output=True,
                              text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        raise ValueError(f"address {address!r} accepts connections but no Ray GCS answered there within "
                         f"{timeout:g} s (is it the head's --port?)") from None
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or [f"exit status {proc.returncode}"])[-1]
        raise ValueError(f"address {address!r}: Ray could not connect: {last}")


def _tuple(name, values, check):
    values = (values,) if isinstance(values, (str, int)) else tuple(values)
    if not values:
        raise ValueError(f"{name} must name at least one value")
    return tuple(dict.fromkeys(check(v) for v in values))


@dataclass(frozen=True)
class SweepConfig:
    """One sweep: the grid and how to run it (validated once, here; the CLI's options are these
    fields).

    The grid is the product of ``pes x rows x cols x acc_bits x devices`` and, for the RF8 kinds,
    ``roundings x acts`` (numerics that change accuracy only; the INT8 and FP8 kinds have neither).
    The model is resolved (:func:`rf8hw.accel.source.resolve`) but not loaded.
    """

    model: str = field(metadata={"help": sources.model_choices(), "metavar": "MODEL"})
    checkpoint: str | None = field(default=None, metadata={
        "help": "model.safetensors of rf8hw train (zoo models only)"})
    devices: tuple = field(default=("ecp5-25k",), metadata={
        "flag": "--device", "metavar": "D[,D...]", "choices": tuple(DEVICES), "help": "FPGAs"})
    pes: tuple = field(default=("rf8_pipe",), metadata={
        "flag": "--pe", "metavar": "K[,K...]", "cli_required": True, "choices": tuple(PE_KINDS),
        "help": "PE kinds; INT8/FP8 kinds are the baselines"})
    rows: tuple = field(default=(8,), metadata={
        "metavar": "R[,R...]", "cli_required": True, "help": f"array rows, each 1..{MAX_DIM}"})
    cols: tuple = field(default=(8,), metadata={
        "metavar": "C[,C...]", "cli_required": True, "help": f"array columns, each 1..{MAX_DIM}"})
    acc_bits: tuple = field(default=(40,), metadata={"metavar": "A[,A...]", "help": "accumulator widths"})
    roundings: tuple = field(default=("nearest",), metadata={
        "flag": "--rounding", "metavar": "NAME[,...]", "choices": spec.ROUNDING_MODES,
        "help": "RF8 rounding rules"})
    acts: tuple = field(default=("token",), metadata={
        "flag": "--act", "metavar": "SCHEME[,...]", "choices": ACT_SCHEMES,
        "help": "RF8 activation schemes (dynamic scales per token or per tensor)"})
    act_bits: int = field(default=8, metadata={"help": "activation width"})
    overflow: str = field(default="wrap", metadata={
        "choices": spec.OVERFLOW_MODES, "help": "accumulator overflow rule"})
    baselines: str = field(default="bitexact", metadata={
        "choices": BASELINE_MODES,
        "help": "accuracy of the INT8 / FP8-E4M3 points: bit-exact W8A8 with the RF8 points' activation "
                "schemes, act_bits, acc_bits and overflow rule (like for like), or weight-only fake-quant "
                "(float activations)"})
    batch: int | None = field(default=None, metadata={
        "help": f"inferences per weight tile (zoo models; default 1, at most {MAX_BATCH})"})
    seed: int = field(default=1, metadata={"help": "nextpnr placement seed"})
    area: str = field(default="synth", metadata={
        "choices": AREA_SOURCES,
        "help": "area and Fmax of every point from synthesis + place and route (measured), or predicted "
                "by the area model (docs/area_model.md: no synthesis, so large arrays cost nothing; a "
                "point it predicts not to fit is 'does not fit')"})
    place_pareto: bool = field(default=False, metadata={
        "help": "with --area model: synthesise, place and route the points on the Pareto front "
                "(pareto) and add their measured LUT4 sites and Fmax next to the predictions"})
    place_limit: int | None = field(default=None, metadata={
        "metavar": "N",
        "help": "with --place-pareto: place and route only the N Pareto arrays of each device and PE "
                "kind with the most predicted inferences/s (default: every Pareto array; a large array "
                "takes an hour or more to place here)"})
    synth_cache: str | None = field(default=None, metadata={
        "metavar": "DIR", "help": "synthesis cache (default ~/.cache/rf8hw/synth)"})
    cache: str | None = field(default=None, metadata={
        "metavar": "DIR", "help": "accuracy / does-not-fit cache (default ~/.cache/rf8hw/dse)"})
    address: str | None = field(default=None, metadata={
        "metavar": "HOST:PORT",
        "help": "join this Ray cluster (e.g. 127.0.0.1:6379; it must answer within "
                f"{CONNECT_TIMEOUT_S:g} s); default: a local Ray instance"})
    num_cpus: int | None = field(default=None, metadata={
        "help": f"CPUs of the local Ray instance (default: all; at most {MAX_CPUS})"})
    max_luts: int | None = field(default=None, metadata={"help": "constraint: at most N LUT4 sites"})
    min_accuracy: float | None = field(default=None, metadata={
        "help": "constraint: accuracy at least X (at most X where lower is better)"})

    def __post_init__(self):
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
        checks.choice("baselines", self.baselines, BASELINE_MODES)
        if self.batch is not None:
            checks.integer("batch", self.batch, 1, MAX_BATCH,
                           why=" (the forward pass holds the whole batch in memory)")
        check_seed(self.seed)
        checks.choice("area", self.area, AREA_SOURCES)
        if not isinstance(self.place_pareto, bool):
            raise ValueError(f"place_pareto must be True or False, not {self.place_pareto!r}")
        if self.place_limit is not None:
            checks.integer("place_limit", self.place_limit, 1, 10**6)
            if not self.place_pareto:
                raise ValueError("place_limit limits --place-pareto: give --place-pareto too")
        if self.place_pareto and self.area != "model":
            raise ValueError("place_pareto places the Pareto points of an area-model sweep: it needs "
                             "area 'model' (with area 'synth' every point is placed anyway)")
        if self.area == "model":        # every kind, device and accumulator: refused now, naming the model's
            from rf8hw.accel import area_model

            for device in self.devices:
                for pe in self.pes:
                    for acc in self.acc_bits:
                        area_model.predict(ArrayConfig(1, 1, act_bits=self.act_bits, acc_bits=acc,
                                                       overflow=self.overflow, pe=pe), device)
        checks.output_dir("synth_cache", self.synth_cache)
        checks.output_dir("cache", self.cache)
        if self.address is not None:
            parse_address(self.address)
            if self.num_cpus is not None:
                raise ValueError("num_cpus sizes the local Ray instance; with address the cluster's "
                                 "nodes have their own")
        if self.num_cpus is not None:
            checks.integer("num_cpus", self.num_cpus, 1, MAX_CPUS)
        if self.max_luts is not None:
            checks.integer("max_luts", self.max_luts, 1)
        if self.min_accuracy is not None:
            checks.number("min_accuracy", self.min_accuracy, -1e300, 1e300)
        # last: the grid's errors come before any file is read; the model is not loaded
        if not sources.resolve(self.model, self.checkpoint).is_zoo and self.batch is not None:
            raise ValueError("batch is for the zoo models; an adapter's example sets its own batch")

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
                                for act in self.acts if rf8 or self.baselines == "bitexact" else (None,):
                                    out.append({"device": device, "pe": pe, "rows": r, "cols": c,
                                                "acc_bits": acc, "rounding": rnd, "act": act})
        return out

    def array(self, p: dict) -> ArrayConfig:
        return ArrayConfig(p["rows"], p["cols"], act_bits=self.act_bits, acc_bits=p["acc_bits"],
                           overflow=self.overflow, pe=p["pe"])

    def numerics(self, p: dict) -> dict:
        """The accuracy factor of point ``p``: what its accuracy depends on, nothing else (the
        path of :data:`rf8hw.accel.estimate.PATHS` and its arithmetic)."""
        fmt = PE_KINDS[p["pe"]].weight_format
        if fmt != "rf8" and self.baselines == "weight-only":
            return {"path": FORMAT_PATHS[fmt]}
        if fmt != "rf8":
            return {"path": BITEXACT_PATHS[fmt][p["act"]], "act_bits": self.act_bits,
                    "acc_bits": p["acc_bits"], "overflow": self.overflow}
        return {"path": RF8_PATHS[p["act"]], "rounding": p["rounding"], "act_bits": self.act_bits,
                "acc_bits": p["acc_bits"], "overflow": self.overflow}

    def as_dict(self) -> dict:
        return asdict(self)


#: The reference factor: the float model's metrics and the GEMMs of one forward pass.
REFERENCE = {"path": "fp32"}


# ------------------------------------------------------------------------------------ factors

def _model_files(spec_: sources.SourceSpec) -> list[Path]:
    """Sources of the model: the whole ``rf8hw.zoo`` package (zoo and built-in adapters: code
    and shipped data), or the adapter's module file."""
    from rf8hw import zoo

    if spec_.is_zoo or spec_.model in sources.BUILTIN_ADAPTERS:
        root = Path(zoo.__file__).resolve().parent
        return sorted(p for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts)
    module = spec_.target.rpartition(":")[0]
    if module.endswith(".py") or "/" in module:         # path/to/file.py:function
        return [Path(module)]
    found = importlib.util.find_spec(module)
    origin = Path(found.origin) if found is not None and found.origin else None
    return [origin] if origin is not None and origin.is_file() else []      # not "frozen", "built-in"


def accuracy_key(cfg: SweepConfig, numerics: dict) -> str:
    """Content address of one accuracy factor: ``numerics``, the model (name, checkpoint bytes,
    batch), every source that shapes the number (format/, hdl/, arch, nn/, the estimate, model
    source, GEMM capture and cycle modules, the model's files) and the versions of
    :data:`rf8hw.accel.estimate.REPORT_PACKAGES`."""
    root = cache.package_root()
    extra = []
    for rel in ACCURACY_FILES:
        p = root / rel
        extra += sorted(p.rglob("*.py")) if p.is_dir() else [p]
    params = {"kind": "accuracy", "model": cfg.model, "batch": cfg.batch, "numerics": numerics,
              "checkpoint_sha256": None if cfg.checkpoint is None else sha256_file(cfg.checkpoint)}
    spec_ = sources.resolve(cfg.model, cfg.checkpoint)
    return cache.source_key(params, extra + _model_files(spec_), packages=REPORT_PACKAGES)


def _node() -> dict:
    node = None
    try:
        import ray

        if ray.is_initialized():
            node = ray.get_runtime_context().get_node_id()
    except ImportError:
        pass
    return {"node_id": node, "host": socket.gethostname(), "pid": os.getpid()}


def accuracy_factor(model: str, checkpoint, batch, numerics: dict) -> dict:
    """One accuracy factor (no synthesis), computed by the estimate's own
    :func:`rf8hw.accel.estimate.accuracy` on one path.

    ``numerics`` :data:`REFERENCE`: the float model -- ``metric``, ``higher_is_better``,
    ``accuracy`` (its headline value), ``batch`` and ``gemms`` (the GEMMs of one forward pass,
    for the cycle model).  Otherwise a path of :meth:`SweepConfig.numerics`: ``accuracy``,
    ``path`` (``bitexact`` or ``weight-only fake-quant``), ``overflow_events``,
    ``acc_bits_needed``.  Both with ``versions``, ``seconds`` and the node that ran it."""
    from rf8hw.accel import estimate as est
    from rf8hw.accel import gemms as gemm_capture

    t0 = time.time()
    path = numerics["path"]
    rf8 = est.PATHS[path].bitexact
    array = ArrayConfig(1, 1, act_bits=numerics["act_bits"], acc_bits=numerics["acc_bits"],
                        overflow=numerics["overflow"]) if rf8 else ArrayConfig(1, 1)
    cfg = est.EstimateConfig(model=model, checkpoint=checkpoint, array=array, batch=batch,
                             rounding=numerics.get("rounding") or "nearest", synth=False)
    src = cfg.load_source()
    acc = est.accuracy(src, cfg, [path])
    out = {"metric": acc["metric"], "higher_is_better": acc["higher_is_better"],
           "accuracy": acc["metrics"][path][acc["metric"]]}
    if path == REFERENCE["path"]:
        found = gemm_capture.capture(src.model, src.example)
        gemm_capture.check_on_array(found, f"the example of {src.name}")
        out.update(batch=src.batch, gemms=[
            {k: getattr(g, k) for k in ("name", "M", "K", "N", "on_array", "count", "op")} for g in found],
            notes=gemm_capture.off_array_notes(found, src.batch))
    else:
        total = acc["overflow"].get(path, {}).get("total", {})
        out.update(path="bitexact" if rf8 else "weight-only fake-quant",
                   overflow_events=total.get("events") if rf8 else None,
                   acc_bits_needed=total.get("acc_bits_needed") if rf8 else None)
    return {**out, "versions": est.report_versions(), "seconds": round(time.time() - t0, 1), **_node()}


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
    return _synthesis_value(res, cached, t0)


def model_factor(array: ArrayConfig, device: str) -> dict:
    """A synthesis factor's value predicted by the area model (:func:`rf8hw.accel.area_model.predict`):
    milliseconds, in the driver; ``fits: false`` with the predicted utilisation when the model
    says the array does not fit the device."""
    from rf8hw.accel import area_model

    t0 = time.time()
    pred = area_model.predict(array, device)
    if not pred["fits"]:
        (lu, la), (du, da) = pred["utilisation"]["logic"], pred["utilisation"]["dsp"]
        return {"fits": False, "utilisation": pred["utilisation"], "cached": False, "source": "model",
                "error": f"the area model predicts it does not fit {pred['part']}: logic sites "
                         f"{lu}/{la}, DSP {du}/{da}", "seconds": round(time.time() - t0, 3)}
    keep = ("lut4", "lut4_equiv", "ff", "carry", "dsp", "bram", "fmax_mhz", "part")
    return {"fits": True, **{k: pred[k] for k in keep}, "comb_used": None, "comb_available": None,
            "tools": None, "cached": False, "source": "model", "synth_seconds": None,
            "seconds": round(time.time() - t0, 3)}


def _synthesis_value(res: dict, cached: bool, t0: float) -> dict:
    """A synthesis factor's value from a synthesis result."""
    keep = ("lut4", "lut4_equiv", "ff", "carry", "dsp", "bram", "fmax_mhz", "comb_used",
            "comb_available", "part", "tools")
    return {"fits": True, **{k: res.get(k) for k in keep}, "cached": cached,
            "synth_seconds": res.get("seconds"), "seconds": round(time.time() - t0, 1), **_node()}


def _guarded(fn, *args) -> dict:
    """Run a factor; any exception becomes ``{"error": line, "traceback": text}`` (the driver
    writes the log), so one failed point never stops the others."""
    try:
        return {"ok": True, "value": fn(*args)}
    except Exception as exc:
        line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        return {"ok": False, "error": f"{type(exc).__name__}: {line}", "traceback": traceback.format_exc(),
                **_node()}


# ------------------------------------------------------------------------------------ the sweep

def _store(path: Path, key: str, params: dict, value: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, json.dumps(seal_entry(key, params, value), indent=1, allow_nan=False) + "\n")


def _ray_init(cfg: SweepConfig, factors: str, progress: bool):
    import ray

    where = (f"joining the Ray cluster at {cfg.address}" if cfg.address is not None else
             f"starting a local Ray instance ({cfg.num_cpus or os.cpu_count()} CPUs; this takes a while)")
    if progress:
        print(f"rf8hw sweep: {where} for {factors}...", file=sys.stderr, flush=True)
    # --quiet: Ray's own start-up lines too, but its warnings (token authentication) stay
    level = logging.INFO if progress else logging.WARNING
    if cfg.address is not None:
        ray.init(address=cfg.address, include_dashboard=False, log_to_driver=False, logging_level=level)
    else:
        # "local": a new instance even when a `ray start` cluster runs on this machine
        ray.init(address="local", num_cpus=cfg.num_cpus or os.cpu_count(), include_dashboard=False,
                 log_to_driver=False, logging_level=level)
    return ray


def sweep(cfg: SweepConfig, out_dir, progress: bool = True) -> dict:
    """Run the sweep ``cfg``, write ``sweep.json/.csv/.md`` and the plots into ``out_dir``, return
    the summary (``points``, ``failed``, ``best``, ``computed``, ``wall_s``...).  Never raises for
    a failed point: its row carries ``status: "failed"``, ``error`` and ``log``."""
    from tqdm import tqdm

    t0 = time.time()
    out = Path(out_dir)
    checks.output_dir("out", out)
    if cfg.address is not None:                 # before any work: an unreachable cluster is one line
        check_ray_address(cfg.address)
    out.mkdir(parents=True, exist_ok=True)
    root = Path(cfg.cache).resolve() if cfg.cache else default_cache()
    synth_root = Path(cfg.synth_cache).resolve() if cfg.synth_cache else default_synth_cache()
    points = cfg.points()

    acc_jobs, syn_jobs = {}, {}                 # key -> (factor args, cache path)
    ref_key = accuracy_key(cfg, REFERENCE)
    acc_jobs[ref_key] = (REFERENCE, root / "accuracy" / f"{ref_key}.json")
    for p in points:
        num = cfg.numerics(p)
        p["acc_key"], p["ref_key"] = accuracy_key(cfg, num), ref_key
        acc_jobs.setdefault(p["acc_key"], (num, root / "accuracy" / f"{p['acc_key']}.json"))
        arr = cfg.array(p)
        p["synth_key"] = synth_cache_key(dict(**arr.as_dict(), device=p["device"], seed=cfg.seed))
        syn_jobs.setdefault(p["synth_key"], (arr, p["device"], root / "nofit" / f"{p['synth_key']}.json"))

    def acc_params(num):
        return {"kind": "accuracy", "model": cfg.model, "batch": cfg.batch, "numerics": num}

    results, computed = {}, {"accuracy": 0, "synthesis": 0}
    for k, (num, path) in acc_jobs.items():
        if (hit := read_entry(path, k, acc_params(num), "accuracy")) is not None:
            results[k] = {"ok": True, "value": {**hit, "cached": True}}
    for k, job in syn_jobs.items():
        if cfg.area == "model":
            results[k] = {"ok": True, "value": model_factor(*job[:2])}
        elif (hit := _cached_synthesis_factor(k, job, cfg.seed, synth_root)) is not None:
            results[k] = hit
        # (an unusable entry was reported and removed: its synthesis runs on Ray with the others)
    # longest first: synthesis (the bulk) by array size, then the accuracy evaluations
    missing = sorted((k for k in syn_jobs if k not in results),
                     key=lambda k: -syn_jobs[k][0].rows * syn_jobs[k][0].cols)
    missing += [k for k in acc_jobs if k not in results]

    def point_done(p):
        return all(p[k] in results for k in ("ref_key", "acc_key", "synth_key"))

    def run_factors(keys, into, what):
        """Compute the factors ``keys`` on Ray into ``into``; the Ray facts for the summary."""
        n_syn = sum(k in syn_jobs for k in keys)
        ray = _ray_init(cfg, f"{len(keys)} {what} ({len(keys) - n_syn} accuracy, {n_syn} synthesis)",
                        progress)
        info = {"used": True, "address": cfg.address or "local",
                "nodes": [n["NodeID"] for n in ray.nodes() if n.get("Alive")],
                "cluster_cpus": ray.cluster_resources().get("CPU")}
        # the bar after Ray's own start-up lines; it counts factors, the points follow them
        bar = tqdm(total=len(keys), desc="sweep", unit="factor", disable=not progress, file=sys.stderr)
        bar.set_postfix_str(f"{sum(map(point_done, points))}/{len(points)} points")
        try:
            task = ray.remote(num_cpus=1, max_retries=0)(_guarded)
            refs = {}
            # absolute paths: the workers' working directory differs
            ckpt = None if cfg.checkpoint is None else str(Path(cfg.checkpoint).resolve())
            spec_ = sources.resolve(cfg.model, cfg.checkpoint)
            model = cfg.model if spec_.is_zoo or cfg.model in sources.BUILTIN_ADAPTERS else spec_.target
            for k in keys:
                if k in acc_jobs:
                    refs[task.remote(accuracy_factor, model, ckpt, cfg.batch, acc_jobs[k][0])] = k
                else:
                    arr, device, _ = syn_jobs[k]
                    refs[task.remote(synthesis_factor, arr.as_dict(), device, cfg.seed, str(synth_root))] = k
            pending = list(refs)
            while pending:
                ready, pending = ray.wait(pending, num_returns=1)
                k = refs[ready[0]]
                before = sum(map(point_done, points))
                try:
                    into[k] = ray.get(ready[0])
                except Exception as exc:
                    into[k] = {"ok": False, "error": f"{type(exc).__name__}: "
                               f"{(str(exc).strip().splitlines() or [''])[0]}", "traceback": str(exc)}
                if into[k]["ok"]:
                    value = into[k]["value"]
                    if k in acc_jobs:
                        computed["accuracy"] += 1
                        _store(acc_jobs[k][1], k, acc_params(acc_jobs[k][0]), value)
                    else:
                        computed["synthesis"] += 0 if value["cached"] else 1
                        if not value["fits"]:
                            arr, device, nofit = syn_jobs[k]
                            _store(nofit, k, _nofit_params(arr, device, cfg.seed), value)
                bar.update()
                if sum(map(point_done, points)) != before:
                    bar.set_postfix_str(f"{sum(map(point_done, points))}/{len(points)} points")
        finally:
            bar.close()
            ray.shutdown()
        return info

    ray_info = run_factors(missing, results, "factors") if missing else {"used": False}

    rows = [_row(cfg, p, results, out) for p in points]
    ref = results[ref_key]
    notes = ref["value"].get("notes", []) if ref["ok"] else []
    if cfg.area == "model":
        from rf8hw.accel.area_model import NOTE

        notes = [NOTE] + notes
    summary = summarize(cfg, rows, computed, ray_info, time.time() - t0, notes)
    if cfg.place_pareto:
        _place_pareto(cfg, rows, syn_jobs, synth_root, run_factors, out)
        summary["failed"] = [r for r in rows if r["status"] == "failed"]
        summary["computed"], summary["wall_s"] = computed, round(time.time() - t0, 1)
    summary["paths"] = write_outputs(summary, out)
    return summary


def _nofit_params(arr: ArrayConfig, device: str, seed: int) -> dict:
    """The parameters a does-not-fit cache entry records (and is checked against)."""
    return {"kind": "does not fit", **arr.as_dict(), "device": device, "seed": seed}


def _cached_synthesis_factor(k: str, job: tuple, seed: int, synth_root: Path) -> dict | None:
    """A synthesis factor's result from the caches: the sweep's does-not-fit entry, else the
    synthesis cache (``job``: the array, the device, the does-not-fit entry's path); None if
    neither holds it."""
    arr, device, nofit = job
    if (hit := read_entry(nofit, k, _nofit_params(arr, device, seed), "does-not-fit")) is not None:
        return {"ok": True, "value": {**hit, "cached": True}}
    if (hit := read_cached_synthesis(arr, device, seed, synth_root)) is not None:
        return {"ok": True, "value": _synthesis_value(hit, True, time.time())}
    return None


def _place_pareto(cfg: SweepConfig, rows: list[dict], syn_jobs: dict, synth_root: Path, run_factors,
                  out: Path) -> None:
    """``--place-pareto``: synthesise, place and route (or read from the caches) the arrays of the
    rows on the Pareto front (``pareto``) of an area-model sweep -- with ``place_limit`` N, only the
    N arrays of each device and PE kind with the most predicted inferences/s (``pareto_placed`` on
    every Pareto row says which) -- and add to every row of those arrays the measured
    ``measured_lut4_equiv``, ``measured_fmax_mhz`` and the model's errors in percent of them
    (``lut4_error_pct``, ``fmax_error_pct``).  The fronts stay the predicted ones."""
    front = [r for r in rows if r.get("pareto")]
    keys = list(dict.fromkeys(r["synth_key"] for r in front))
    if cfg.place_limit is not None:     # per device and kind, the most predicted inferences/s
        best: dict = {}
        for r in front:
            k = (r["device"], r["pe"], r["synth_key"])
            best[k] = max(best.get(k, 0.0), r.get("inferences_per_s") or 0.0)
        keys = []
        for group in dict.fromkeys((r["device"], r["pe"]) for r in front):
            mine = sorted((k for k in best if k[:2] == group), key=lambda k: -best[k])
            keys += [k[2] for k in mine[:cfg.place_limit]]
    for r in front:
        r["pareto_placed"] = r["synth_key"] in keys
    placed = {}
    for k in keys:                  # the caches first, as for any sweep
        if (hit := _cached_synthesis_factor(k, syn_jobs[k], cfg.seed, synth_root)) is not None:
            placed[k] = hit
    todo = [k for k in keys if k not in placed]
    if todo:
        run_factors(todo, placed, "Pareto points to place and route")
    for r in rows:
        got = placed.get(r["synth_key"])
        if got is None:
            continue
        if not got["ok"]:
            r.update(status="failed", error=f"place and route of the Pareto point: {got['error']}",
                     log=_log(out, r["synth_key"] + "_placed", got))
            continue
        v = got["value"]
        r["measured_fits"] = v["fits"]
        if v["fits"]:
            r.update(measured_lut4_equiv=v["lut4_equiv"], measured_fmax_mhz=v["fmax_mhz"])
            if r.get("lut4_equiv") is not None:
                r["lut4_error_pct"] = round(100 * (r["lut4_equiv"] - v["lut4_equiv"]) / v["lut4_equiv"], 2)
                r["fmax_error_pct"] = round(100 * (r["fmax_mhz"] - v["fmax_mhz"]) / v["fmax_mhz"], 2)


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
    ref, acc, syn = results[p["ref_key"]], results[p["acc_key"]], results[p["synth_key"]]
    # the reference's failure (the model itself) first: a path factor then fails the same way
    errors = [(p[k], results[p[k]]) for k in ("ref_key", "acc_key") if not results[p[k]]["ok"]][:1]
    if not errors:
        r, a = ref["value"], acc["value"]
        cyc = model_cycles([Gemm(**g) for g in r["gemms"]], cfg.array(p), r["batch"])
        row.update(metric=a["metric"], higher_is_better=a["higher_is_better"], accuracy=a["accuracy"],
                   fp32=r["accuracy"], accuracy_path=a["path"], overflow_events=a["overflow_events"],
                   acc_bits_needed=a["acc_bits_needed"], cycles_per_inference=cyc["cycles_per_inference"],
                   array_utilisation=cyc["utilisation"], macs_per_inference=cyc["macs_on_array"] / r["batch"],
                   accuracy_cached=a.get("cached", False), accuracy_node=a.get("node_id"))
    if syn["ok"]:
        s = syn["value"]
        seconds = None if s.get("synth_seconds") is None else round(sum(s["synth_seconds"].values()), 1)
        row.update(fits=s["fits"], synth_cached=s.get("cached", False), synth_node=s.get("node_id"),
                   synth_seconds=seconds, area_source="model" if s.get("source") == "model" else "synth")
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
