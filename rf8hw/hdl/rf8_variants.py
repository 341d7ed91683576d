"""RF8 PE micro-architecture variants, explored for area and Fmax (``docs/hardware.md``).

Each is bit-exact to :func:`rf8hw.format.golden.product` (the same exhaustive test as
:class:`rf8hw.hdl.pe.RF8PE`, ``tests/hdl/test_pe.py::test_pe_all_65536_pairs``) and follows the same PE
interface, so it drops into the array shell unchanged.  They differ only in how ``P(x, code)`` is built:

:class:`RF8PE` (reference, ``rf8hw/hdl/pe.py``)
    negate ``x`` (9-bit carry chain), ``x*M`` as ``Mux(res_neg, lead - res, lead + res)``, then a
    0..14 barrel shift.
:class:`RF8SignLatePE` (``rf8_signlate``)
    ``x*M = (x << 4) + (r ^ n) + n`` with ``r = x << res_shift`` (or 0) and ``n = res_neg``: one
    adder whose carry-in does the residual's two's complement, no ``Mux`` of two adders.  The weight
    sign is applied *after* the shift as ``(q ^ s) + s``, which Yosys folds into the accumulator
    adder (the XOR lands in the last shifter LUT, the ``+ s`` in the adder's carry-in), so the
    9-bit negation of ``x`` disappears.
:class:`RF8LeanPE` (``rf8_lean``)
    The sign goes *into* the ``x*M`` adder instead (``~(A + B) = ~A + ~B + 1``), the shift is a
    left shift by ``E - 1`` that shifts in the sign (so ``~(x*M) << (E-1)`` comes out exactly),
    and the ``+ s`` that completes the negation is the accumulator's carry-in; the per-column
    :class:`RF8LeanDecoder` precomputes the fields this needs.  The residual term is taken from
    the ungated activation (the decoder zeroes ``res`` for zero codes) and built as two 2:1
    levels, the gate in the first and the inversion in the second.
:class:`RF8PipePE` (``rf8_pipe``)
    ``RF8LeanPE`` with a register in the middle of the shift (``product_latency = 2``): ``x*M``
    and the shift by ``(E-1) mod 4`` in stage 1, the shift by the multiple of 4 and the
    accumulator in stage 2; the array shell delays its valid/last pipeline by the extra stage.

Measured numbers and what each idea bought: ``docs/hardware.md``.
"""

from amaranth.hdl import Cat, Module, Mux, Signal, Value, signed
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from rf8hw.format import spec
from rf8hw.hdl.decoder import CODE_BITS
from rf8hw.hdl.pe import RF8PE, WeightStationaryPE

__all__ = ["RF8SignLatePE", "RF8LeanFields", "RF8LeanDecoder", "shift_left_filled", "RF8LeanPE", "RF8PipePE"]


def _plus_carry(q: Value, bit: Value, acc_bits: int) -> Value:
    """``q + bit``, for the accumulator to absorb as its carry-in.

    The exact sum is one bit wider than ``q``; it is truncated back to ``len(q)`` bits (exact: the
    PEs' ``|P|`` fits ``len(q)`` signed bits) only when ``acc_bits`` leaves no room, because Yosys
    folds an untruncated ``psum + (q + bit)`` into one adder with carry-in but builds a second
    carry chain for the truncated form.
    """
    total = q + bit
    return total if len(total) <= acc_bits else total[:len(q)].as_signed()


class RF8SignLatePE(RF8PE):
    """RF8 PE with a single residual adder and the weight sign folded into the accumulator.

    ``P(x, code) = (-1)**s * ((x*M(R)) << (E-1))`` (0 when ``E == 0``) as::

        xg = 0 if zero else x                                 # act_bits bits
        r  = (xg << res_shift) if res else 0                  # act_bits + 3 bits
        xm = (xg << 4) + (r ^ -n) + n        n = res_neg      # = xg * M(R), act_bits + 5 bits
        q  = xm << shift                                      # 0..14, min_acc_bits wide
        P  = (q ^ -s) + s                                     # = -q when s

    Parameters
    ----------
    act_bits, acc_bits, overflow
        As :class:`~rf8hw.hdl.pe.WeightStationaryPE`.
    """

    def product(self, m: Module, a: Value, w) -> Value:
        xg = Signal(signed(self.act_bits))
        m.d.comb += xg.eq(Mux(w.zero, 0, a))
        r = Signal(signed(self.act_bits + spec.FRAC_BITS - 1))
        m.d.comb += r.eq(Mux(w.res, xg << w.res_shift, 0))
        neg = w.res_neg.replicate(len(r)).as_signed()
        xm = Signal(signed(self.act_bits + spec.FRAC_BITS + 1))
        m.d.comb += xm.eq((xg << spec.FRAC_BITS) + (r ^ neg) + w.res_neg)
        product_bits = spec.min_acc_bits(self.act_bits)
        q = (xm << w.shift)[:product_bits].as_signed()
        sign = w.sign.replicate(product_bits).as_signed()
        return _plus_carry(q ^ sign, w.sign, self.acc_bits)


class RF8LeanFields(data.Struct):
    """Per-PE weight fields of :class:`RF8LeanPE` (10 bits), precomputed once per column.

    Attributes
    ----------
    zero : 1 bit
        ``E == 0``: the activation is gated to 0 (and every other field below is 0).
    sign : 1 bit
        Weight sign ``s`` (0 for zero codes).
    res : 1 bit
        A residual term exists (``R != 0``; 0 for zero codes).
    rinv : 1 bit
        ``res_neg XOR sign``: invert the residual term and carry 1 into the ``x*M`` adder.
    res_shift : 2 bits
        ``FRAC_BITS - gap`` (0..3).
    shift : 4 bits
        ``E - 1`` (0..14): the left shift that places ``x*M`` (see :class:`RF8LeanPE`).
    """

    zero: 1
    sign: 1
    res: 1
    rinv: 1
    res_shift: 2
    shift: spec.EXP_BITS


class RF8LeanDecoder(wiring.Component):
    """RF8 code byte -> :class:`RF8LeanFields` (combinational, one per array column).

    Members
    -------
    code : In(8)
        ``s EEEE RRR`` (``docs/rf8-format.md``).
    fields : Out(RF8LeanFields)
        Valid in the same cycle.
    """

    def __init__(self):
        super().__init__({"code": In(CODE_BITS), "fields": Out(RF8LeanFields)})

    def elaborate(self, platform):
        m = Module()
        e_field = self.code[spec.RES_BITS:spec.RES_BITS + spec.EXP_BITS]
        r_field = self.code[:spec.RES_BITS]
        sign = self.code[spec.SIGN_BIT]
        f = self.fields
        with m.If(e_field == 0):
            m.d.comb += f.zero.eq(1)
        with m.Else():
            m.d.comb += [f.sign.eq(sign), f.rinv.eq(sign), f.shift.eq(e_field - 1)]
            with m.Switch(r_field):
                for r, residual in enumerate(spec.RESIDUAL):
                    if residual is not None:
                        rsign, gap = residual
                        with m.Case(r):
                            m.d.comb += [f.res.eq(1), f.rinv.eq(sign ^ (rsign < 0)),
                                         f.res_shift.eq(spec.FRAC_BITS - gap)]
        return m


def shift_left_filled(v: Value, amount: Value, fill: Value, width: int, first_level: int = 0) -> Value:
    """``(v << amount)`` with ``fill`` shifted in from the right (sign-extended, truncated to
    ``width`` bits), written as one 2:1 level per bit of ``amount`` (bit ``i`` shifts by
    ``2 ** (first_level + i)``), each level only as wide as its result can be.

    With ``fill = s`` and ``v = x*M ^ -s`` this is ``(x*M << amount) ^ -s``: ``~(x*M << amount)``
    for a negative weight, since ``~(X << k) = (~X << k) | (2**k - 1)``.
    """
    v = v.as_signed()
    for i in range(len(amount)):
        step = 1 << (first_level + i)
        v = Mux(amount[i], Cat(fill.replicate(step), v).as_signed(), v)
        v = v[:min(len(v), width)].as_signed()
    return v


class RF8LeanPE(WeightStationaryPE):
    """RF8 PE with the weight sign folded into the ``x*M`` adder and a sign-filling left shift.

    With ``S = -s`` (all ones when the weight is negative) and ``n`` the residual sign bit::

        xg  = 0 if zero else x                                      # act_bits
        t   = (x << res_shift[0]) if res else 0                     # level 1, gated
        r   = (t << 2 * res_shift[1]) ^ -(n ^ s)                    # level 2, inverted
        xm' = ((xg ^ S) << 4 | S[3:0]) + r + (n ^ s)
            = x*M            if s == 0                              # act_bits + 5 bits
            = ~(x*M)         if s == 1        (~(A+B) = ~A + ~B + 1)
        q   = (xm' << shift) with S shifted in,  shift = E - 1      # min_acc_bits wide
            = (x*M) << (E-1)          if s == 0
            = ~((x*M) << (E-1))       if s == 1
        P   = q + s                                                 # the +s becomes the
                                                                    # accumulator's carry-in

    Compared with :class:`~rf8hw.hdl.pe.RF8PE`: no negation of ``x`` (its 9-bit carry chain), one
    ``x*M`` adder instead of two and a mux, and the sign costs no LUT after the shifter; the
    fields it needs (``rinv``, ``shift``) are computed once per column by :class:`RF8LeanDecoder`.
    The residual term is taken from the ungated activation (the decoder zeroes ``res`` for zero
    codes) and built as two 2:1 levels, the gate in the first and the inversion in the second
    (one LUT4 per bit each; as a 4:1 mux Yosys/ABC spent ~15 LUT4 more), and the shifter is
    written level by level (:func:`shift_left_filled`).

    Parameters
    ----------
    act_bits, acc_bits, overflow
        As :class:`~rf8hw.hdl.pe.WeightStationaryPE`.
    """

    weight_shape = RF8LeanFields
    decoder = RF8LeanDecoder

    def product(self, m: Module, a: Value, w) -> Value:
        q = Signal(signed(spec.min_acc_bits(self.act_bits)))
        m.d.comb += q.eq(shift_left_filled(self._times_m(m, a, w), w.shift, w.sign, len(q)))
        return _plus_carry(q, w.sign, self.acc_bits)

    def _times_m(self, m: Module, a: Value, w) -> Value:
        """``xm' = x*M`` (or ``~(x*M)`` for a negative weight), ``act_bits + 5`` bits."""
        frac = spec.FRAC_BITS
        sign = w.sign.replicate(self.act_bits).as_signed()
        xg = Signal(signed(self.act_bits))
        m.d.comb += xg.eq(Mux(w.zero, 0, a))
        # the fill below xg ^ S is S in every one of its frac bits (act_bits may be fewer than frac)
        lead = Cat(w.sign.replicate(frac), xg ^ sign).as_signed()
        res1 = Signal(signed(self.act_bits + 1))
        m.d.comb += res1.eq(Mux(w.res, Mux(w.res_shift[0], a << 1, a), 0))
        res = Signal(signed(self.act_bits + frac - 1))
        m.d.comb += res.eq(Mux(w.res_shift[1], res1 << 2, res1) ^ w.rinv.replicate(len(res)))
        xm = Signal(signed(self.act_bits + frac + 1))
        m.d.comb += xm.eq(lead + res + w.rinv)
        return xm


class RF8PipePE(RF8LeanPE):
    """:class:`RF8LeanPE` with a register in the middle of the shift (kind ``rf8_pipe``:
    ``product_latency = 2`` in :data:`rf8hw.arch.PE_KINDS`).

    Stage 1: ``xm' = x*M`` (gating, residual, one adder) and the first two shifter levels (by
    ``(E-1) mod 4``); stage 2: the last two levels (by the multiple of 4) and the accumulator
    adder.  The stage register holds ``(x*M << ((E-1) mod 4)) ^ S`` (``act_bits + 8`` bits, S
    shifted in) with the two high shift bits and the sign it was computed for (``act_bits + 11``
    flip-flops), so a tile switch never mixes two weights and the array's tile-switch timing is
    unchanged; it advances with ``ce``.  Every result leaves the array one cycle later
    (:class:`rf8hw.arch.Timing` adds ``product_latency - 1``).  The cut in the middle balances
    the two stages (measured, ``docs/hardware.md``): after ``x*M`` the shifter and the
    accumulator were the longer stage, after the whole shift the ``x*M`` side.
    """

    #: Shifter levels in stage 1 (shift by 1 and 2); the rest are in stage 2.
    stage1_levels = 2

    def product(self, m: Module, a: Value, w) -> Value:
        xml, shift_hi, sign = self._stage1(m, a, w)
        xml_r = Signal(xml.shape(), name="xml_r", reset_less=True)
        shift_hi_r = Signal(len(shift_hi), name="shift_hi_r", reset_less=True)
        sign_r = Signal(name="sign_r", reset_less=True)
        with m.If(self.ce):
            m.d.sync += [xml_r.eq(xml), shift_hi_r.eq(shift_hi), sign_r.eq(sign)]
        return self._stage2(m, xml_r, shift_hi_r, sign_r)

    def _stage1(self, m: Module, a: Value, w) -> tuple[Value, Value, Value]:
        """``(xml, shift_hi, sign)``: ``xm'`` shifted by the low shift bits (S filled in), the
        high shift bits, the weight sign."""
        xm = self._times_m(m, a, w)
        levels = self.stage1_levels
        xml = Signal(signed(len(xm) + (1 << levels) - 1), name="xml")
        m.d.comb += xml.eq(shift_left_filled(xm, w.shift[:levels], w.sign, len(xml)))
        return xml, w.shift[levels:], w.sign

    def _stage2(self, m: Module, xml: Value, shift_hi: Value, sign: Value) -> Value:
        """``P = (xml << 4 * shift_hi, S filled in) + s``."""
        q = Signal(signed(spec.min_acc_bits(self.act_bits)))
        m.d.comb += q.eq(shift_left_filled(xml, shift_hi, sign, len(q), self.stage1_levels))
        return _plus_carry(q, sign, self.acc_bits)
