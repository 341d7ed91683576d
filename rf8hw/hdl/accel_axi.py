"""The accelerator behind AXI4-Stream port names (the generated Verilog top of ``rf8hw generate
--accel``; ``docs/accelerator.md``, "Ports").

Like :class:`rf8hw.hdl.axi.RF8AxiTop`, it drives a local clock domain (``accel``) from its clock
and synchronous reset ports and only renames and packs :class:`rf8hw.hdl.accelerator.RF8Accelerator`'s
streams; every ``tdata`` is a whole number of bytes, each lane :func:`rf8hw.hdl.axi.lane_bits`
wide, and a field narrower than its lane is read from the lane's low bits.
"""

from amaranth.hdl import ClockDomain, DomainRenamer, Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from rf8hw.arch import CMD_FIELDS, AccelConfig
from rf8hw.format import postproc
from rf8hw.hdl.accelerator import RF8Accelerator
from rf8hw.hdl.axi import lane_bits

__all__ = ["cmd_bits", "param_lane_bits", "RF8AccelAxiTop"]


def cmd_bits() -> int:
    """Width of ``s_axis_cmd_tdata``: the fields of :data:`rf8hw.arch.CMD_FIELDS`, whole bytes."""
    return lane_bits(sum(w for _, w in CMD_FIELDS))


def param_lane_bits(acc_bits: int) -> int:
    """Width of one column's lane on ``s_axis_p_tdata``: bias (``lane_bits(acc_bits)``), mult
    (16 bits), shift (8 bits, the low 6 read)."""
    return lane_bits(acc_bits) + postproc.MULT_BITS + 8


class RF8AccelAxiTop(wiring.Component):
    """:class:`RF8Accelerator` with AXI4-Stream ports.

    Members (``R = rows``, ``C = cols``; clock and reset named as in :class:`rf8hw.hdl.axi.RF8AxiTop`)
    -------
    s_axis_cmd_tdata : In(cmd_bits())
        ``M`` bits 0-15, ``K`` 16-31, ``N`` 32-47, ``act_base`` 48-63, ``load`` bit 64.
    s_axis_w_tdata, s_axis_w_tlast
        As the bare array's weight port.
    s_axis_a_tdata : In(lane_bits(act_bits) * R)
        One activation-buffer row ``a[m, i*R : (i+1)*R]``, element ``k`` in lane ``k``.
    s_axis_p_tdata : In(param_lane_bits(acc_bits) * C)
        Column ``n``'s lane: bias (signed) in its low ``lane_bits(acc_bits)`` bits, then mult
        (16 bits), then shift (8 bits).
    m_axis_out_tdata : Out(out_bits * C), m_axis_out_tlast
        ``y[m, j*C + n]`` in lane ``n``; ``tlast`` on the command's last beat.
    busy, err_cmd, err_w_tlast : Out(1)
    """

    def __new__(cls, acfg: AccelConfig, *args, **kwargs):
        if not isinstance(acfg, AccelConfig):
            raise TypeError(f"acfg must be an AccelConfig, not {acfg!r}")
        return super().__new__(cls, src_loc_at=1)

    def __init__(self, acfg: AccelConfig, pe_class=None):
        self.core = RF8Accelerator(acfg, pe_class)
        self.acfg = acfg
        cfg = acfg.array
        self.cfg = cfg
        self.rows, self.cols = cfg.rows, cfg.cols
        self.act_bits, self.acc_bits, self.out_bits = cfg.act_bits, cfg.acc_bits, acfg.out_bits
        self.timing = self.core.timing
        self.act_lane, self.par_lane = lane_bits(cfg.act_bits), param_lane_bits(cfg.acc_bits)
        self.bias_lane = lane_bits(cfg.acc_bits)
        self.clock_port, self.reset_port = cfg.clock_port, cfg.reset
        self.reset_active_low = cfg.reset_active_low
        super().__init__({
            self.clock_port: In(1),
            self.reset_port: In(1, init=int(self.reset_active_low)),
            "s_axis_cmd_tdata": In(cmd_bits()),
            "s_axis_cmd_tvalid": In(1),
            "s_axis_cmd_tready": Out(1),
            "s_axis_w_tdata": In(self.core.array.pe.weight_bits * cfg.cols),
            "s_axis_w_tvalid": In(1),
            "s_axis_w_tready": Out(1),
            "s_axis_w_tlast": In(1),
            "s_axis_a_tdata": In(self.act_lane * cfg.rows),
            "s_axis_a_tvalid": In(1),
            "s_axis_a_tready": Out(1),
            "s_axis_p_tdata": In(self.par_lane * cfg.cols),
            "s_axis_p_tvalid": In(1),
            "s_axis_p_tready": Out(1),
            "m_axis_out_tdata": Out(acfg.out_bits * cfg.cols),
            "m_axis_out_tvalid": Out(1),
            "m_axis_out_tready": In(1),
            "m_axis_out_tlast": Out(1),
            "busy": Out(1),
            "err_cmd": Out(1),
            "err_w_tlast": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        m.domains.accel = domain = ClockDomain("accel", local=True)
        reset_in = getattr(self, self.reset_port)
        m.d.comb += [domain.clk.eq(getattr(self, self.clock_port)),
                     domain.rst.eq(~reset_in if self.reset_active_low else reset_in)]
        core = self.core
        m.submodules.core = DomainRenamer("accel")(core)
        run = ~domain.rst          # no handshake while reset is asserted
        ob, al, pl, bl = self.out_bits, self.act_lane, self.par_lane, self.bias_lane
        pos, cmd = 0, []
        for name, width in CMD_FIELDS:
            cmd.append(getattr(core.cmd.p, name).eq(self.s_axis_cmd_tdata[pos:pos + width]))
            pos += width
        m.d.comb += [
            *cmd,
            core.cmd.valid.eq(self.s_axis_cmd_tvalid & run),
            self.s_axis_cmd_tready.eq(core.cmd.ready & run),
            core.w.p.data.as_value().eq(self.s_axis_w_tdata),
            core.w.p.last.eq(self.s_axis_w_tlast),
            core.w.valid.eq(self.s_axis_w_tvalid & run),
            self.s_axis_w_tready.eq(core.w.ready & run),
            *(core.act.p[k].eq(self.s_axis_a_tdata[al * k:al * k + self.act_bits])
              for k in range(self.rows)),
            core.act.valid.eq(self.s_axis_a_tvalid & run),
            self.s_axis_a_tready.eq(core.act.ready & run),
            *(e for n in range(self.cols) for e in (
                core.par.p[n].bias.eq(self.s_axis_p_tdata[pl * n:pl * n + self.acc_bits]),
                core.par.p[n].mult.eq(self.s_axis_p_tdata[pl * n + bl:pl * n + bl + 16]),
                core.par.p[n].shift.eq(
                    self.s_axis_p_tdata[pl * n + bl + 16:pl * n + bl + 16 + postproc.SHIFT_BITS]))),
            core.par.valid.eq(self.s_axis_p_tvalid & run),
            self.s_axis_p_tready.eq(core.par.ready & run),
            *(self.m_axis_out_tdata[ob * n:ob * (n + 1)].eq(core.out.p.data[n])
              for n in range(self.cols)),
            self.m_axis_out_tlast.eq(core.out.p.last),
            self.m_axis_out_tvalid.eq(core.out.valid & run),
            core.out.ready.eq(self.m_axis_out_tready & run),
            self.busy.eq(core.busy),
            self.err_cmd.eq(core.err_cmd),
            self.err_w_tlast.eq(core.err_w_last),
        ]
        return m
