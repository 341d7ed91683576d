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

Adapters (the built-in ``minilm`` and ``smollm2`` of :mod:`rf8hw.zoo`, or ``package.module:function``):
the function, called without arguments, returns ``(model, example, metric[, info])`` or a dict with
those keys; ``info`` may hold ``name``, ``batch`` (inferences the example covers), ``calibrate``
(a callable running the model on data disjoint from the evaluation) and ``notes``.  Quantization
takes :func:`rf8hw.nn.quant.quantize_`'s default selection (every linear-like layer but a tied
head and ``nn.MultiheadAttention``'s ``out_proj``, named in the report's notes).
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from rf8hw import checks
from rf8hw.zoo import MODELS

__all__ = ["BUILTIN_ADAPTERS", "SourceSpec", "ModelSource", "resolve", "load", "load_adapter",
           "from_adapter", "model_choices"]

#: ``--model`` names of the built-in real-model adapters -> ``module:function``
BUILTIN_ADAPTERS = {"minilm": "rf8hw.zoo.minilm:adapter", "smollm2": "rf8hw.zoo.smollm2:adapter"}


def model_choices() -> str:
    """What ``--model`` accepts, for help texts and messages."""
    return f"{', '.join(MODELS + tuple(BUILTIN_ADAPTERS))} or package.module:function"


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
    return SourceSpec(model, "adapter", target=BUILTIN_ADAPTERS.get(model, model))


def load_adapter(model: str) -> Callable:
    """The adapter function named by ``model``: a built-in name (:data:`BUILTIN_ADAPTERS`) or
    ``package.module:function``."""
    target = BUILTIN_ADAPTERS.get(model, model)
    mod_name, _, fn = target.partition(":")
    try:
        mod = importlib.import_module(mod_name)
    except ModuleNotFoundError as exc:
        raise ValueError(f"adapter module {mod_name!r} of --model {model!r} cannot be imported: "
                         f"{exc}") from exc
    if not callable(getattr(mod, fn, None)):
        raise ValueError(f"adapter {target!r}: module {mod_name!r} has no function {fn!r}")
    return getattr(mod, fn)


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


def _metric_dict(metric, model) -> dict:
    v = metric(model)
    if isinstance(v, dict):
        return {k: float(x) if isinstance(x, float) or hasattr(x, "item") else x for k, x in v.items()}
    return {getattr(metric, "name", "metric"): float(v)}


def from_adapter(result, name: str = "model") -> ModelSource:
    """The :class:`ModelSource` of an adapter's return value: a tuple ``(model, example, metric[,
    info])`` or a dict with those keys (``info``'s keys in the dict itself)."""
    if isinstance(result, dict):
        missing = {"model", "example", "metric"} - set(result)
        if missing:
            raise ValueError(f"adapter returned a dict without {sorted(missing)}")
        model, example, metric = result["model"], result["example"], result["metric"]
        info = {k: v for k, v in result.items() if k not in ("model", "example", "metric")}
    elif isinstance(result, tuple) and len(result) in (3, 4):
        model, example, metric = result[:3]
        info = dict(result[3]) if len(result) == 4 else {}
    else:
        raise ValueError("an adapter must return (model, example, metric[, info]) or a dict with those "
                         f"keys, not {type(result).__name__}")
    if not callable(metric):
        raise ValueError(f"an adapter's metric must be a callable metric(model), not {type(metric).__name__}")
    model.eval()

    def evaluate(m) -> dict:
        return _metric_dict(metric, m)

    headline = getattr(metric, "name", None)
    calibrate = info.get("calibrate")
    return ModelSource(name=info.get("name", name), model=model, example=example, metric=evaluate,
                       metric_name=headline, higher_is_better=bool(getattr(metric, "higher_is_better", True)),
                       batch=info.get("batch", 1), calibrate=calibrate, hessian_data=calibrate,
                       notes=list(info.get("notes", ())), kind="adapter")


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
    return from_adapter(load_adapter(spec.model)(), name=spec.model)
