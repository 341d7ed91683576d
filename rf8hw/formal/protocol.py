"""Formal harness of the AXI4-Stream top (:class:`rf8hw.hdl.axi.RF8AxiTop`): its port protocol
in every reachable state, by k-induction.

Every input of the top is free on every cycle (``AnySeq``): the reset, both input streams'
``tdata``/``tvalid``/``tlast`` and ``m_axis_acc_tready``; nothing assumes the environment obeys
AXI4-Stream.  The properties (each an ``Assert``; :data:`PROPERTIES` names them):

``reset_quiet``
    While ``aresetn`` is low, ``s_axis_w_tready``, ``s_axis_a_tready`` and
    ``m_axis_acc_tvalid`` are low.
``acc_hold``
    A result beat offered and not taken (``tvalid & ~tready``) is offered again in the next
    cycle with the same ``tdata`` and ``tlast``, unless reset is asserted then.
``no_orphan_beat``
    ``m_axis_acc_tvalid`` only while some accepted activation beat (since the last reset) has
    no result beat yet: no result without a matching input, none from a tile interrupted by
    reset.  The checker counts accepted activations minus taken results (cleared by reset).
``err_w_tlast``
    ``err_w_tlast`` equals the checker's own flag: set by a weight beat whose ``tlast`` differs
    from "this is beat ``rows - 1`` of the tile" (beats counted by the checker since reset),
    cleared only by reset.
``tile_beats``
    Exactly ``M`` result beats per tile, in order, ``tlast`` on the last: the checker keeps the
    ``tlast`` of every accepted activation beat that has no result yet, oldest first (a queue,
    cleared by reset); the ``i``-th result beat offered after reset carries the ``tlast`` of
    the ``i``-th accepted activation beat.  With ``no_orphan_beat`` (a result only for an
    outstanding activation) the result stream is cut into tiles exactly where the activation
    stream was: a tile of ``M`` activation rows gets ``M`` result beats, ``tlast`` on the
    ``M``-th only.  What is paired is the beat's position and its ``tlast``, not its
    ``tdata`` (that each beat's data is the product of *its* row is simulated only).

Invariants that make them inductive (asserted too, hence proved): the array's clock-enable
register equals the stall rule (``not (bottom stage valid and FIFO full)``); the checker's
count of outstanding beats equals the valid stages of the wavefront pipeline plus the output
FIFO's level; the checker's weight-beat count equals the array's ``w_row``; for
``tile_beats``, every occupied entry of the output FIFO (its memory words, read by ports the
checker adds: :func:`rf8hw.formal.probe.memory_words`) and every valid wavefront stage holds
the ``last`` bit of the queue entry at its place in the order (FIFO entries first, then the
valid stages from the bottom up).  Amaranth's
``SyncFIFO``, elaborated for the ``formal`` platform, asserts its own pointer/level invariants.
"""

from __future__ import annotations

from amaranth.asserts import AnySeq
from amaranth.hdl import Assert, Module, Signal

from rf8hw import checks
from rf8hw.arch import ArrayConfig
from rf8hw.formal import probe
from rf8hw.formal.harness import Harness, new_harness
from rf8hw.hdl.array import acc_beat_layout
from rf8hw.hdl.axi import RF8AxiTop

__all__ = ["PROPERTIES", "protocol_harness", "ACCEL_PROPERTIES", "ACCEL_MUTATIONS",
           "accel_protocol_harness"]

#: The protocol properties, in report order.
PROPERTIES = ("reset_quiet", "acc_hold", "no_orphan_beat", "err_w_tlast", "tile_beats")


def _popcount(value) -> object:
    total = 0
    for i in range(len(value)):
        total = total + value[i]
    return total


def protocol_harness(cfg: ArrayConfig, properties=PROPERTIES, top_class=RF8AxiTop) -> Harness:
    """The protocol properties ``properties`` of ``top_class(cfg)`` (a mutant for the tests)
    with their invariants; ``cfg.reset`` must be ``"aresetn"``."""
    for p in properties:
        checks.choice("protocol property", p, PROPERTIES)
    if cfg.reset != "aresetn":
        raise ValueError(f"the protocol proofs use reset='aresetn', not {cfg.reset!r}")
    h = new_harness()
    m: Module = h.module
    top = top_class(cfg)
    frag = probe.elaborate(top)
    m.submodules.top = frag
    inputs = [top.aresetn, top.s_axis_w_tdata, top.s_axis_w_tvalid, top.s_axis_w_tlast,
              top.s_axis_a_tdata, top.s_axis_a_tvalid, top.s_axis_a_tlast, top.m_axis_acc_tready]
    m.d.comb += [top.aclk.eq(h.clk), *(s.eq(AnySeq(len(s))) for s in inputs)]
    rst = ~top.aresetn
    a_take = top.s_axis_a_tvalid & top.s_axis_a_tready
    w_take = top.s_axis_w_tvalid & top.s_axis_w_tready
    acc_take = top.m_axis_acc_tvalid & top.m_axis_acc_tready

    # Array internals for the invariants.
    wave_valid = probe.internal(frag, "wave_valid", ("array",))
    ce = probe.internal(frag, "ce", ("array",))
    fifo = probe.origin(frag, ("array", "out_fifo"))
    bottom_valid = wave_valid[len(wave_valid) - 1]
    asserts = [("ce_rule", ce == ~(bottom_valid & (fifo.level == 2)))]

    if "reset_quiet" in properties:
        with m.If(rst):
            m.d.comb += Assert(~top.s_axis_w_tready & ~top.s_axis_a_tready & ~top.m_axis_acc_tvalid,
                               "reset_quiet")
    if "acc_hold" in properties:
        stalled = Signal(name="acc_stalled")
        data = Signal(len(top.m_axis_acc_tdata), name="acc_data_prev")
        last = Signal(name="acc_last_prev")
        m.d.sync += [stalled.eq(top.m_axis_acc_tvalid & ~top.m_axis_acc_tready),
                     data.eq(top.m_axis_acc_tdata), last.eq(top.m_axis_acc_tlast)]
        with m.If(stalled & ~rst):
            m.d.comb += Assert(top.m_axis_acc_tvalid & (top.m_axis_acc_tdata == data)
                               & (top.m_axis_acc_tlast == last), "acc_hold")
    if "no_orphan_beat" in properties or "tile_beats" in properties:
        limit = len(wave_valid) + fifo.depth          # the most beats the array holds
        outstanding = Signal(range(limit + 2), name="outstanding")
        with m.If(rst):
            m.d.sync += outstanding.eq(0)
        with m.Else():
            m.d.sync += outstanding.eq(outstanding + a_take - acc_take)
        asserts.append(("outstanding", outstanding == _popcount(wave_valid) + fifo.level))
    if "no_orphan_beat" in properties:
        with m.If(top.m_axis_acc_tvalid):
            m.d.comb += Assert(outstanding != 0, "no_orphan_beat")
    if "tile_beats" in properties:
        asserts += _tile_beats(m, cfg, frag, top, outstanding, limit, a_take, acc_take)
    if "err_w_tlast" in properties:
        rows = cfg.rows
        w_row = probe.internal(frag, "w_row", ("array",))
        beats = Signal(range(max(rows, 2)), name="w_beats")
        err = Signal(name="err_expected")
        with m.If(rst):
            m.d.sync += [beats.eq(0), err.eq(0)]
        with m.Elif(w_take):
            with m.If(beats == rows - 1):
                m.d.sync += beats.eq(0)
            with m.Else():
                m.d.sync += beats.eq(beats + 1)
            with m.If(top.s_axis_w_tlast != (beats == rows - 1)):
                m.d.sync += err.eq(1)
        asserts.append(("w_row", w_row == beats))
        m.d.comb += Assert(top.err_w_tlast == err, "err_w_tlast")
    for name, test in asserts:
        m.d.comb += Assert(test, f"invariant_{name}")
    return h


def _tile_beats(m: Module, cfg: ArrayConfig, frag, top, outstanding, limit, a_take, acc_take):
    """The ``tile_beats`` property (asserted here) and its invariants (returned as
    ``(name, test)`` pairs)."""
    # queue[i]: tlast of the i-th oldest accepted activation beat without a result yet
    queue = Signal(limit, name="last_queue")
    popped = Signal(limit, name="last_queue_popped")
    m.d.comb += popped.eq(queue >> acc_take)
    slot = outstanding - acc_take
    m.d.sync += queue.eq(popped)
    with m.If(a_take):
        for i in range(limit):
            with m.If(slot == i):
                m.d.sync += queue[i].eq(top.s_axis_a_tlast)
    with m.If(top.m_axis_acc_tvalid):
        m.d.comb += Assert(top.m_axis_acc_tlast == queue[0], "tile_beats")

    # where each held beat is: FIFO entries (oldest at `consume`), then the valid wavefront
    # stages from the bottom (depth - 1) up
    wave_valid = probe.internal(frag, "wave_valid", ("array",))
    wave_last = probe.internal(frag, "wave_last", ("array",))
    fifo = probe.origin(frag, ("array", "out_fifo"))
    consume = probe.internal(frag, "consume", ("array", "out_fifo"))
    words = probe.memory_words(frag, ("array", "out_fifo", "storage"), fifo.depth, fifo.width)
    last_bit = acc_beat_layout(cfg.cols, cfg.acc_bits)["last"].offset
    out = []
    for i in range(fifo.depth):
        for c in range(fifo.depth):
            word = words[(c + i) % fifo.depth]
            out.append((f"fifo_last_{i}_at_{c}", ~((fifo.level > i) & (consume == c))
                        | (word[last_bit] == queue[i])))
    depth = len(wave_valid)
    for j in range(depth):
        ahead = fifo.level + _popcount(wave_valid[j + 1:]) if j + 1 < depth else fifo.level
        out.append((f"wave_last_{j}", ~wave_valid[j] | (wave_last[j] == queue.bit_select(ahead, 1))))
    return out


#: The properties of the accelerator's AXI4-Stream top (:func:`accel_protocol_harness`).
ACCEL_PROPERTIES = ("accel_reset_quiet", "accel_out_hold")

#: Mutations of the accelerator's top, one per property: glue between the free environment and
#: the unchanged top (so they need no copy of its wiring, which is being redesigned).
ACCEL_MUTATIONS = {
    "accel_reset_quiet": "the reset reaches the top one cycle late (a register in front)",
    "accel_out_hold": "the top's m_axis_out_tready tied high (beats dropped while stalled)",
}


def accel_protocol_harness(acfg, properties=ACCEL_PROPERTIES, mutation: str | None = None) -> Harness:
    """Port properties of :class:`rf8hw.hdl.accel_axi.RF8AccelAxiTop` (``acfg``: an
    :class:`rf8hw.arch.AccelConfig` with ``reset="aresetn"``), every input free on every cycle,
    stated on its ports only (no internal register of the accelerator is read):

    ``accel_reset_quiet``
        While ``aresetn`` is low, every input ``tready`` (``cmd``, ``w``, ``a``, ``p``) and
        ``m_axis_out_tvalid`` are low.
    ``accel_out_hold``
        A result beat offered and not taken is offered again in the next cycle with the same
        ``tdata`` and ``tlast``, unless reset is asserted then.

    ``mutation``: a key of :data:`ACCEL_MUTATIONS` (a mutant, for the tests).
    """
    from rf8hw.hdl.accel_axi import RF8AccelAxiTop

    for p in properties:
        checks.choice("accelerator property", p, ACCEL_PROPERTIES)
    if mutation is not None:
        checks.choice("mutation", mutation, tuple(ACCEL_MUTATIONS))
    if acfg.array.reset != "aresetn":
        raise ValueError(f"the protocol proofs use reset='aresetn', not {acfg.array.reset!r}")
    h = new_harness()
    m: Module = h.module
    top = RF8AccelAxiTop(acfg)
    m.submodules.top = probe.elaborate(top)
    aresetn, out_tready = Signal(name="env_aresetn"), Signal(name="env_out_tready")
    m.d.comb += [aresetn.eq(AnySeq(1)), out_tready.eq(AnySeq(1))]
    free = [top.s_axis_cmd_tdata, top.s_axis_cmd_tvalid, top.s_axis_w_tdata, top.s_axis_w_tvalid,
            top.s_axis_w_tlast, top.s_axis_a_tdata, top.s_axis_a_tvalid, top.s_axis_p_tdata,
            top.s_axis_p_tvalid]
    m.d.comb += [top.aclk.eq(h.clk), *(s.eq(AnySeq(len(s))) for s in free)]
    if mutation == "accel_reset_quiet":
        late = Signal(init=1, name="aresetn_late")
        m.d.sync += late.eq(aresetn)
        m.d.comb += top.aresetn.eq(late)
    else:
        m.d.comb += top.aresetn.eq(aresetn)
    m.d.comb += top.m_axis_out_tready.eq(1 if mutation == "accel_out_hold" else out_tready)
    rst = ~aresetn
    if "accel_reset_quiet" in properties:
        with m.If(rst):
            m.d.comb += Assert(~top.s_axis_cmd_tready & ~top.s_axis_w_tready & ~top.s_axis_a_tready
                               & ~top.s_axis_p_tready & ~top.m_axis_out_tvalid, "accel_reset_quiet")
    if "accel_out_hold" in properties:
        stalled = Signal(name="out_stalled")
        data = Signal(len(top.m_axis_out_tdata), name="out_data_prev")
        last = Signal(name="out_last_prev")
        m.d.sync += [stalled.eq(top.m_axis_out_tvalid & ~out_tready),
                     data.eq(top.m_axis_out_tdata), last.eq(top.m_axis_out_tlast)]
        with m.If(stalled & ~rst):
            m.d.comb += Assert(top.m_axis_out_tvalid & (top.m_axis_out_tdata == data)
                               & (top.m_axis_out_tlast == last), "accel_out_hold")
    return h
