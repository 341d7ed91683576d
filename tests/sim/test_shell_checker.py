"""The co-simulation's AXI protocol checker (:class:`rf8hw.sim.shell_cocotb.AxiChecker`) on
hand-written traces: a legal one passes, each broken rule is reported (so a clean co-simulation
means something)."""

from __future__ import annotations

import pytest

from rf8hw.sim.shell_cocotb import AxiChecker

IDLE = {"ar": (0, 1, None), "aw": (0, 1, None), "w": (0, 1, None), "r": (0, 1, None),
        "b": (0, 1, None)}


def ar(addr, beats, ready=1, size=3, burst=1, lock=0):
    return {"ar": (1, ready, [0, addr, beats - 1, size, burst, lock, 3, 0])}


def aw(addr, beats, ready=1):
    return {"aw": (1, ready, [0, addr, beats - 1, 3, 1, 0, 3, 0])}


def w(data, last, ready=1, strb=0xFF):
    return {"w": (1, ready, [data, strb, last])}


def r(data, last, ready=1):
    return {"r": (1, ready, [0, data, 0, last])}


def b(ready=1):
    return {"b": (1, ready, [0, 0])}


def run(cycles, reset_cycles=()):
    chk = AxiChecker(None, 64, 16)
    for i, c in enumerate(cycles):
        chk.sample(i, i in reset_cycles, {**IDLE, **c})
    chk.finish()
    return chk


def legal():
    return [ar(0x0FF0, 2, ready=0), ar(0x0FF0, 2), r(1, 0), r(2, 1),
            {**aw(0x2000, 2), **w(5, 0)}, w(6, 1, ready=0), w(6, 1), b()]


def test_legal_trace_passes():
    chk = run(legal())
    assert chk.errors == []
    assert chk.counts["ar"] == 1 and chk.counts["r"] == 2 and chk.counts["w"] == 2
    assert chk.counts["page_end_bursts"] == 1          # 0xFF0 + 2 * 8 = 0x1000


@pytest.mark.parametrize("trace, message", [
    ([ar(0x0FF8, 2)], "crosses a 4 KB boundary"),
    ([ar(0x0004, 1)], "not aligned"),
    ([ar(0x0000, 17)], "more than 16"),
    ([ar(0x0000, 1, size=2)], "size 2"),
    ([ar(0x0000, 1, burst=2)], "not INCR"),
    ([ar(0x0000, 1, lock=1)], "lock set"),
    ([ar(0x0000, 2, ready=0), IDLE], "arvalid dropped"),
    ([ar(0x0000, 2, ready=0), ar(0x0008, 2)], "payload changed"),
    ([aw(0, 2), w(1, 1), b()], "wlast on beat 1 of a 2-beat burst"),
    ([aw(0, 1), w(1, 0), w(2, 1)], "longer than its AW"),
    ([aw(0, 1), w(1, 1, strb=0x0F), b()], "wstrb"),
    ([w(1, 0, ready=0), IDLE], "wvalid dropped"),
    ([ar(0, 2), r(1, 1)], "rlast=1 on beat 1 of a 2-beat"),
    ([r(1, 1)], "R beat without an accepted AR"),
    ([aw(0, 1), b()], "B response before"),
    ([aw(0, 2), w(1, 0)], "1 AW but 0 W bursts"),
])
def test_each_broken_rule_is_reported(trace, message):
    chk = run(trace)
    assert any(message in e for e in chk.errors), chk.errors


def test_reset_rules():
    # valid in the first reset cycle is tolerated (synchronous reset), not in the second
    assert run([ar(0, 1, ready=0), ar(0, 1, ready=0)], reset_cycles={0}).errors == []
    chk = run([ar(0, 1, ready=0), ar(0, 1, ready=0), IDLE], reset_cycles={0, 1})
    assert any("arvalid high during reset" in e for e in chk.errors)
    # a reset forgets a burst in flight: no error for its missing beats afterwards
    assert run([ar(0, 4), r(1, 0), IDLE, ar(0, 1), r(1, 1)], reset_cycles={2}).errors == []
