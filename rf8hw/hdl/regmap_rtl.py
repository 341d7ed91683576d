"""An AXI4-Lite slave register block made by walking the compiled register map
(:func:`rf8hw.hdl.regmap.regmap`, from ``shell.rdl``): one storage element or input per field, in
the field kinds of :data:`rf8hw.hdl.regmap.ACCESS_KINDS`.  No register is named here.

Plain Amaranth (peakrdl-regblock's SystemVerilog is not used: the generated files must be plain
Verilog that Yosys, ``iverilog -g2005`` and Verilator read, like the rest of the design).

Protocol: one transaction at a time per direction.  A write is taken when ``awvalid`` and
``wvalid`` are both high and no write response waits (``awready`` and ``wready`` together, one
cycle), the response ``bresp = OKAY`` follows the next cycle; ``wstrb`` selects the bytes
written.  A read is taken when no read response waits, ``rdata`` the next cycle.  Addresses are
byte addresses; the low two bits are ignored (32-bit registers).  An address of no register
reads 0 and ignores writes (``OKAY``).  Reads have no side effects.  Field behaviour on a write
of ``wdata``: ``rw`` stores the written bytes, ``pulse`` is high for the one cycle after a write
of 1 (reads 0), ``w1c`` clears where 1 is written; a hardware set in the same cycle wins.
"""

from __future__ import annotations

from types import SimpleNamespace

from amaranth.hdl import Cat, Const, Elaboratable, Module, Mux, Signal

from rf8hw.hdl.regmap import RegMap

__all__ = ["AxiLiteRegs"]


class AxiLiteRegs(Elaboratable):
    """The register block of ``rmap`` in the ``sync`` domain.

    Attributes: the AXI4-Lite slave signals (``awaddr``, ``awvalid``, ``awready``, ``wdata``,
    ``wstrb``, ``wvalid``, ``wready``, ``bresp``, ``bvalid``, ``bready``, ``araddr``, ``arvalid``,
    ``arready``, ``rdata``, ``rresp``, ``rvalid``, ``rready``) and ``hw[REG][field]``, the
    hardware side of each field: ``.d`` (input) for ``ro``; ``.q`` (output) for ``rw`` and
    ``pulse``; ``.set`` (input, one-cycle set) and ``.q`` for ``w1c``; nothing for ``const``.
    """

    def __init__(self, rmap: RegMap):
        self.rmap = rmap
        ab = rmap.addr_bits
        self.awaddr, self.araddr = Signal(ab), Signal(ab)
        self.awvalid, self.awready = Signal(), Signal()
        self.wdata, self.wstrb = Signal(32), Signal(4)
        self.wvalid, self.wready = Signal(), Signal()
        self.bresp, self.bvalid, self.bready = Signal(2), Signal(), Signal()
        self.arvalid, self.arready = Signal(), Signal()
        self.rdata, self.rresp = Signal(32), Signal(2)
        self.rvalid, self.rready = Signal(), Signal()
        self.hw = {}
        for r in rmap.registers:
            ports = {}
            for f in r.fields:
                name = f"{r.name.lower()}_{f.name}"
                if f.access == "ro":
                    ports[f.name] = SimpleNamespace(d=Signal(f.width, name=name))
                elif f.access in ("rw", "pulse"):
                    ports[f.name] = SimpleNamespace(q=Signal(f.width, name=name, init=f.reset))
                elif f.access == "w1c":
                    ports[f.name] = SimpleNamespace(q=Signal(f.width, name=name, init=f.reset),
                                                    set=Signal(f.width, name=f"{name}_set"))
            self.hw[r.name] = ports

    def elaborate(self, platform):
        m = Module()
        # write channel: address and data together, one outstanding response
        take_w = Signal()
        m.d.comb += take_w.eq(self.awvalid & self.wvalid & ~self.bvalid)
        m.d.comb += [self.awready.eq(take_w), self.wready.eq(take_w), self.bresp.eq(0),
                     self.rresp.eq(0)]
        with m.If(take_w):
            m.d.sync += self.bvalid.eq(1)
        with m.Elif(self.bready):
            m.d.sync += self.bvalid.eq(0)
        word = self.awaddr[2:]
        for r in self.rmap.registers:
            hit = take_w & (word == r.offset >> 2)
            for f in r.fields:
                ports = self.hw[r.name].get(f.name)
                bits = range(f.lsb, f.lsb + f.width)
                strobe = Cat(*(self.wstrb[b // 8] for b in bits))      # per field bit
                data = self.wdata[f.lsb:f.lsb + f.width]
                if f.access == "rw":
                    m.d.sync += ports.q.eq(Mux(hit, (data & strobe) | (ports.q & ~strobe), ports.q))
                elif f.access == "pulse":
                    m.d.sync += ports.q.eq(Mux(hit, data & strobe, 0))
                elif f.access == "w1c":
                    cleared = Mux(hit, ports.q & ~(data & strobe), ports.q)
                    m.d.sync += ports.q.eq(cleared | ports.set)
        # read channel: one outstanding response, data registered
        m.d.comb += self.arready.eq(~self.rvalid)
        with m.If(self.arvalid & ~self.rvalid):
            m.d.sync += self.rvalid.eq(1)
            with m.Switch(self.araddr[2:]):
                for r in self.rmap.registers:
                    with m.Case(r.offset >> 2):
                        m.d.sync += self.rdata.eq(self._read_value(r))
                with m.Default():
                    m.d.sync += self.rdata.eq(0)
        with m.Elif(self.rready):
            m.d.sync += self.rvalid.eq(0)
        return m

    def _read_value(self, r):
        value = Const(0, 32)
        for f in r.fields:
            ports = self.hw[r.name].get(f.name)
            if f.access == "const":
                v = Const(f.reset, f.width)
            elif f.access == "ro":
                v = ports.d
            elif f.access == "pulse":
                v = Const(0, f.width)
            else:
                v = ports.q
            value = value | (v.as_unsigned() << f.lsb)
        return value[:32]
