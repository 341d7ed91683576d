"""PyTorch front end: GG statistics and init, coded rate, BackSlash, DeepShape, quantization,
bit-exact RF8 layers, training and checkpoints.  Imports :mod:`rf8hw.format`, :mod:`rf8hw.checks`,
:mod:`rf8hw.files`, the array configuration of :mod:`rf8hw.arch` and the model zoo
(:mod:`rf8hw.zoo`); nothing above it.

Import order inside the package (each module imports only modules to its left, never back):
``params`` -> ``gg``, ``rate`` -> ``backslash``, ``deepshape`` -> ``train``; ``params`` ->
``bitexact``, ``grid`` -> ``gptq`` -> ``quant``.  ``params`` holds the shared helpers
(``select_params``, ``as_array``, real-number checks); ``bitexact`` the per-layer hardware
arithmetic; ``quant`` (a package: formats, the ``QuantLinear`` layer, whole-model functions such
as ``set_mode`` and ``calibrate``, save/load, ``QuantConfig``, ``quantize_``) the quantization;
``checkpoint`` the zoo's checkpoint files and the readers every loader shares.
"""
