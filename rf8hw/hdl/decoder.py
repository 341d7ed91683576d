"""RF8 code byte -> the fields the shift-add datapath needs (combinational).

The field meanings are the contract's (``docs/rf8-format.md``, :mod:`rf8hw.format.spec`); this module only
re-packs them for the datapath.  For a code ``(s, E, R)`` with ``RESIDUAL[R] = (rsign, d)``::

    P(x, code) = (-1)**s * x * M(R) * 2**(E-1),     x * M(R) = (x << 4) +/- (x << (4 - d))

so the PE needs: ``zero`` (E == 0), ``sign`` (s), ``shift`` (E - 1), ``res`` (R != 0), ``res_neg``
(rsign == -1) and ``res_shift`` (4 - d).  All of them come from :data:`rf8hw.format.spec.RESIDUAL` and the
field layout in :mod:`rf8hw.format.spec`; no constant is typed twice.
"""


from amaranth.hdl import Module
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from rf8hw.format import spec

__all__ = ["RF8Fields", "RF8Decoder", "CODE_BITS"]

CODE_BITS = 1 + spec.EXP_BITS + spec.RES_BITS   #: 8


class RF8Fields(data.Struct):
    """Decoded RF8 weight, as stored in each PE (10 bits).

    Attributes
    ----------
    zero : 1 bit
        The code is a zero (``E == 0``); the product is 0 whatever the other fields say.
    sign : 1 bit
        Weight sign ``s``: the product is negated.
    shift : 4 bits
        ``E - 1`` (0..14): left shift applied to ``x * M(R)``.  Meaningless when ``zero``.
    res : 1 bit
        The code has a residual term (``R != 0``).
    res_neg : 1 bit
        The residual term is subtracted (``RESIDUAL[R][0] == -1``, R = 5..7).
    res_shift : 2 bits
        ``FRAC_BITS - gap`` (0..3): the residual term is ``x << res_shift``.
    """

    zero: 1
    sign: 1
    shift: spec.EXP_BITS
    res: 1
    res_neg: 1
    res_shift: (spec.FRAC_BITS - 1).bit_length()


class RF8Decoder(wiring.Component):
    """Split an RF8 code byte into :class:`RF8Fields`.  Purely combinational.

    Members
    -------
    code : In(8)
        The code byte: bit 7 = s, bits 6..3 = E, bits 2..0 = R.
    fields : Out(RF8Fields)
        The decoded fields, valid in the same cycle.

    Latency 0 cycles; a few LUTs (one 3-input lookup per residual bit, a 4-bit decrement and
    a 4-input NOR).
    """

    code: In(CODE_BITS)
    fields: Out(RF8Fields)

    def elaborate(self, platform):
        m = Module()
        e_field = self.code[spec.RES_BITS:spec.RES_BITS + spec.EXP_BITS]
        r_field = self.code[:spec.RES_BITS]
        m.d.comb += [
            self.fields.zero.eq(e_field == 0),
            self.fields.sign.eq(self.code[spec.SIGN_BIT]),
            self.fields.shift.eq(e_field - 1),
        ]
        with m.Switch(r_field):
            for r, residual in enumerate(spec.RESIDUAL):
                with m.Case(r):
                    if residual is not None:
                        rsign, gap = residual
                        m.d.comb += [
                            self.fields.res.eq(1),
                            self.fields.res_neg.eq(rsign < 0),
                            self.fields.res_shift.eq(spec.FRAC_BITS - gap),
                        ]
        return m
