"""No multiplier in the RF8 datapath: Yosys must find no ``$mul`` cell in the PE or the array."""

import pytest
from amaranth.back import rtlil
from amaranth.hdl import Module, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from rf8hw.arch import ArrayConfig
from rf8hw.hdl.axi import RF8AxiTop
from rf8hw.hdl.pe import RF8PE
from rf8hw.toolchain.tools import yosys_cell_counts

pytestmark = pytest.mark.slow          # runs Yosys


class TinyMultiplier(wiring.Component):
    """Positive control: a module that does use ``*``."""

    a: In(signed(8))
    b: In(signed(8))
    p: Out(signed(16))

    def elaborate(self, platform):
        m = Module()
        m.d.comb += self.p.eq(self.a * self.b)
        return m


def cells(component, name):
    text = rtlil.convert(component, name=name)
    return text, yosys_cell_counts(text, name)


def test_multiplier_check_finds_mul_in_a_module_that_multiplies():
    text, counts = cells(TinyMultiplier(), "tiny_mul")
    assert "$mul" in text
    assert counts.get("$mul") == 1


@pytest.mark.parametrize("act_bits, overflow", [(8, "wrap"), (8, "saturate"), (16, "wrap")])
def test_rf8_pe_has_no_multiplier(act_bits, overflow):
    text, counts = cells(RF8PE(act_bits, 40, overflow), "rf8_pe")
    assert "$mul" not in text
    assert "$mul" not in counts and "$macc" not in counts
    assert counts.get("$shl") == 2            # the residual shift and the exponent shift
    # shadow and in-use weight (double buffer), activation and partial-sum registers; the swap
    # flag is the one register with a reset
    assert counts.get("$add") and counts.get("$dffe") == 4 and counts.get("$sdffe") == 1


def test_rf8_array_has_no_multiplier():
    text, counts = cells(RF8AxiTop(ArrayConfig(3, 2, pe="rf8")), "rf8_array")
    assert "$mul" not in text and "$mul" not in counts
    assert counts.get("$shl") == 2 * 3 * 2    # two per PE: the PEs really are in the netlist
