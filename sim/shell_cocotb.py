"""The cocotb test module of the shell co-simulation (``rf8hw.sim.shell_cosim``): cocotbext-axi's
``AxiRam`` on ``m_axi_mem_*`` and ``AxiLiteMaster`` on ``s_axi_ctrl_*``, the Python driver
(:class:`rf8hw.hdl.shell_driver.ShellDriver`) programming each descriptor as a CPU would, and an
independent AXI protocol checker (:class:`AxiChecker`) on every transaction.

The plusarg ``+rf8hw_shell_job=<file>`` names the job (JSON, written by
:func:`rf8hw.sim.shell_cosim.run_shell_cosim`); the test writes ``<file>.result.json``.
"""

from __future__ import annotations

import json
import logging
import random
from pathlib import Path

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, FallingEdge, ReadOnly

CHANNELS = {   # channel -> (valid, ready, payload signals) as suffixes of m_axi_mem_
    "ar": ("arvalid", "arready", ("arid", "araddr", "arlen", "arsize", "arburst", "arlock",
                                  "arcache", "arprot")),
    "aw": ("awvalid", "awready", ("awid", "awaddr", "awlen", "awsize", "awburst", "awlock",
                                  "awcache", "awprot")),
    "w": ("wvalid", "wready", ("wdata", "wstrb", "wlast")),
    "r": ("rvalid", "rready", ("rid", "rdata", "rresp", "rlast")),
    "b": ("bvalid", "bready", ("bid", "bresp")),
}
MASTER_DRIVEN = ("ar", "aw", "w")


class AxiChecker:
    """AXI4 rules checked at every clock on ``m_axi_mem_*`` (sampled mid-cycle, where every
    value is the one the next rising edge sees), written from the AXI4 specification apart from
    the shell's RTL:

    * a ``valid`` that is high while ``ready`` is low stays high, with the same payload, the next
      cycle (every channel); no master ``valid`` in the second and later cycles of a reset;
    * AR and AW: INCR bursts (``burst = 1``), ``size`` = the data bytes, 1..``max_burst`` beats,
      the address aligned to ``size``, the burst inside one 4 KB page, ``lock = 0``;
    * W: ``wlast`` exactly on the last beat of the burst of the AW accepted in the same order
      (W may lead AW), every strobe set; R: ``rlast`` exactly on each read burst's last beat and
      no beat without an accepted AR; B: no response without a completed write burst.
    """

    def __init__(self, dut, data_bits: int, max_burst: int):
        self.sig = None if dut is None else {
            ch: (getattr(dut, f"m_axi_mem_{v}"), getattr(dut, f"m_axi_mem_{r}"),
                 [getattr(dut, f"m_axi_mem_{p}") for p in pay]) for ch, (v, r, pay) in CHANNELS.items()}
        self.in_reset = 0
        self.nb, self.max_burst = data_bits // 8, max_burst
        self.size = (self.nb - 1).bit_length()
        self.errors: list[str] = []
        self.counts = {"ar": 0, "aw": 0, "w": 0, "r": 0, "b": 0, "page_end_bursts": 0,
                       "cycles": 0}
        self._clear()

    def _clear(self):
        self.pending = {ch: None for ch in CHANNELS}    # payload of a valid not yet taken
        self.ar_lens, self.aw_lens, self.w_lens = [], [], []
        self.r_beat = self.w_beat = 0
        self.writes_done = self.b_seen = 0

    def error(self, cycle, text):
        if len(self.errors) < 20:
            self.errors.append(f"cycle {cycle}: {text}")

    def _address(self, ch, cycle, pay):
        _, addr, length, size, burst, lock = pay[:6]
        beats = length + 1
        if burst != 1:
            self.error(cycle, f"{ch}: burst type {burst}, not INCR")
        if size != self.size:
            self.error(cycle, f"{ch}: size {size}, not {self.size}")
        if beats > self.max_burst:
            self.error(cycle, f"{ch}: {beats} beats, more than {self.max_burst}")
        if addr % self.nb:
            self.error(cycle, f"{ch}: address {addr:#x} not aligned to {self.nb} bytes")
        if (addr % 4096) + beats * self.nb > 4096:
            self.error(cycle, f"{ch}: burst at {addr:#x} of {beats} beats crosses a 4 KB boundary")
        if (addr % 4096) + beats * self.nb == 4096:
            self.counts["page_end_bursts"] += 1
        if lock:
            self.error(cycle, f"{ch}: lock set")
        return beats

    async def run(self, clk, resetn):
        cycle = 0
        while True:
            await FallingEdge(clk)
            await ReadOnly()
            cycle += 1
            in_reset = not resetn.value.is_resolvable or int(resetn.value) == 0
            values = {}
            for ch, (v, r, pay) in self.sig.items():
                valid = _bit(v)
                # a payload is read only while valid (it may be undefined otherwise)
                values[ch] = (valid, _bit(r), [_int(p) for p in pay] if valid and not in_reset
                              else None)
            self.sample(cycle, in_reset, values)

    def sample(self, cycle: int, in_reset: bool, values: dict) -> None:
        """One clock: ``values[channel] = (valid, ready, payload list)`` in the order of
        :data:`CHANNELS`."""
        self.counts["cycles"] += 1
        if in_reset:
            self.in_reset += 1
            if self.in_reset > 1:
                for ch in MASTER_DRIVEN:
                    if values[ch][0]:
                        self.error(cycle, f"{ch}valid high during reset")
            self._clear()
            return
        self.in_reset = 0
        for ch, (v, ready, payload) in values.items():
            if self.pending[ch] is not None:
                if not v:
                    self.error(cycle, f"{ch}valid dropped before {ch}ready")
                elif payload != self.pending[ch]:
                    self.error(cycle, f"{ch} payload changed while valid and not ready")
            if not v:
                self.pending[ch] = None
                continue
            if not ready:
                self.pending[ch] = list(payload)
                continue
            self.pending[ch] = None
            self.counts[ch] += 1
            self._beat(ch, cycle, payload)

    def _beat(self, ch, cycle, pay):
        if ch == "ar":
            self.ar_lens.append(self._address(ch, cycle, pay))
        elif ch == "aw":
            self.aw_lens.append(self._address(ch, cycle, pay))
        elif ch == "w":
            _, strb, last = pay
            if strb != (1 << self.nb) - 1:
                self.error(cycle, f"wstrb {strb:#x}, not all bytes")
            self.w_beat += 1
            k = len(self.w_lens)
            want = self.aw_lens[k] if k < len(self.aw_lens) else None
            if want is not None and self.w_beat > want:
                self.error(cycle, f"W burst {k} longer than its AW ({want} beats)")
            if last:
                if want is not None and self.w_beat != want:
                    self.error(cycle, f"wlast on beat {self.w_beat} of a {want}-beat burst")
                self.w_lens.append(self.w_beat)
                self.w_beat = 0
        elif ch == "r":
            last = pay[3]
            if not self.ar_lens:
                self.error(cycle, "R beat without an accepted AR")
                return
            self.r_beat += 1
            if bool(last) != (self.r_beat == self.ar_lens[0]):
                self.error(cycle, f"rlast={last} on beat {self.r_beat} of a "
                                  f"{self.ar_lens[0]}-beat burst")
            if last or self.r_beat >= self.ar_lens[0]:
                self.ar_lens.pop(0)
                self.r_beat = 0
        elif ch == "b":
            self.b_seen += 1
            done = min(len(self.aw_lens), len(self.w_lens))
            if self.b_seen > done:
                self.error(cycle, "B response before its AW and last W beat")

    def finish(self):
        k = min(len(self.aw_lens), len(self.w_lens))
        if self.aw_lens[:k] != self.w_lens[:k]:
            self.error(-1, "W bursts do not match the AW lengths")
        if len(self.w_lens) != len(self.aw_lens):
            self.error(-1, f"{len(self.aw_lens)} AW but {len(self.w_lens)} W bursts at the end")


def _bit(sig) -> int:
    """1 for a high signal; 0 for low or undefined (an undefined valid is reported as a
    protocol error by :meth:`AxiChecker.sample` only when it matters: it reads as not valid)."""
    v = sig.value
    return int(v) if v.is_resolvable else 0


def _int(sig) -> int:
    v = sig.value
    return int(v) if v.is_resolvable else -1      # -1: an undefined payload bit (never legal)


def _pauser(rng, prob):
    while True:
        yield rng.random() < prob


@cocotb.test()
async def shell(dut):
    from cocotbext.axi import AxiBus, AxiLiteBus, AxiLiteMaster, AxiRam

    from rf8hw.hdl.shell_driver import ShellDriver

    path = Path(cocotb.plusargs["rf8hw_shell_job"]).absolute()
    job = json.loads(path.read_text())
    rng = random.Random(job["seed"])
    clk, resetn = dut.aclk, dut.aresetn
    cocotb.start_soon(Clock(clk, 10, unit="ns").start())
    resetn.value = 0
    ram = AxiRam(AxiBus.from_prefix(dut, "m_axi_mem"), clk, resetn, reset_active_level=False,
                 size=job["mem_size"])
    ctrl = AxiLiteMaster(AxiLiteBus.from_prefix(dut, "s_axi_ctrl"), clk, resetn,
                         reset_active_level=False)
    for obj in (ram.write_if, ram.read_if, ctrl.write_if, ctrl.read_if):
        obj.log.setLevel(logging.WARNING)
    if job["p_stall"] > 0:
        for ch in (ram.read_if.ar_channel, ram.read_if.r_channel, ram.write_if.aw_channel,
                   ram.write_if.w_channel, ram.write_if.b_channel):
            ch.set_pause_generator(_pauser(random.Random(rng.random()), job["p_stall"]))
    checker = AxiChecker(dut, job["data_bits"], job["max_burst"])
    cocotb.start_soon(checker.run(clk, resetn))
    await ClockCycles(clk, 4)
    resetn.value = 1
    await ClockCycles(clk, 2)

    async def read32(offset):
        return await ctrl.read_dword(offset)

    async def write32(offset, value):
        await ctrl.write_dword(offset, value)

    async def poll_delay():
        await ClockCycles(clk, job["poll_cycles"])

    drv = ShellDriver(read32, write32)
    rec = {"identify": await drv.identify(), "descriptors": [], "bad": [], "faults": [],
           "reset": None}

    size = job["mem_size"]             # the memory model wraps addresses modulo its size

    def place(d):
        for s in ("w", "a", "p"):
            if d["images"][s]:
                ram.write(d["bases"][s] % size, bytes.fromhex(d["images"][s]))
        out_bytes = d["n_out"] * job["out_beat_bytes"]
        ram.write(d["bases"]["o"] % size, b"\xa5" * (out_bytes + 64))
        return out_bytes, dict(act_base=d["act_base"], load=d["load"], w_base=d["bases"]["w"],
                               a_base=d["bases"]["a"], p_base=d["bases"]["p"],
                               o_base=d["bases"]["o"])

    # fault injection: a data beat of memory whose read (write) the model answers with SLVERR
    # (cocotbext-axi answers SLVERR when its memory access raises)
    faulty = {"r": set(), "w": set()}
    plain_read, plain_write = ram.read_if.read, ram.write_if.write

    def read_or_fail(address, length):
        if address in faulty["r"]:
            raise OSError(f"injected read error at {address:#x}")
        return plain_read(address, length)

    def write_or_fail(address, data):
        if address in faulty["w"]:
            raise OSError(f"injected write error at {address:#x}")
        return plain_write(address, data)

    ram.read_if.read, ram.write_if.write = read_or_fail, write_or_fail
    for d in job["pre"]:
        out_bytes, kw = place(d)
        if d["kind"] == "fault":
            where = d["bases"]["p" if d["fault"] == "r" else "o"] % size
            faulty[d["fault"]].add(where)
            res = await drv.run_gemm(d["M"], d["K"], d["N"], poll_delay=poll_delay, **kw)
            faulty[d["fault"]].clear()
            rec["faults"].append(res)
            continue
        if d["kind"] == "bad":
            res = await drv.run_gemm(d["M"], d["K"], d["N"], poll_delay=poll_delay, **kw)
            res["untouched"] = set(ram.read(d["bases"]["o"] % size, out_bytes + 64)) == {0xA5}
            rec["bad"].append(res)
            continue
        # start it, then reset mid-transfer (master and memory together)
        await drv.program(d["M"], d["K"], d["N"], **kw)
        await drv.clear()
        await drv.start()
        # wait until reset_after read beats went by and a read burst is half done
        while not (checker.counts["r"] >= d["reset_after"] and checker.r_beat > 0):
            await FallingEdge(clk)
        entry = {"r_beats_at_reset": checker.counts["r"], "r_burst_beat": checker.r_beat,
                 "reads_outstanding": len(checker.ar_lens)}
        resetn.value = 0
        await ClockCycles(clk, 3)
        await FallingEdge(clk)
        resetn.value = 1
        await ClockCycles(clk, 2)
        entry["status_after_reset"] = await drv.read("STATUS")
        entry["gemm_m_after_reset"] = (await drv.read("GEMM_M"))["m"]
        rec["reset"] = entry
    for d in job["descriptors"]:
        out_bytes, kw = place(d)
        res = await drv.run_gemm(d["M"], d["K"], d["N"], poll_delay=poll_delay,
                                 irq=bool(d["irq"]), **kw)
        res["irq"] = int(dut.irq.value)
        if d["irq"]:
            await drv.write("STATUS", done=1)
            await ClockCycles(clk, 2)
            res["irq_after_clear"] = int(dut.irq.value)
        res["out"] = ram.read(d["bases"]["o"] % size, out_bytes + 64).hex()
        rec["descriptors"].append(res)
    await ClockCycles(clk, 10)
    checker.finish()
    rec["protocol_errors"] = checker.errors
    rec["protocol_counts"] = checker.counts
    path.with_suffix(".result.json").write_text(json.dumps(rec))
