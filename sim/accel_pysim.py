"""Amaranth-simulator driver for :class:`rf8hw.hdl.accel_axi.RF8AccelAxiTop` (``tests/hdl/``).

Four producers (command, weights, activations, parameters) and one consumer, independent as on
real AXI4-Stream links, each idling with its own probability.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from amaranth.hdl import ClockDomain, Module
from amaranth.sim import Simulator

from rf8hw.sim.stimulus import unpack_row

__all__ = ["AccelTrace", "simulate_accel"]


@dataclass
class AccelTrace:
    """What :func:`simulate_accel` saw; cycles count from the simulation start (cycle 0)."""

    results: list = field(default_factory=list)
    lasts: list = field(default_factory=list)
    result_cycles: list = field(default_factory=list)
    cmd_cycles: list = field(default_factory=list)
    act_cycles: list = field(default_factory=list)
    weight_cycles: list = field(default_factory=list)
    par_cycles: list = field(default_factory=list)
    err_cmd: int = 0
    err_w_tlast: int = 0
    cycles: int = 0
    during_reset: tuple = ()


def simulate_accel(top, jobs, *, rng=None, p_idle=0.0, p_out_stall=0.0, extra_cmds=(),
                   reset_at=None, max_cycles=200000) -> AccelTrace:
    """Run ``jobs`` (:class:`rf8hw.sim.accel_stimulus.AccelJob`, in order) through ``top``.

    ``p_idle``: probability that each producer holds ``tvalid`` low in a cycle;
    ``p_out_stall``: that the consumer holds ``tready`` low.  ``extra_cmds``: command words sent
    before the jobs' (e.g. refused ones).  ``reset_at``: a cycle at which the reset is asserted
    for one cycle; the producers then restart with the last job only, and the results seen so
    far are dropped.  Stops ``latency + 8`` cycles after the expected results (anything more is
    recorded, so a duplicate shows).
    """
    rng = rng if rng is not None else np.random.default_rng(0)
    cols, ob = top.cols, top.out_bits
    wrapper = Module()
    wrapper.domains.sync = cd = ClockDomain("sync", reset_less=True)
    wrapper.submodules.top = top
    wrapper.d.comb += getattr(top, top.clock_port).eq(cd.clk)
    reset_port = getattr(top, top.reset_port)
    asserted = 0 if top.reset_active_low else 1
    trace = AccelTrace()

    def queues(js, extra):
        return ([*extra, *(j.cmd for j in js)], [b for j in js for b in j.w_beats],
                [b for j in js for b in j.a_beats], [b for j in js for b in j.p_beats],
                sum(len(j.expected) for j in js))

    async def bench(ctx):
        cmds, ws, acts, pars, expected = queues(jobs, extra_cmds)
        ci = wi = ai = pi = 0
        for cycle in range(max_cycles):
            if reset_at is not None and cycle == reset_at:
                ctx.set(reset_port, asserted)
                trace.during_reset = (ctx.get(top.s_axis_cmd_tready), ctx.get(top.s_axis_w_tready),
                                      ctx.get(top.s_axis_a_tready), ctx.get(top.s_axis_p_tready),
                                      ctx.get(top.m_axis_out_tvalid))
                await ctx.tick()
                ctx.set(reset_port, 1 - asserted)
                cmds, ws, acts, pars, expected = queues(jobs[-1:], ())
                ci = wi = ai = pi = 0
                for lst in (trace.results, trace.lasts, trace.result_cycles, trace.cmd_cycles,
                            trace.act_cycles, trace.weight_cycles, trace.par_cycles):
                    lst.clear()
                continue
            offers = []
            for q, i, valid, data, _ready in (
                    (cmds, ci, top.s_axis_cmd_tvalid, top.s_axis_cmd_tdata, top.s_axis_cmd_tready),
                    (ws, wi, top.s_axis_w_tvalid, top.s_axis_w_tdata, top.s_axis_w_tready),
                    (acts, ai, top.s_axis_a_tvalid, top.s_axis_a_tdata, top.s_axis_a_tready),
                    (pars, pi, top.s_axis_p_tvalid, top.s_axis_p_tdata, top.s_axis_p_tready)):
                v = i < len(q) and rng.random() >= p_idle
                ctx.set(valid, v)
                if v:
                    beat = q[i]
                    if q is ws:
                        ctx.set(top.s_axis_w_tlast, beat[1])
                        beat = beat[0]
                    ctx.set(data, beat)
                offers.append(v)
            out_ready = rng.random() >= p_out_stall
            ctx.set(top.m_axis_out_tready, out_ready)
            took = [o and ctx.get(r) for o, r in zip(offers, (
                top.s_axis_cmd_tready, top.s_axis_w_tready, top.s_axis_a_tready,
                top.s_axis_p_tready))]
            if took[0]:
                trace.cmd_cycles.append(cycle)
                ci += 1
            if took[1]:
                trace.weight_cycles.append(cycle)
                wi += 1
            if took[2]:
                trace.act_cycles.append(cycle)
                ai += 1
            if took[3]:
                trace.par_cycles.append(cycle)
                pi += 1
            if out_ready and ctx.get(top.m_axis_out_tvalid):
                trace.results.append(unpack_row(ctx.get(top.m_axis_out_tdata), ob, cols).tolist())
                trace.lasts.append(ctx.get(top.m_axis_out_tlast))
                trace.result_cycles.append(cycle)
            trace.err_cmd = ctx.get(top.err_cmd)
            trace.err_w_tlast = ctx.get(top.err_w_tlast)
            await ctx.tick()
            trace.cycles = cycle + 1
            if len(trace.results) >= expected and ci == len(cmds):
                for _ in range(top.timing.latency + 8):
                    ctx.set(top.m_axis_out_tready, 1)
                    if ctx.get(top.m_axis_out_tvalid):
                        trace.results.append(
                            unpack_row(ctx.get(top.m_axis_out_tdata), ob, cols).tolist())
                        trace.lasts.append(ctx.get(top.m_axis_out_tlast))
                        trace.result_cycles.append(trace.cycles)
                    await ctx.tick()
                    trace.cycles += 1
                return
        raise AssertionError(f"timed out after {max_cycles} cycles: {len(trace.results)} of "
                             f"{expected} result beats; beats sent: cmd {ci}, w {wi}, a {ai}, p {pi}")

    sim = Simulator(wrapper)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    return trace
