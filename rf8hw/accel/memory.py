"""Memory profiles: the external memory that feeds the accelerator's streams (``docs/estimates.md``,
"Memory-aware estimates"; issue 23 item 5).  Standard library only (no torch, no Amaranth).

A :class:`MemoryProfile` is a peak bandwidth, the fraction of it assumed sustained, a first-access
latency and an on-chip buffer budget.  With the accelerator's clock it becomes a
:class:`StreamRate`: sustained bytes per accelerator cycle (an exact fraction, so that the cycle
model and the throttled co-simulation see the same pattern) and the latency in cycles; the
accelerator's exact schedule under that rate is :func:`rf8hw.accel.accel_cycles.accel_schedule`
with ``rate=``.

Built-in profiles (:data:`PROFILES`) are named after real boards' memories; each states its
source and what is assumed.  A user profile is a JSON file with the same fields
(:func:`load_profile`), or a bandwidth alone (:func:`resolve`).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, replace
from fractions import Fraction
from pathlib import Path

from rf8hw import checks

__all__ = ["MemoryProfile", "StreamRate", "PROFILES", "load_profile", "resolve", "RATE_DENOMINATOR"]

#: Largest denominator of the bytes-per-cycle fraction (the rate is rounded down to it).
RATE_DENOMINATOR = 1000


@dataclass(frozen=True)
class StreamRate:
    """What the accelerator sees of a memory: ``bytes_per_cycle`` (a :class:`~fractions.Fraction`
    > 0: sustained bytes per accelerator clock) and ``latency`` (cycles before the first byte)."""

    bytes_per_cycle: Fraction
    latency: int = 0

    def __post_init__(self):
        b = self.bytes_per_cycle
        if not isinstance(b, (Fraction, int)) or isinstance(b, bool) or b <= 0:
            raise ValueError(f"bytes_per_cycle must be a positive Fraction, not {b!r}")
        object.__setattr__(self, "bytes_per_cycle", Fraction(b))
        checks.integer("latency", self.latency, 0, 10 ** 6)

    def arrival(self, cum_bytes: int) -> int:
        """The first cycle at which an item whose last byte is byte ``cum_bytes`` (counted from
        1) of the sequence can be taken: ``latency + ceil(cum_bytes / bytes_per_cycle) - 1``
        (bytes flow from cycle ``latency`` on; an item is offered from the cycle after its last
        byte arrived)."""
        b = self.bytes_per_cycle
        return self.latency + -(-cum_bytes * b.denominator // b.numerator) - 1


@dataclass(frozen=True)
class MemoryProfile:
    """An external memory as the estimate sees it.

    Attributes
    ----------
    name : str
    peak_gbps : float
        Peak bandwidth in GB/s (10^9 bytes per second): data rate times bus width.
    efficiency : float
        Fraction of the peak assumed sustained (refresh, row misses, read/write turnarounds,
        controller overhead), in (0, 1].  The estimate uses ``peak_gbps * efficiency``.
    latency_ns : float
        First-access latency (request to first data), paid once per program (a streaming DMA
        keeps the memory busy afterwards).
    buffer_bytes : int
        On-chip buffer budget (block RAM) for the accelerator's activation and accumulator
        buffers and the stream prefetch; the estimate says whether a layer fits.
    source : str
        Where the figures come from and what is assumed.
    """

    name: str
    peak_gbps: float
    efficiency: float = 1.0
    latency_ns: float = 0.0
    buffer_bytes: int = 0
    source: str = "user-given"

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name.strip():
            raise ValueError(f"memory profile name must be a non-empty string, not {self.name!r}")
        what = f" (memory profile {self.name!r})"
        if isinstance(self.peak_gbps, bool) or not isinstance(self.peak_gbps, (int, float)) \
                or not math.isfinite(self.peak_gbps) or self.peak_gbps <= 0 or self.peak_gbps > 1e4:
            raise ValueError(f"peak_gbps must be a number in (0, 10000] GB/s{what}, not {self.peak_gbps!r}")
        if isinstance(self.efficiency, bool) or not isinstance(self.efficiency, (int, float)) \
                or not 0 < self.efficiency <= 1:
            raise ValueError(f"efficiency must be a number in (0, 1]{what}, not {self.efficiency!r}")
        checks.number("latency_ns", self.latency_ns, 0.0, 1e6, what=what)
        checks.integer("buffer_bytes", self.buffer_bytes, 0, 1 << 40, why=what)
        if not isinstance(self.source, str):
            raise ValueError(f"source must be a string{what}, not {self.source!r}")
        object.__setattr__(self, "peak_gbps", float(self.peak_gbps))
        object.__setattr__(self, "efficiency", float(self.efficiency))
        object.__setattr__(self, "latency_ns", float(self.latency_ns))

    @property
    def sustained_gbps(self) -> float:
        return self.peak_gbps * self.efficiency

    def rate(self, clock_mhz: float) -> StreamRate:
        """The :class:`StreamRate` at an accelerator clock of ``clock_mhz``: sustained bytes per
        cycle rounded down to a fraction with denominator <= :data:`RATE_DENOMINATOR`, latency
        rounded up to whole cycles."""
        checks.number("clock_mhz", clock_mhz, 1e-3, 1e5, what=" (the accelerator clock, MHz)")
        exact = Fraction(self.sustained_gbps * 1e3) / Fraction(clock_mhz)
        b = Fraction(math.floor(exact * RATE_DENOMINATOR), RATE_DENOMINATOR).limit_denominator(
            RATE_DENOMINATOR)
        if b > exact:                         # limit_denominator may round up: never promise more
            b = Fraction(math.floor(exact * RATE_DENOMINATOR), RATE_DENOMINATOR)
        if b <= 0:
            raise ValueError(f"memory profile {self.name!r}: {self.sustained_gbps} GB/s at {clock_mhz} MHz "
                             f"is below 1/{RATE_DENOMINATOR} byte per cycle")
        return StreamRate(b, math.ceil(self.latency_ns * clock_mhz / 1e3 - 1e-9))

    def as_dict(self) -> dict:
        return {**asdict(self), "sustained_gbps": self.sustained_gbps}


#: Built-in profiles.  Peak = data rate x bus width (arithmetic on the named parts' ratings); the
#: sustained fractions are assumptions (typical of a single-port controller streaming long
#: bursts), not measurements on these boards.
PROFILES = {p.name: p for p in (
    MemoryProfile(
        "ecp5-ddr3-1600-x16", 3.2, efficiency=0.7, latency_ns=100.0, buffer_bytes=1008 * 1024 // 8,
        source="DDR3-1600 x16 (one 16-bit DDR3 part, as on ECP5 evaluation boards such as Lattice's "
               "ECP5 Versa): 1600 MT/s x 2 bytes = 3.2 GB/s peak (JEDEC speed bin); 70 % sustained and "
               "~100 ns first access assumed; ECP5 soft controllers (e.g. LiteDRAM) often run the "
               "DDR3 slower than its bin; buffer: an LFE5U-25F's 1,008 Kbit of block RAM"),
    MemoryProfile(
        "arty-a7-ddr3l", 1.334, efficiency=0.7, latency_ns=100.0, buffer_bytes=1800 * 1024 // 8,
        source="Digilent Arty A7-35T: 256 MB DDR3L, 16-bit bus at 667 MT/s (board documentation; "
               "MIG on the -1 speed grade) = 1.334 GB/s peak; 70 % sustained and ~100 ns first "
               "access assumed; buffer: the XC7A35T's 1,800 Kbit of block RAM"),
    MemoryProfile(
        "ulx3s-sdram", 0.2, efficiency=0.6, latency_ns=60.0, buffer_bytes=1008 * 1024 // 8,
        source="ULX3S: 32 MB SDR SDRAM, 16-bit bus, run at 100 MHz here (parts rated 133-166 MHz) = "
               "0.2 GB/s peak; 60 % sustained (refresh, row activation, CAS latency 2-3) and ~60 ns "
               "first access assumed; buffer: an LFE5U-25F's 1,008 Kbit of block RAM (the 85F has "
               "3,744 Kbit)"),
)}

_FIELDS = ("name", "peak_gbps", "efficiency", "latency_ns", "buffer_bytes", "source")


def load_profile(path) -> MemoryProfile:
    """A :class:`MemoryProfile` from a JSON object with its fields (``name`` defaults to the
    file's stem; ``peak_gbps`` required); unknown keys are refused."""
    p = Path(path)
    try:
        data = json.loads(p.read_text())
    except OSError as exc:
        raise ValueError(f"memory profile file {str(p)!r} cannot be read ({exc.strerror})") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"memory profile file {str(p)!r} is not JSON ({exc.msg}, line {exc.lineno})") from None
    if not isinstance(data, dict):
        raise ValueError(f"memory profile file {str(p)!r} must hold a JSON object with the fields "
                         f"{', '.join(_FIELDS)}")
    unknown = sorted(set(data) - set(_FIELDS) - {"sustained_gbps"})
    if unknown:
        raise ValueError(f"memory profile file {str(p)!r}: unknown field(s) {', '.join(unknown)}; "
                         f"allowed: {', '.join(_FIELDS)}")
    if "peak_gbps" not in data:
        raise ValueError(f"memory profile file {str(p)!r} needs peak_gbps (GB/s)")
    data = {k: v for k, v in data.items() if k != "sustained_gbps"}
    data.setdefault("name", p.stem)
    data.setdefault("source", f"user-given ({p.name})")
    return MemoryProfile(**data)


def resolve(memory: str | None, bandwidth_gbps: float | None = None) -> MemoryProfile | None:
    """The profile of ``--memory`` (a :data:`PROFILES` name or a JSON file) and
    ``--memory-bandwidth`` (sustained GB/s: alone, a user profile with no latency and no buffer
    budget; with ``memory``, it replaces that profile's sustained bandwidth).  None when both are
    None."""
    if memory is None and bandwidth_gbps is None:
        return None
    if bandwidth_gbps is not None and (isinstance(bandwidth_gbps, bool) or not isinstance(
            bandwidth_gbps, (int, float)) or not math.isfinite(bandwidth_gbps) or not 0 < bandwidth_gbps <= 1e4):
        raise ValueError(f"memory_bandwidth must be a number in (0, 10000] GB/s, not {bandwidth_gbps!r}")
    if memory is None:
        return MemoryProfile(f"{bandwidth_gbps:g}GBps", float(bandwidth_gbps),
                             source="user-given bandwidth (sustained; no latency, no buffer budget)")
    if not isinstance(memory, str) or not memory.strip():
        raise ValueError(f"memory must be a profile name ({', '.join(PROFILES)}) or a JSON file, not {memory!r}")
    if memory in PROFILES:
        prof = PROFILES[memory]
    elif memory.endswith(".json") or Path(memory).is_file():
        prof = load_profile(memory)
    else:
        raise ValueError(f"memory must be one of {', '.join(map(repr, PROFILES))} or a JSON profile file, "
                         f"not {memory!r}")
    if bandwidth_gbps is not None:
        prof = replace(prof, name=f"{prof.name}@{bandwidth_gbps:g}GBps", peak_gbps=float(bandwidth_gbps),
                       efficiency=1.0, source=prof.source + f"; sustained bandwidth set to {bandwidth_gbps:g} GB/s")
    return prof
