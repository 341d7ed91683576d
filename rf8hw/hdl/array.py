"""Weight-stationary systolic MAC array: ``acc[m, :] = sum_k a[m, k] * W[k, :]`` for one tile.

Dataflow (``docs/architecture.md`` has the figure and the timing table)::

    weights  --> column n delayed by n steps --> one decoder per column --> broadcast down the
                 column into the PEs' *shadow* registers, row k loaded by beat k
    act[m]   --> input register --> row k delayed by k more steps --> PE[k][0] --> PE[k][1] --> ...
                 (activations go right; a tile's first activation carries a one-bit "swap" one
                 step ahead of it, which switches each PE to its shadow weights just in time)
    psums    --> PE[0][n] (psum_in = 0) --> PE[1][n] --> ... --> PE[rows-1][n] (partial sums go down,
                 so a column adds its products in k order 0..rows-1, the order ``saturate`` names)
             --> column n delayed by cols-1-n steps --> 2-entry output FIFO --> acc stream

Every pipeline register advances on the array clock enable ``ce``; ``ce`` drops only when a result
reaches the bottom of the pipeline while the output FIFO is full (``acc.ready`` held low), so
backpressure stalls the whole array, losing and duplicating nothing.  ``ce`` is itself a register
(its next value computed from the next state of the bottom stage and the FIFO level), so no logic
lies between ``acc.ready`` or the FIFO level and the enables of the PEs, and there is no
combinational path from ``acc.ready`` to ``act.ready``/``w.ready``.

Double buffering: the weights of tile t+1 stream into the shadow registers while tile t computes
(from the step after tile t's first activation); tile t+1's activations start once all its weight
rows are in.  Column n writes its shadow registers n steps after the beat and PE[k][n] switches
k + n steps after the tile's first activation, so a shadow register is overwritten only after its
PE has switched, and every PE switches before the new tile's first activation reaches it.
"""

from amaranth.hdl import Cat, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, fifo, stream, wiring
from amaranth.lib.wiring import In, Out

from rf8hw.arch import ArrayConfig, Timing
from rf8hw.hdl import registry

__all__ = ["weight_beat_layout", "act_beat_layout", "acc_beat_layout", "RF8Array"]


def weight_beat_layout(cols: int, weight_bits: int = 8) -> data.StructLayout:
    """One weight-stream beat: row k of the tile, ``data[n] = W[k, n]`` (raw codes), ``last``."""
    return data.StructLayout({"data": data.ArrayLayout(unsigned(weight_bits), cols), "last": 1})


def act_beat_layout(rows: int, act_bits: int) -> data.StructLayout:
    """One activation-stream beat: ``data[k] = a[m, k]`` (two's complement), ``last`` on m = M-1."""
    return data.StructLayout({"data": data.ArrayLayout(signed(act_bits), rows), "last": 1})


def acc_beat_layout(cols: int, acc_bits: int) -> data.StructLayout:
    """One result-stream beat: ``data[n] = acc[m, n]``, ``last`` on the tile's last row."""
    return data.StructLayout({"data": data.ArrayLayout(signed(acc_bits), cols), "last": 1})


class RF8Array(wiring.Component):
    """Weight-stationary systolic array of ``rows x cols`` PEs with valid/ready streams.

    Parameters
    ----------
    cfg : ArrayConfig
        ``rows`` (reduction depth K of a tile), ``cols`` (output width N), ``act_bits``,
        ``acc_bits``, ``overflow`` and the PE kind ``pe`` (:data:`rf8hw.arch.PE_KINDS`; its class
        from :mod:`rf8hw.hdl.registry`).
    pe_class : PE class, optional
        Overrides the class of ``cfg.pe``: any class following the PE interface of
        :mod:`rf8hw.hdl.pe` that implements the facts of ``cfg.pe``'s kind (weight format,
        ``product_latency``), for experiments with PEs outside the registry.

    Members
    -------
    w : In(stream.Signature(weight_beat_layout(cols, pe.weight_bits)))
        Weight tile, one row per beat (beat k carries ``W[k, 0..cols-1]``), ``rows`` beats per
        tile, into the shadow buffer (see *Handshake rules*).
    act : In(stream.Signature(act_beat_layout(rows, act_bits)))
        Activation rows ``a[m, 0..rows-1]``, any number ``M >= 1`` per tile; ``last`` on m = M-1
        ends the tile.
    acc : Out(stream.Signature(acc_beat_layout(cols, acc_bits)))
        Result rows ``acc[m, 0..cols-1]`` in m order; ``last`` copies the activation's ``last``.
    err_w_last : Out(1)
        Sticky protocol-error flag, cleared only by reset: set when a weight beat's ``last`` is
        not exactly ``(beat index == rows - 1)``.  The hardware counts weight beats itself and
        ignores ``last`` otherwise (the tile is still loaded from ``rows`` beats).

    Handshake rules
    ---------------
    A tile is ``rows`` weight beats, then activation beats up to and including one with ``last``.
    ``w.ready`` is high while the shadow buffer is free: after reset, and from the cycle after a
    tile's first activation handshake until that tile's successor has all ``rows`` beats.
    ``act.ready`` is high while a tile is running (its first activation was taken, its ``last``
    not yet) or a complete tile waits in the shadow buffer; both only while the array is not
    stalled.  So the weights of tile t+1 stream in while tile t computes, and a tile switch costs
    no cycle when ``M > rows`` and one when ``M = rows`` (the weight stream keeping up).  Results
    keep their order; ``acc.ready`` low stalls the array once the 2-entry output FIFO is full.

    Latency and throughput
    ----------------------
    See :class:`Timing`: ``rows + cols + product_latency`` cycles from activation handshake to
    result, one row per cycle in steady state, ``max(M, rows + 1)`` cycles per tile back to back.

    Resources: ``rows * cols`` PEs (two weight registers each), ``cols`` decoders,
    ``act_bits * rows*(rows+1)/2`` skew (input register included), ``rows*(rows-1)/2`` swap-skew,
    ``(weight_bits + rows) * cols*(cols-1)/2`` weight-delay and ``acc_bits * cols*(cols-1)/2``
    deskew flip-flops, a 2 x ``(acc_bits*cols + 1)``-bit FIFO.
    """

    def __new__(cls, cfg: ArrayConfig, *args, **kwargs):
        # checked before the component exists, so a refused one leaves no unused elaboratable
        if not isinstance(cfg, ArrayConfig):
            raise TypeError(f"cfg must be an ArrayConfig, not {cfg!r}")
        return super().__new__(cls, src_loc_at=1)

    def __init__(self, cfg: ArrayConfig, pe_class=None):
        pe = registry.pe_class(cfg.pe) if pe_class is None else pe_class
        rows, cols, act_bits, acc_bits = cfg.rows, cfg.cols, cfg.act_bits, cfg.acc_bits
        self.cfg = cfg
        self.rows, self.cols = rows, cols
        self.act_bits, self.acc_bits, self.overflow = cfg.act_bits, cfg.acc_bits, cfg.overflow
        self.pe = pe
        self.timing = Timing(cfg)
        super().__init__({
            "w": In(stream.Signature(weight_beat_layout(cols, pe.weight_bits))),
            "act": In(stream.Signature(act_beat_layout(rows, act_bits))),
            "acc": Out(stream.Signature(acc_beat_layout(cols, acc_bits))),
            "err_w_last": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        rows, cols = self.rows, self.cols
        # The array advances one step.  ce is a register (init 1), so no logic sits between
        # the output FIFO level / acc.ready and the enable of every PE: its next value is the
        # stall rule "bottom stage valid and FIFO full" evaluated on the next-state values of
        # the bottom stage and the FIFO level, which gives cycle for cycle the same ce as the
        # combinational rule would (tests/hdl/test_array.py checks the equivalence).
        ce = Signal(init=1, name="ce")

        # --- output FIFO and the stall rule ------------------------------------------------
        out_layout = acc_beat_layout(cols, self.acc_bits)
        m.submodules.out_fifo = out_fifo = fifo.SyncFIFO(width=out_layout.size, depth=2)
        # (valid, last) of the wavefront in each pipeline stage; stage depth-1 is the bottom.
        depth = self.timing.latency - 1
        wave_valid = Signal(depth)
        wave_last = Signal(depth)
        bottom_valid = wave_valid[depth - 1]
        do_write = out_fifo.w_en & out_fifo.w_rdy
        do_read = out_fifo.r_en & out_fifo.r_rdy
        level_next = Signal(range(3), name="fifo_level_next")
        bottom_next = Signal(name="bottom_valid_next")
        m.d.comb += [
            level_next.eq(out_fifo.level + do_write - do_read),
            bottom_next.eq(Mux(ce, wave_valid[depth - 2], bottom_valid)),   # depth >= 2
        ]
        m.d.sync += ce.eq(~bottom_next | (level_next != 2))
        self._stall_rule = (ce, bottom_valid, out_fifo.w_rdy)     # for the equivalence test

        # --- tile control ---------------------------------------------------------------------
        # Weight side: FILL (shadow buffer free, beats accepted) -> FULL after beat rows-1 ->
        # FILL again after the tile's first activation handshake.  Activation side: a tile runs
        # from its first handshake (only while FULL) to the one with last.  The counter is at
        # least 1 bit wide even when rows == 1 (Verilator rejects zero-width vectors).
        w_row = Signal(range(max(rows, 2)), name="w_row")
        full = Signal(name="w_full")            # the shadow buffer holds a tile not yet started
        running = Signal(name="a_running")      # a tile's activations are streaming
        w_take = Signal()
        a_take = Signal()
        first = Signal()                        # this handshake is a tile's first activation
        m.d.comb += [
            self.w.ready.eq(ce & ~full),
            self.act.ready.eq(ce & (running | full)),
            w_take.eq(self.w.valid & self.w.ready),
            a_take.eq(self.act.valid & self.act.ready),
            first.eq(a_take & ~running),
        ]
        with m.If(w_take):
            with m.If(self.w.p.last != (w_row == rows - 1)):
                m.d.sync += self.err_w_last.eq(1)
            with m.If(w_row == rows - 1):
                m.d.sync += [w_row.eq(0), full.eq(1)]
            with m.Else():
                m.d.sync += w_row.eq(w_row + 1)
        with m.If(first):
            m.d.sync += full.eq(0)
        with m.If(a_take):
            m.d.sync += running.eq(~self.act.p.last)

        # --- wavefront (valid, last) pipeline --------------------------------------------------
        with m.If(ce):
            m.d.sync += [
                wave_valid.eq(Cat(a_take, wave_valid[:depth - 1])),
                wave_last.eq(Cat(self.act.p.last, wave_last[:depth - 1])),
            ]

        # --- weights: column n n steps late, one decoder per column, row k loads on beat k ---
        row_load = Signal(rows, name="w_load")
        for k in range(rows):
            m.d.comb += row_load[k].eq(w_take & (w_row == k))
        decoded, col_load = [], []
        for n in range(cols):
            code, load = self.w.p.data[n], row_load
            for i in range(n):
                code_r = Signal(len(code), name=f"wdelay_{n}_{i}", reset_less=True)
                load_r = Signal(rows, name=f"wload_{n}_{i}")
                with m.If(ce):
                    m.d.sync += [code_r.eq(code), load_r.eq(load)]
                code, load = code_r, load_r
            dec = self.pe.make_decoder()
            m.submodules[f"dec_{n}"] = dec
            m.d.comb += dec.code.eq(code)
            decoded.append(dec.fields)
            # A delayed beat waits in its register while the array is stalled: write it once, at
            # the edge that moves it on (w_take already implies ce for column 0).
            col_load.append(load if n == 0 else load & ce.replicate(rows))

        # --- activation skew: an input register, then row k k more steps late; the swap flag
        # of a tile's first activation runs one step ahead of it ----------------------------
        row_act, row_swap = [], []
        for k in range(rows):
            value = self.act.p.data[k]
            for i in range(k + 1):
                reg = Signal(signed(self.act_bits), name=f"skew_{k}_{i}", reset_less=True)
                with m.If(ce):
                    m.d.sync += reg.eq(value)
                value = reg
            row_act.append(value)
            flag = first
            for i in range(k):
                reg = Signal(name=f"swap_skew_{k}_{i}")
                with m.If(ce):
                    m.d.sync += reg.eq(flag)
                flag = reg
            row_swap.append(flag)

        # --- the PE grid --------------------------------------------------------------------
        pes = [[self.pe(self.act_bits, self.acc_bits, self.overflow) for _ in range(cols)]
               for _ in range(rows)]
        for k in range(rows):
            for n in range(cols):
                pe = pes[k][n]
                m.submodules[f"pe_{k}_{n}"] = pe
                m.d.comb += [
                    pe.ce.eq(ce),
                    pe.w_load.eq(col_load[n][k]),
                    pe.w_data.eq(decoded[n]),
                    pe.swap_in.eq(row_swap[k] if n == 0 else pes[k][n - 1].swap_out),
                    pe.a_in.eq(row_act[k] if n == 0 else pes[k][n - 1].a_out),
                    pe.psum_in.eq(0 if k == 0 else pes[k - 1][n].psum_out),
                ]

        # --- deskew: column n leaves the grid n steps before column cols-1 --------------------
        result = Signal(out_layout)
        for n in range(cols):
            value = pes[rows - 1][n].psum_out
            for i in range(cols - 1 - n):
                reg = Signal(signed(self.acc_bits), name=f"deskew_{n}_{i}", reset_less=True)
                with m.If(ce):
                    m.d.sync += reg.eq(value)
                value = reg
            m.d.comb += result.data[n].eq(value)
        m.d.comb += result.last.eq(wave_last[depth - 1])

        # --- into the FIFO and out ----------------------------------------------------------
        m.d.comb += [
            out_fifo.w_data.eq(result.as_value()),
            out_fifo.w_en.eq(bottom_valid & out_fifo.w_rdy),
            self.acc.valid.eq(out_fifo.r_rdy),
            self.acc.p.eq(out_fifo.r_data),
            out_fifo.r_en.eq(self.acc.ready),
        ]
        return m
