"""Amaranth-simulator driver for :class:`rf8hw.hdl.axi.RF8AxiTop` (used by ``tests/hdl/``).

The producers and the consumer are independent, as on real AXI4-Stream links: the weight producer
offers every tile's ``rows`` weight beats in order, the activation producer every tile's activation
rows in order, and the consumer takes result rows; each side idles with a given probability.
The top's clock port follows the simulator's ``sync`` clock; its reset port (``aresetn`` or
``rst``, either polarity) is driven by the testbench itself.
"""

from dataclasses import dataclass, field

import numpy as np
from amaranth.hdl import ClockDomain, Module
from amaranth.sim import Simulator

from rf8hw.sim.stimulus import pack_rows, unpack_row

__all__ = ["Trace", "simulate_tiles"]


@dataclass
class Trace:
    """What :func:`simulate_tiles` observed; cycle numbers count clock cycles from the simulation
    start."""

    results: list = field(default_factory=list)       # result rows (lists of ints), in arrival order
    lasts: list = field(default_factory=list)         # m_axis_acc_tlast per result row
    result_cycles: list = field(default_factory=list)
    act_cycles: list = field(default_factory=list)    # handshake cycle of every activation row
    weight_cycles: list = field(default_factory=list)
    err_w_tlast: int = 0
    cycles: int = 0
    during_reset: tuple = ()     # (s_axis_w_tready, s_axis_a_tready, m_axis_acc_tvalid) in reset


def simulate_tiles(top, tiles, *, rng=None, p_w_idle=0.0, p_a_idle=0.0, p_out_stall=0.0,
                   w_last=None, reset_at=None, max_cycles=20000, extra_processes=()) -> Trace:
    """Stream ``tiles`` (list of ``(codes[K, N], a[M, K])``) through ``top`` and collect results.

    Parameters
    ----------
    top : RF8AxiTop
    tiles : list of (uint8 array [rows, cols], int array [M, rows])
    rng : numpy.random.Generator, optional
        Drives the idle/stall choices (default ``default_rng(0)``).
    p_w_idle, p_a_idle : float
        Probability that the weight/activation producer holds ``tvalid`` low in a cycle.
    p_out_stall : float
        Probability that the consumer holds ``m_axis_acc_tready`` low in a cycle.
    w_last : callable(tile, k) -> bool, optional
        Weight ``tlast`` to send on beat ``k`` (default ``k == rows - 1``).
    reset_at : int, optional
        Cycle at which the reset port is asserted for one cycle (``aresetn`` low, ``rst``
        high); then the producers restart with the *last* tile only (the earlier ones are the
        interrupted ones) and the results seen so far are dropped.
    max_cycles : int
        Give up (AssertionError) after this many cycles.
    extra_processes : sequence of async functions, optional
        Added with ``Simulator.add_process`` (e.g. monitors of internal signals).

    After the expected number of result rows has arrived, the run goes on for ``latency + 4``
    cycles with ``tready`` high, and anything that appears then is recorded too, so a duplicated
    or spurious row shows up in ``Trace.results``.
    """
    rows, cols, act_lane, acc_lane = top.rows, top.cols, top.act_lane, top.acc_lane
    weight_bits = top.array.pe.weight_bits
    rng = rng if rng is not None else np.random.default_rng(0)
    w_last = w_last or (lambda t, k: k == rows - 1)
    expected_rows = sum(len(a) for _, a in tiles)
    wrapper = Module()
    wrapper.domains.sync = cd = ClockDomain("sync", reset_less=True)
    wrapper.submodules.top = top
    wrapper.d.comb += getattr(top, top.clock_port).eq(cd.clk)
    reset_port = getattr(top, top.reset_port)
    asserted = 0 if top.reset_active_low else 1
    trace = Trace()

    def beats(restart_tile=0):
        w_beats = [(word, int(w_last(t, k)))
                   for t, (codes, _) in enumerate(tiles) if t >= restart_tile
                   for k, word in enumerate(pack_rows(codes, weight_bits))]
        a_beats = [(word, int(i == len(a) - 1))
                   for t, (_, a) in enumerate(tiles) if t >= restart_tile
                   for i, word in enumerate(pack_rows(a, act_lane))]
        return w_beats, a_beats

    async def bench(ctx):
        nonlocal expected_rows

        def read_row():
            return unpack_row(ctx.get(top.m_axis_acc_tdata), acc_lane, cols).tolist()

        w_beats, a_beats = beats()
        wi = ai = 0
        for cycle in range(max_cycles):
            if reset_at is not None and cycle == reset_at:
                ctx.set(reset_port, asserted)
                # producers/consumer keep offering: the DUT must not handshake under reset
                trace.during_reset = (ctx.get(top.s_axis_w_tready), ctx.get(top.s_axis_a_tready),
                                      ctx.get(top.m_axis_acc_tvalid))
                await ctx.tick()
                ctx.set(reset_port, 1 - asserted)
                w_beats, a_beats = beats(len(tiles) - 1)
                wi = ai = 0
                trace.results.clear(), trace.lasts.clear(), trace.result_cycles.clear()
                trace.act_cycles.clear(), trace.weight_cycles.clear()
                expected_rows = len(tiles[-1][1])
                continue
            w_valid = wi < len(w_beats) and rng.random() >= p_w_idle
            a_valid = ai < len(a_beats) and rng.random() >= p_a_idle
            out_ready = rng.random() >= p_out_stall
            ctx.set(top.s_axis_w_tvalid, w_valid)
            if w_valid:
                ctx.set(top.s_axis_w_tdata, w_beats[wi][0])
                ctx.set(top.s_axis_w_tlast, w_beats[wi][1])
            ctx.set(top.s_axis_a_tvalid, a_valid)
            if a_valid:
                ctx.set(top.s_axis_a_tdata, a_beats[ai][0])
                ctx.set(top.s_axis_a_tlast, a_beats[ai][1])
            ctx.set(top.m_axis_acc_tready, out_ready)
            if w_valid and ctx.get(top.s_axis_w_tready):
                trace.weight_cycles.append(cycle)
                wi += 1
            if a_valid and ctx.get(top.s_axis_a_tready):
                trace.act_cycles.append(cycle)
                ai += 1
            if out_ready and ctx.get(top.m_axis_acc_tvalid):
                trace.results.append(read_row())
                trace.lasts.append(ctx.get(top.m_axis_acc_tlast))
                trace.result_cycles.append(cycle)
            trace.err_w_tlast = ctx.get(top.err_w_tlast)
            await ctx.tick()
            trace.cycles = cycle + 1
            if len(trace.results) == expected_rows and wi == len(w_beats):
                # run a few more cycles to catch any duplicated or extra output
                for _ in range(top.timing.latency + 4):
                    ctx.set(top.m_axis_acc_tready, 1)
                    if ctx.get(top.m_axis_acc_tvalid):
                        trace.results.append(read_row())
                        trace.lasts.append(ctx.get(top.m_axis_acc_tlast))
                        trace.result_cycles.append(trace.cycles)
                    await ctx.tick()
                    trace.cycles += 1
                return
        raise AssertionError(f"timed out after {max_cycles} cycles: {len(trace.results)} of "
                             f"{expected_rows} result rows, {wi} weight and {ai} activation beats sent")

    sim = Simulator(wrapper)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    for process in extra_processes:
        sim.add_process(process)
    sim.run()
    return trace
