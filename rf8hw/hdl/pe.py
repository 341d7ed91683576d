"""Weight-stationary processing elements (PEs) and the PE interface every PE kind follows.

PE interface (what :class:`rf8hw.hdl.array.RF8Array` relies on; baseline PEs follow it too)
------------------------------------------------------------------------------------------
A PE kind is a :class:`amaranth.lib.wiring.Component` subclass constructed as
``PEClass(act_bits=8, acc_bits=40, overflow="wrap")``.  What the rest of the package knows about a
kind -- the weight format it multiplies by and its ``product_latency`` (cycles from ``a_in`` to its
product entering the accumulator: 1, or 2 for kinds that register the product) -- is data in
:data:`rf8hw.arch.PE_KINDS`; :data:`rf8hw.hdl.registry.PE_CLASSES` maps each kind to its class.
The class implements those facts and has these class attributes:

``weight_bits``
    Width of one raw weight code as it arrives on the weight stream (8 for RF8, INT8, FP8).
``weight_shape``
    Shape of the stored weight (the ``w_data`` port): for RF8 the decoded :class:`RF8Fields`.
``decoder``
    The class of a combinational component with ports ``code: In(weight_bits)`` and
    ``fields: Out(weight_shape)``, or None for PE kinds that store the raw code
    (:class:`IdentityDecoder`).  The array instantiates one per column (``make_decoder()``),
    between the weight stream and the column's PEs, so the array shell knows nothing else about
    the PE kind.

and these ports (all synchronous to the ``sync`` domain):

=============  =====  ==================  ============================================================
port           dir    shape               meaning
=============  =====  ==================  ============================================================
``ce``         In     1                   clock enable: when 0, ``a_out`` and ``psum_out`` hold.
                                          The array stalls by deasserting it.
``w_load``     In     1                   load ``w_data`` into the *shadow* weight register at the
                                          clock edge (independent of ``ce``); the weight in use does
                                          not change.
``w_data``     In     ``weight_shape``    weight payload (output of ``make_decoder()``).
``swap_in``    In     1                   tile switch: at a clock edge with ``ce``, the weight in use
                                          becomes the shadow register's value (this cycle's
                                          computation still uses the old weight).  It travels with
                                          the activations: the array raises it in the step *before*
                                          a tile's first activation reaches ``a_in``.
``swap_out``   Out    1                   ``swap_in`` registered (when ``ce``; reset to 0): goes to
                                          the right neighbour with ``a_out``.
``a_in``       In     signed(act_bits)    activation, two's complement.
``a_out``      Out    signed(act_bits)    ``a_in`` registered (when ``ce``): goes to the right
                                          neighbour.
``psum_in``    In     signed(acc_bits)    partial sum from the PE above (0 for the top row).
``psum_out``   Out    signed(acc_bits)    registered (when ``ce``): ``psum_in + P(a_in, w)`` with
                                          the ``overflow`` rule applied to that one addition.
=============  =====  ==================  ============================================================

Latency 1 cycle (``a_in``/``psum_in`` -> ``a_out``/``psum_out``), throughput 1 per cycle.
The two weight registers (shadow and in use) are the double buffer: the next tile's weights load
while the current tile computes (``docs/architecture.md``, "Timing").

:class:`WeightStationaryPE` implements the registers and the overflow rule once; a PE kind only
supplies :meth:`WeightStationaryPE.product`, the signed integer product (at most ``acc_bits``
wide).  Overflow rules (``docs/rf8-format.md``): ``"wrap"`` keeps the sum modulo ``2**acc_bits``;
``"saturate"`` clamps it to ``[-2**(acc_bits-1), 2**(acc_bits-1) - 1]``.
"""

from __future__ import annotations

from amaranth.hdl import Const, Module, Mux, Signal, Value, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from rf8hw import checks
from rf8hw.format import spec
from rf8hw.hdl.decoder import CODE_BITS, RF8Decoder, RF8Fields

__all__ = ["accumulate", "IdentityDecoder", "WeightStationaryPE", "RF8PE"]


def accumulate(psum, product, acc_bits: int, overflow: str) -> Value:
    """``psum + product`` with the contract's overflow rule, as an ``acc_bits``-wide signed value.

    ``product`` must fit in ``acc_bits`` signed bits, so the exact sum fits in ``acc_bits + 1``
    bits; its top two bits differ exactly when the sum left the ``acc_bits`` range.

    Parameters
    ----------
    psum : Value, signed(acc_bits)
    product : Value, signed, at most acc_bits wide
    acc_bits : int
    overflow : {"wrap", "saturate"}
    """
    if product.shape().width > acc_bits:
        raise ValueError(f"product is {product.shape().width} bits wide, more than "
                         f"acc_bits={acc_bits}")
    total = psum.as_signed() + product.as_signed()          # exact, acc_bits + 1 bits
    wrapped = total[:acc_bits].as_signed()
    if overflow == "wrap":
        return wrapped
    elif overflow == "saturate":
        out_of_range = total[acc_bits] ^ total[acc_bits - 1]
        limit = Mux(total[acc_bits],
                    Const(-(1 << (acc_bits - 1)), signed(acc_bits)),
                    Const((1 << (acc_bits - 1)) - 1, signed(acc_bits)))
        return Mux(out_of_range, limit, wrapped)
    else:
        checks.choice("overflow", overflow, spec.OVERFLOW_MODES)      # raises, naming the modes
        raise AssertionError(f"unreachable: overflow {overflow!r}")


class IdentityDecoder(wiring.Component):
    """Decoder for PE kinds that store the raw weight code: ``fields = code``.

    Parameters
    ----------
    width : int
        Code width (``weight_bits``).
    shape : shape-castable, optional
        Shape of ``fields`` (same width); defaults to ``unsigned(width)``.
    """

    def __init__(self, width: int, shape=None):
        super().__init__({"code": In(width), "fields": Out(unsigned(width) if shape is None else shape)})

    def elaborate(self, platform):
        m = Module()
        m.d.comb += self.fields.eq(self.code)
        return m


class WeightStationaryPE(wiring.Component):
    """Base class of the PE kinds: weight register, activation forwarding, accumulation.

    Subclasses set :attr:`weight_bits`, :attr:`weight_shape` and :attr:`decoder` and implement
    :meth:`product`.  See the module docstring for the port table.

    Parameters
    ----------
    act_bits : int
        Signed activation width (``spec.ACT_BITS_MIN..spec.ACT_BITS_MAX``).
    acc_bits : int
        Accumulator width (``spec.min_acc_bits(act_bits)..spec.ACC_BITS_MAX``).
    overflow : {"wrap", "saturate"}
        Overflow rule applied after the addition of each product.
    """

    weight_bits: int = CODE_BITS
    weight_shape = unsigned(CODE_BITS)
    #: The decoder component class (constructed without arguments); None: the raw code is stored
    #: (:class:`IdentityDecoder` of ``weight_bits`` -> ``weight_shape``).
    decoder: type | None = None

    @classmethod
    def make_decoder(cls) -> wiring.Component:
        """A fresh decoder ``code: In(weight_bits) -> fields: Out(weight_shape)``."""
        if cls.decoder is None:
            return IdentityDecoder(cls.weight_bits, cls.weight_shape)
        return cls.decoder()

    def __new__(cls, act_bits: int = 8, acc_bits: int = 40, overflow: str = "wrap"):
        # checked before the component exists, so a refused one leaves no unused elaboratable
        spec.check_mac(act_bits, acc_bits, overflow)
        return super().__new__(cls, src_loc_at=1)

    def __init__(self, act_bits: int = 8, acc_bits: int = 40, overflow: str = "wrap"):
        act_bits, acc_bits, overflow = spec.check_mac(act_bits, acc_bits, overflow)
        self.act_bits = act_bits
        self.acc_bits = acc_bits
        self.overflow = overflow
        super().__init__({
            "ce": In(1),
            "w_load": In(1),
            "w_data": In(self.weight_shape),
            "swap_in": In(1),
            "swap_out": Out(1),
            "a_in": In(signed(act_bits)),
            "a_out": Out(signed(act_bits)),
            "psum_in": In(signed(acc_bits)),
            "psum_out": Out(signed(acc_bits)),
        })

    def product(self, m: Module, a: Value, w) -> Value:
        """Signed integer product of activation ``a`` and stored weight ``w`` (combinational).

        May add logic to ``m.d.comb``.  Must return a signed value at most ``acc_bits`` wide.
        """
        raise NotImplementedError(f"{type(self).__name__} must implement product()")

    def elaborate(self, platform):
        m = Module()
        shadow = Signal(self.weight_shape, name="shadow", reset_less=True)
        weight = Signal(self.weight_shape, name="weight", reset_less=True)
        with m.If(self.w_load):
            m.d.sync += shadow.eq(self.w_data)
        swap = Signal(name="swap")              # reset: no tile switch in flight
        with m.If(self.ce):
            m.d.sync += swap.eq(self.swap_in)
            with m.If(self.swap_in):
                m.d.sync += weight.eq(shadow)
        m.d.comb += self.swap_out.eq(swap)
        p = self.product(m, self.a_in, weight)
        # Data registers need no reset: the array tracks which wavefronts are valid.
        a_reg = Signal(signed(self.act_bits), name="a_reg", reset_less=True)
        psum_reg = Signal(signed(self.acc_bits), name="psum_reg", reset_less=True)
        with m.If(self.ce):
            m.d.sync += [
                a_reg.eq(self.a_in),
                psum_reg.eq(accumulate(self.psum_in, p, self.acc_bits, self.overflow)),
            ]
        m.d.comb += [self.a_out.eq(a_reg), self.psum_out.eq(psum_reg)]
        return m


class RF8PE(WeightStationaryPE):
    """RF8 weight-stationary PE: ``psum_out = psum_in + P(a_in, w)``, shift-add, no multiplier.

    ``P(x, code) = (-1)**s * x * M(R) * 2**(E-1)`` (0 when ``E == 0``) is computed as::

        xs  = 0 if zero else (-x if sign else x)               # act_bits + 1 bits
        xm  = (xs << 4) + (xs << res_shift)   if res and not res_neg
              (xs << 4) - (xs << res_shift)   if res and res_neg
              (xs << 4)                       if not res        # = xs * M(R)
        P   = xm << shift                                      # shift = E - 1, a barrel shifter

    Negating the narrow activation instead of the wide product keeps the negation
    ``act_bits + 1`` bits wide.  ``|P| <= 2**(act_bits-1) * 24 * 2**14 = 3 * 2**(act_bits+16)``,
    so ``P`` is truncated exactly to ``spec.min_acc_bits(act_bits)`` signed bits before the
    accumulator adder.  Resources per PE: one ``act_bits+1``-bit negation, one ``act_bits+5``-bit
    add/subtract, two shifters (0..3 and 0..14), one ``acc_bits``-bit adder (+ clamp for
    saturate), ``2 * 10 + 1 + act_bits + acc_bits`` flip-flops (two weight registers, the swap
    flag).

    Parameters
    ----------
    act_bits, acc_bits, overflow
        As :class:`WeightStationaryPE`.
    """

    weight_shape = RF8Fields
    decoder = RF8Decoder

    def product(self, m: Module, a: Value, w) -> Value:
        xs = Signal(signed(self.act_bits + 1))
        m.d.comb += xs.eq(Mux(w.zero, 0, Mux(w.sign, -a, a)))
        lead = xs << spec.FRAC_BITS
        residual = Mux(w.res, xs << w.res_shift, 0)
        xm = Signal(signed(self.act_bits + spec.FRAC_BITS + 2))
        m.d.comb += xm.eq(Mux(w.res_neg, lead - residual, lead + residual))
        product_bits = spec.min_acc_bits(self.act_bits)
        return (xm << w.shift)[:product_bits].as_signed()
