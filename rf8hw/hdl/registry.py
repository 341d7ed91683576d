"""The PE kinds: every processing element the array shell can be built with, by name.

A *PE kind* is a PE class plus how synthesis treats it.  Everything else about a kind is declared
on its class (:class:`rf8hw.hdl.pe.WeightStationaryPE`): ``weight_format`` (which 8-bit weight
format it multiplies by: ``"rf8"``, ``"int8"``, ``"fp8_e4m3"``), ``weight_bits``,
``product_latency`` (1, or 2 for the kinds that register the product) and ``make_decoder()``.

=================  ==========================  =====  =============================================
kind               class                       DSP    what it is
=================  ==========================  =====  =============================================
``rf8``            ``RF8PE``                   off    shift-add reference PE
``rf8_signlate``   ``RF8SignLatePE``           off    one residual adder, sign in the accumulator
``rf8_lean``       ``RF8LeanPE``               off    sign in the x*M adder, sign-filling shift
``rf8_pipe``       ``RF8PipePE``               off    ``rf8_lean`` with a product register (default)
``int8``           ``Int8PE``                  off    INT8 weight, ``a * w`` from LUTs
``int8_dsp``       ``Int8PE``                  on     the same RTL, multiplier in a DSP block
``int8_pipe``      ``Int8PipePE``              off    ``int8`` with a product register
``int8_dsp_pipe``  ``Int8PipePE``              on     ``int8_dsp`` with a product register
``fp8_e4m3``       ``FP8E4M3PE``               off    FP8-E4M3 weight, 4-bit multiplier + shift
=================  ==========================  =====  =============================================

The default kind of an array (:data:`rf8hw.hdl.config.DEFAULT_PE`, and why) is ``rf8_pipe``.

"DSP on" lets Yosys infer DSP multipliers (``synth_ecp5`` default, ``synth_ice40 -dsp``); "off"
builds every multiplier from LUTs (``synth_ecp5 -nodsp``, ``synth_ice40`` default).
"""

from __future__ import annotations

from dataclasses import dataclass

from rf8hw import checks
from rf8hw.hdl.baseline_pe import FP8E4M3PE, Int8PE, Int8PipePE
from rf8hw.hdl.pe import RF8PE, WeightStationaryPE
from rf8hw.hdl.rf8_variants import RF8LeanPE, RF8PipePE, RF8SignLatePE

__all__ = ["PEKind", "PE_KINDS", "pe_kind", "rf8_kinds"]


@dataclass(frozen=True)
class PEKind:
    """One entry of :data:`PE_KINDS`."""

    name: str
    cls: type        #: a :class:`~rf8hw.hdl.pe.WeightStationaryPE` subclass
    dsp: bool        #: synthesis may map its multiplier onto DSP blocks

    def __post_init__(self):
        if not issubclass(self.cls, WeightStationaryPE):
            raise TypeError(f"PE kind {self.name!r}: {self.cls!r} is not a WeightStationaryPE")

    @property
    def weight_format(self) -> str:
        """The weight format the PE multiplies by (``"rf8"``, ``"int8"``, ``"fp8_e4m3"``)."""
        return self.cls.weight_format

    @property
    def is_rf8(self) -> bool:
        """Whether the kind computes RF8 products (bit-exact to :func:`rf8hw.format.golden.product`)."""
        return self.weight_format == "rf8"

    @property
    def product_latency(self) -> int:
        """Cycles from ``a_in`` to the product entering the accumulator (1 or 2)."""
        return self.cls.product_latency

    @property
    def weight_bits(self) -> int:
        return self.cls.weight_bits


#: Kind name -> :class:`PEKind`, in the order reports list them.
PE_KINDS: dict[str, PEKind] = {k.name: k for k in (
    PEKind("rf8", RF8PE, dsp=False),
    PEKind("int8", Int8PE, dsp=False),
    PEKind("int8_dsp", Int8PE, dsp=True),
    PEKind("fp8_e4m3", FP8E4M3PE, dsp=False),
    PEKind("rf8_signlate", RF8SignLatePE, dsp=False),
    PEKind("rf8_lean", RF8LeanPE, dsp=False),
    PEKind("rf8_pipe", RF8PipePE, dsp=False),
    PEKind("int8_pipe", Int8PipePE, dsp=False),
    PEKind("int8_dsp_pipe", Int8PipePE, dsp=True),
)}


def pe_kind(name) -> PEKind:
    """The :class:`PEKind` called ``name``; ``ValueError`` naming the kinds for any other value."""
    return PE_KINDS[checks.choice("pe", name, tuple(PE_KINDS))]


def rf8_kinds() -> tuple[str, ...]:
    """Names of the kinds that compute RF8 products (the ones an RF8 estimate can use)."""
    return tuple(k for k, v in PE_KINDS.items() if v.is_rf8)
