"""Memory profiles: the external memory that feeds the accelerator's streams (``docs/estimates.md``,
"Memory-aware estimates"; issue 23 item 5).  No torch, no Amaranth (numpy for the schedule).

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
from rf8hw.accel.accel_cycles import StreamRate

__all__ = ["MemoryProfile", "StreamRate", "PROFILES", "load_profile", "resolve", "RATE_DENOMINATOR",
           "gemm_commands", "gemm_memory", "model_memory", "plot_roofline"]

#: Largest denominator of the bytes-per-cycle fraction (the rate is rounded down to it).
RATE_DENOMINATOR = 1000


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
        # decimal figures as written (3.2 x 0.7 is 2.24 GB/s, not the float 2.2399999999999998)
        exact = Fraction(f"{self.sustained_gbps * 1e3:.9f}") / Fraction(f"{float(clock_mhz):.9f}")
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
        raise ValueError(f"memory profile file {str(p)!r} is not JSON ({exc.msg}, line "
                         f"{exc.lineno})") from None
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
    bw = bandwidth_gbps
    if bw is not None and (isinstance(bw, bool) or not isinstance(bw, (int, float))
                           or not math.isfinite(bw) or not 0 < bw <= 1e4):
        raise ValueError(f"memory_bandwidth must be a number in (0, 10000] GB/s, not {bandwidth_gbps!r}")
    if memory is None:
        return MemoryProfile(f"{bandwidth_gbps:g}GBps", float(bandwidth_gbps),
                             source="user-given bandwidth (sustained; no latency, no buffer budget)")
    if not isinstance(memory, str) or not memory.strip():
        raise ValueError(f"memory must be a profile name ({', '.join(PROFILES)}) or a JSON file, "
                         f"not {memory!r}")
    if memory in PROFILES:
        prof = PROFILES[memory]
    elif memory.endswith(".json") or Path(memory).is_file():
        prof = load_profile(memory)
    else:
        raise ValueError(f"memory must be one of {', '.join(map(repr, PROFILES))} or a JSON profile file, "
                         f"not {memory!r}")
    if bandwidth_gbps is not None:
        prof = replace(prof, name=f"{prof.name}@{bw:g}GBps", peak_gbps=float(bw), efficiency=1.0,
                       source=prof.source + f"; sustained bandwidth set to {bw:g} GB/s")
    return prof


# ------------------------------------------------------------------------------ per layer, per model

def gemm_commands(M: int, K: int, N: int, array):
    """``(AccelConfig, commands)`` of one GEMM on the accelerator around ``array``: one
    ``load = 1`` command per chunk of at most ``min(65535, 65536 // ceil(K / rows))`` rows (a
    command's ``M`` and the activation buffer's depth are 16-bit)."""
    from rf8hw.arch import AccelConfig
    from rf8hw.format import postproc

    kmax = min(65535, postproc.max_k(array.act_bits, array.acc_bits))
    if K > kmax:
        raise ValueError(f"K = {K} is above the accelerator's largest K {kmax} for act_bits "
                         f"{array.act_bits}, acc_bits {array.acc_bits} (a K split is not modelled)")
    kt = -(-K // array.rows)
    chunk = min(M, 65535, 65536 // kt)
    acfg = AccelConfig(array, max_m=chunk, max_k=K)
    sizes = [chunk] * (M // chunk) + ([M % chunk] if M % chunk else [])
    return acfg, [(m, K, N, 1) for m in sizes]


def gemm_memory(M: int, K: int, N: int, array, rate: StreamRate, buffer_bytes: int = 0) -> dict:
    """One GEMM ``[M, K] x [K, N]`` on the accelerator around ``array`` (INT8 results), from an idle
    accelerator, its streams fed by one memory of ``rate``.

    Keys: ``compute_cycles`` (every stream at full rate: :func:`rf8hw.accel.accel_cycles.accel_schedule`),
    ``bytes`` (per stream and ``total``: command, weight codes, activations once, parameters,
    results), ``memory_cycles`` (``latency + ceil(total / bytes_per_cycle)``: the memory alone),
    ``cycles`` (the throttled schedule: the last result beat or the last byte written back,
    whichever is later, plus one), ``bound`` (``memory`` when ``memory_cycles > compute_cycles``),
    ``macs``, ``intensity`` (MACs per byte), ``buffer_bytes`` (the accelerator's activation and
    accumulator buffers for this GEMM) and ``fits`` (within the profile's ``buffer_bytes``; None
    without a budget).
    """
    from rf8hw.accel.accel_cycles import accel_schedule, beat_bytes, stream_arrivals

    acfg, cmds = gemm_commands(M, K, N, array)
    full = accel_schedule(cmds, acfg)
    arr = stream_arrivals(cmds, acfg, rate)
    thr = accel_schedule(cmds, acfg, arrivals=arr)
    size = beat_bytes(acfg)
    R, C = array.rows, array.cols
    kt, nt = -(-K // R), -(-N // C)
    beats = {"cmd": len(cmds), "w": len(cmds) * kt * nt * R, "a": M * kt, "p": len(cmds) * nt, "out": M * nt}
    nbytes = {s: beats[s] * size[s] for s in beats}
    nbytes["total"] = sum(nbytes.values())
    b = rate.bytes_per_cycle
    memory_cycles = rate.latency + -(-nbytes["total"] * b.denominator // b.numerator)
    compute = full[-1]["out_last"] + 1
    cycles = max(thr[-1]["out_last"], arr["end"]) + 1
    chunk = acfg.max_m
    buf = chunk * kt * size["a"] + chunk * C * -(-array.acc_bits // 8)
    return {"M": M, "K": K, "N": N, "commands": len(cmds), "compute_cycles": compute,
            "memory_cycles": memory_cycles, "cycles": cycles,
            "bound": "memory" if memory_cycles > compute else "compute",
            "bytes": nbytes, "macs": M * K * N, "intensity": M * K * N / nbytes["total"],
            "buffer_bytes": buf, "fits": None if not buffer_bytes else buf <= buffer_bytes}


def model_memory(gemms, array, profile: MemoryProfile, clock_mhz: float, batch: int = 1) -> dict:
    """The memory-aware cycles of a forward pass: every on-array GEMM of ``gemms``
    (:func:`rf8hw.accel.gemms.capture`) run on the accelerator from idle, one after the other, fed
    by ``profile`` at an accelerator clock of ``clock_mhz`` (:func:`gemm_memory`; identical shapes
    computed once).

    Returns ``profile`` (its fields), ``clock_mhz``, ``bytes_per_cycle`` (as a float and as
    ``"p/q"``), ``latency_cycles``, ``layers`` (per on-array GEMM: name, count and the
    :func:`gemm_memory` keys, cycles multiplied by ``count``), ``compute_cycles``, ``memory_cycles``,
    ``cycles`` (sums), ``cycles_per_inference``, ``inferences_per_s`` and ``gmac_per_s`` (from
    ``cycles``: the slower side, per layer), ``peak_gmac_per_s`` (``rows * cols`` MACs per cycle),
    ``bandwidth_gbps`` (sustained), ``memory_bound_layers``, ``not_fitting_layers``.
    """
    rate = profile.rate(clock_mhz)
    cache, layers = {}, []
    for g in gemms:
        if not g.on_array:
            continue
        key = (g.M, g.K, g.N)
        if key not in cache:
            cache[key] = gemm_memory(g.M, g.K, g.N, array, rate, profile.buffer_bytes)
        r = dict(cache[key])
        n = g.count
        r.update(name=g.name, count=n, macs=r["macs"] * n,
                 bytes={k: v * n for k, v in r["bytes"].items()},
                 **{k: r[k] * n for k in ("compute_cycles", "memory_cycles", "cycles")})
        layers.append(r)
    tot = {k: sum(r[k] for r in layers) for k in ("compute_cycles", "memory_cycles", "cycles", "macs")}
    hz = clock_mhz * 1e6
    b = rate.bytes_per_cycle
    return {"profile": profile.as_dict(), "clock_mhz": clock_mhz,
            "bytes_per_cycle": float(b), "bytes_per_cycle_exact": f"{b.numerator}/{b.denominator}",
            "latency_cycles": rate.latency, "bandwidth_gbps": profile.sustained_gbps,
            "layers": layers, **tot, "batch": batch,
            "cycles_per_inference": tot["cycles"] / batch,
            "inferences_per_s": hz * batch / tot["cycles"] if tot["cycles"] else None,
            "gmac_per_s": tot["macs"] * hz / tot["cycles"] / 1e9 if tot["cycles"] else None,
            "compute_inferences_per_s": hz * batch / tot["compute_cycles"] if tot["compute_cycles"] else None,
            "peak_gmac_per_s": array.rows * array.cols * hz / 1e9,
            "memory_bound_layers": sum(r["bound"] == "memory" for r in layers),
            "not_fitting_layers": [r["name"] for r in layers if r["fits"] is False]}


def plot_roofline(mem: dict, path, title: str = "") -> None:
    """Roofline of :func:`model_memory`'s result: operational intensity (MACs per byte) against
    attained GMAC/s, the compute roof (``rows * cols`` MACs per cycle) and the bandwidth roof
    (sustained GB/s x MAC/byte), one point per distinct GEMM shape, labelled with its layers;
    written to ``path`` (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = {}
    for r in mem["layers"]:
        g = groups.setdefault((r["M"], r["K"], r["N"]), {"names": [], "macs": 0, "cycles": 0, "bytes": 0,
                                                         "bound": r["bound"]})
        short = r["name"].rsplit(".", 1)[-1]
        if short not in g["names"]:
            g["names"].append(short)
        g["macs"] += r["macs"]
        g["cycles"] += r["cycles"]
        g["bytes"] += r["bytes"]["total"]
    hz = mem["clock_mhz"] * 1e6
    peak, bw = mem["peak_gmac_per_s"], mem["bandwidth_gbps"]
    xs = [g["macs"] / g["bytes"] for g in groups.values()]
    lo, hi = min(xs + [peak / bw]) / 4, max(xs + [peak / bw]) * 4
    fig, ax = plt.subplots(figsize=(7.5, 5.0))
    grid = [lo * (hi / lo) ** (i / 200) for i in range(201)]
    ax.plot(grid, [min(peak, bw * x) for x in grid], "k-", lw=1.5, label="roofline")
    ax.axhline(peak, color="tab:blue", ls=":", lw=1,
               label=f"compute roof {peak:.3g} GMAC/s ({mem['clock_mhz']:g} MHz)")
    ax.plot(grid, [bw * x for x in grid], color="tab:red", ls=":", lw=1,
            label=f"bandwidth roof {bw:.3g} GB/s ({mem['profile']['name']})")
    for i, ((M, K, N), g) in enumerate(sorted(groups.items(), key=lambda kv: kv[1]["macs"] / kv[1]["bytes"])):
        x, y = g["macs"] / g["bytes"], g["macs"] * hz / g["cycles"] / 1e9
        ax.plot([x], [y], "o", color="tab:red" if g["bound"] == "memory" else "tab:blue")
        # neighbours' labels staggered downwards, with a leader line to their point
        ax.annotate(f"{','.join(g['names'][:3])}{'...' if len(g['names']) > 3 else ''} {M}x{K}x{N}",
                    (x, y), textcoords="offset points", xytext=(-30, -22 - 16 * (i % 5)), fontsize=6,
                    arrowprops={"arrowstyle": "-", "lw": 0.4, "color": "0.5"})
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(lo, hi)
    ax.set_ylim(min(bw * lo, peak) / 2, peak * 1.6)
    ax.set_xlabel("operational intensity (MACs per byte moved to or from memory)")
    ax.set_ylabel("attained GMAC/s (throttled cycle model)")
    ax.set_title(title or f"roofline, {mem['profile']['name']}", fontsize=9)
    ax.legend(fontsize=7, loc="lower right")
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
