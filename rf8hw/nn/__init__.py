"""PyTorch front end: GG statistics and init, coded rate, BackSlash, DeepShape, quantization,
bit-exact RF8 layers, training and checkpoints.  Imports :mod:`rf8hw.format`, :mod:`rf8hw.checks`
and the array configuration of :mod:`rf8hw.arch`; nothing above it.

Import order inside the package (each module imports only modules to its left, never back):
``params`` -> ``gg``, ``rate`` -> ``backslash``, ``deepshape`` -> ``train``; ``params`` ->
``bitexact`` -> ``quant``.  ``params`` holds the shared helpers (``select_params``, ``as_array``,
real-number checks); ``bitexact`` the per-layer hardware arithmetic; ``quant`` the
``QuantLinear`` layer and the whole-model bit-exact functions (``set_mode``, ``calibrate``,
``overflow_report``, ``reset_stats``).
"""
