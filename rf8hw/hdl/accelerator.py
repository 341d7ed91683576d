"""The GEMM accelerator: the systolic :class:`~rf8hw.hdl.array.RF8Array` plus an activation buffer,
an accumulator buffer across K tiles, per-column post-processing and a command-driven sequencer
(``docs/accelerator.md`` has the block diagram, the command format and the timing).

One command ``(M, K, N, act_base, load)`` runs ``y = post(a[M, K] @ W(codes[K, N]))``:

* **tiles**: ``kt = ceil(K / rows)`` K tiles by ``nt = ceil(N / cols)`` N tiles, in the order
  N tile ``j`` outer, K tile ``i`` inner; every tile streams all ``M`` activation rows through the
  array (weights double-buffered in the PEs, as the bare array does);
* **activations**: with ``load = 1`` the ``M * kt`` activation beats (``a[m, i*rows : (i+1)*rows]``,
  ``i`` outer, ``m`` inner) come in on ``act`` during N tile 0 and are written into the activation
  buffer from row ``act_base`` on; N tiles ``1 .. nt-1`` (and every N tile with ``load = 0``)
  read them back from the buffer;
* **weights**: ``rows`` beats per tile on ``w``, straight into the array, in tile order;
* **accumulation**: the array's partial sums of K tile ``i`` for row ``m`` are added into entry ``m``
  of the accumulator buffer (``acc_bits`` wide, ``max_m`` deep); the last K tile's sums (the
  finished totals) go into the total FIFO (block RAM, ``AccelTiming.total_fifo_depth`` rows)
  instead, so the array goes on with the next N tile while they wait for post-processing;
* **post-processing** (:mod:`rf8hw.format.postproc`): ``post_lanes`` lanes (:func:`post_lane`,
  pipelined) take a row from the total FIFO and process ``post_lanes`` of its columns per cycle
  (``passes = ceil(cols / post_lanes)`` cycles per row): ``(acc + bias) * mult``, a rounding
  right shift by ``shift``, saturation to ``out_bits``; one ``par`` beat (bias, mult, shift for
  each of the ``cols`` columns) per N tile, released after that N tile's last row's last pass.
  A last-K activation row enters the array only while the last-K rows in the array and in the
  total FIFO number fewer than the FIFO's depth (the credit rule): with ``ceil(K / rows) >=
  passes`` the lanes keep up and the rule never acts, otherwise it holds the array back;
* **results**: ``M`` beats per N tile on ``out`` (``y[m, j*cols : (j+1)*cols]``), ``last`` on the
  command's final beat.

A command is accepted only while none runs.  It is checked against the configuration (``1 <= M
<= max_m``, ``1 <= K <= max_k``, ``N >= 1``, ``act_base + M * kt <= act_depth``, the rule of
:meth:`rf8hw.arch.AccelConfig.command_error`): a refused command sets the sticky ``err_cmd`` flag
and runs nothing.  The check of the buffer range takes ``kt`` cycles after the command handshake
(a loop adding ``M`` per K tile: no multiplier, no divider).
"""

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, fifo, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from rf8hw.arch import CMD_FIELDS, POST_LIMB_BITS, AccelConfig, AccelTiming
from rf8hw.format import postproc
from rf8hw.hdl.array import RF8Array, weight_beat_layout

__all__ = ["cmd_layout", "act_row_layout", "param_layout", "out_beat_layout", "post_lane",
           "RF8Accelerator"]


def cmd_layout() -> data.StructLayout:
    """One command beat: the fields of :data:`rf8hw.arch.CMD_FIELDS`, low bits first."""
    return data.StructLayout({name: unsigned(width) for name, width in CMD_FIELDS})


def act_row_layout(rows: int, act_bits: int) -> data.ArrayLayout:
    """One activation beat (and activation-buffer row): ``a[m, i*rows + k]`` in element ``k``."""
    return data.ArrayLayout(signed(act_bits), rows)


def param_layout(cols: int, acc_bits: int) -> data.ArrayLayout:
    """One parameter beat: ``(bias, mult, shift)`` of each of the N tile's ``cols`` columns."""
    return data.ArrayLayout(data.StructLayout({
        "bias": signed(acc_bits), "mult": unsigned(postproc.MULT_BITS),
        "shift": unsigned(postproc.SHIFT_BITS)}), cols)


def out_beat_layout(cols: int, out_bits: int) -> data.StructLayout:
    """One result beat: ``y[m, j*cols + n]`` in element ``n``; ``last`` on the command's last."""
    return data.StructLayout({"data": data.ArrayLayout(signed(out_bits), cols), "last": 1})


def post_lane(m: Module, total, bias, mult, shift, acc_bits: int, out_bits: int, name: str):
    """One post-processing lane (:mod:`rf8hw.format.postproc` steps 2-5) as a pipeline of
    :func:`rf8hw.arch.post_stages` registers without enables (it never stalls): returns the
    ``out_bits``-bit result of the inputs given ``post_stages(acc_bits)`` cycles earlier.

    Stages: the inputs; ``v = total + bias``; the partial products of ``v``'s
    :data:`~rf8hw.arch.POST_LIMB_BITS`-bit limbs (low limbs unsigned, the top one signed) by
    ``mult`` (each fits an 18 x 18 DSP); one stage per further limb adding its product in;
    the arithmetic shift by ``shift - 1`` in two steps (its low 3 bits, then 8 times its high 3
    bits); the increment and shift by one (``floor((p + 2^(s-1)) / 2^s) = floor((floor(p /
    2^(s-1)) + 1) / 2)``; ``shift = 0`` passes ``p``); the saturation.
    """
    vw, pw = acc_bits + 1, acc_bits + 1 + postproc.MULT_BITS + 1
    SB = postproc.SHIFT_BITS

    def reg(value, shape, tag):
        r = Signal(shape, name=f"{name}_{tag}")
        m.d.sync += r.eq(value)
        return r

    t0 = reg(total, signed(acc_bits), "total")
    b0 = reg(bias, signed(acc_bits), "bias")
    mult0 = reg(mult, postproc.MULT_BITS, "mult")
    sh = reg(shift, SB, "shift0")
    v = reg(t0 + b0, signed(vw), "v")
    mult1 = reg(mult0, postproc.MULT_BITS, "mult1")
    sh = reg(sh, SB, "shift1")
    # partial products of the limbs
    nl = -(-vw // POST_LIMB_BITS)
    pps = []
    for i in range(nl):
        lo = i * POST_LIMB_BITS
        if i == nl - 1:
            limb = v[lo:].as_signed()
            pps.append(reg(limb * mult1, signed(vw - lo + postproc.MULT_BITS), f"pp{i}"))
        else:
            limb = v[lo:lo + POST_LIMB_BITS]
            pps.append(reg(limb * mult1, POST_LIMB_BITS + postproc.MULT_BITS, f"pp{i}"))
    sh = reg(sh, SB, "shift2")
    # one limb's product added per stage; the bits below the limb pass unchanged
    acc = pps[0]
    for i in range(1, nl):
        lo = i * POST_LIMB_BITS
        high = acc[lo:].as_signed() if i > 1 else acc[lo:]
        upper = Signal(signed(pw - lo), name=f"{name}_upper{i}")
        m.d.comb += upper.eq(high + pps[i])
        acc = reg(Cat(acc[:lo], upper), signed(pw), f"sum{i}")
        pps = [reg(pp, pp.shape(), f"pp{j}_{i}") if j > i else pp for j, pp in enumerate(pps)]
        sh = reg(sh, SB, f"shift_s{i}")
    prod = acc.as_signed() if nl > 1 else acc
    # the rounding shift: by s - 1 (s >= 1) in two steps, then +1 and >> 1
    zero = sh == 0
    s1 = Mux(zero, 0, (sh - 1)[:SB])
    q1 = reg(prod >> s1[:3], signed(pw), "q1")
    z1 = reg(zero, 1, "zero1")
    s1h = reg(s1[3:], SB - 3, "shift_hi")
    q2 = reg(q1 >> Cat(Const(0, 3), s1h), signed(pw), "q2")
    z2 = reg(z1, 1, "zero2")
    rounded = reg(Mux(z2, q2, (q2 + 1) >> 1), signed(pw), "r")
    # saturation: the value fits out_bits when every bit from out_bits-1 up equals the sign (an
    # and/or reduction instead of two wide comparisons)
    lo_v, hi_v = -(1 << (out_bits - 1)), (1 << (out_bits - 1)) - 1
    top = rounded[out_bits - 1:]
    return reg(Mux(top.all() | ~top.any(), rounded[:out_bits], Mux(rounded[-1], lo_v, hi_v)),
               signed(out_bits), "y")


def _counter(limit: int, name: str) -> Signal:
    # at least one bit wide (Verilator rejects zero-width vectors)
    return Signal(range(max(limit, 2)), name=name)


class RF8Accelerator(wiring.Component):
    """The accelerator core with valid/ready streams (the AXI4-Stream top is
    :class:`rf8hw.hdl.accel_axi.RF8AccelAxiTop`).

    Parameters
    ----------
    acfg : AccelConfig
    pe_class : PE class, optional
        As :class:`rf8hw.hdl.array.RF8Array`.

    Members
    -------
    cmd : In(stream.Signature(cmd_layout()))
        Commands; ``cmd.ready`` is high while no command runs or is being checked.
    w : In(stream.Signature(weight_beat_layout(cols)))
        Weight tiles, ``rows`` beats per tile, tiles in (N tile, K tile) order; zero codes pad
        the ragged edges.  Passed to the array unchanged.
    act : In(stream.Signature(act_row_layout(rows, act_bits)))
        Activation rows of a ``load = 1`` command (zeros pad K up to ``kt * rows``).
    par : In(stream.Signature(param_layout(cols, acc_bits)))
        One post-processing beat per N tile (2-entry FIFO inside).
    out : Out(stream.Signature(out_beat_layout(cols, out_bits)))
        Results, ``M`` beats per N tile.
    busy : Out(1)
        A command is running (from the end of its check to its last result row leaving the
        accumulator stage; the total FIFO, the lanes and the result FIFO may still hold rows).
    err_cmd : Out(1)
        Sticky until reset: a command was refused.
    err_w_last : Out(1)
        The array's sticky weight-``last`` protocol error.
    """

    def __new__(cls, acfg: AccelConfig, *args, **kwargs):
        if not isinstance(acfg, AccelConfig):
            raise TypeError(f"acfg must be an AccelConfig, not {acfg!r}")
        return super().__new__(cls, src_loc_at=1)

    def __init__(self, acfg: AccelConfig, pe_class=None):
        self.acfg = acfg
        cfg = acfg.array
        self.array = RF8Array(cfg, pe_class)
        self.rows, self.cols = cfg.rows, cfg.cols
        self.act_bits, self.acc_bits, self.out_bits = cfg.act_bits, cfg.acc_bits, acfg.out_bits
        self.timing = self.array.timing
        super().__init__({
            "cmd": In(stream.Signature(cmd_layout())),
            "w": In(stream.Signature(weight_beat_layout(cfg.cols, self.array.pe.weight_bits))),
            "act": In(stream.Signature(act_row_layout(cfg.rows, cfg.act_bits))),
            "par": In(stream.Signature(param_layout(cfg.cols, cfg.acc_bits))),
            "out": Out(stream.Signature(out_beat_layout(cfg.cols, acfg.out_bits))),
            "busy": Out(1),
            "err_cmd": Out(1),
            "err_w_last": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        acfg = self.acfg
        rows, cols, A = self.rows, self.cols, self.acc_bits
        max_m, max_k, depth = acfg.max_m, acfg.max_k, acfg.act_depth
        kt_max = -(-max_k // rows)
        timing = AccelTiming(acfg)
        tot_depth, P, lanes = timing.total_fifo_depth, timing.passes, acfg.post_lanes
        m.submodules.array = arr = self.array

        # --- weights: straight into the array ------------------------------------------------
        m.d.comb += [arr.w.p.eq(self.w.p), arr.w.valid.eq(self.w.valid),
                     self.w.ready.eq(arr.w.ready), self.err_w_last.eq(arr.err_w_last)]

        # --- command: accept, check, start --------------------------------------------------
        cM, cK, cN = Signal(16, name="cmd_M"), Signal(16, name="cmd_K"), Signal(16, name="cmd_N")
        cbase, cload = Signal(16, name="cmd_act_base"), Signal(name="cmd_load")
        busy, checking = Signal(name="busy"), Signal(name="checking")
        chk_k = Signal(17, name="chk_k")                       # K position of the K tile checked
        chk_end = Signal(range((1 << 16) + max_m * kt_max + 1), name="chk_end")
        start = Signal()
        p = self.cmd.p
        m.d.comb += [self.cmd.ready.eq(~busy & ~checking), self.busy.eq(busy)]
        with m.If(self.cmd.valid & self.cmd.ready):
            m.d.sync += [cM.eq(p.M), cK.eq(p.K), cN.eq(p.N), cbase.eq(p.act_base),
                         cload.eq(p.load), chk_k.eq(0), chk_end.eq(p.act_base)]
            with m.If((p.M >= 1) & (p.M <= max_m) & (p.K >= 1) & (p.K <= max_k) & (p.N >= 1)):
                m.d.sync += checking.eq(1)
            with m.Else():
                m.d.sync += self.err_cmd.eq(1)
        with m.If(checking):                # one cycle per K tile: chk_end += M
            m.d.sync += [chk_k.eq(chk_k + rows), chk_end.eq(chk_end + cM)]
            with m.If(chk_k + rows >= cK):
                m.d.sync += checking.eq(0)
                with m.If(chk_end + cM <= depth):
                    m.d.comb += start.eq(1)
                    m.d.sync += busy.eq(1)
                with m.Else():
                    m.d.sync += self.err_cmd.eq(1)

        # --- activation feeder: stream (N tile 0 of a load command) or buffer ------------------
        # every memory at least 2 deep: a 1-deep one would have a zero-width address, which
        # Verilator rejects (the extra row is never used)
        m.submodules.act_mem = act_mem = Memory(shape=act_row_layout(rows, self.act_bits),
                                                depth=max(depth, 2), init=[])
        act_wr = act_mem.write_port()
        act_rd = act_mem.read_port()
        f_run = Signal(name="feed_run")
        f_m = _counter(max_m, "feed_m")
        f_k = Signal(17, name="feed_k")
        f_n = Signal(17, name="feed_n")
        f_addr = _counter(depth, "feed_addr")
        pf_valid, pf_last = Signal(name="prefetch_valid"), Signal(name="prefetch_last")
        f_last_row, f_last_k = Signal(), Signal()
        pf_last_k = Signal(name="prefetch_last_k")
        use_stream = Signal()
        stream_take, issue_rd, advance = Signal(), Signal(), Signal()
        # the credit rule: a last-K row enters the array only while the last-K rows that entered
        # and that the post-processing lanes have not read yet number fewer than the total
        # FIFO's depth (so the FIFO never overflows and the accumulator stage never waits)
        owed = Signal(range(tot_depth + 1), name="total_owed")
        in_last_k, gate, arr_ready = Signal(), Signal(), Signal()
        lane_pop = Signal()
        m.d.comb += [
            f_last_row.eq(f_m + 1 == cM),
            f_last_k.eq(f_k + rows >= cK),
            use_stream.eq(f_run & cload & (f_n == 0)),
            in_last_k.eq(Mux(pf_valid, pf_last_k, f_last_k)),
            gate.eq(~in_last_k | (owed < tot_depth)),
            arr_ready.eq(arr.act.ready & gate),
            stream_take.eq(use_stream & self.act.valid & arr_ready),
            issue_rd.eq(f_run & ~use_stream & (~pf_valid | arr_ready)),
            advance.eq(stream_take | issue_rd),
            self.act.ready.eq(use_stream & arr_ready),
            arr.act.valid.eq(((use_stream & self.act.valid) | pf_valid) & gate),
            arr.act.p.data.eq(Mux(pf_valid, act_rd.data, self.act.p)),
            arr.act.p.last.eq(Mux(pf_valid, pf_last, f_last_row)),
            act_wr.addr.eq(f_addr), act_wr.en.eq(stream_take), act_wr.data.eq(self.act.p),
            act_rd.addr.eq(f_addr), act_rd.en.eq(issue_rd),
        ]
        m.d.sync += owed.eq(owed + (arr.act.valid & arr.act.ready & in_last_k) - lane_pop)
        with m.If(issue_rd):
            m.d.sync += [pf_valid.eq(1), pf_last.eq(f_last_row), pf_last_k.eq(f_last_k)]
        with m.Elif(pf_valid & arr_ready):
            m.d.sync += pf_valid.eq(0)
        with m.If(start):
            m.d.sync += [f_run.eq(1), f_m.eq(0), f_k.eq(0), f_n.eq(0), f_addr.eq(cbase)]
        with m.Elif(advance):
            m.d.sync += [f_addr.eq(f_addr + 1), f_m.eq(f_m + 1)]
            with m.If(f_last_row):
                m.d.sync += f_m.eq(0)
                with m.If(f_last_k):
                    m.d.sync += [f_k.eq(0), f_addr.eq(cbase)]
                    with m.If(f_n + cols >= cN):
                        m.d.sync += [f_run.eq(0), f_n.eq(0)]
                    with m.Else():
                        m.d.sync += f_n.eq(f_n + cols)
                with m.Else():
                    m.d.sync += f_k.eq(f_k + rows)

        # --- accumulation across K tiles ----------------------------------------------------
        # row max_m is never written: it keeps its initial zeros (block RAM is initialised with
        # the configuration) and is what a first K tile's rows read, so the sum needs no
        # multiplexer.  The read port is not transparent: two results of one row come at least
        # two cycles apart (a tile takes rows + 1 cycles at least and the array never waits),
        # so a row written in one cycle is read in a later one.
        row_layout = data.ArrayLayout(signed(A), cols)
        m.submodules.acc_mem = acc_mem = Memory(shape=row_layout, depth=max_m + 1, init=[])
        acc_wr = acc_mem.write_port()
        acc_rd = acc_mem.read_port()

        r_m = _counter(max_m, "res_m")
        r_k = Signal(17, name="res_k")
        r_n = Signal(17, name="res_n")
        r_first_k, r_last_k, r_last_n, r_last_row = Signal(), Signal(), Signal(), Signal()
        next_m = _counter(max_m, "res_next_m")
        take, next_first_k = Signal(), Signal()
        m.d.comb += [
            r_first_k.eq(r_k == 0),
            # is the row after this cycle's (the one the read issued now is for) of K tile 0?
            next_first_k.eq(Mux(take & r_last_row, r_last_k, r_first_k)),
            r_last_k.eq(r_k + rows >= cK),
            r_last_n.eq(r_n + cols >= cN),
            r_last_row.eq(r_m + 1 == cM),
            next_m.eq(Mux(r_last_row, 0, r_m + 1)),
            arr.acc.ready.eq(1),            # the credit rule keeps room in the total FIFO
            take.eq(arr.acc.valid),
        ]
        total = Signal(row_layout)
        for n in range(cols):
            m.d.comb += total[n].eq(acc_rd.data[n] + arr.acc.p.data[n])
        m.d.comb += [
            acc_wr.addr.eq(r_m), acc_wr.en.eq(take & ~r_last_k), acc_wr.data.eq(total),
            acc_rd.addr.eq(Mux(next_first_k, max_m, Mux(take, next_m, r_m))), acc_rd.en.eq(1),
        ]
        with m.If(take):
            m.d.sync += r_m.eq(next_m)
            with m.If(r_last_row):
                with m.If(r_last_k):
                    m.d.sync += r_k.eq(0)
                    with m.If(r_last_n):
                        m.d.sync += [r_n.eq(0), busy.eq(0)]
                    with m.Else():
                        m.d.sync += r_n.eq(r_n + cols)
                with m.Else():
                    m.d.sync += r_k.eq(r_k + rows)

        # --- total FIFO: a last K tile's rows (block RAM), with the row's two flags -------------
        tot_layout = data.StructLayout({"total": row_layout, "tile_last": 1, "cmd_last": 1})
        m.submodules.tot_mem = tot_mem = Memory(shape=tot_layout, depth=max(tot_depth, 2),
                                                init=[])
        tot_wr = tot_mem.write_port()
        tot_rd = tot_mem.read_port()
        t_wp, t_rp = _counter(tot_depth, "total_wp"), _counter(tot_depth, "total_rp")
        t_level = Signal(range(tot_depth + 1), name="total_level")
        push = Signal()
        m.d.comb += [
            push.eq(take & r_last_k),
            tot_wr.addr.eq(t_wp), tot_wr.en.eq(push), tot_wr.data.total.eq(total),
            tot_wr.data.tile_last.eq(r_last_row), tot_wr.data.cmd_last.eq(r_last_row & r_last_n),
            tot_rd.addr.eq(t_rp), tot_rd.en.eq(lane_pop),
        ]
        m.d.sync += t_level.eq(t_level + push - lane_pop)
        with m.If(push):
            m.d.sync += t_wp.eq(Mux(t_wp == tot_depth - 1, 0, t_wp + 1))
        with m.If(lane_pop):
            m.d.sync += t_rp.eq(Mux(t_rp == tot_depth - 1, 0, t_rp + 1))

        # --- post-processing lanes: a row read from the total FIFO (its data held at the read
        # port) is processed in `passes` cycles, post_lanes columns per cycle -------------------
        m.submodules.par_fifo = par_fifo = fifo.SyncFIFO(
            width=param_layout(cols, A).size, depth=2)
        par = data.View(param_layout(cols, A), par_fifo.r_data)
        m.d.comb += [par_fifo.w_data.eq(self.par.p), par_fifo.w_en.eq(self.par.valid),
                     self.par.ready.eq(par_fifo.w_rdy)]
        out_depth = timing.out_fifo_depth
        m.submodules.out_fifo = out_fifo = fifo.SyncFIFO(
            width=out_beat_layout(cols, self.out_bits).size, depth=out_depth)
        l_act = Signal(name="lane_active")
        l_pass = _counter(P, "lane_pass")
        pass_last = Signal()
        pend = Signal(range(out_depth + 1), name="lane_pending")
        par_pop, par_ok, out_write = Signal(), Signal(), Signal()
        row = tot_rd.data
        m.d.comb += [
            pass_last.eq(l_pass == P - 1),
            par_pop.eq(l_act & pass_last & row.tile_last),
            # the next row's parameters: the head, or the entry behind it when the head goes now
            par_ok.eq(Mux(par_pop, par_fifo.level >= 2, par_fifo.r_rdy)),
            lane_pop.eq((t_level != 0) & (~l_act | pass_last) & par_ok
                        & (pend + out_fifo.level < out_depth)),
            par_fifo.r_en.eq(par_pop),
        ]
        m.d.sync += pend.eq(pend + lane_pop - out_write)
        with m.If(lane_pop):
            m.d.sync += [l_act.eq(1), l_pass.eq(0)]
        with m.Elif(l_act):
            m.d.sync += l_pass.eq(l_pass + 1)
            with m.If(pass_last):
                m.d.sync += l_act.eq(0)

        def column(values, lane):
            # the value of column pass * post_lanes + lane (a column past the last: the last)
            opts = [values[min(p * lanes + lane, cols - 1)] for p in range(P)]
            return opts[0] if P == 1 else Array(opts)[l_pass]

        stages = timing.post_stages
        valid_sr = [Signal(name=f"post_valid_{i}") for i in range(stages)]
        plast_sr = [Signal(name=f"post_pass_last_{i}") for i in range(stages)]
        last_sr = [Signal(name=f"post_last_{i}") for i in range(stages)]
        m.d.sync += [valid_sr[0].eq(l_act), plast_sr[0].eq(pass_last),
                     last_sr[0].eq(row.cmd_last)]
        for i in range(1, stages):
            m.d.sync += [valid_sr[i].eq(valid_sr[i - 1]), plast_sr[i].eq(plast_sr[i - 1]),
                         last_sr[i].eq(last_sr[i - 1])]
        ys = []
        for lane in range(lanes):
            ys.append(post_lane(
                m, column([row.total[n] for n in range(cols)], lane),
                column([par[n].bias for n in range(cols)], lane),
                column([par[n].mult for n in range(cols)], lane),
                column([par[n].shift for n in range(cols)], lane),
                A, self.out_bits, f"post{lane}"))
        y_vec = Cat(*ys)
        # the passes before the last shift into a collector; the last completes the row
        if P > 1:
            coll = Signal(self.out_bits * lanes * (P - 1), name="post_collect")
            with m.If(valid_sr[-1] & ~plast_sr[-1]):
                m.d.sync += coll.eq(Cat(coll[self.out_bits * lanes:], y_vec))
            beat = Cat(coll, y_vec)
        else:
            beat = y_vec
        result = Signal(out_beat_layout(cols, self.out_bits))
        m.d.comb += [
            out_write.eq(valid_sr[-1] & plast_sr[-1]),
            result.data.eq(beat[:cols * self.out_bits]),
            result.last.eq(last_sr[-1]),
            out_fifo.w_data.eq(result.as_value()), out_fifo.w_en.eq(out_write),
            self.out.valid.eq(out_fifo.r_rdy), self.out.p.eq(out_fifo.r_data),
            out_fifo.r_en.eq(self.out.ready),
        ]
        return m
