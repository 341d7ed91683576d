"""The GEMM of one layer of a real, quantized model through the RTL (``rf8hw cosim --layer``).

:func:`capture_layer` quantizes a model to RF8 on the bit-exact hardware path
(:mod:`rf8hw.nn.bitexact`), runs one real forward pass and, with a forward hook on the chosen
layer, takes the layer's input on its first call: the INT8 activations ``a [M, K]`` the array
would see (the layer's own quantization rule, :func:`rf8hw.nn.bitexact.quantize_activations`),
its RF8 codes ``[K, N]`` and the bit-exact path's integer accumulator ``acc [M, N]``
(:func:`rf8hw.nn.bitexact.rf8_gemm`).  The replay is checked against the layer's real output
(float32 equality), so the integers are the ones that forward pass used.

:func:`cosim_layer` streams that GEMM through the RTL (:func:`rf8hw.sim.run.run_gemm`; the scoreboard
compares every result row with the golden model) and compares the assembled ``[M, N]`` result
with ``acc``.  Both equalities are reported.

Models: the zoo models (``mlp_digits``, ``tinygpt``: a checkpoint written by ``rf8hw train``;
the forward pass is a batch of their own training data) and any model the estimate command
accepts through an adapter (``minilm``, ``smollm2``, ``package.module:function``; the forward
pass is the adapter's example).  Imports torch (on demand).  It lives in ``rf8hw.accel``, not
``rf8hw.sim``: the co-simulation stays below the PyTorch front end (docs/architecture.md, package
map).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from rf8hw import checks
from rf8hw.arch import ArrayConfig

if TYPE_CHECKING:
    from rf8hw.sim import CosimResult

__all__ = ["LayerResult", "capture_layer", "cosim_layer", "MAX_LAYER_ROWS", "ZOO_BATCH"]

#: Most activation rows (tokens) of a captured layer input that are co-simulated.
MAX_LAYER_ROWS = 1 << 16


@dataclass(frozen=True)
class LayerResult:
    """The GEMM of one model layer through the RTL (``rf8hw cosim --layer``,
    :func:`cosim_layer`).

    Attributes
    ----------
    layer : str
    cosim : rf8hw.sim.CosimResult
        The run (its one :class:`GemmResult` holds the assembled result); ``mismatches`` counts
        result rows against the golden model.
    replay_matches_layer : bool
        The replay of the layer from the captured integers equals its float32 output.
    bitexact_mismatches : int
        Entries of the assembled RTL result that differ from the bit-exact path's integers (-1
        when not every tile was seen).
    """

    layer: str
    cosim: CosimResult
    replay_matches_layer: bool
    bitexact_mismatches: int

    @property
    def gemm_shape(self) -> tuple[int, int, int]:
        return self.cosim.gemms[0].gemm_shape

    @property
    def equals_bitexact(self) -> bool:
        return self.bitexact_mismatches == 0

    @property
    def ok(self) -> bool:
        """The golden model, the replay and the bit-exact integers all agree."""
        return self.cosim.ok and self.replay_matches_layer and self.equals_bitexact


#: Inferences in a zoo model's forward pass when ``batch`` is not given.
ZOO_BATCH = 8


def _load(model_name: str, checkpoint, batch: int | None):
    """``(model, run)``: the model, RF8-quantized as the estimate quantizes it, and a callable
    running its source's forward pass (:mod:`rf8hw.accel.source`: a zoo model's first ``batch``
    training inputs, an adapter's example)."""
    from rf8hw.accel import source as sources
    from rf8hw.accel.gemms import run_example
    from rf8hw.nn import quant

    spec = sources.resolve(model_name, checkpoint)
    if batch is not None:
        batch = checks.integer("batch", batch, 1, MAX_LAYER_ROWS)
    src = sources.load(spec, batch=(batch or ZOO_BATCH) if spec.is_zoo else batch)
    model = quant.quantize_(src.model, quant.QuantConfig(), warn=False, **src.quantize_options)
    return model, lambda m: run_example(m, src.example)


def capture_layer(model_name: str, layer: str, array: ArrayConfig, *, checkpoint=None,
                  batch: int | None = None) -> dict:
    """The integer GEMM of ``layer`` in one real forward pass of the RF8 bit-exact model.

    Parameters
    ----------
    model_name : str
        ``mlp_digits`` / ``tinygpt`` (with ``checkpoint``), or an adapter name as
        ``rf8hw estimate --model`` takes it.
    layer : str
        The layer's module name; a wrong name is a ``ValueError`` listing the RF8 layers.
    array : ArrayConfig
        Its ``act_bits``, ``acc_bits`` and ``overflow`` are the bit-exact path's arithmetic.
    batch : int, optional
        Inferences in a zoo model's forward pass (default :data:`ZOO_BATCH`); an adapter brings
        its own example (giving ``batch`` is then an error).

    Returns
    -------
    dict
        ``layer``, ``a`` (int64 ``[M, K]``), ``codes`` (uint8 ``[K, N]``), ``acc`` (the bit-exact
        path's int64 ``[M, N]``), ``shape`` ``(M, K, N)`` and ``replay_matches_layer`` (the replay
        of the layer from these integers equals the layer's float32 output, element for element).
    """
    import torch

    from rf8hw.nn import bitexact, quant

    model, run = _load(model_name, checkpoint, batch)
    quant.set_mode(model, "bitexact", array=array)
    layers = quant.rf8_layers(model)
    if layer not in layers:
        raise ValueError(f"layer {layer!r} is not an RF8 layer of {model_name}; its RF8 layers "
                         f"are: {', '.join(layers)}")
    q = layers[layer]
    seen = []

    def hook(module, args, output):
        if not seen:
            seen.append((args[0].detach(), output.detach()))

    handle = q.register_forward_hook(hook)
    try:
        with torch.no_grad():
            run(model)
    finally:
        handle.remove()
    if not seen:
        raise ValueError(f"layer {layer!r} of {model_name} was not called in the forward pass")
    x, out = seen[0]
    if q.smooth is not None:                   # QuantLinear.forward divides by it first (exact)
        x = x.float() / q.smooth
    x2 = x.reshape(-1, x.shape[-1]).to(torch.float32).cpu().numpy()
    if len(x2) > MAX_LAYER_ROWS:
        raise ValueError(f"layer {layer!r} saw {len(x2)} activation rows; at most "
                         f"{MAX_LAYER_ROWS} are co-simulated (lower the batch)")
    a, scale, _ = bitexact.quantize_activations(x2, array.act_bits, q.act_absmax,
                                                q.act_granularity)
    codes = q.codes.cpu().numpy()
    cs = None if q.channel_scale is None else q.channel_scale.detach().cpu().numpy()
    y, acc, _ = bitexact.rf8_gemm(a, scale, codes, q.exponent.cpu().numpy(), array,
                                  channel_scale=cs)
    replay = torch.from_numpy(y.astype(np.float32))
    if q.bias is not None:
        replay = replay + q.bias.detach().cpu().to(torch.float32)
    same = bool(torch.equal(replay, out.reshape(replay.shape).cpu().to(torch.float32)))
    return {"layer": layer, "a": a, "codes": codes, "acc": acc, "shape": (*a.shape, codes.shape[1]),
            "replay_matches_layer": same}


def cosim_layer(model_name: str, layer: str, cfg: ArrayConfig, options, *, checkpoint=None,
                batch: int | None = None, captured: dict | None = None, progress=None):
    """Co-simulate the GEMM of :func:`capture_layer` on the array ``cfg``.

    ``options``: the run's :class:`rf8hw.sim.options.CosimOptions` (simulator, bench, stalls,
    seed, ``out_dir``, cache, ...); without ``out_dir`` the run directory's name says
    ``layer-<model>-<layer>`` (:meth:`rf8hw.sim.options.CosimOptions.run_dir`).  ``captured``:
    the :func:`capture_layer` dict of the same arguments, if already taken (the benchmark times
    the RTL run apart from the model's loading and forward pass).  ``batch``: as
    :func:`capture_layer` (None: its default).  ``progress`` goes to
    :func:`rf8hw.sim.run.run_gemm`.  Needs ``cfg.overflow == "wrap"``: with a saturating
    accumulator the array's per-tile results, added by the host, are not the layer's one
    saturating sum over all of K (:mod:`rf8hw.nn.bitexact`, tiling note).

    Returns
    -------
    LayerResult
        The run (:func:`rf8hw.sim.run.run_gemm`'s :class:`~rf8hw.sim.result.CosimResult`:
        ``mismatches`` counts result rows against the golden model), ``replay_matches_layer``
        and ``bitexact_mismatches`` (entries of the assembled RTL result that differ from the
        bit-exact path's integers; -1 when not every tile was seen).
    """
    from rf8hw.sim.run import run_gemm

    if cfg.overflow != "wrap":
        raise ValueError(f"--layer compares the RTL with the bit-exact layer, which needs "
                         f"overflow 'wrap' (per-tile saturation is not the layer's), not "
                         f"{cfg.overflow!r}")
    got = captured or capture_layer(model_name, layer, cfg, checkpoint=checkpoint,
                                    **({} if batch is None else {"batch": batch}))
    M, K, N = got["shape"]
    result = run_gemm(M, K, N, cfg, options, a=got["a"], codes=got["codes"],
                      label=f"layer-{model_name}-{layer}", progress=progress)
    gemm = result.gemms[0].gemm
    bad = -1 if gemm is None else int((gemm != got["acc"]).sum())
    return LayerResult(layer, result, got["replay_matches_layer"], bad)
