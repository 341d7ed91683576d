"""The RTL class of every PE kind, by name.

The kinds themselves (weight format, product latency, DSP use) are data in :mod:`rf8hw.arch`,
which imports no Amaranth; this module maps each kind name to the
:class:`~rf8hw.hdl.pe.WeightStationaryPE` subclass that implements it.  ``int8`` and ``int8_dsp``
(and their ``_pipe`` variants) share one class: they differ only in how synthesis maps the
multiplier.  The default kind of an array (:data:`rf8hw.arch.DEFAULT_PE`, and why) is ``rf8_pipe``.
"""

from __future__ import annotations

from rf8hw import checks
from rf8hw.arch import PE_KINDS
from rf8hw.hdl.baseline_pe import FP8E4M3PE, Int8PE, Int8PipePE
from rf8hw.hdl.pe import RF8PE, WeightStationaryPE
from rf8hw.hdl.rf8_variants import RF8LeanPE, RF8PipePE, RF8SignLatePE

__all__ = ["PE_CLASSES", "pe_class"]

#: Kind name (:data:`rf8hw.arch.PE_KINDS`) -> PE class.
PE_CLASSES: dict[str, type[WeightStationaryPE]] = {
    "rf8": RF8PE,
    "int8": Int8PE,
    "int8_dsp": Int8PE,
    "fp8_e4m3": FP8E4M3PE,
    "rf8_signlate": RF8SignLatePE,
    "rf8_lean": RF8LeanPE,
    "rf8_pipe": RF8PipePE,
    "int8_pipe": Int8PipePE,
    "int8_dsp_pipe": Int8PipePE,
}

if set(PE_CLASSES) != set(PE_KINDS):      # a kind added on one side only is a programming error
    raise AssertionError(f"rf8hw.hdl.registry.PE_CLASSES names {sorted(PE_CLASSES)}, "
                         f"rf8hw.arch.PE_KINDS {sorted(PE_KINDS)}")


def pe_class(name) -> type[WeightStationaryPE]:
    """The PE class of the kind called ``name``; ``ValueError`` naming the kinds for any other
    value."""
    return PE_CLASSES[checks.choice("pe", name, tuple(PE_KINDS))]
