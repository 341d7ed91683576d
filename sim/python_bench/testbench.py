"""The per-cycle cocotb testbench for the generated RF8 array (``RF8AxiTop`` Verilog, ``--bench
python``): roles kept apart.

One class per role (drivers, monitor, model, scoreboard); the two sources and the monitor each draw
from their own seeded random stream:

:class:`StreamSource`
    Producer of one AXI4-Stream input (weights or activations): offers queued beats, idling a
    random number of cycles between beats (never dropping ``tvalid`` before a handshake).
:class:`ResultMonitor`
    Consumer of ``m_axis_acc``: random backpressure on ``tready``, hands every accepted row
    (one bus word) to the scoreboard the cycle it is accepted.
:class:`rf8hw.sim.scoreboard.GoldenModel`
    Expected results of a tile from :func:`rf8hw.format.golden.matmul` (shared with the HDL bench).
:class:`Scoreboard`
    In-order checker: compares each result row with the model's row as soon as it arrives.
:class:`Testbench`
    Wires them together, owns the clock loop, ``start/stop/reset``, and the per-tile cycle record.

Speed: one coroutine awaits ``FallingEdge(clk)`` once per cycle and calls ``step`` on each role
(no Python await per signal).  Every DUT output is a function of registers only
(``docs/architecture.md``, "Stall"), so the values read at the falling edge are the ones the next
rising edge samples, and inputs written there are stable at that edge.  Bus words are Python ints
packed once per tile; a result row is compared as one integer against the packed expected row and
split into fields only on a mismatch.

Cycle numbering: cycle ``c`` is the ``c``-th rising edge of the clock (``aclk``, or ``clk`` for
the ``rst`` variant) after reset is released
(the first edge is cycle 0).  A handshake "at cycle c" means ``tvalid`` and ``tready`` were both
high at rising edge ``c``.  The quantities derived from these stamps are defined in
``docs/cosim.md``.
"""

from __future__ import annotations

import logging
import random
from collections import deque
from dataclasses import dataclass, fields
from functools import partial

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import Event, FallingEdge

from rf8hw.hdl.manifest import Manifest

from ..records import Mismatch, TileCycles
from ..scoreboard import GoldenModel
from ..stimulus import pack_rows, unpack_row

__all__ = ["Beat", "StreamSource", "ResultMonitor", "Scoreboard", "TileRecord", "Testbench"]


def _int_reader(handle, name: str):
    """A function returning ``handle``'s value as an unsigned int (public cocotb API: the value's
    binary string).  X or Z bits raise ``ValueError`` naming the port ``name``."""
    def read() -> int:
        bits = str(handle.value)
        try:
            return int(bits, 2)
        except ValueError:
            raise ValueError(f"{name} is {bits!r}: X or Z on a DUT output") from None
    return read


@dataclass(frozen=True)
class Beat:
    """One input beat: bus word, ``tlast``, owning tile, index in the tile and tile length."""

    data: int
    last: int
    tile: int
    index: int
    count: int


class StreamSource:
    """AXI4-Stream producer for the ``<prefix>_tdata/_tvalid/_tlast/_tready`` ports.

    Parameters
    ----------
    dut : cocotb handle
    prefix : str
        ``"s_axis_w"`` or ``"s_axis_a"``.
    idle_prob : float
        Probability of one idle cycle (``tvalid`` low) before offering the next beat; drawn again
        after every idle cycle, so gaps are geometric.  ``tvalid`` never drops before a handshake.
    rng : random.Random
    on_beat : callable(beat, cycle, not_ready, idle)
        Called for every handshake with the cumulative counters of this stream (see ``step``).
    """

    def __init__(self, dut, prefix: str, idle_prob: float, rng: random.Random, on_beat):
        self.tdata = getattr(dut, f"{prefix}_tdata")
        self.tvalid = getattr(dut, f"{prefix}_tvalid")
        self.tlast = getattr(dut, f"{prefix}_tlast")
        self.read_ready = _int_reader(getattr(dut, f"{prefix}_tready"), f"{prefix}_tready")
        self.idle_prob, self.rng, self.on_beat = idle_prob, rng, on_beat
        self.queue: deque[Beat] = deque()
        self.current: Beat | None = None     # beat offered at the coming rising edge
        self.ready = 0                       # tready as it will be at the coming rising edge
        self.not_ready = 0                   # cumulative: edges with tready low (queue non-empty)
        self.idle = 0                        # cumulative: edges with tready high, tvalid low
        self._active = False                 # counting: the queue was non-empty at that edge
        self._valid = self._last = 0         # tvalid, tlast as driven
        self.tvalid.value = 0
        self.tlast.value = 0

    def queue_beats(self, words, tile: int) -> None:
        """Queue one tile's beats (``tlast`` on the last)."""
        n = len(words)
        self.queue.extend(Beat(w, int(i == n - 1), tile, i, n) for i, w in enumerate(words))

    def flush(self) -> None:
        """Drop everything queued or offered (after a reset)."""
        self.queue.clear()
        self.current = None
        self.ready = 0
        self._active = False
        self.tvalid.value = self._valid = 0

    @property
    def busy(self) -> bool:
        return self.current is not None or bool(self.queue)

    def step(self, cycle: int) -> None:
        """Resolve rising edge ``cycle``, then drive the next one (called at the falling edge)."""
        if self._active:
            if not self.ready:
                self.not_ready += 1
            elif self.current is None:
                self.idle += 1
            else:
                beat, self.current = self.current, None
                self.on_beat(beat, cycle, self.not_ready, self.idle)
        self._active = self.busy
        if not self._active:
            if self._valid:
                self.tvalid.value = self._valid = 0
            return
        self.ready = self.read_ready()
        if self.current is None:
            if self.idle_prob and self.rng.random() < self.idle_prob:
                if self._valid:
                    self.tvalid.value = self._valid = 0
                return
            self.current = beat = self.queue.popleft()
            self.tdata.value = beat.data
            if beat.last != self._last:
                self.tlast.value = self._last = beat.last
            if not self._valid:
                self.tvalid.value = self._valid = 1


class ResultMonitor:
    """Consumer and monitor of ``m_axis_acc``: random backpressure, one callback per accepted row.

    Parameters
    ----------
    dut : cocotb handle
    stall_prob : float
        Probability that ``m_axis_acc_tready`` is low in a cycle.
    rng : random.Random
    on_row : callable(word, last, cycle)
        Called with the row (the whole ``tdata`` as an unsigned int), its ``tlast`` and the cycle
        of its handshake.
    on_stall : callable(cycle)
        Called for every cycle in which a row was offered but not taken.
    """

    def __init__(self, dut, stall_prob: float, rng: random.Random, on_row, on_stall):
        self.read_data = _int_reader(dut.m_axis_acc_tdata, "m_axis_acc_tdata")
        self.read_valid = _int_reader(dut.m_axis_acc_tvalid, "m_axis_acc_tvalid")
        self.read_last = _int_reader(dut.m_axis_acc_tlast, "m_axis_acc_tlast")
        self.tready = dut.m_axis_acc_tready
        self.stall_prob, self.rng = stall_prob, rng
        self.on_row, self.on_stall = on_row, on_stall
        self.taking = None          # (word, last) accepted at the coming rising edge
        self.offered = False        # a row is offered and not taken at the coming edge
        self.ready = 1
        self.tready.value = 1

    def step(self, cycle: int) -> None:
        if self.taking is not None:
            self.on_row(*self.taking, cycle)
        elif self.offered:
            self.on_stall(cycle)
        ready = 0 if self.stall_prob and self.rng.random() < self.stall_prob else 1
        if ready != self.ready:
            self.tready.value = self.ready = ready
        valid = self.read_valid()
        if valid and ready:
            self.taking = (self.read_data(), self.read_last())
            self.offered = False
        else:
            self.taking = None
            self.offered = bool(valid)


class Scoreboard:
    """In-order checker of result rows against the model's expected tiles.

    Each expected tile is kept as packed bus words, so a row is checked with one integer
    comparison the moment it is accepted; only a differing row is unpacked to find the columns.
    ``mismatches`` counts wrong result *values* (elements), plus wrong ``tlast`` flags and
    unexpected rows.
    """

    def __init__(self, cols: int, lane_bits: int, log: logging.Logger):
        self.cols, self.lane_bits, self.log = cols, lane_bits, log
        self.expected: deque = deque()       # [tile, words, expected int64 [M, cols], next row]
        self.mismatches = 0
        self.first: Mismatch | None = None
        self.rows_checked = 0
        self.values_checked = 0
        self.results: dict[int, list[int]] = {}   # tile -> observed words (when kept)
        self.keep_results = False
        self.on_tile_done = None

    def expect(self, tile: int, expected: np.ndarray) -> None:
        self.expected.append([tile, pack_rows(expected, self.lane_bits), expected, 0])

    def flush(self) -> None:
        """Forget every expectation not fully seen (a reset drops the tiles in flight)."""
        self.expected.clear()

    @property
    def pending(self) -> bool:
        return bool(self.expected)

    def _fail(self, mismatch: Mismatch, count: int = 1) -> None:
        self.mismatches += count
        if self.first is None:
            self.first = mismatch
            self.log.error("first mismatch: %s", mismatch)

    def observe(self, word: int, last: int, cycle: int) -> None:
        if not self.expected:
            self._fail(Mismatch(-1, -1, -1, None, word, cycle))
            return
        entry = self.expected[0]
        tile, words, exp, m = entry
        self.rows_checked += 1
        self.values_checked += self.cols
        if self.keep_results:
            self.results.setdefault(tile, []).append(word)
        if word != words[m]:
            got = unpack_row(word, self.lane_bits, self.cols)
            bad = np.flatnonzero(got != exp[m])
            n = int(bad[0])
            self._fail(Mismatch(tile, m, n, int(exp[m, n]), int(got[n]), cycle), len(bad))
        if last != (m == len(words) - 1):
            self._fail(Mismatch(tile, m, -1, int(m == len(words) - 1), last, cycle))
        entry[3] = m + 1
        if m + 1 == len(words):
            self.expected.popleft()
            if self.on_tile_done is not None:
                self.on_tile_done(tile, cycle)


class TileRecord:
    """The cycle record of one tile while it streams: its :class:`~rf8hw.sim.records.TileCycles`
    fields as they are found (``values``), and the streams' counters at its first beat."""

    def __init__(self, tile: int, m_rows: int):
        self.values = {f.name: -1 for f in fields(TileCycles)}
        self.values.update(tile=tile, m_rows=m_rows, w_not_ready=0, w_idle=0, a_not_ready=0,
                           a_idle=0, out_stall=0)
        self.start = {"w": (0, 0), "a": (0, 0)}

    def cycles(self) -> TileCycles:
        return TileCycles(**self.values)


class Testbench:
    """The RF8 array under test with its drivers, monitor, model and scoreboard.

    Parameters
    ----------
    dut : cocotb handle of the ``RF8AxiTop`` module.
    manifest : Manifest
        The generated top's manifest: its parameters (checked against the DUT's port widths) and
        its clock and reset ports (``aclk``/``aresetn`` active low by default, ``clk``/``rst``
        active high for the other variant).
    stall_prob : float
        Idle probability of both input producers and backpressure probability of the consumer.
    backpressure_prob : float, optional
        A different backpressure probability for the consumer.
    seed : int
        Seeds the three roles' random streams.
    """

    def __init__(self, dut, manifest: Manifest, *, stall_prob: float = 0.0, seed: int = 0,
                 backpressure_prob: float | None = None, log: logging.Logger | None = None):
        self.dut = dut
        iface, params, cfg = manifest.interface, manifest.parameters, manifest.config
        self.clk, self.rst = getattr(dut, iface.clock.name), getattr(dut, iface.reset.name)
        self.rst_on = 0 if iface.reset.active_low else 1          # the level that resets
        self.rows, self.cols = cfg.rows, cfg.cols
        self.act_bits, self.acc_bits = cfg.act_bits, cfg.acc_bits
        # tdata lanes are whole bytes (the manifest's act_lane_bits / acc_lane_bits)
        self.act_lane, self.acc_lane = params.act_lane_bits, params.acc_lane_bits
        widths = {"s_axis_w_tdata": params.weight_bits * self.cols,
                  "s_axis_a_tdata": self.act_lane * self.rows,
                  "m_axis_acc_tdata": self.acc_lane * self.cols}
        for port, width in widths.items():
            if len(getattr(dut, port)) != width:
                raise ValueError(f"{port} is {len(getattr(dut, port))} bits wide, the manifest "
                                 f"implies {width}: wrong manifest for this DUT")
        self.log = log or logging.getLogger("cocotb.rf8hw.cosim")
        self.model = GoldenModel(self.act_bits, self.acc_bits, cfg.overflow)
        self.scoreboard = Scoreboard(self.cols, self.acc_lane, self.log.getChild("scoreboard"))
        self.scoreboard.on_tile_done = self._tile_done
        # str seeds are hashed deterministically (tuples of str are not: PYTHONHASHSEED)
        rngs = [random.Random(f"{seed}:{role}") for role in ("w", "a", "acc")]
        self.w_source = StreamSource(dut, "s_axis_w", stall_prob, rngs[0], partial(self._beat, "w"))
        self.a_source = StreamSource(dut, "s_axis_a", stall_prob, rngs[1], partial(self._beat, "a"))
        out_prob = stall_prob if backpressure_prob is None else backpressure_prob
        self.monitor = ResultMonitor(dut, out_prob, rngs[2], self._row, self._out_stall)
        self.records: dict[int, TileRecord] = {}
        self.dropped: list[int] = []           # tiles interrupted by a reset
        self.cycle = -1                        # last rising edge resolved
        self.tiles_done = 0
        self._corrupt = None
        self._running = False
        self._loop_task = None
        self._watch = None
        self.rst.value = self.rst_on

    # --- stimulus ------------------------------------------------------------------------------
    def corrupt_expected(self, tile: int, row: int, column: int) -> None:
        """Add 1 to one expected value (a wrong model: proves that the scoreboard can fail)."""
        self._corrupt = (tile, row, column)

    def queue_tile(self, tile: int, codes: np.ndarray, a: np.ndarray) -> None:
        """Queue one tile: weight beats, activation rows, and the model's expected rows."""
        expected = self.model.tile(codes, a)
        if self._corrupt is not None and self._corrupt[0] == tile:
            expected = expected.copy()
            expected[self._corrupt[1], self._corrupt[2]] += 1
        self.records[tile] = TileRecord(tile, len(a))
        self.scoreboard.expect(tile, expected)
        self.w_source.queue_beats(pack_rows(codes.astype(np.int64), 8), tile)
        self.a_source.queue_beats(pack_rows(a, self.act_lane), tile)

    # --- callbacks from the roles ------------------------------------------------------------------
    def _beat(self, stream: str, beat: Beat, cycle: int, not_ready: int, idle: int) -> None:
        """A handshake on stream ``w`` or ``a``: its tile's first/last stamps and counters."""
        rec = self.records[beat.tile]
        if beat.index == 0:
            rec.values[f"{stream}_first"], rec.start[stream] = cycle, (not_ready, idle)
        if beat.index == beat.count - 1:
            not_ready0, idle0 = rec.start[stream]
            rec.values.update({f"{stream}_last": cycle, f"{stream}_not_ready": not_ready - not_ready0,
                               f"{stream}_idle": idle - idle0})

    def _row(self, word: int, last: int, cycle: int) -> None:
        if self.scoreboard.expected:
            values = self.records[self.scoreboard.expected[0][0]].values
            if values["r_first"] < 0:
                values["r_first"] = cycle
            values["r_last"] = cycle
        self.scoreboard.observe(word, last, cycle)

    def _out_stall(self, cycle: int) -> None:
        if self.scoreboard.expected:
            self.records[self.scoreboard.expected[0][0]].values["out_stall"] += 1

    def _tile_done(self, tile: int, cycle: int) -> None:
        self.tiles_done += 1

    # --- running -------------------------------------------------------------------------------
    async def _clock_loop(self) -> None:
        falling = FallingEdge(self.clk)
        w_step, a_step, m_step = self.w_source.step, self.a_source.step, self.monitor.step
        while self._running:
            await falling
            self.cycle = cycle = self.cycle + 1
            w_step(cycle)
            a_step(cycle)
            m_step(cycle)
            if cycle & 63 == 0 and self._watch is not None:
                self._watch(self)

    def _watch_progress(self, bench) -> None:
        """Every 64 cycles: report progress, detect the end of the run or a hang."""
        sb = self.scoreboard
        if self._progress is not None:
            self._progress(self)
        if not self.busy:
            self._watch = None
            self._idle.set()
        elif sb.rows_checked != self._last_rows:
            self._last_rows, self._last_change = sb.rows_checked, self.cycle
        elif self.cycle - self._last_change > self._max_idle:
            self._watch = None
            self._hang = TimeoutError(
                f"no result row for {self._max_idle} cycles at cycle {self.cycle}: "
                f"{len(sb.expected)} tile(s) outstanding, {len(self.w_source.queue)} weight and "
                f"{len(self.a_source.queue)} activation beats unsent")
            self._idle.set()

    async def start(self, reset_cycles: int = 2) -> None:
        """Start the clock, hold reset for ``reset_cycles`` edges, then start the roles' loop."""
        Clock(self.clk, 10, unit="ns").start(start_high=False)
        await self._pulse_reset(reset_cycles)
        self._running = True
        self._loop_task = cocotb.start_soon(self._clock_loop())

    async def _pulse_reset(self, cycles: int) -> None:
        falling = FallingEdge(self.clk)
        self.rst.value = self.rst_on
        for _ in range(cycles):
            await falling
        self.rst.value = 1 - self.rst_on
        self.cycle = -1
        self.monitor.taking, self.monitor.offered = None, False

    def stop(self) -> None:
        """Stop the roles' loop (the clock keeps running)."""
        self._running = False
        if self._loop_task is not None:
            self._loop_task.cancel()
            self._loop_task = None

    async def reset(self, cycles: int = 2) -> None:
        """Assert the reset for ``cycles`` rising edges with every producer idle, then release it.

        Tiles not completely seen by the scoreboard are dropped (the RTL drops them too) and listed
        in :attr:`dropped`; the cycle count restarts, so cycle 0 is again the first edge after
        reset.
        """
        running = self._running
        self.stop()
        self.w_source.flush()
        self.a_source.flush()
        self.dropped += [e[0] for e in self.scoreboard.expected]
        for tile in self.dropped:
            self.records.pop(tile, None)
        self.scoreboard.flush()
        await self._pulse_reset(cycles)
        if running:
            self._running = True
            self._loop_task = cocotb.start_soon(self._clock_loop())

    @property
    def busy(self) -> bool:
        return self.w_source.busy or self.a_source.busy or self.scoreboard.pending

    async def run_until_idle(self, max_idle_cycles: int, progress=None) -> None:
        """Wait until every queued tile's results have been checked (checked every 64 cycles).

        Parameters
        ----------
        max_idle_cycles : int
            Give up when no result row arrived for this many cycles while some are expected.
        progress : callable(Testbench), optional
            Called every 64 cycles.

        Raises
        ------
        TimeoutError
            On a hang, naming what is outstanding.
        """
        self._idle = Event()
        self._max_idle, self._progress, self._hang = max_idle_cycles, progress, None
        self._last_rows, self._last_change = -1, self.cycle
        self._watch = self._watch_progress
        await self._idle.wait()
        if self._hang is not None:
            raise self._hang

    async def run_cycles(self, n: int) -> None:
        """Let the loop run ``n`` more cycles (catches duplicated or spurious result rows)."""
        falling = FallingEdge(self.clk)
        for _ in range(n):
            await falling

    def tile_cycles(self) -> tuple[TileCycles, ...]:
        """The cycle records of the tiles seen so far (not those dropped by a reset), in order."""
        return tuple(self.records[t].cycles() for t in sorted(self.records))
