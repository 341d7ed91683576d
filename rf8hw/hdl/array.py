"""Weight-stationary systolic MAC array: ``acc[m, :] = sum_k a[m, k] * W[k, :]`` for one tile.

Dataflow (``docs/architecture.md`` has the figure and the timing table)::

    weights  --> one decoder per column --> broadcast down the column, row k loaded by beat k
    act[m]   --> row k delayed by k steps --> PE[k][0] --> PE[k][1] --> ... (activations go right)
    psums    --> PE[0][n] (psum_in = 0) --> PE[1][n] --> ... --> PE[rows-1][n] (partial sums go down,
                 so a column adds its products in k order 0..rows-1, the order ``saturate`` names)
             --> column n delayed by cols-1-n steps --> 2-entry output FIFO --> acc stream

Every pipeline register advances on the array clock enable ``ce``; ``ce`` drops only when a result
reaches the bottom of the pipeline while the output FIFO is full (``acc.ready`` held low), so
backpressure stalls the whole array, losing and duplicating nothing.  ``ce`` is a function of
registers only (no combinational path from ``acc.ready`` to ``act.ready``/``w.ready``).
"""

from amaranth.hdl import Cat, Module, Signal, signed, unsigned
from amaranth.lib import data, fifo, stream, wiring
from amaranth.lib.wiring import In, Out

from rf8hw.hdl.config import ArrayConfig
from rf8hw.hdl.params import rejecting

__all__ = ["weight_beat_layout", "act_beat_layout", "acc_beat_layout", "Timing", "RF8Array"]


def weight_beat_layout(cols: int, weight_bits: int = 8) -> data.StructLayout:
    """One weight-stream beat: row k of the tile, ``data[n] = W[k, n]`` (raw codes), ``last``."""
    return data.StructLayout({"data": data.ArrayLayout(unsigned(weight_bits), cols), "last": 1})


def act_beat_layout(rows: int, act_bits: int) -> data.StructLayout:
    """One activation-stream beat: ``data[k] = a[m, k]`` (two's complement), ``last`` on m = M-1."""
    return data.StructLayout({"data": data.ArrayLayout(signed(act_bits), rows), "last": 1})


def acc_beat_layout(cols: int, acc_bits: int) -> data.StructLayout:
    """One result-stream beat: ``data[n] = acc[m, n]``, ``last`` on the tile's last row."""
    return data.StructLayout({"data": data.ArrayLayout(signed(acc_bits), cols), "last": 1})


class Timing:
    """Cycle counts of an array with no stalls and no backpressure (``docs/architecture.md``).

    Attributes
    ----------
    weight_load : int
        ``rows``: weight beats per tile (one per cycle at full rate).
    latency : int
        ``rows + cols + product_latency - 1``: cycles from the handshake of activation row ``m``
        to the cycle in which result row ``m`` is first offered (``acc.valid`` high);
        ``rows + cols`` for the PE kinds with a one-cycle product.
    guard : int
        ``max(0, cols - 2)``: array steps between the tile's last activation handshake and the
        first cycle the next tile's weights are accepted (row k must not be overwritten before the
        last activation has passed all of its columns).
    """

    def __init__(self, cfg: ArrayConfig, product_latency: int | None = None):
        rows, cols = cfg.rows, cfg.cols
        if product_latency is None:
            product_latency = cfg.pe_kind.product_latency
        self.rows, self.cols = rows, cols
        self.product_latency = product_latency
        self.weight_load = rows
        # PE kinds with a pipelined product (class attribute ``product_latency``, default 1) delay
        # every result by the extra stages; nothing else changes.
        self.latency = rows + cols + product_latency - 1
        self.guard = max(0, cols - 2)

    def result_cycle(self, m: int) -> int:
        """Cycle of result row ``m`` counted from the handshake of activation row 0 (rows sent
        back to back): ``m + latency``."""
        return m + self.latency

    def tile_period(self, m_rows: int) -> int:
        """Cycles between first weight beats of back-to-back tiles of ``m_rows`` activations:
        ``rows + m_rows + max(0, cols - 2)``."""
        return self.weight_load + m_rows + self.guard

    def as_dict(self) -> dict:
        return {
            "weight_load_cycles": self.weight_load,
            "latency_cycles": self.latency,
            "guard_steps": self.guard,
            "formulas": {
                "weight_load_cycles": "rows",
                "latency_cycles": "rows + cols + product_latency - 1 (activation handshake of "
                                  "row m -> acc valid of row m)",
                "guard_steps": "max(0, cols - 2) (last activation handshake -> next weight beat "
                               "accepted, counted in array steps)",
                "tile_period_cycles": "rows + M + max(0, cols - 2) (back to back, M activation "
                                      "rows per tile)",
                "steady_state": "1 activation row in and 1 result row out per cycle",
            },
        }


class RF8Array(wiring.Component):
    """Weight-stationary systolic array of ``rows x cols`` PEs with valid/ready streams.

    Parameters
    ----------
    cfg : ArrayConfig
        ``rows`` (reduction depth K of a tile), ``cols`` (output width N), ``act_bits``,
        ``acc_bits``, ``overflow`` and the PE kind ``pe`` (:mod:`rf8hw.hdl.registry`).
    pe_class : PE class, optional
        Overrides the class of ``cfg.pe``: any class following the PE interface of
        :mod:`rf8hw.hdl.pe` (for experiments with PEs outside the registry).

    Members
    -------
    w : In(stream.Signature(weight_beat_layout(cols, pe.weight_bits)))
        Weight tile, one row per beat (beat k carries ``W[k, 0..cols-1]``), ``rows`` beats per
        tile.  Accepted only while the array is between tiles (see *Handshake rules*).
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
    ``w.ready`` is high only in the weight phase, ``act.ready`` only in the activation phase (and
    both only while the array is not stalled).  After the ``last`` activation the array waits
    ``max(0, cols - 2)`` steps, then accepts the next tile's weights while the previous results
    still drain.  Results keep their order; ``acc.ready`` low stalls the array once the 2-entry
    output FIFO is full.

    Latency and throughput
    ----------------------
    See :class:`Timing`: ``rows + cols`` cycles from activation handshake to result
    (``+ product_latency - 1``), one row per cycle in steady state, ``rows + M + max(0, cols-2)`` cycles per tile back to back.

    Resources: ``rows * cols`` PEs, ``cols`` decoders, ``act_bits * rows*(rows-1)/2`` skew and
    ``acc_bits * cols*(cols-1)/2`` deskew flip-flops, a 2 x ``(acc_bits*cols + 1)``-bit FIFO.
    """

    def __init__(self, cfg: ArrayConfig, pe_class=None):
        with rejecting(self):
            if not isinstance(cfg, ArrayConfig):
                raise TypeError(f"cfg must be an ArrayConfig, not {cfg!r}")
        pe = cfg.pe_kind.cls if pe_class is None else pe_class
        rows, cols, act_bits, acc_bits = cfg.rows, cfg.cols, cfg.act_bits, cfg.acc_bits
        self.cfg = cfg
        self.rows, self.cols = rows, cols
        self.act_bits, self.acc_bits, self.overflow = cfg.act_bits, cfg.acc_bits, cfg.overflow
        self.pe = pe
        self.timing = Timing(cfg, pe.product_latency)
        super().__init__({
            "w": In(stream.Signature(weight_beat_layout(cols, pe.weight_bits))),
            "act": In(stream.Signature(act_beat_layout(rows, act_bits))),
            "acc": Out(stream.Signature(acc_beat_layout(cols, acc_bits))),
            "err_w_last": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        rows, cols = self.rows, self.cols
        ce = Signal()                                   # the array advances one step

        # --- output FIFO and the stall rule ------------------------------------------------
        out_layout = acc_beat_layout(cols, self.acc_bits)
        m.submodules.out_fifo = out_fifo = fifo.SyncFIFO(width=out_layout.size, depth=2)
        # (valid, last) of the wavefront in each pipeline stage; stage depth-1 is the bottom.
        depth = self.timing.latency - 1
        wave_valid = Signal(depth)
        wave_last = Signal(depth)
        bottom_valid = wave_valid[depth - 1]
        m.d.comb += ce.eq(~bottom_valid | out_fifo.w_rdy)

        # --- tile control: LOAD (weights) -> ACT (activations) -> GUARD -> LOAD ---------------
        w_row = Signal(range(rows), name="w_row")
        guard = self.timing.guard
        guard_count = Signal(range(guard + 1), name="guard_count")
        w_take = Signal()
        a_take = Signal()
        m.d.comb += [w_take.eq(self.w.valid & self.w.ready), a_take.eq(self.act.valid & self.act.ready)]
        with m.FSM(init="LOAD", name="tile"):
            with m.State("LOAD"):
                m.d.comb += self.w.ready.eq(ce)
                with m.If(w_take):
                    with m.If(self.w.p.last != (w_row == rows - 1)):
                        m.d.sync += self.err_w_last.eq(1)
                    with m.If(w_row == rows - 1):
                        m.d.sync += w_row.eq(0)
                        m.next = "ACT"
                    with m.Else():
                        m.d.sync += w_row.eq(w_row + 1)
            with m.State("ACT"):
                m.d.comb += self.act.ready.eq(ce)
                with m.If(a_take & self.act.p.last):
                    if guard == 0:
                        m.next = "LOAD"
                    else:
                        m.d.sync += guard_count.eq(guard - 1)
                        m.next = "GUARD"
            with m.State("GUARD"):
                with m.If(ce):
                    with m.If(guard_count == 0):
                        m.next = "LOAD"
                    with m.Else():
                        m.d.sync += guard_count.eq(guard_count - 1)

        # --- wavefront (valid, last) pipeline --------------------------------------------------
        with m.If(ce):
            m.d.sync += [
                wave_valid.eq(Cat(a_take, wave_valid[:depth - 1])),
                wave_last.eq(Cat(self.act.p.last, wave_last[:depth - 1])),
            ]

        # --- weight decoders, one per column; row k loads on weight beat k -------------------
        decoded = []
        for n in range(cols):
            dec = self.pe.make_decoder()
            m.submodules[f"dec_{n}"] = dec
            m.d.comb += dec.code.eq(self.w.p.data[n])
            decoded.append(dec.fields)
        row_load = [Signal(name=f"w_load_{k}") for k in range(rows)]
        for k in range(rows):
            m.d.comb += row_load[k].eq(w_take & (w_row == k))

        # --- activation skew: row k enters PE[k][0] k steps late -----------------------------
        row_act = []
        for k in range(rows):
            value = self.act.p.data[k]
            for i in range(k):
                reg = Signal(signed(self.act_bits), name=f"skew_{k}_{i}", reset_less=True)
                with m.If(ce):
                    m.d.sync += reg.eq(value)
                value = reg
            row_act.append(value)

        # --- the PE grid --------------------------------------------------------------------
        pes = [[self.pe(self.act_bits, self.acc_bits, self.overflow) for _ in range(cols)]
               for _ in range(rows)]
        for k in range(rows):
            for n in range(cols):
                pe = pes[k][n]
                m.submodules[f"pe_{k}_{n}"] = pe
                m.d.comb += [
                    pe.ce.eq(ce),
                    pe.w_load.eq(row_load[k]),
                    pe.w_data.eq(decoded[n]),
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
