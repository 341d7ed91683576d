"""rf8hw: hardware/software co-design toolkit for RF8, the 8-bit residual floating-point weight format.

Submodules are imported on demand so that ``import rf8hw`` stays cheap (no torch, no numba JIT):

* :mod:`rf8hw.spec`   -- the format as data (field layout, residual table, ranges)
* :mod:`rf8hw.rf8`    -- encode / decode / shared exponent (Numba kernels)
* :mod:`rf8hw.golden` -- bit-exact model of the MAC array arithmetic
"""

from importlib import import_module

__version__ = "0.1.0"

_SUBMODULES = {"spec", "rf8", "golden", "gg", "rate", "backslash", "deepshape", "quant", "hdl"}
_FUNCTIONS = {"quantize": "rf8hw.quant"}   # rf8hw.quantize(...) without importing torch up front


def __getattr__(name):
    if name in _SUBMODULES:
        return import_module(f"rf8hw.{name}")
    if name in _FUNCTIONS:
        return getattr(import_module(_FUNCTIONS[name]), name)
    raise AttributeError(f"module 'rf8hw' has no attribute {name!r}")
