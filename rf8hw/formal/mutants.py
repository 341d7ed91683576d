"""Mutants: copies of the designs with one mux flipped or one register dropped, one per
property, to show that each proof can fail (and that its counterexample is a VCD trace).

Nothing here is used by the designs; :mod:`rf8hw.formal.suite` pairs every property with its
mutant (:data:`MUTANTS`), and ``tests/formal`` runs the property on the mutant and expects a
failed proof with a trace.
"""

from __future__ import annotations

from amaranth.hdl import ClockDomain, DomainRenamer, Module, Mux, Signal, signed

from rf8hw.format import spec
from rf8hw.hdl.axi import RF8AxiTop
from rf8hw.hdl.baseline_pe import Int8PE
from rf8hw.hdl.pe import RF8PE
from rf8hw.hdl.rf8_variants import RF8PipePE, RF8SignLatePE

__all__ = ["ResidualSignFlippedPE", "UnregisteredInt8PipePE", "SaturateLimitsSwappedPE",
           "SignCarryDroppedPE", "StageIgnoresCePE", "MutantAxiTop", "AXI_MUTATIONS", "mutant_axi_top"]


class ResidualSignFlippedPE(RF8PE):
    """``RF8PE`` with the residual add/subtract mux flipped (``M(R)`` wrong for every R != 0)."""

    def product(self, m, a, w):
        xs = Signal(signed(self.act_bits + 1))
        m.d.comb += xs.eq(Mux(w.zero, 0, Mux(w.sign, -a, a)))
        lead = xs << spec.FRAC_BITS
        residual = Mux(w.res, xs << w.res_shift, 0)
        xm = Signal(signed(self.act_bits + spec.FRAC_BITS + 2))
        m.d.comb += xm.eq(Mux(w.res_neg, lead + residual, lead - residual))     # flipped
        return (xm << w.shift)[:spec.min_acc_bits(self.act_bits)].as_signed()


class UnregisteredInt8PipePE(Int8PE):
    """``int8_pipe`` with its product register dropped (latency 1 where the kind says 2)."""


class SaturateLimitsSwappedPE(RF8PE):
    """``RF8PE`` whose saturating accumulator clamps to the wrong limit (the clamp's mux
    flipped: overflow upwards gives the most negative value and vice versa)."""

    def elaborate(self, platform):
        m = Module()
        shadow = Signal(self.weight_shape, name="shadow", reset_less=True)
        weight = Signal(self.weight_shape, name="weight", reset_less=True)
        with m.If(self.w_load):
            m.d.sync += shadow.eq(self.w_data)
        swap = Signal(name="swap")
        with m.If(self.ce):
            m.d.sync += swap.eq(self.swap_in)
            with m.If(self.swap_in):
                m.d.sync += weight.eq(shadow)
        m.d.comb += self.swap_out.eq(swap)
        p = self.product(m, self.a_in, weight)
        acc = self.acc_bits
        total = self.psum_in.as_signed() + p.as_signed()
        wrapped = total[:acc].as_signed()
        if self.overflow == "saturate":
            limit = Mux(total[acc], (1 << (acc - 1)) - 1, -(1 << (acc - 1)))     # flipped
            wrapped = Mux(total[acc] ^ total[acc - 1], limit, wrapped)
        a_reg = Signal(signed(self.act_bits), reset_less=True)
        psum_reg = Signal(signed(acc), reset_less=True)
        with m.If(self.ce):
            m.d.sync += [a_reg.eq(self.a_in), psum_reg.eq(wrapped)]
        m.d.comb += [self.a_out.eq(a_reg), self.psum_out.eq(psum_reg)]
        return m


class SignCarryDroppedPE(RF8SignLatePE):
    """``rf8_signlate`` without the ``+ s`` that completes the negation (``~q`` for ``-q``)."""

    def product(self, m, a, w):
        xg = Signal(signed(self.act_bits))
        m.d.comb += xg.eq(Mux(w.zero, 0, a))
        r = Signal(signed(self.act_bits + spec.FRAC_BITS - 1))
        m.d.comb += r.eq(Mux(w.res, xg << w.res_shift, 0))
        neg = w.res_neg.replicate(len(r)).as_signed()
        xm = Signal(signed(self.act_bits + spec.FRAC_BITS + 1))
        m.d.comb += xm.eq((xg << spec.FRAC_BITS) + (r ^ neg) + w.res_neg)
        q = (xm << w.shift)[:spec.min_acc_bits(self.act_bits)].as_signed()
        return q ^ w.sign.replicate(len(q)).as_signed()                          # + s dropped


class StageIgnoresCePE(RF8PipePE):
    """``rf8_pipe`` whose stage register loads on every clock, not only with ``ce`` (its enable
    dropped): a stall loses the stalled step's product."""

    def product(self, m, a, w):
        xml, shift_hi, sign = self._stage1(m, a, w)
        xml_r = Signal(xml.shape(), name="xml_r", reset_less=True)
        shift_hi_r = Signal(len(shift_hi), name="shift_hi_r", reset_less=True)
        sign_r = Signal(name="sign_r", reset_less=True)
        m.d.sync += [xml_r.eq(xml), shift_hi_r.eq(shift_hi), sign_r.eq(sign)]      # no ce
        return self._stage2(m, xml_r, shift_hi_r, sign_r)


#: Mutations of the AXI top (:class:`MutantAxiTop`), one per protocol property.
AXI_MUTATIONS = {
    "reset_quiet": "m_axis_acc_tvalid not gated by reset",
    "acc_hold": "the output FIFO is read whatever m_axis_acc_tready says",
    "no_orphan_beat": "s_axis_a_tvalid ignored: the array takes a beat in every cycle it is ready",
    "err_w_tlast": "s_axis_w_tlast inverted into the array",
    "tile_beats": "m_axis_acc_tlast one beat late (the previous taken beat's last)",
}


class MutantAxiTop(RF8AxiTop):
    """A copy of :class:`RF8AxiTop`'s port wiring with one mutation (:data:`AXI_MUTATIONS`)."""

    mutation = "reset_quiet"

    def elaborate(self, platform):
        m = Module()
        m.domains.array = domain = ClockDomain("array", local=True)
        reset_in = getattr(self, self.reset_port)
        m.d.comb += [domain.clk.eq(getattr(self, self.clock_port)),
                     domain.rst.eq(~reset_in if self.reset_active_low else reset_in)]
        array = self.array
        m.submodules.array = DomainRenamer("array")(array)
        run = ~domain.rst
        mut = self.mutation
        tlast = array.acc.p.last
        if mut == "tile_beats":
            late = Signal(name="tlast_late")
            with m.If(array.acc.valid & array.acc.ready):
                m.d.array += late.eq(array.acc.p.last)
            tlast = late
        m.d.comb += [
            array.w.p.data.as_value().eq(self.s_axis_w_tdata),
            array.w.p.last.eq(~self.s_axis_w_tlast if mut == "err_w_tlast" else self.s_axis_w_tlast),
            array.w.valid.eq(self.s_axis_w_tvalid & run),
            self.s_axis_w_tready.eq(array.w.ready & run),
            *(array.act.p.data[k].eq(
                self.s_axis_a_tdata[self.act_lane * k:self.act_lane * k + self.act_bits])
              for k in range(self.rows)),
            array.act.p.last.eq(self.s_axis_a_tlast),
            array.act.valid.eq(run if mut == "no_orphan_beat" else self.s_axis_a_tvalid & run),
            self.s_axis_a_tready.eq(array.act.ready & run),
            *(self.m_axis_acc_tdata[self.acc_lane * n:self.acc_lane * (n + 1)].eq(
                array.acc.p.data[n]) for n in range(self.cols)),
            self.m_axis_acc_tlast.eq(tlast),
            self.m_axis_acc_tvalid.eq(array.acc.valid if mut == "reset_quiet" else array.acc.valid & run),
            array.acc.ready.eq(run if mut == "acc_hold" else self.m_axis_acc_tready & run),
            self.err_w_tlast.eq(array.err_w_last),
        ]
        return m


def mutant_axi_top(mutation: str) -> type:
    """A :class:`MutantAxiTop` subclass with ``mutation`` (a key of :data:`AXI_MUTATIONS`)."""
    if mutation not in AXI_MUTATIONS:
        raise ValueError(f"mutation must be one of {', '.join(AXI_MUTATIONS)}, not {mutation!r}")
    return type(f"MutantAxiTop_{mutation}", (MutantAxiTop,), {"mutation": mutation})
