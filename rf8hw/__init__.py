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

Hugging Face: ``import rf8hw`` registers rf8hw's quantization config and quantizer with transformers
(:mod:`rf8hw.nn.quant.hf`), so that ``from_pretrained`` loads rf8hw checkpoints; to stay cheap it
imports neither transformers nor torch for that.  If ``transformers.quantizers.auto`` (what
``from_pretrained`` dispatches quantization configs with) is loaded already, the registration runs
at once; otherwise a finder on ``sys.meta_path`` runs it right after that module is first imported,
then removes itself.
"""

import importlib.abc
import importlib.util
import sys
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


_HF_DISPATCH = "transformers.quantizers.auto"


def _register_hf() -> None:
    mod = sys.modules.get("rf8hw.nn.quant.hf")
    if mod is not None and not hasattr(mod, "register"):
        return                           # being imported (it imported transformers): registers at its end
    import_module("rf8hw.nn.quant.hf").register()


class _RegisterAfter(importlib.abc.Loader):
    """Runs the module's own loader, then :func:`_register_hf`."""

    def __init__(self, inner):
        self.inner = inner

    def create_module(self, spec):
        return self.inner.create_module(spec)

    def exec_module(self, module):
        self.inner.exec_module(module)
        _register_hf()


class _HFHook(importlib.abc.MetaPathFinder):
    """Wraps the loader of ``transformers.quantizers.auto`` the first time it is imported."""

    def find_spec(self, name, path, target=None):
        if name != _HF_DISPATCH:
            return None
        if self in sys.meta_path:
            sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.loader is not None:
            spec.loader = _RegisterAfter(spec.loader)
        return spec


if _HF_DISPATCH in sys.modules:
    _register_hf()
elif not any(isinstance(f, _HFHook) for f in sys.meta_path):
    sys.meta_path.insert(0, _HFHook())
