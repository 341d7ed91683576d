"""The top of one formal task: an Amaranth ``Module`` with its clock, and its RTLIL text."""

from __future__ import annotations

from dataclasses import dataclass

from amaranth.back import rtlil
from amaranth.hdl import ClockDomain, Module, Signal

from rf8hw.formal import probe

__all__ = ["Harness", "new_harness", "ready_after", "to_rtlil"]


@dataclass
class Harness:
    """A formal top: ``module`` (its ``sync`` domain is reset-less) and that domain's clock.

    The clock must be a port of the RTLIL top: an unconnected clock is a constant to Yosys,
    and every register would keep its initial value (a vacuous proof).
    """

    module: Module
    clk: Signal


def new_harness() -> Harness:
    """An empty harness with a reset-less ``sync`` domain (the checker's registers start from
    their initial values in the base case and from any value in the induction step)."""
    m = Module()
    domain = ClockDomain("sync", reset_less=True)
    m.domains.sync = domain
    return Harness(m, domain.clk)


def ready_after(m: Module, cycles: int) -> Signal:
    """A flag that is high from cycle ``cycles`` on (a saturating counter, initial value 0)."""
    count = Signal(range(cycles + 1), name="ready_count")
    with m.If(count != cycles):
        m.d.sync += count.eq(count + 1)
    return count == cycles


def to_rtlil(harness: Harness) -> str:
    """The RTLIL text of ``harness`` (top module ``top``, its clock the only port)."""
    return rtlil.convert(probe.elaborate(harness.module), name="top", ports=[harness.clk],
                         platform=probe.PLATFORM)
