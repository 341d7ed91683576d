"""Weight-only quantization of linear layers: RF8 and the INT8 / FP8 E4M3 / APoT baselines.

``quantize(model, fmt=...)`` returns a copy of the model whose ``nn.Linear`` layers (except those
matched by ``skip``) are :class:`QuantLinear`; ``quantize_(model, QuantConfig(...))`` does the
same in place for any model (Hugging Face ``Conv1D`` included).  A ``QuantLinear`` holds **packed
8-bit codes and their exponents or scales only**, never a float copy of the weight, and runs
fake-quant in float (the weight is decoded on every forward pass) or, for RF8, the array's
bit-exact integer arithmetic (``mode="bitexact"``).  Activations stay float in fake-quant, as in
the paper.

The package, one module per concern (each imports only those above it in this list):

* :mod:`~rf8hw.nn.quant.formats`: the formats as data and their codecs (:data:`FORMATS`,
  :data:`ROUNDINGS`, :data:`GRANULARITIES`, the APoT levels, :func:`encode_weight`,
  :func:`decode_weight`); the storage of every format is described there.
* :mod:`~rf8hw.nn.quant.layer`: the layer :class:`QuantLinear` (its buffers, caches, fake-quant
  and bit-exact forward, :data:`MODES`) and what a linear-like module is (:func:`is_linear_like`,
  :func:`is_conv1d`).  :data:`ACT_DYNAMIC`, the dynamic activation scales of the bit-exact path,
  comes from :mod:`rf8hw.nn.bitexact`.
* :mod:`~rf8hw.nn.quant.whole_model`: functions over a quantized model (:func:`quant_layers`,
  :func:`rf8_layers`, :func:`sqnr_db`) and the bit-exact path's :func:`set_mode`,
  :func:`calibrate`, :func:`overflow_report`, :func:`reset_stats`.
* :mod:`~rf8hw.nn.quant.layout`: the layer metadata (:data:`LAYER_FIELDS`) and the checks every
  file format applies (the skeleton of ``QuantLinear`` layers, the stored values).
* :mod:`~rf8hw.nn.quant.saveload`: :func:`save_quantized` / :func:`load_quantized` (format
  :data:`FILE_FORMAT` version :data:`FILE_VERSION`) and :func:`mark_hf_configs` (Hugging Face
  models get the RF8 quantization config and quantizer of :mod:`rf8hw.nn.quant.hf`, which is not
  imported here: it imports transformers).
* :mod:`~rf8hw.nn.quant.config`: :class:`QuantConfig`, where every rule on the options is stated.
* :mod:`~rf8hw.nn.quant.convert`: :func:`quantize_`, :func:`quantize`, the layer selection
  (:func:`default_filter`) and smoothing (:func:`smoothing_factors`).

Every name below is importable as ``rf8hw.nn.quant.NAME``; ``docs/quantization.md`` is the guide.
"""

from rf8hw.nn.bitexact import ACT_DYNAMIC
from rf8hw.nn.quant.config import RECIPE, SCALE_OBJECTIVES, QuantConfig
from rf8hw.nn.quant.convert import default_filter, quantize, quantize_, smoothing_factors
from rf8hw.nn.quant.formats import (
                                    APOT_LEVELS,
                                    APOT_MAX,
                                    APOT_P1,
                                    APOT_P2,
                                    DEFAULT_GRANULARITY,
                                    FORMATS,
                                    FP8_E4M3_MAX,
                                    GRANULARITIES,
                                    ROUNDINGS,
                                    decode_weight,
                                    encode_weight,
)
from rf8hw.nn.quant.layer import MODES, QuantLinear, is_conv1d, is_linear_like
from rf8hw.nn.quant.layout import LAYER_FIELDS
from rf8hw.nn.quant.saveload import (
                                    FILE_FORMAT,
                                    FILE_VERSION,
                                    load_quantized,
                                    mark_hf_configs,
                                    save_quantized,
)
from rf8hw.nn.quant.whole_model import (
                                    bitexact_layers,
                                    calibrate,
                                    overflow_report,
                                    quant_layers,
                                    reset_stats,
                                    rf8_layers,
                                    set_mode,
                                    sqnr_db,
)

__all__ = [
    # formats
    "FORMATS", "ROUNDINGS", "GRANULARITIES", "DEFAULT_GRANULARITY", "FP8_E4M3_MAX", "APOT_P1",
    "APOT_P2", "APOT_LEVELS", "APOT_MAX", "encode_weight", "decode_weight",
    # layer
    "MODES", "ACT_DYNAMIC", "QuantLinear", "is_conv1d", "is_linear_like",
    # whole model
    "quant_layers", "rf8_layers", "bitexact_layers", "sqnr_db", "set_mode", "calibrate", "overflow_report",
    "reset_stats",
    # files
    "FILE_FORMAT", "FILE_VERSION", "LAYER_FIELDS", "mark_hf_configs", "save_quantized",
    "load_quantized",
    # configuration and conversion
    "RECIPE", "SCALE_OBJECTIVES", "QuantConfig", "default_filter", "smoothing_factors", "quantize_",
    "quantize",
]
