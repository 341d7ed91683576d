"""Top level with AXI4-Stream port names, for FPGA block designs and the cocotb co-simulation.

The Verilog module has a clock and a synchronous reset input (``aclk`` and active-low ``aresetn``
by default, ``clk`` and active-high ``rst`` with ``ArrayConfig(reset="rst")``) and flat
``s_axis_w_*``, ``s_axis_a_*``, ``m_axis_acc_*`` ports (``docs/architecture.md``, "Ports").  The
two inputs drive a clock domain local to this module (``array``: Amaranth does not let a local
domain shadow a parent's ``sync``, and the synthesis wrapper and the Amaranth testbench have one),
into which the array's ``sync`` logic is renamed, whatever the port convention.  It only renames
and packs :class:`rf8hw.hdl.array.RF8Array`'s streams; all behaviour lives there.  Every
``tdata`` is a whole number of bytes (AXI4-Stream): each lane takes :func:`lane_bits` of its
value's width, results sign-extended, activations read from the low ``act_bits`` of their lane.
"""

from amaranth.hdl import ClockDomain, DomainRenamer, Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from rf8hw.arch import ArrayConfig
from rf8hw.hdl.array import RF8Array

__all__ = ["lane_bits", "RF8AxiTop"]


def lane_bits(bits: int) -> int:
    """Width of one ``tdata`` lane carrying a ``bits``-wide value: the next multiple of 8."""
    return -(-bits // 8) * 8


class RF8AxiTop(wiring.Component):
    """:class:`RF8Array` behind AXI4-Stream-named ports.

    Parameters
    ----------
    cfg, pe_class
        As :class:`rf8hw.hdl.array.RF8Array`.

    Members
    -------
    aclk : In(1)  (``clk`` with ``cfg.reset == "rst"``)
        The clock; every port is synchronous to its rising edge.
    aresetn : In(1, init=1)  (``rst``, init 0, with ``cfg.reset == "rst"``)
        Synchronous reset, active low (``rst``: active high).  The init value is the inactive
        level, so an Amaranth testbench that leaves the port alone runs out of reset.
    s_axis_w_tdata : In(8 * cols)
        Weight row k: ``W[k, n]`` (RF8 code) in bits ``[8n +: 8]``.
    s_axis_w_tvalid, s_axis_w_tlast : In(1); s_axis_w_tready : Out(1)
        ``tlast`` belongs on beat ``rows - 1``; elsewhere (or missing there) it sets ``err_w_tlast``.
    s_axis_a_tdata : In(L_a * rows), ``L_a = lane_bits(act_bits)``
        Activation row m: ``a[m, k]`` (two's complement) in lane k, bits ``[L_a*k +: L_a]``; the
        array reads the low ``act_bits`` of each lane (send it sign-extended).
    s_axis_a_tvalid, s_axis_a_tlast : In(1); s_axis_a_tready : Out(1)
        ``tlast`` marks the tile's last activation row (m = M-1).
    m_axis_acc_tdata : Out(L_acc * cols), ``L_acc = lane_bits(acc_bits)``
        Result row m: ``acc[m, n]`` (two's complement) in lane n, bits ``[L_acc*n +: L_acc]``,
        sign-extended to the whole lane.
    m_axis_acc_tvalid, m_axis_acc_tlast : Out(1); m_axis_acc_tready : In(1)
        ``tlast`` on the tile's last result row.
    err_w_tlast : Out(1)
        Sticky until reset: a weight ``tlast`` arrived on the wrong beat (or was missing).

    While the reset is asserted, ``s_axis_w_tready``, ``s_axis_a_tready`` and
    ``m_axis_acc_tvalid`` are low (from the first reset cycle on) and no handshake takes place.

    Attributes
    ----------
    clock_port, reset_port : str
        The names of the clock and reset members (``cfg.clock_port``, ``cfg.reset``).
    reset_active_low : bool
    """

    def __new__(cls, cfg: ArrayConfig, *args, **kwargs):
        # checked before the component exists, so a refused one leaves no unused elaboratable
        if not isinstance(cfg, ArrayConfig):
            raise TypeError(f"cfg must be an ArrayConfig, not {cfg!r}")
        return super().__new__(cls, src_loc_at=1)

    def __init__(self, cfg: ArrayConfig, pe_class=None):
        self.array = RF8Array(cfg, pe_class)
        self.cfg = cfg
        rows, cols, act_bits, acc_bits = cfg.rows, cfg.cols, cfg.act_bits, cfg.acc_bits
        self.rows, self.cols = rows, cols
        self.act_bits, self.acc_bits, self.overflow = act_bits, acc_bits, cfg.overflow
        self.timing = self.array.timing
        self.act_lane, self.acc_lane = lane_bits(act_bits), lane_bits(acc_bits)
        self.clock_port, self.reset_port = cfg.clock_port, cfg.reset
        self.reset_active_low = cfg.reset_active_low
        super().__init__({
            self.clock_port: In(1),
            self.reset_port: In(1, init=int(self.reset_active_low)),
            "s_axis_w_tdata": In(self.array.pe.weight_bits * cols),
            "s_axis_w_tvalid": In(1),
            "s_axis_w_tready": Out(1),
            "s_axis_w_tlast": In(1),
            "s_axis_a_tdata": In(self.act_lane * rows),
            "s_axis_a_tvalid": In(1),
            "s_axis_a_tready": Out(1),
            "s_axis_a_tlast": In(1),
            "m_axis_acc_tdata": Out(self.acc_lane * cols),
            "m_axis_acc_tvalid": Out(1),
            "m_axis_acc_tready": In(1),
            "m_axis_acc_tlast": Out(1),
            "err_w_tlast": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        # The array's clock domain, clocked and reset by this module's ports.  Local, so it does
        # not leak into a parent; named "array", not "sync", because a parent's "sync" (the
        # synthesis wrapper's, the Amaranth testbench's) may not be shadowed.
        m.domains.array = domain = ClockDomain("array", local=True)
        reset_in = getattr(self, self.reset_port)
        m.d.comb += [domain.clk.eq(getattr(self, self.clock_port)),
                     domain.rst.eq(~reset_in if self.reset_active_low else reset_in)]
        array = self.array
        m.submodules.array = DomainRenamer("array")(array)
        # While reset is asserted every tvalid/tready the module drives is low (AXI4-Stream reset
        # rule), and no handshake reaches the array, also in the first reset cycle.
        run = ~domain.rst
        m.d.comb += [
            array.w.p.data.as_value().eq(self.s_axis_w_tdata),
            array.w.p.last.eq(self.s_axis_w_tlast),
            array.w.valid.eq(self.s_axis_w_tvalid & run),
            self.s_axis_w_tready.eq(array.w.ready & run),
            *(array.act.p.data[k].eq(
                self.s_axis_a_tdata[self.act_lane * k:self.act_lane * k + self.act_bits])
              for k in range(self.rows)),
            array.act.p.last.eq(self.s_axis_a_tlast),
            array.act.valid.eq(self.s_axis_a_tvalid & run),
            self.s_axis_a_tready.eq(array.act.ready & run),
            *(self.m_axis_acc_tdata[self.acc_lane * n:self.acc_lane * (n + 1)].eq(
                array.acc.p.data[n]) for n in range(self.cols)),        # signed: sign-extends
            self.m_axis_acc_tlast.eq(array.acc.p.last),
            self.m_axis_acc_tvalid.eq(array.acc.valid & run),
            array.acc.ready.eq(self.m_axis_acc_tready & run),
            self.err_w_tlast.eq(array.err_w_last),
        ]
        return m
