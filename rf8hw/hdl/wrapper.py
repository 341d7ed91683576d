"""Measurement harness for synthesis: every port of a design registered, 4 device pins.

The array's ports are far wider than any package (an 8x8 array has 128 input and 320 output data
bits), and its first PE row takes ``s_axis_a_tdata`` combinationally.  :class:`SynthWrapper`
therefore feeds every input bit from a serial-in shift register (pin ``din``) and registers every
output bit, then XOR-folds the output register to the pin ``dout`` through a tree of 4-input XORs
with a register after every level, so no logic can be optimised away, every timed path is register
to register, and the wrapper's own LUT cost is known exactly (:attr:`SynthWrapper.xor_luts`).
A design with its own clock and reset inputs (:class:`rf8hw.hdl.axi.RF8AxiTop`: ``aclk`` and
``aresetn``, or ``clk`` and ``rst``) gets them from the wrapper's ``sync`` domain instead, so the
wrapper's pins stay ``clk``, ``rst``, ``din`` and ``dout`` for every reset convention.  A second
design (``beside``) shares the input chain, the XOR tree and the clock: two arrays side by side on
one device (e.g. DSP INT8 beside soft INT8 filling the rest of the logic), measured as one design.
Used by :func:`rf8hw.accel.synth.synthesize`.
"""

from amaranth.hdl import Cat, ClockSignal, Module, ResetSignal, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

__all__ = ["SynthWrapper"]


class SynthWrapper(wiring.Component):
    """Registered, pin-frugal measurement harness around a component with flat ``In``/``Out`` ports.

    Parameters
    ----------
    inner : wiring.Component
        The design under measurement (its ports must be plain signals, not nested interfaces).
        If it has attributes ``clock_port`` and ``reset_port`` (and ``reset_active_low``), those
        two inputs are driven by the wrapper's clock and reset, not by the input chain.
    beside : wiring.Component, optional
        A second design under measurement, the same way (submodule ``beside``; its inputs follow
        ``inner``'s in the chain, its outputs ``inner``'s in the XOR tree).

    Members
    -------
    din : In(1)
        Serial input: shifts into a register chain of :attr:`in_bits` flip-flops that drives every
        input port of ``inner``.
    dout : Out(1)
        XOR of all :attr:`out_bits` output bits of ``inner``: registered, then reduced 4 to 1 per
        level with a register after every level (:attr:`xor_luts` 4-input XORs in all).
    """

    def __init__(self, inner, beside=None):
        self.inner, self.beside = inner, beside
        #: ``(submodule name, design, (clock port, reset port) or ())`` of each design measured.
        self.parts = []
        self.in_ports, self.out_ports = [], []          # (design, port name), in chain order
        for label, design in (("inner", inner), ("beside", beside)):
            if design is None:
                continue
            members = design.signature.members
            clock, reset = getattr(design, "clock_port", None), getattr(design, "reset_port", None)
            clock_reset = (clock, reset) if clock and reset else ()
            self.parts.append((label, design, clock_reset))
            self.in_ports += [(design, n) for n, mb in members.items()
                              if mb.flow == In and n not in clock_reset]
            self.out_ports += [(design, n) for n, mb in members.items() if mb.flow == Out]
        self.in_bits = sum(len(Cat(getattr(d, n))) for d, n in self.in_ports)
        self.out_bits = sum(len(Cat(getattr(d, n))) for d, n in self.out_ports)
        self.xor_luts = 0
        n = self.out_bits
        while n > 1:
            n = -(-n // 4)
            self.xor_luts += n
        super().__init__({"din": In(1), "dout": Out(1)})

    def elaborate(self, platform):
        m = Module()
        for label, design, clock_reset in self.parts:
            m.submodules[label] = design
            if clock_reset:
                clock, reset = clock_reset
                rst = ResetSignal()
                m.d.comb += [getattr(design, clock).eq(ClockSignal()),
                             getattr(design, reset).eq(~rst if design.reset_active_low else rst)]
        chain = Signal(self.in_bits, reset_less=True)
        m.d.sync += chain.eq(Cat(self.din, chain[:-1]) if self.in_bits > 1 else self.din)
        pos = 0
        for design, name in self.in_ports:
            port = Cat(getattr(design, name))
            m.d.comb += port.eq(chain[pos:pos + len(port)])
            pos += len(port)
        level = Signal(self.out_bits, reset_less=True)
        m.d.sync += level.eq(Cat(*(getattr(d, n) for d, n in self.out_ports)))
        while len(level) > 1:
            groups = [level[i:i + 4] for i in range(0, len(level), 4)]
            nxt = Signal(len(groups), reset_less=True)
            m.d.sync += nxt.eq(Cat(*(g.xor() for g in groups)))
            level = nxt
        m.d.comb += self.dout.eq(level)
        return m
