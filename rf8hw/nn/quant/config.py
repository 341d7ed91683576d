"""The configuration of :func:`rf8hw.nn.quant.quantize_`: :class:`QuantConfig`, validated once, in its
constructor.  Each rule on the options is stated here only; callers that take the same options
(e.g. ``rf8hw estimate``) check them by building a ``QuantConfig``, so that they refuse the same
things with the same words.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from rf8hw import checks
from rf8hw.nn.bitexact import ACT_DYNAMIC
from rf8hw.nn.gptq import ORDERS as GPTQ_ORDERS
from rf8hw.nn.params import non_negative
from rf8hw.nn.quant.formats import FORMATS, GRANULARITIES, ROUNDINGS
from rf8hw.nn.quant.layer import check_mode

#: what the per-column scale search of :class:`QuantConfig` minimises (``scale_objective``)
SCALE_OBJECTIVES = ("weight", "hessian")


@dataclass(frozen=True)
class QuantConfig:
    """What :func:`~rf8hw.nn.quant.quantize_` makes of each selected layer (see
    :func:`~rf8hw.nn.quant.quantize` for ``fmt``, ``rounding``, ``granularity``, ``mode``;
    ``docs/quantization.md``, "Per-column scale search and GPTQ rounding", for the rest).

    Post-training options beyond nearest rounding (per output channel, ``rounding="nearest"``):

    * ``scale_search`` (RF8 only): a real per-output-column factor ``channel_scale[n]`` among
      ``DEFAULT_FACTORS`` (one octave, 32 points) minimising the column's squared weight error
      (:func:`rf8hw.nn.grid.search_scale`); ``scale_objective="hessian"`` weights each input
      feature by the diagonal of the layer's input Hessian (needs ``calibrate``);
      ``scale_sample_rows`` measures the error on that many sampled input features (None: all).
    * ``gptq`` (RF8 and INT8): error-compensated rounding onto the layer's grid
      (:func:`rf8hw.nn.gptq.gptq`) with the input Hessian measured by :func:`~rf8hw.nn.quant.quantize_`'s
      ``calibrate``; ``gptq_damp`` (fraction of the mean Hessian diagonal added to it),
      ``gptq_block`` (columns per lazy block) and ``gptq_order`` (``"natural"`` input order or
      ``"act"``, decreasing Hessian diagonal).
    """

    fmt: str = "rf8"
    rounding: str = "nearest"
    granularity: str | None = None
    mode: str = "fake"
    act_granularity: str = "token"
    scale_search: bool = False
    scale_objective: str = "weight"
    scale_sample_rows: int | None = None
    gptq: bool = False
    gptq_damp: float = 0.01
    gptq_block: int = 128
    gptq_order: str = "natural"

    def __post_init__(self):
        checks.choice("fmt", self.fmt, FORMATS)
        checks.choice("rounding", self.rounding, ROUNDINGS)
        if self.granularity is not None:
            checks.choice("granularity", self.granularity, GRANULARITIES)
        check_mode(self.mode, self.fmt)
        checks.choice("act_granularity", self.act_granularity, ACT_DYNAMIC)
        for name in ("scale_search", "gptq"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be True or False, not {getattr(self, name)!r}")
        checks.choice("scale_objective", self.scale_objective, SCALE_OBJECTIVES)
        if self.scale_sample_rows is not None:
            checks.integer("scale_sample_rows", self.scale_sample_rows, 1)
        non_negative("gptq_damp", self.gptq_damp)
        checks.integer("gptq_block", self.gptq_block, 1)
        checks.choice("gptq_order", self.gptq_order, GPTQ_ORDERS)
        if self.gptq_order != GPTQ_ORDERS[0] and not self.gptq:
            raise ValueError(f"gptq_order {self.gptq_order!r} orders GPTQ rounding; it needs gptq")
        if self.scale_search and self.fmt != "rf8":
            raise ValueError(f"scale_search is an RF8 option (the other formats' scales are already "
                             f"real-valued); it needs fmt 'rf8', not {self.fmt!r}")
        if self.gptq and self.fmt not in ("rf8", "int8"):
            raise ValueError(f"gptq rounds onto the rf8 or int8 grid; it needs fmt 'rf8' or 'int8', "
                             f"not {self.fmt!r}")
        if self.refined and self.rounding != "nearest":
            raise ValueError(f"scale_search / gptq round to the nearest point of a per-column grid; they "
                             f"need rounding 'nearest', not {self.rounding!r}")
        if self.refined and self.granularity == "tensor":
            raise ValueError(f"scale_search / gptq work per output channel; they need granularity "
                             f"'channel' (or None), not {self.granularity!r}")

    @property
    def refined(self) -> bool:
        """Whether codes come from the scale search or GPTQ rather than plain nearest rounding."""
        return self.scale_search or self.gptq

    @property
    def needs_calibration(self) -> bool:
        """Whether :func:`~rf8hw.nn.quant.quantize_` needs ``calibrate`` (input Hessians) for this config."""
        return self.gptq or (self.scale_search and self.scale_objective == "hessian")


#: The RF8 post-training recipe that generalised best: a per-column scale search (squared weight
#: error over every input feature) followed by GPTQ rounding in decreasing-Hessian-diagonal order.
#: Best of the measured variants on every held-out domain of SmolLM2 and MiniLM, and never worse
#: than nearest rounding there (``docs/results.md``, "Held-out evaluation"; the SmolLM2 rows
#: searched the scales on 128 sampled input features, for speed); ``rf8hw estimate``'s RF8 nearest
#: paths use it by default when the model gives calibration data.
RECIPE = {"scale_search": True, "gptq": True, "gptq_order": "act"}


#: what ``rf8hw export`` / :func:`rf8hw.nn.quant.hf.export_float` write the quantized weights as
EXPORT_DTYPES = ("bfloat16", "float32")


@dataclass(frozen=True)
class ExportConfig:
    """``rf8hw export``: an rf8hw Hugging Face checkpoint (``save_pretrained`` of a quantized
    model) -> a plain transformers checkpoint with the dequantized weights
    (:func:`rf8hw.nn.quant.hf.export_float`).  Checked here, before anything loads: ``source`` is a
    directory whose ``config.json`` has rf8hw's ``quantization_config``; ``out`` is a directory
    that can be made or filled and is not ``source``."""

    source: str = field(default="", metadata={"cli": False})
    out: str | None = field(default=None, metadata={
        "help": "directory of the plain checkpoint (config.json, model.safetensors, the source's "
                "tokenizer and generation files)", "cli_required": True, "metavar": "DIR"})
    dtype: str = field(default="bfloat16", metadata={
        "choices": EXPORT_DTYPES,
        "help": "dtype of the dequantized weights; bfloat16 is checked value by value and refused "
                "when a weight is not exact in it (per-column scales, INT8/FP8/APoT scales)"})

    def __post_init__(self):
        import json
        from pathlib import Path

        checks.choice("dtype", self.dtype, EXPORT_DTYPES)
        src = Path(self.source)
        if not str(self.source).strip() or not src.is_dir():
            raise ValueError(f"source {str(self.source)!r} is not a directory (give the folder that "
                             "save_pretrained wrote)")
        cfg = src / "config.json"
        try:
            qc = json.loads(cfg.read_text()).get("quantization_config")
        except FileNotFoundError:
            raise ValueError(f"source {str(src)!r} has no config.json: not a Hugging Face "
                             "checkpoint") from None
        except (json.JSONDecodeError, AttributeError, UnicodeDecodeError) as exc:
            raise ValueError(f"source {str(cfg)!r} is not a JSON object ({exc})") from None
        if not isinstance(qc, dict) or qc.get("quant_method") != "rf8hw":
            raise ValueError(f"source {str(src)!r} is not an rf8hw checkpoint (its config.json has "
                             f"quantization_config {qc!r:.80}; quantize with rf8hw.quantize_, then "
                             "save_pretrained)")
        out = checks.output_dir("out", self.out)
        if out is None:
            raise ValueError("out is required: the directory of the plain checkpoint")
        if out.resolve() == src.resolve():
            raise ValueError(f"out {str(out)!r} is the source directory; give another directory")
