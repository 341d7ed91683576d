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
    sign-filling arithmetic right shift by ``15 - E`` (so ``~(x*M) << (E-1)`` comes out exactly),
    and the ``+ s`` that completes the negation is the accumulator's carry-in; the per-column
    :class:`RF8LeanDecoder` precomputes the fields this needs.  The residual term is taken from
    the ungated activation (the decoder zeroes ``res`` for zero codes), which let Yosys/ABC map the
    residual mux far more compactly (measured: 256 -> 140 LUT4 for one PE).
:class:`RF8PipePE` (``rf8_pipe``)
    ``RF8LeanPE`` with a register between ``x*M`` and the shift (``product_latency = 2``); the
    array shell delays its valid/last pipeline by the extra stage.

Measured numbers and what each idea bought: ``docs/hardware.md``.
"""

from amaranth.hdl import Cat, Module, Mux, Signal, Value, signed
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from rf8hw.format import spec
from rf8hw.hdl.decoder import CODE_BITS
from rf8hw.hdl.pe import RF8PE, WeightStationaryPE

__all__ = ["RF8SignLatePE", "RF8LeanFields", "RF8LeanDecoder", "RF8LeanPE", "RF8PipePE"]


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
    rsh : 4 bits
        ``EXP_MAX - E`` (0..14): the right shift that places ``x*M`` (see :class:`RF8LeanPE`).
    """

    zero: 1
    sign: 1
    res: 1
    rinv: 1
    res_shift: 2
    rsh: spec.EXP_BITS


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
            m.d.comb += [f.sign.eq(sign), f.rinv.eq(sign), f.rsh.eq(spec.EXP_MAX - e_field)]
            with m.Switch(r_field):
                for r, residual in enumerate(spec.RESIDUAL):
                    if residual is not None:
                        rsign, gap = residual
                        with m.Case(r):
                            m.d.comb += [f.res.eq(1), f.rinv.eq(sign ^ (rsign < 0)),
                                         f.res_shift.eq(spec.FRAC_BITS - gap)]
        return m


class RF8LeanPE(WeightStationaryPE):
    """RF8 PE with the weight sign folded into the ``x*M`` adder and a sign-filling right shift.

    With ``S = -s`` (all ones when the weight is negative) and ``n`` the residual sign bit::

        xg  = 0 if zero else x                                      # act_bits
        xm' = ((xg ^ S) << 4 | S[3:0]) + (((xg << res_shift) if res else 0) ^ -(n ^ s)) + (n ^ s)
            = x*M            if s == 0                              # act_bits + 5 bits
            = ~(x*M)         if s == 1        (~(A+B) = ~A + ~B + 1)
        v   = Cat(S[13:0], xm')                                     # min_acc_bits wide
        q   = v >>> rsh,   rsh = 15 - E                             # arithmetic, fills with s
            = (x*M) << (E-1)          if s == 0
            = ~((x*M) << (E-1))       if s == 1
        P   = q + s                                                 # the +s becomes the
                                                                    # accumulator's carry-in

    Compared with :class:`~rf8hw.hdl.pe.RF8PE`: no negation of ``x`` (its 9-bit carry chain), one
    ``x*M`` adder instead of two and a mux, and the sign costs no LUT after the shifter; the
    fields it needs (``rinv``, ``rsh``) are computed once per column by :class:`RF8LeanDecoder`.

    Parameters
    ----------
    act_bits, acc_bits, overflow
        As :class:`~rf8hw.hdl.pe.WeightStationaryPE`.
    """

    weight_shape = RF8LeanFields
    decoder = RF8LeanDecoder

    def product(self, m: Module, a: Value, w) -> Value:
        return self._place(m, self._times_m(m, a, w), w.rsh, w.sign)

    def _times_m(self, m: Module, a: Value, w) -> Value:
        """``xm' = x*M`` (or ``~(x*M)`` for a negative weight), ``act_bits + 5`` bits."""
        frac = spec.FRAC_BITS
        sign = w.sign.replicate(self.act_bits).as_signed()
        xg = Signal(signed(self.act_bits))
        m.d.comb += xg.eq(Mux(w.zero, 0, a))
        # the fill below xg ^ S is S in every one of its frac bits (act_bits may be fewer than frac)
        lead = Cat(w.sign.replicate(frac), xg ^ sign).as_signed()
        res = Signal(signed(self.act_bits + frac - 1))
        m.d.comb += res.eq(Mux(w.res, a << w.res_shift, 0) ^ w.rinv.replicate(len(res)))
        xm = Signal(signed(self.act_bits + frac + 1))
        m.d.comb += xm.eq(lead + res + w.rinv)
        return xm

    def _place(self, m: Module, xm: Value, rsh: Value, sign_bit: Value) -> Value:
        """``P = (Cat(S, xm') >>> rsh) + s``: the shift by ``E - 1`` and the weight sign."""
        width = spec.min_acc_bits(self.act_bits)
        v = Cat(sign_bit.replicate(width - len(xm)), xm).as_signed()
        q = Signal(signed(width))
        m.d.comb += q.eq(v >> rsh)
        return _plus_carry(q, sign_bit, self.acc_bits)


class RF8PipePE(RF8LeanPE):
    """:class:`RF8LeanPE` with a register between ``x*M`` and the shift (kind ``rf8_pipe``:
    ``product_latency = 2`` in :data:`rf8hw.arch.PE_KINDS`).

    Stage 1: ``xm' = x*M`` (gating, residual mux, one adder); stage 2: sign-filling shift and the
    accumulator adder.  The stage register holds ``xm'`` with the ``rsh`` and ``sign`` it was
    computed for (``act_bits + 10`` flip-flops), so a tile switch never mixes two weights and
    the array's tile-switch timing is unchanged; it advances with ``ce``.  Every result leaves the array
    one cycle later (:class:`rf8hw.arch.Timing` adds ``product_latency - 1``).
    """

    def product(self, m: Module, a: Value, w) -> Value:
        xm = self._times_m(m, a, w)
        xm_r = Signal(xm.shape(), name="xm_r", reset_less=True)
        rsh_r = Signal(len(w.rsh), name="rsh_r", reset_less=True)
        sign_r = Signal(name="sign_r", reset_less=True)
        with m.If(self.ce):
            m.d.sync += [xm_r.eq(xm), rsh_r.eq(w.rsh), sign_r.eq(w.sign)]
        return self._place(m, xm_r, rsh_r, sign_r)
