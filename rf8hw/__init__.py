"""rf8hw: hardware/software co-design toolkit for RF8, the 8-bit residual floating-point weight format.

The package is layered; each sub-package has one kind of dependency and imports only the layers
below it (``docs/architecture.md`` has the map):

* :mod:`rf8hw.format`    -- the format: spec, codec, golden MAC model, baseline formats (numpy + Numba)
* :mod:`rf8hw.hdl`       -- Amaranth RTL: decoder, PEs and their registry, array, AXI top, Verilog
* :mod:`rf8hw.toolchain` -- running Verilator / Icarus / Yosys / nextpnr, tool versions, the cache
* :mod:`rf8hw.nn`        -- PyTorch: GG, rate, BackSlash, DeepShape, quantization, bit-exact layers
* :mod:`rf8hw.accel`     -- cycle model, synthesis runs, estimates and their reports
* :mod:`rf8hw.cli`       -- the ``rf8hw`` command line, thin over the above

Sub-packages are imported on demand, so ``import rf8hw`` stays cheap (no torch, no Numba JIT).
"""

from importlib import import_module

__version__ = "0.2.0"

_SUBPACKAGES = ("format", "hdl", "toolchain", "nn", "accel")
# rf8hw.quantize(...) without importing torch up front
_FUNCTIONS = {"quantize": "rf8hw.nn.quant", "quantize_": "rf8hw.nn.quant", "QuantConfig": "rf8hw.nn.quant"}


def __getattr__(name):
    if name in _SUBPACKAGES:
        return import_module(f"rf8hw.{name}")
    if name in _FUNCTIONS:
        return getattr(import_module(_FUNCTIONS[name]), name)
    raise AttributeError(f"module 'rf8hw' has no attribute {name!r}")
