"""Where a model comes from: a zoo checkpoint or a user adapter, decided in one place.

Every command that runs a model -- ``rf8hw estimate``, ``rf8hw cosim --layer``, ``rf8hw sweep`` --
names it the same way (``--model`` and, for the zoo, ``--checkpoint``) and goes through this
module:

* :func:`resolve` checks the name (and, for a zoo model, that the checkpoint exists and holds that
  model, reading only its JSON sidecar) and says which kind of source it is.  It loads no model,
  so configurations validate it in their constructors;
* :func:`load` builds the :class:`ModelSource`: the float model, one forward pass (the example the
  GEMM capture and the cycle model count), the metric, calibration data and how to quantize it.

Zoo models (:data:`rf8hw.zoo.MODELS`, checkpoints of ``rf8hw train``): the metric is the recipe's
headline metric on the fixed evaluation split; the example is the first ``batch`` training inputs
(generator seed 0); calibration data are training batches (generator seed 0, never the
evaluation split); quantization takes every exact ``nn.Linear``.

Adapters (the built-in ``minilm`` and ``smollm2`` of :mod:`rf8hw.zoo`, ``package.module:function``
with the module importable, i.e. on ``sys.path`` / ``PYTHONPATH``, or ``path/to/file.py:function``,
imported from that file): the function, called without arguments, returns ``(model, example,
metric[, info])`` or a dict with those keys; ``info`` may hold ``name``, ``batch`` (inferences the
example covers), ``calibrate`` (a callable running the model on data disjoint from the evaluation)
and ``notes``.  Everything an adapter gives is checked when it is loaded, and an exception raised
by the adapter, its example, metric or calibration run is one line naming it and where it was
raised (:func:`describe_exception`).  Quantization takes :func:`rf8hw.nn.quant.quantize_`'s
default selection (every linear-like layer but a tied head and ``nn.MultiheadAttention``'s
``out_proj``, named in the report's notes).
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import math
import numbers
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rf8hw import checks
from rf8hw.zoo import MODELS

__all__ = ["BUILTIN_ADAPTERS", "INFO_KEYS", "SourceSpec", "ModelSource", "resolve", "load", "load_adapter",
           "from_adapter", "model_choices", "model_tag", "check_metrics", "describe_exception"]

#: ``--model`` names of the built-in real-model adapters -> ``module:function``
BUILTIN_ADAPTERS = {"minilm": "rf8hw.zoo.minilm:adapter", "smollm2": "rf8hw.zoo.smollm2:adapter"}


#: The keys an adapter's ``info`` may hold (an unknown key is refused, not ignored).
INFO_KEYS = ("name", "batch", "calibrate", "notes")


def model_choices() -> str:
    """What ``--model`` accepts, for help texts and messages."""
    names = ", ".join(MODELS + tuple(BUILTIN_ADAPTERS))
    return f"{names}, package.module:function or path/to/file.py:function"


def model_tag(model: str) -> str:
    """``model`` as a piece of a file name (default output folders): ``mypkg.mod:fn`` ->
    ``mypkg_mod_fn``, ``path/to/my_adapter.py:fn`` -> ``my_adapter_fn``."""
    module, sep, fn = model.rpartition(":")
    if sep and _is_file_target(module):
        model = f"{Path(module).stem}:{fn}"
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in model)


def describe_exception(exc: BaseException) -> str:
    """One line for an exception raised by user code: ``TypeError: message (at file.py:12)``, the
    innermost frame of the user's own code (not rf8hw's, not an installed package's, not
    Python's import machinery), else the innermost frame."""
    text = (str(exc).strip().splitlines() or [""])[0]
    where = None
    if isinstance(exc, SyntaxError) and exc.filename:
        where = f"{exc.filename}:{exc.lineno}"
    else:
        ours = str(Path(__file__).resolve().parents[1])
        frames = [f for f in traceback.extract_tb(exc.__traceback__) if not f.filename.startswith("<")]
        mine = [f for f in frames if not f.filename.startswith(ours)
                and not any(d in f.filename for d in ("site-packages", "dist-packages"))]
        if mine or frames:
            f = (mine or frames)[-1]
            where = f"{f.filename}:{f.lineno}"
    if isinstance(exc, SystemExit):
        text = f"sys.exit({exc.code!r})"
    return f"{type(exc).__name__}{': ' + text if text else ''}" + (f" (at {where})" if where else "")


@dataclass(frozen=True)
class SourceSpec:
    """A checked model name: ``kind`` is ``"zoo"`` (``checkpoint`` names its file) or
    ``"adapter"`` (``target`` is ``module:function``)."""

    model: str
    kind: str
    checkpoint: str | None = None
    target: str | None = None

    @property
    def is_zoo(self) -> bool:
        return self.kind == "zoo"


def resolve(model, checkpoint=None) -> SourceSpec:
    """The :class:`SourceSpec` of ``--model model [--checkpoint checkpoint]``, the one place that
    decides zoo or adapter.  Loads no model.

    Raises
    ------
    ValueError
        For a name that is neither a zoo model, a built-in adapter nor ``module:function``; a zoo
        model without a checkpoint or an adapter with one; a checkpoint whose sidecar holds
        another model; an adapter module that cannot be imported or has no such function.
    FileNotFoundError
        For a zoo checkpoint (or its sidecar) that does not exist.
    """
    if not isinstance(model, str) or not (model in MODELS or model in BUILTIN_ADAPTERS or ":" in model):
        raise ValueError(f"model must be one of {model_choices()}, not {model!r}")
    if model not in MODELS and model not in BUILTIN_ADAPTERS:
        _parse_target(model)                          # the form of module:function, before any import
    if model in MODELS:
        if checkpoint is None:
            raise ValueError(f"--checkpoint is required for the zoo model {model!r} "
                             "(a model.safetensors written by rf8hw train)")
        from rf8hw.nn.checkpoint import existing_file, read_json

        path = existing_file(checkpoint, "checkpoint", ".safetensors file")
        # the sidecar names the model; a malformed one is load_checkpoint's to describe in full
        held = read_json(path.with_suffix(".json"), "checkpoint sidecar").get("model")
        if held in MODELS and held != model:
            raise ValueError(f"checkpoint {str(path)!r} holds a {held!r} model, not {model!r}")
        return SourceSpec(model, "zoo", checkpoint=str(checkpoint))
    if checkpoint is not None:
        raise ValueError(f"--checkpoint is for the zoo models ({', '.join(MODELS)}); the adapter "
                         f"{model!r} loads its own model")
    load_adapter(model)                              # importable, and the function exists
    target = BUILTIN_ADAPTERS.get(model, model)
    module, _, fn = target.rpartition(":")
    if _is_file_target(module):                      # absolute: Ray workers run elsewhere
        target = f"{Path(module).resolve()}:{fn}"
    return SourceSpec(model, "adapter", target=target)


def _is_file_target(module: str) -> bool:
    return module.endswith(".py") or "/" in module


def _parse_target(model: str) -> tuple[str, str]:
    """``(module or file, function)`` of ``module:function`` / ``path/to/file.py:function``;
    ValueError naming ``model`` for anything else (checked before anything is imported)."""
    module, _, fn = model.rpartition(":")
    why = None
    if not module:
        why = "no module before ':'"
    elif not _is_file_target(module) and not all(p.isidentifier() for p in module.split(".")):
        why = (f"{module!r} is not a module name (dotted Python names, no relative '.x') nor a "
               ".py file")
    elif not fn.isidentifier():
        why = f"{fn!r} is not a function name"
    if why:
        raise ValueError(f"model must be one of {model_choices()}, not {model!r}: {why}")
    return module, fn


def _file_spec(path: Path, model: str):
    """The import spec of the Python file ``path`` (``--model path/to/file.py:function``), under a
    module name of its own; ValueError naming it when it is not a Python file."""
    if not path.is_file():
        raise ValueError(f"adapter file {str(path)!r} of --model {model!r} "
                         f"{'is not a file' if path.exists() else 'does not exist'}")
    path = path.resolve()
    tag = hashlib.sha256(str(path).encode()).hexdigest()[:12]
    spec = importlib.util.spec_from_file_location(f"rf8hw_adapter_{path.stem}_{tag}", path)
    if spec is None or spec.loader is None:
        raise ValueError(f"adapter file {str(path)!r} of --model {model!r} cannot be imported as Python")
    return spec


def _import_file(spec):
    """The module of :func:`_file_spec`'s ``spec``; its folder goes first on ``sys.path``, as for
    ``python path/to/file.py``, so that its own imports resolve."""
    if spec.name in sys.modules:
        return sys.modules[spec.name]
    folder = str(Path(spec.origin).parent)
    if folder not in sys.path:
        sys.path.insert(0, folder)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    try:
        spec.loader.exec_module(mod)
    except BaseException:
        del sys.modules[spec.name]
        raise
    return mod


def load_adapter(model: str) -> Callable:
    """The adapter function named by ``model``: a built-in name (:data:`BUILTIN_ADAPTERS`),
    ``package.module:function`` (the module must be importable: on ``sys.path``, e.g. through
    ``PYTHONPATH``) or ``path/to/file.py:function``.  Checked: the form, the import (any
    exception in it is one line), that the function exists and takes no required argument."""
    target = BUILTIN_ADAPTERS.get(model, model)
    mod_name, fn = _parse_target(target)
    file_spec = _file_spec(Path(mod_name), model) if _is_file_target(mod_name) else None
    try:
        mod = importlib.import_module(mod_name) if file_spec is None else _import_file(file_spec)
    except ModuleNotFoundError as exc:
        if exc.name and (mod_name == exc.name or mod_name.startswith(exc.name + ".")):
            raise ValueError(f"adapter module {mod_name!r} of --model {model!r} cannot be imported: "
                             f"{exc}; the module must be on the Python path (PYTHONPATH), or name its "
                             f"file: --model path/to/{mod_name.rpartition('.')[2]}.py:{fn}") from exc
        raise ValueError(f"adapter module {mod_name!r} of --model {model!r} failed to import: "
                         f"{describe_exception(exc)}") from exc
    except (Exception, SystemExit) as exc:
        raise ValueError(f"adapter module {mod_name!r} of --model {model!r} failed to import: "
                         f"{describe_exception(exc)}") from exc
    func = getattr(mod, fn, None)
    if not callable(func):
        raise ValueError(f"adapter {target!r}: module {mod_name!r} has no function {fn!r}")
    try:
        needed = [p.name for p in inspect.signature(func).parameters.values()
                  if p.default is p.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    except (TypeError, ValueError):                  # no signature to read (a builtin): call it
        needed = []
    if needed:
        raise ValueError(f"adapter {target!r} must be callable without arguments; it requires "
                         f"{', '.join(needed)}")
    return func


@dataclass
class ModelSource:
    """A model and everything an estimate, a sweep or a layer co-simulation needs from it.

    Attributes
    ----------
    name : str
        The name reports use (the zoo name, or the adapter's ``info["name"]``).
    model : torch.nn.Module
        The float model, in eval mode; never changed (formats are applied to copies).
    example : callable ``example(model)``, tensor, tuple or dict
        One forward pass (:func:`rf8hw.accel.gemms.run_example`) of :attr:`batch` inferences:
        what the GEMM capture and the cycle model count, and what ``cosim --layer`` runs.
    batch : int
        Inferences the example covers.
    metric : callable ``metric(model) -> dict``
        The evaluation; :attr:`metric_name` is the headline key, :attr:`higher_is_better` its
        direction.
    calibrate : callable ``run(model)`` or None
        A run over held-in calibration data (never the evaluation data): activation ranges for
        smoothing and static scales.  None: the source has none.
    hessian_data : callable ``run(model)`` or None
        The run whose layer inputs give GPTQ's Hessians (the zoo's ``hessian_batches`` training
        batches; an adapter's ``calibrate``).
    quantize_options : dict
        Keyword arguments of :func:`rf8hw.nn.quant.quantize_` selecting the layers (zoo: every
        exact ``nn.Linear``; adapters: the default selection).
    notes : list of str
    checkpoint : str or None
    kind : {"zoo", "adapter", "python"}
    """

    name: str
    model: Any
    example: Any
    metric: Callable
    metric_name: str
    higher_is_better: bool
    batch: int = 1
    calibrate: Callable | None = None
    hessian_data: Callable | None = None
    quantize_options: dict = field(default_factory=dict)
    notes: list = field(default_factory=list)
    checkpoint: str | None = None
    kind: str = "python"

    def __post_init__(self):
        checks.integer("batch", self.batch, 1)
        for name in ("metric", "calibrate", "hessian_data"):
            value = getattr(self, name)
            if value is not None and not callable(value):
                raise ValueError(f"{name} must be a callable run(model), not {type(value).__name__}")


def _number(value):
    """``value`` as a float if it is a real number (a Python or numpy number, a one-element
    tensor or array; not a bool), else None."""
    if hasattr(value, "item") and not isinstance(value, numbers.Number):
        try:
            value = value.item()
        except (AttributeError, TypeError, ValueError, RuntimeError):
            return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return None
    return float(value)


def check_metrics(values, where: str) -> dict:
    """``values`` (what a metric returned) as ``{name: float}``, or ValueError naming ``where``
    (e.g. ``minilm, path rf8_bitexact``): a non-empty dict of string keys and finite real numbers
    (a report is JSON, which has no NaN or infinity)."""
    if not isinstance(values, dict) or not values:
        got = "an empty dict" if isinstance(values, dict) else type(values).__name__
        raise ValueError(f"{where}: a metric must return a number or a non-empty dict of numbers, not {got}")
    out = {}
    for k, v in values.items():
        x = _number(v)
        if not isinstance(k, str) or x is None:
            raise ValueError(f"{where}: metric {k!r} is {v!r} ({type(v).__name__}); a metric's values "
                             "must be numbers under string names")
        if not math.isfinite(x):
            raise ValueError(f"{where}: metric {k!r} is {x}; a metric must be a finite number (the "
                             "report is JSON, which has no NaN or infinity)")
        out[k] = x
    return out


def _guarded(fn: Callable, what: str) -> Callable:
    """``fn(model)`` whose exceptions become one ValueError line naming ``what``."""
    def call(model):
        try:
            return fn(model)
        except (Exception, SystemExit) as exc:
            raise ValueError(f"{what} raised {describe_exception(exc)}") from exc
    return call


def from_adapter(result, name: str = "model", where: str = "an adapter") -> ModelSource:
    """The :class:`ModelSource` of an adapter's return value: a tuple ``(model, example, metric[,
    info])`` or a dict with those keys (``info``'s keys in the dict itself).

    Every part is checked here (``where`` names the adapter in the messages): ``model`` an
    ``nn.Module``; ``example`` a callable ``example(model)``, a tensor, a tuple or a dict of
    inputs; ``metric`` a callable whose ``name`` (if any) is a string and ``higher_is_better``
    (if any) a bool; ``info`` a dict of :data:`INFO_KEYS`.  The example, metric and calibration
    run, when they raise, raise one ValueError line naming them."""
    import torch

    if isinstance(result, dict):
        missing = {"model", "example", "metric"} - set(result)
        if missing:
            raise ValueError(f"{where} returned a dict without {sorted(missing)}")
        model, example, metric = result["model"], result["example"], result["metric"]
        info = {k: v for k, v in result.items() if k not in ("model", "example", "metric")}
    elif isinstance(result, (tuple, list)) and len(result) in (3, 4):
        model, example, metric = result[:3]
        info = result[3] if len(result) == 4 else {}
        if not isinstance(info, dict):
            raise ValueError(f"{where}: info (the 4th item) must be a dict, not {type(info).__name__}")
    else:
        got = f"a {type(result).__name__} of {len(result)} items" if isinstance(result, (tuple, list)) \
            else type(result).__name__
        raise ValueError(f"{where} must return (model, example, metric[, info]) or a dict with those "
                         f"keys, not {got}")
    unknown = sorted(map(str, set(info) - set(INFO_KEYS)))
    if unknown:
        raise ValueError(f"{where}: unknown info key(s) {', '.join(unknown)}; known: {', '.join(INFO_KEYS)}")
    if not isinstance(model, torch.nn.Module):
        raise ValueError(f"{where}: model must be a torch.nn.Module, not {type(model).__name__}")
    if not (callable(example) or isinstance(example, (torch.Tensor, tuple, dict))):
        raise ValueError(f"{where}: example must be a callable example(model), a tensor, a tuple or a "
                         f"dict of inputs, not {type(example).__name__}")
    if not callable(metric):
        raise ValueError(f"{where}: metric must be a callable metric(model), not {type(metric).__name__}")
    headline = getattr(metric, "name", None)
    if headline is not None and not isinstance(headline, str):
        raise ValueError(f"{where}: metric.name must be a string, not {headline!r}")
    higher = getattr(metric, "higher_is_better", True)
    if not isinstance(higher, bool):
        raise ValueError(f"{where}: metric.higher_is_better must be True or False, not {higher!r}")
    label = info.get("name", name)
    if not isinstance(label, str) or not label:
        raise ValueError(f"{where}: info['name'] must be a non-empty string, not {label!r}")
    batch = checks.integer(f"{where}: info['batch']", info.get("batch", 1), 1)
    calibrate = info.get("calibrate")
    if calibrate is not None and not callable(calibrate):
        raise ValueError(f"{where}: info['calibrate'] must be a callable run(model) or None, not "
                         f"{type(calibrate).__name__}")
    notes = info.get("notes", ())
    if isinstance(notes, str) or not isinstance(notes, (list, tuple)) or \
            not all(isinstance(n, str) for n in notes):
        raise ValueError(f"{where}: info['notes'] must be a list of strings, not {notes!r}")
    model.eval()

    def evaluate(m) -> dict:
        v = metric(m)
        return v if isinstance(v, dict) else {headline or "metric": v}

    run = _guarded(lambda m, ex=example: _run_example(m, ex), f"the example of {where}")
    calibrate = None if calibrate is None else _guarded(calibrate, f"the calibrate entry of {where}")
    measure = _guarded(evaluate, f"the metric of {where}")
    return ModelSource(name=label, model=model, example=run, metric=measure, metric_name=headline,
                       higher_is_better=higher, batch=batch, calibrate=calibrate,
                       hessian_data=calibrate, notes=list(notes), kind="adapter")


def _run_example(model, example):
    from rf8hw.accel.gemms import run_example

    return run_example(model, example)


def _zoo_batches(mod, config, n: int) -> list:
    """``n`` training batches of the recipe's size (generator seed 0): calibration data."""
    import torch

    data, gen = mod.Data(config), torch.Generator().manual_seed(0)
    return [data.batch(gen, mod.RECIPE["batch_size"])[0] for _ in range(n)]


def _zoo(spec: SourceSpec, batch: int, calibrate_batches: int, hessian_batches: int,
         progress: bool) -> ModelSource:
    import torch

    from rf8hw import zoo
    from rf8hw.nn.checkpoint import load_checkpoint

    model, _ = load_checkpoint(spec.checkpoint)
    model.eval()
    mod = zoo.get(spec.model)
    recipe = mod.RECIPE
    data = mod.Data(model.config)

    def evaluate(m) -> dict:
        from tqdm import tqdm

        # a progress bar ticking once per forward batch
        with tqdm(total=recipe["eval_batches"] or 1, desc="evaluate", unit="batch", leave=False,
                  disable=not progress, file=sys.stderr) as bar:
            def tick(*_):           # returns None: a forward hook's value would replace the output
                bar.update()

            hook = m.register_forward_hook(tick)
            try:
                return data.evaluate(m, recipe["eval_batches"], recipe["batch_size"])
            finally:
                hook.remove()

    def runs(n: int):
        if not n:
            return None
        batches = _zoo_batches(mod, model.config, n)
        return lambda m: [m(b) for b in batches]

    return ModelSource(
        name=spec.model, model=model, example=mod.example(model.config, batch), metric=evaluate,
        metric_name=recipe["metric"], higher_is_better=recipe["higher_is_better"], batch=batch,
        calibrate=runs(calibrate_batches), hessian_data=runs(hessian_batches),
        quantize_options={"filter_fn": lambda m, _: type(m) is torch.nn.Linear,
                          "quantize_tied_lm_head": True},
        checkpoint=spec.checkpoint, kind="zoo")


def load(spec: SourceSpec, *, batch: int | None = None, calibrate_batches: int = 0,
         hessian_batches: int = 0, progress: bool = False) -> ModelSource:
    """Load the :class:`ModelSource` of ``spec`` (:func:`resolve`).

    ``batch`` (zoo models; default 1): inferences in the example.  ``calibrate_batches`` /
    ``hessian_batches`` (zoo models): training batches of the calibration data and of the GPTQ
    Hessian run (0: none); an adapter brings its own calibration data.  ``progress``: a bar per
    evaluation of a zoo model.
    """
    if not isinstance(spec, SourceSpec):
        raise TypeError(f"spec must be a SourceSpec (rf8hw.accel.source.resolve), not {spec!r}")
    if spec.is_zoo:
        return _zoo(spec, 1 if batch is None else batch, calibrate_batches, hessian_batches, progress)
    if batch is not None:
        raise ValueError("batch is for the zoo models; an adapter's example sets its own batch")
    where = f"adapter {spec.model!r}"
    make = load_adapter(spec.target)         # for a file: its absolute path
    try:
        result = make()
    except (Exception, SystemExit) as exc:
        raise ValueError(f"{where} raised {describe_exception(exc)}") from exc
    return from_adapter(result, name=spec.model, where=where)
