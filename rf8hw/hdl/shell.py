"""The accelerator's memory-mapped shell (``docs/shell.md``): :class:`RF8AccelShell` puts
:class:`rf8hw.hdl.accel_axi.RF8AccelAxiTop` (unchanged) behind an AXI4-Lite slave register block
(``s_axi_ctrl_*``, the map of ``shell.rdl``) and an AXI4 master (``m_axi_mem_*``) that reads the
weight, activation and parameter images from memory in INCR bursts and writes the results.

One descriptor at a time: ``CTRL.start`` latches ``GEMM_*`` and the four base addresses, checks
them (the accelerator's command rule plus address alignment and width; a bad one sets
``ERROR.desc`` and ``STATUS.done`` and runs nothing), counts the image sizes in ``ceil(K/rows) +
ceil(N/cols)`` cycles of adds (no multiplier), hands the command to the accelerator and streams.

Memory images: each stream beat of ``docs/accelerator.md`` ("Command and streams") is stored as
``ceil(beat_bits / data_bits)`` data beats, low bits first, beats back to back from the image's
base (:mod:`rf8hw.hdl.shell_images`).  The read engine keeps one FIFO of data beats per stream
(``2 * max_burst`` deep) and issues a stream's burst only when its FIFO has room for all of it
(counting the bursts in flight), so ``rready`` is always high and no order in which the core takes
its streams can deadlock; bursts are cut at 4 KB boundaries and at ``max_burst`` beats; up to
``max_reads`` read bursts are outstanding (one ID, in order).  The write engine issues a burst
when its FIFO holds the whole burst (``wvalid`` never drops inside a burst), one burst's data at a
time, up to 8 write responses outstanding.  Reset (``aresetn`` low, synchronous) is a system
reset: it returns every engine, FIFO, register and the accelerator to idle and drops every
``valid``; the memory side must be reset with it (AXI requires all of an interface's masters and
slaves to be reset together).
"""

from __future__ import annotations

from amaranth.hdl import Cat, ClockDomain, Const, DomainRenamer, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.fifo import SyncFIFO, SyncFIFOBuffered
from amaranth.lib.wiring import In, Out

from rf8hw import checks
from rf8hw.arch import AccelConfig
from rf8hw.hdl.accel_axi import RF8AccelAxiTop
from rf8hw.hdl.regmap import regmap
from rf8hw.hdl.regmap_rtl import AxiLiteRegs
from rf8hw.hdl.shell_images import STREAMS, ShellLayout

__all__ = ["DATA_BITS", "RF8AccelShell", "shell_module_name", "register_files"]

#: The allowed AXI4 data widths.
DATA_BITS = (32, 64, 128, 256, 512)
MAX_WRITES = 8          # write bursts awaiting their response


def shell_module_name(acfg: AccelConfig, data_bits: int = 64, addr_bits: int = 32,
                      max_burst: int = 16) -> str:
    return f"{acfg.module_name}_shell_d{data_bits}_a{addr_bits}_b{max_burst}"


class RF8AccelShell(wiring.Component):
    """:class:`RF8AccelAxiTop` of ``acfg`` with an AXI4-Lite control slave and an AXI4 master.

    Ports: ``aclk``, ``aresetn`` (synchronous, active low: a system reset of the shell, the
    accelerator and, by the rule above, the memory side); ``s_axi_ctrl_*`` (AXI4-Lite, 32-bit
    data, ``regmap().addr_bits`` address bits); ``m_axi_mem_*`` (AXI4: ``data_bits`` data,
    ``addr_bits`` address, 1-bit IDs, INCR bursts of at most ``max_burst`` beats); ``irq``
    (``STATUS.done & CTRL.irq_en``).
    """

    def __new__(cls, acfg: AccelConfig, *args, data_bits: int = 64, **kwargs):
        # checked before the object exists (no UnusedElaboratable warning for a refused one)
        if not isinstance(acfg, AccelConfig):
            raise TypeError(f"acfg must be an AccelConfig, not {acfg!r}")
        if data_bits not in DATA_BITS:
            raise ValueError(f"data_bits must be one of {', '.join(map(str, DATA_BITS))}, "
                             f"not {data_bits!r}")
        return super().__new__(cls, src_loc_at=1)

    def __init__(self, acfg: AccelConfig, *, data_bits: int = 64, addr_bits: int = 32,
                 max_burst: int = 16, max_reads: int = 4):
        self.addr_bits = checks.integer("addr_bits", addr_bits, 13, 64)
        self.max_burst = checks.integer("max_burst", max_burst, 1, 256)
        self.max_reads = checks.integer("max_reads", max_reads, 1, 16)
        self.acfg, self.data_bits = acfg, data_bits
        self.accel = RF8AccelAxiTop(acfg)
        self.layout = ShellLayout.of(self.accel, data_bits)
        self.rmap = regmap()
        self.module_name = shell_module_name(acfg, data_bits, addr_bits, max_burst)
        # clock and reset as rf8hw.hdl.wrapper.SynthWrapper (and the array's tops) name them
        self.clock_port, self.reset_port, self.reset_active_low = "aclk", "aresetn", True
        ab, db = self.addr_bits, data_bits
        ports = {"aclk": In(1), "aresetn": In(1, init=1)}
        cb = self.rmap.addr_bits
        for name, flow, width in (
                ("awaddr", In, cb), ("awprot", In, 3), ("awvalid", In, 1), ("awready", Out, 1),
                ("wdata", In, 32), ("wstrb", In, 4), ("wvalid", In, 1), ("wready", Out, 1),
                ("bresp", Out, 2), ("bvalid", Out, 1), ("bready", In, 1),
                ("araddr", In, cb), ("arprot", In, 3), ("arvalid", In, 1), ("arready", Out, 1),
                ("rdata", Out, 32), ("rresp", Out, 2), ("rvalid", Out, 1), ("rready", In, 1)):
            ports[f"s_axi_ctrl_{name}"] = flow(width)
        for ch in ("aw", "ar"):
            for name, width in (("id", 1), ("addr", ab), ("len", 8), ("size", 3), ("burst", 2),
                                ("lock", 1), ("cache", 4), ("prot", 3), ("valid", 1)):
                ports[f"m_axi_mem_{ch}{name}"] = Out(width)
            ports[f"m_axi_mem_{ch}ready"] = In(1)
        for name, flow, width in (
                ("wdata", Out, db), ("wstrb", Out, db // 8), ("wlast", Out, 1), ("wvalid", Out, 1),
                ("wready", In, 1), ("bid", In, 1), ("bresp", In, 2), ("bvalid", In, 1),
                ("bready", Out, 1), ("rid", In, 1), ("rdata", In, db), ("rresp", In, 2),
                ("rlast", In, 1), ("rvalid", In, 1), ("rready", Out, 1)):
            ports[f"m_axi_mem_{name}"] = flow(width)
        ports["irq"] = Out(1)
        super().__init__(ports)

    # ------------------------------------------------------------------------------------------
    def elaborate(self, platform):
        m = Module()
        # a local domain of its own (an enclosing design may have a "sync" of its own), into
        # which the logic's "sync" is renamed
        m.domains.shell = cd = ClockDomain("shell", local=True)
        m.d.comb += [cd.clk.eq(self.aclk), cd.rst.eq(~self.aresetn)]
        m.submodules.logic = DomainRenamer("shell")(self._logic())
        return m

    def _logic(self):
        m = Module()
        acfg, cfg, lay = self.acfg, self.acfg.array, self.layout
        R, C = cfg.rows, cfg.cols
        db, ab, nb = self.data_bits, self.addr_bits, self.data_bits // 8
        sh = (nb - 1).bit_length()               # log2 of the bytes per data beat
        depth = 2 * self.max_burst
        acc = self.accel
        out_w = lay.words["o"]
        m.submodules.accel = acc
        m.d.comb += [getattr(acc, acc.clock_port).eq(self.aclk),
                     getattr(acc, acc.reset_port).eq(
                         self.aresetn if acc.reset_active_low else ~self.aresetn)]

        # ---- register block -------------------------------------------------------------------
        regs = m.submodules.regs = AxiLiteRegs(self.rmap)
        for name in ("awaddr", "awvalid", "wdata", "wstrb", "wvalid", "bready", "araddr",
                     "arvalid", "rready"):
            m.d.comb += getattr(regs, name).eq(getattr(self, f"s_axi_ctrl_{name}"))
        for name in ("awready", "wready", "bresp", "bvalid", "arready", "rdata", "rresp",
                     "rvalid"):
            m.d.comb += getattr(self, f"s_axi_ctrl_{name}").eq(getattr(regs, name))
        hw = regs.hw
        constants = {("CONFIG0", "rows"): R, ("CONFIG0", "cols"): C,
                     ("CONFIG0", "act_bits"): cfg.act_bits, ("CONFIG0", "acc_bits"): cfg.acc_bits,
                     ("CONFIG1", "max_m"): acfg.max_m, ("CONFIG1", "max_k"): acfg.max_k,
                     ("CONFIG2", "act_depth"): acfg.act_depth,
                     ("CONFIG2", "max_burst"): self.max_burst,
                     ("CONFIG3", "out_bits"): acfg.out_bits, ("CONFIG3", "addr_bits"): ab,
                     ("CONFIG3", "data_bits"): db,
                     **{("CONFIG4", f"{s}_words"): lay.words[s] for s in (*STREAMS, "o")}}
        for (r, f), value in constants.items():
            m.d.comb += hw[r][f].d.eq(value)
        m.d.comb += self.irq.eq(hw["STATUS"]["done"].q & hw["CTRL"]["irq_en"].q)

        # ---- descriptor, check and size loops -------------------------------------------------
        M, K, N = Signal(16), Signal(16), Signal(16)
        act_base, load = Signal(16), Signal()
        addr_bad = Signal()                           # a base address unaligned or too wide
        kr, nc = Signal(17), Signal(17)               # K and N rounded up, as counted so far
        # counter widths from the largest descriptor the configuration accepts
        kt_max, nt_max = -(-acfg.max_k // R), -(-0xFFFF // C)
        limit = {"w": kt_max * R * lay.words["w"] * nt_max, "a": acfg.max_m * kt_max * lay.words["a"],
                 "p": nt_max * lay.words["p"], "o": acfg.max_m * nt_max * out_w}
        arows = Signal(range(acfg.max_m * kt_max + 1))            # M * kt
        wtile = Signal(range(kt_max * R * lay.words["w"] + 1))    # data beats of one N tile's weights
        tot = {s: Signal(range(limit[s] + 1), name=f"{s}_total") for s in ("w", "p", "o")}
        busy, finish, bad = Signal(), Signal(), Signal()
        wrow = Signal(range(max(R, 2)))               # weight row within its tile (tlast)

        # ---- read streams -----------------------------------------------------------------------
        streams = {}
        for s in STREAMS:
            st = streams[s] = _Stream(s, lay.words[s], lay.bits[s], depth, ab, db, limit[s])
            m.submodules[f"{s}_fifo"] = st.fifo
        o_addr, o_left = Signal(ab), Signal(range(limit["o"] + 1))
        err_rresp, err_bresp = Signal(), Signal()
        writes_done = Signal()

        with m.FSM(name="ctl"):
            with m.State("IDLE"):
                with m.If(hw["CTRL"]["start"].q):
                    m.d.sync += [M.eq(hw["GEMM_M"]["m"].q), K.eq(hw["GEMM_K"]["k"].q),
                                 N.eq(hw["GEMM_N"]["n"].q),
                                 act_base.eq(hw["GEMM_ACT"]["act_base"].q),
                                 load.eq(hw["GEMM_ACT"]["load"].q),
                                 kr.eq(0), nc.eq(0), arows.eq(0), wtile.eq(0),
                                 *(t.eq(0) for t in tot.values()), wrow.eq(0)]
                    wrong_addr = []
                    for s in ("w", "a", "p", "o"):
                        u = s.upper()
                        base = Cat(hw[f"{u}_BASE_LO"]["addr"].q, hw[f"{u}_BASE_HI"]["addr"].q)
                        wrong_addr.append((base[:sh] != 0) | ((base[ab:] != 0) if ab < 64 else 0))
                        m.d.sync += (o_addr if s == "o" else streams[s].addr).eq(base[:ab])
                    m.d.sync += addr_bad.eq(Cat(*wrong_addr).any())
                    m.next = "CHECK"
            with m.State("CHECK"):
                m.d.comb += busy.eq(1)
                wrong = Signal()
                m.d.comb += wrong.eq((M == 0) | (M > acfg.max_m) | (K == 0) | (K > acfg.max_k)
                                     | (N == 0) | addr_bad)
                with m.If(wrong):
                    m.d.comb += [bad.eq(1), finish.eq(1)]
                    m.next = "IDLE"
                with m.Else():
                    m.next = "KLOOP"
            with m.State("KLOOP"):                    # kt = ceil(K / rows) iterations
                m.d.comb += busy.eq(1)
                arows_next = arows + M
                m.d.sync += [kr.eq(kr + R), arows.eq(arows_next),
                             wtile.eq(wtile + R * lay.words["w"])]
                with m.If(kr + R >= K):
                    with m.If(act_base + arows_next > acfg.act_depth):
                        m.d.comb += [bad.eq(1), finish.eq(1)]
                        m.next = "IDLE"
                    with m.Else():
                        m.next = "NLOOP"
            with m.State("NLOOP"):                    # nt = ceil(N / cols) iterations
                m.d.comb += busy.eq(1)
                m.d.sync += [nc.eq(nc + C), tot["w"].eq(tot["w"] + wtile),
                             tot["p"].eq(tot["p"] + lay.words["p"]),
                             tot["o"].eq(tot["o"] + M * out_w)]
                with m.If(nc + C >= N):
                    m.next = "LOAD"
            with m.State("LOAD"):
                m.d.comb += busy.eq(1)
                m.d.sync += [streams["w"].left.eq(tot["w"]), streams["p"].left.eq(tot["p"]),
                             streams["a"].left.eq(Mux(load, arows * lay.words["a"], 0)),
                             o_left.eq(tot["o"])]
                m.next = "CMD"
            with m.State("CMD"):
                m.d.comb += [busy.eq(1), acc.s_axis_cmd_tvalid.eq(1)]
                with m.If(acc.s_axis_cmd_tready):
                    m.next = "RUN"
            with m.State("RUN"):
                m.d.comb += busy.eq(1)
                with m.If(writes_done):
                    m.d.comb += finish.eq(1)
                    m.next = "IDLE"
        m.d.comb += acc.s_axis_cmd_tdata.eq(Cat(M, K, N, act_base, load))
        active = Signal()
        m.d.comb += active.eq(busy)

        # ---- AR channel: round-robin over the streams that have room for a whole burst --------
        order = m.submodules.order = SyncFIFO(width=2, depth=self.max_reads)
        arvalid, araddr, arlen = Signal(), Signal(ab), Signal(8)
        last = Signal(2)
        reqs = []
        for i, s in enumerate(STREAMS):
            st = streams[s]
            blen = _burst_len(m, st.addr, st.left, sh, self.max_burst, s)
            req = Signal(name=f"{s}_req")
            m.d.comb += req.eq(active & (st.left != 0) & (depth - st.committed >= blen))
            reqs.append((i, st, blen, req))
        issue = {s: Signal(name=f"{s}_issue") for s in STREAMS}
        can_issue = Signal()
        m.d.comb += can_issue.eq(~arvalid & order.w_rdy)
        with m.If(can_issue):
            with m.Switch(last):
                for prev in range(len(STREAMS)):
                    with m.Case(prev):
                        cands = [reqs[(prev + 1 + j) % len(STREAMS)] for j in range(len(STREAMS))]
                        for j, (i, st, blen, req) in enumerate(cands):
                            with (m.If(req) if j == 0 else m.Elif(req)):
                                m.d.comb += issue[st.name].eq(1)
                                m.d.sync += [arvalid.eq(1), araddr.eq(st.addr),
                                             arlen.eq(blen - 1), last.eq(i)]
                                m.d.comb += [order.w_en.eq(1), order.w_data.eq(i)]
        with m.Elif(self.m_axi_mem_arready):
            m.d.sync += arvalid.eq(0)
        m.d.comb += [self.m_axi_mem_arvalid.eq(arvalid), self.m_axi_mem_araddr.eq(araddr),
                     self.m_axi_mem_arlen.eq(arlen), self.m_axi_mem_arsize.eq(sh),
                     self.m_axi_mem_arburst.eq(1), self.m_axi_mem_arcache.eq(0b0011),
                     self.m_axi_mem_arid.eq(0), self.m_axi_mem_arlock.eq(0),
                     self.m_axi_mem_arprot.eq(0)]

        # ---- R channel: in order, into the FIFO of the stream at the head of the queue ---------
        rbeat = Signal()
        m.d.comb += [self.m_axi_mem_rready.eq(order.r_rdy),
                     rbeat.eq(self.m_axi_mem_rvalid & order.r_rdy),
                     order.r_en.eq(rbeat & self.m_axi_mem_rlast),
                     err_rresp.eq(rbeat & (self.m_axi_mem_rresp != 0))]
        for i, s in enumerate(STREAMS):
            st = streams[s]
            m.d.comb += [st.fifo.w_data.eq(self.m_axi_mem_rdata),
                         st.fifo.w_en.eq(rbeat & (order.r_data == i))]
            pop = Signal(name=f"{s}_pop")
            m.d.comb += pop.eq(st.fifo.r_en & st.fifo.r_rdy)
            blen = reqs[i][2]
            with m.If(issue[s]):
                m.d.sync += [st.addr.eq(st.addr + (blen << sh)), st.left.eq(st.left - blen)]
            m.d.sync += st.committed.eq(st.committed + Mux(issue[s], blen, 0) - pop)
            # the gearbox: words - 1 words held, the last one read from the FIFO's output
            valid, ready, data = (getattr(acc, f"s_axis_{s}_tvalid"),
                                  getattr(acc, f"s_axis_{s}_tready"),
                                  getattr(acc, f"s_axis_{s}_tdata"))
            if st.words == 1:
                m.d.comb += [valid.eq(st.fifo.r_rdy), data.eq(st.fifo.r_data),
                             st.fifo.r_en.eq(ready)]
            else:
                full = st.count == st.words - 1
                m.d.comb += [valid.eq(full & st.fifo.r_rdy),
                             data.eq(Cat(st.hold, st.fifo.r_data)),
                             st.fifo.r_en.eq(~full | ready)]
                with m.If(st.fifo.r_rdy):
                    with m.If(~full):
                        m.d.sync += [st.hold.eq(Cat(st.hold[db:], st.fifo.r_data)),
                                     st.count.eq(st.count + 1)]
                    with m.Elif(ready):
                        m.d.sync += st.count.eq(0)
            st.pending = (st.left != 0) | (st.committed != 0)
            st.starved = ready & ~valid
        m.d.comb += acc.s_axis_w_tlast.eq(wrow == R - 1)
        with m.If(acc.s_axis_w_tvalid & acc.s_axis_w_tready):
            m.d.sync += wrow.eq(Mux(wrow == R - 1, 0, wrow + 1))

        # ---- results: gearbox into the write FIFO ----------------------------------------------
        wfifo = m.submodules.o_fifo = SyncFIFOBuffered(width=db, depth=depth)
        ovalid, oready, odata = (acc.m_axis_out_tvalid, acc.m_axis_out_tready,
                                 acc.m_axis_out_tdata)
        if out_w == 1:
            m.d.comb += [wfifo.w_data.eq(odata), wfifo.w_en.eq(ovalid), oready.eq(wfifo.w_rdy)]
        else:
            ohold = Signal(out_w * db)
            ocount = Signal(range(out_w + 1))
            m.d.comb += [oready.eq((ocount == 0) | ((ocount == 1) & wfifo.w_rdy)),
                         wfifo.w_data.eq(ohold[:db]), wfifo.w_en.eq(ocount != 0)]
            with m.If(ovalid & oready):
                m.d.sync += [ohold.eq(odata), ocount.eq(out_w)]
            with m.Elif((ocount != 0) & wfifo.w_rdy):
                m.d.sync += [ohold.eq(ohold[db:]), ocount.eq(ocount - 1)]

        # ---- AW / W / B ------------------------------------------------------------------------
        awvalid, awaddr, awlen = Signal(), Signal(ab), Signal(8)
        wburst, wcnt = Signal(), Signal(8)
        bout = Signal(range(MAX_WRITES + 1))
        olen = _burst_len(m, o_addr, o_left, sh, self.max_burst, "o")
        aw_issue, bbeat, wbeat = Signal(), Signal(), Signal()
        m.d.comb += aw_issue.eq(active & (o_left != 0) & ~awvalid & ~wburst
                                & (wfifo.level >= olen) & (bout < MAX_WRITES))
        with m.If(aw_issue):
            m.d.sync += [awvalid.eq(1), awaddr.eq(o_addr), awlen.eq(olen - 1),
                         o_addr.eq(o_addr + (olen << sh)), o_left.eq(o_left - olen),
                         wburst.eq(1), wcnt.eq(olen - 1)]
        with m.Elif(self.m_axi_mem_awready):
            m.d.sync += awvalid.eq(0)
        m.d.comb += [self.m_axi_mem_awvalid.eq(awvalid), self.m_axi_mem_awaddr.eq(awaddr),
                     self.m_axi_mem_awlen.eq(awlen), self.m_axi_mem_awsize.eq(sh),
                     self.m_axi_mem_awburst.eq(1), self.m_axi_mem_awcache.eq(0b0011),
                     self.m_axi_mem_awid.eq(0), self.m_axi_mem_awlock.eq(0),
                     self.m_axi_mem_awprot.eq(0),
                     self.m_axi_mem_wvalid.eq(wburst & wfifo.r_rdy),
                     self.m_axi_mem_wdata.eq(wfifo.r_data),
                     self.m_axi_mem_wstrb.eq(Const(-1, nb)),
                     self.m_axi_mem_wlast.eq(wcnt == 0),
                     wbeat.eq(wburst & wfifo.r_rdy & self.m_axi_mem_wready),
                     wfifo.r_en.eq(wbeat),
                     self.m_axi_mem_bready.eq(1),
                     bbeat.eq(self.m_axi_mem_bvalid),
                     err_bresp.eq(bbeat & (self.m_axi_mem_bresp != 0))]
        with m.If(wbeat):
            with m.If(wcnt == 0):
                m.d.sync += wburst.eq(0)
            with m.Else():
                m.d.sync += wcnt.eq(wcnt - 1)
        m.d.sync += bout.eq(bout + aw_issue - bbeat)
        m.d.comb += writes_done.eq((o_left == 0) & ~awvalid & ~wburst & (bout == 0))

        # ---- status, errors, counters ----------------------------------------------------------
        err_cmd_d, err_w_d = Signal(), Signal()
        m.d.sync += [err_cmd_d.eq(acc.err_cmd), err_w_d.eq(acc.err_w_tlast)]
        m.d.comb += [hw["STATUS"]["busy"].d.eq(busy), hw["STATUS"]["done"].set.eq(finish),
                     hw["ERROR"]["desc"].set.eq(bad),
                     hw["ERROR"]["rresp"].set.eq(err_rresp),
                     hw["ERROR"]["bresp"].set.eq(err_bresp),
                     hw["ERROR"]["cmd"].set.eq(acc.err_cmd & ~err_cmd_d),
                     hw["ERROR"]["w_tlast"].set.eq(acc.err_w_tlast & ~err_w_d)]
        start = hw["CTRL"]["start"].q
        idle_start = Signal()
        m.d.comb += idle_start.eq(start & ~busy)
        starved = Signal()
        m.d.comb += starved.eq(Cat(*(st.starved & st.pending for st in streams.values())).any())
        for reg, inc in (("PERF_BUSY", busy), ("PERF_RBEATS", rbeat), ("PERF_WBEATS", wbeat),
                         ("PERF_WAIT", starved & busy)):
            cnt = Signal(32, name=reg.lower())
            m.d.comb += hw[reg]["count"].d.eq(cnt)
            with m.If(idle_start):
                m.d.sync += cnt.eq(0)
            with m.Elif(inc):
                m.d.sync += cnt.eq(cnt + 1)
        return m


    def manifest_section(self, options: dict) -> dict:
        """The ``shell`` section of the generated manifest: interfaces, reset rule, image
        layout and the register map (from the compiled SystemRDL)."""
        from dataclasses import asdict

        rmap = self.rmap
        return {
            "options": dict(options), "max_reads_outstanding": self.max_reads,
            "max_writes_outstanding": MAX_WRITES,
            "interfaces": {
                "s_axi_ctrl": {"protocol": "AXI4-Lite", "mode": "slave", "data_bits": 32,
                               "addr_bits": rmap.addr_bits, "bytes": rmap.size},
                "m_axi_mem": {"protocol": "AXI4", "mode": "master", "data_bits": self.data_bits,
                              "addr_bits": self.addr_bits, "id_bits": 1,
                              "max_burst": self.max_burst},
                "irq": {"sensitivity": "level high"}},
            "clock": "aclk", "reset": {"port": "aresetn", "active": "low", "synchronous": True},
            "images": {"beat_bits": self.layout.bits, "data_beats_per_beat": self.layout.words},
            "register_map": {"name": rmap.name, "bytes": rmap.size,
                             "registers": [{**asdict(r), "fields": [asdict(f) for f in r.fields]}
                                           for r in rmap.registers]},
            "files": {"registers_markdown": f"{self.module_name}_regs.md",
                      "registers_c_header": f"{self.module_name}_regs.h"},
        }


def register_files(name: str, command: str) -> dict:
    """``{file name: text}`` of the register map's Markdown (``<name>_regs.md``) and C header
    (``<name>_regs.h``), each with a regenerate header."""
    from rf8hw import __version__
    from rf8hw.hdl.regmap import c_header, markdown

    regen = f"Regenerate: {command}"
    return {f"{name}_regs.md": f"<!-- GENERATED by rf8hw {__version__} from rf8hw/hdl/shell.rdl "
                               f"(peakrdl-markdown). Do not edit. {regen} -->\n" + markdown(),
            f"{name}_regs.h": f"// GENERATED by rf8hw {__version__} from rf8hw/hdl/shell.rdl "
                              f"(peakrdl-cheader). Do not edit.\n// {regen}\n" + c_header()}


class _Stream:
    def __init__(self, name, words, bits, depth, addr_bits, data_bits, limit):
        self.name, self.words, self.bits = name, words, bits
        self.fifo = SyncFIFOBuffered(width=data_bits, depth=depth)
        self.addr = Signal(addr_bits, name=f"{name}_addr")
        self.left = Signal(range(limit + 1), name=f"{name}_left")            # beats not requested
        self.committed = Signal(range(depth + 1), name=f"{name}_committed")  # FIFO + in flight
        self.count = Signal(range(max(words, 2)), name=f"{name}_gear")      # words held
        self.hold = Signal(max(words - 1, 1) * data_bits, name=f"{name}_hold")


def _burst_len(m, addr, left, sh, max_burst, name):
    """``min(max_burst, left, data beats to the next 4 KB boundary)`` (combinational)."""
    page = Signal(range((1 << (12 - sh)) + 1), name=f"{name}_page")
    m.d.comb += page.eq((1 << (12 - sh)) - addr[sh:12])
    blen = Signal(range(max_burst + 1), name=f"{name}_blen")
    m.d.comb += blen.eq(max_burst)
    with m.If((left < max_burst) & (left <= page)):
        m.d.comb += blen.eq(left)
    with m.Elif(page < max_burst):
        m.d.comb += blen.eq(page)
    return blen
