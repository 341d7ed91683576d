"""Baseline PE kinds for the FPGA comparison: INT8 x INT8 and FP8-E4M3 weight x INT8 activation.

Both follow the PE interface of :mod:`rf8hw.hdl.pe` (they subclass
:class:`~rf8hw.hdl.pe.WeightStationaryPE`), so they drop into :class:`rf8hw.hdl.array.RF8Array`
with ``pe=Int8PE`` / ``pe=FP8E4M3PE`` and share its registers, accumulator and overflow rule.  The
products are defined, independently of this RTL, in :mod:`rf8hw.format.baselines`.
"""


from amaranth.hdl import Module, Mux, Signal, Value, signed
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from rf8hw.format import baselines
from rf8hw.hdl.pe import WeightStationaryPE

__all__ = ["Int8PE", "FP8E4M3Fields", "FP8E4M3Decoder", "FP8E4M3PE", "Int8PipePE"]


class Int8PE(WeightStationaryPE):
    """INT8 weight x signed activation: ``P(x, w) = x * w`` with one ``*`` operator.

    The same RTL serves two synthesis kinds (``rf8hw.accel.synth``): ``int8`` (DSP inference disabled,
    so the multiplier is built from LUTs) and ``int8_dsp`` (Yosys maps it to a DSP multiplier).
    The stored weight is the raw two's complement code (8 flip-flops, twice: double buffer).

    Parameters
    ----------
    act_bits, acc_bits, overflow
        As :class:`~rf8hw.hdl.pe.WeightStationaryPE`.
    """

    weight_shape = signed(8)                   # the code itself: two's complement

    def product(self, m: Module, a: Value, w) -> Value:
        p = Signal(signed(self.act_bits + self.weight_bits))
        m.d.comb += p.eq(a * w)
        return p


class FP8E4M3Fields(data.Struct):
    """Decoded FP8-E4M3 weight as stored in each PE (9 bits): ``W = (-1)**sign * sig << shift``.

    Attributes
    ----------
    sign : 1 bit
        Weight sign.
    shift : 4 bits
        ``e - 1`` (0..14), ``e = max(E, 1)``.
    sig : 4 bits
        Integer significand: ``8 + M`` (normal), ``M`` (subnormal), 0 for the NaN codes.
    """

    sign: 1
    shift: 4
    sig: 4


class FP8E4M3Decoder(wiring.Component):
    """Split an FP8-E4M3 code into :class:`FP8E4M3Fields` (combinational, one per array column).

    Members
    -------
    code : In(8)
        ``s EEEE MMM`` (E4M3FN: bias 7, NaN = ``S.1111.111``, no infinities).
    fields : Out(FP8E4M3Fields)
        Valid in the same cycle.
    """

    code: In(8)
    fields: Out(FP8E4M3Fields)

    def elaborate(self, platform):
        m = Module()
        e_field, mant = self.code[3:7], self.code[:3]
        normal = e_field != 0
        nan = (e_field == 0xF) & (mant == 0x7)
        m.d.comb += [
            self.fields.sign.eq(self.code[7]),
            self.fields.shift.eq(Mux(normal, e_field - 1, 0)),
            self.fields.sig.eq(Mux(nan, 0, Mux(normal, 8 + mant, mant))),
        ]
        return m


class FP8E4M3PE(WeightStationaryPE):
    """FP8-E4M3 weight x signed activation: ``P(x, code) = x * W(code)``, ``W = value * 2**9``.

    Computed as ``((-x if sign else x) * sig) << shift``: a ``(act_bits+1) x 4``-bit multiplier and
    a 0..14 barrel shifter, truncated exactly to ``baselines.product_bits("fp8_e4m3", act_bits)``
    bits (26 for 8-bit activations).  Same structure as :class:`~rf8hw.hdl.pe.RF8PE` with the
    shift-add replaced by a small multiplier.

    Parameters
    ----------
    act_bits, acc_bits, overflow
        As :class:`~rf8hw.hdl.pe.WeightStationaryPE`.
    """

    weight_shape = FP8E4M3Fields
    decoder = FP8E4M3Decoder

    def product(self, m: Module, a: Value, w) -> Value:
        xs = Signal(signed(self.act_bits + 1))
        m.d.comb += xs.eq(Mux(w.sign, -a, a))
        xm = Signal(signed(self.act_bits + 5))
        m.d.comb += xm.eq(xs * w.sig)
        return (xm << w.shift)[:baselines.product_bits("fp8_e4m3", self.act_bits)].as_signed()


class Int8PipePE(Int8PE):
    """:class:`Int8PE` with the product registered before the accumulator (kinds ``int8_pipe``,
    ``int8_dsp_pipe``: ``product_latency = 2`` in :data:`rf8hw.arch.PE_KINDS`).

    The fair partner of :class:`rf8hw.hdl.rf8_variants.RF8PipePE`: the same pipeline cut (the
    multiplier in stage 1, the accumulator adder in stage 2).  With DSP inference on
    (``int8_dsp_pipe``), Yosys can put the stage register into the DSP's output register.
    """

    def product(self, m: Module, a: Value, w) -> Value:
        p = super().product(m, a, w)
        p_r = Signal(p.shape(), name="p_r", reset_less=True)
        with m.If(self.ce):
            m.d.sync += p_r.eq(p)
        return p_r
