"""Exact cycle model of one accelerator command (``docs/accelerator.md``, "Timing"), and the bytes
each of its streams moves.

Counting from the command handshake (cycle 0; every producer offers its beats from cycle 0 on
and the result consumer is always ready), with ``kt = ceil(K / rows)``, ``nt = ceil(N / cols)``
and tiles ``t = 0 .. kt*nt - 1`` in (N tile, K tile) order, each of ``M`` activation rows:

* the command check takes ``1 + kt`` cycles, so the first activation can be offered at
  ``S = 1 + kt`` (``load = 1``: from the input stream) or ``S + 1`` (``load = 0``: the buffer's
  read takes a cycle);
* tile ``t``'s weights are the ``rows`` cycles from ``w_first(t)``: ``w_first(0) = 0``,
  ``w_first(t) = a_first(t-1) + 1`` (double buffering, as the bare array);
* its first activation is taken at ``a_first(t) = max(avail(t), w_first(t) + rows)``:
  ``avail(0) = S`` (or ``S + 1``), ``avail(t) = a_first(t-1) + M``, plus one cycle at the
  first tile read from the buffer after the stream (``t = kt`` of a ``load = 1`` command with
  ``nt > 1``); its rows follow back to back;
* result row ``m`` of tile ``t`` reaches the accumulator stage ``latency`` cycles after its
  activation (:class:`rf8hw.arch.Timing`), and is taken at once; a last K tile's row (number
  ``i`` among all last-K rows since the first command) goes into the total FIFO and the
  post-processing lanes read it at ``pop(i) = max(pop(i-1) + passes, a(i) + latency + 1)``
  (``a(i)`` its activation's cycle, ``passes = ceil(cols / post_lanes)``); its beat is on ``out``
  at ``pop(i) + post_latency`` (:class:`rf8hw.arch.AccelTiming`);
* the credit rule: a last-K row ``i`` enters the array no earlier than ``pop(i - D) + 1``
  (``D = total_fifo_depth``), so its rows need not be back to back.

``cycles`` counts cycle 0 through the cycle of the last result beat, inclusive.

With a memory (``accel_schedule(..., rate=)``, :func:`stream_arrivals`) every beat of the input
streams also waits for its bytes: the same recurrences, with each command, weight beat and
streamed activation row taken at the later of the cycle above and its arrival cycle
(``docs/accelerator.md``, "Streams throttled to a memory").
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from fractions import Fraction

from rf8hw import checks
from rf8hw.arch import CMD_FIELDS, AccelConfig, AccelTiming

__all__ = ["AccelCycles", "StreamRate", "STREAM_ORDER", "beat_bytes", "accel_schedule", "stream_arrivals",
           "accel_gemm_cycles"]


def _lane_bytes(bits: int) -> int:
    return -(-bits // 8)


@dataclass(frozen=True)
class StreamRate:
    """What the accelerator sees of a memory (the schedule's stream-rate parameter; a memory
    profile gives one: :meth:`rf8hw.accel.memory.MemoryProfile.rate`): ``bytes_per_cycle`` (a
    :class:`~fractions.Fraction` > 0: sustained bytes per accelerator clock) and ``latency``
    (cycles before the first byte)."""

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
class AccelCycles:
    """Cycles and stream bytes of one command ``[M, K] x [K, N]`` on the accelerator."""

    M: int
    K: int
    N: int
    load: int
    rows: int
    cols: int
    k_tiles: int
    n_tiles: int
    tiles: int
    cycles: int
    macs: int              #: M * K * N useful multiply-accumulates
    utilisation: float     #: macs / (rows * cols * cycles)
    bytes_cmd: int
    bytes_w: int           #: weight codes, padded tiles: tiles * rows * cols
    bytes_a: int           #: activation beats: M * k_tiles * rows lanes (0 for load = 0)
    bytes_p: int           #: parameter beats: n_tiles
    bytes_out: int         #: result beats: M * n_tiles * cols lanes of out_bits
    out_bytes_per_value: float   #: bytes_out / (M * N)

    def as_dict(self) -> dict:
        return asdict(self)


def _dims(M, K, N, acfg):
    if not isinstance(acfg, AccelConfig):
        raise TypeError(f"acfg must be an AccelConfig, not {acfg!r}")
    err = acfg.command_error(M, K, N)     # the buffer offset does not change the timing
    if err:
        raise ValueError(err)


#: Order of the streams' beats that are due in the same cycle, in the memory's byte sequence.
STREAM_ORDER = ("cmd", "p", "w", "a", "out")


def beat_bytes(acfg: AccelConfig) -> dict:
    """Bytes of one beat of each stream (its ``tdata`` width: whole bytes per lane)."""
    cfg = acfg.array
    return {"cmd": _lane_bytes(sum(w for _, w in CMD_FIELDS)), "w": cfg.cols,
            "a": cfg.rows * _lane_bytes(cfg.act_bits),
            "p": cfg.cols * (_lane_bytes(cfg.acc_bits) + 3),
            "out": cfg.cols * _lane_bytes(acfg.out_bits)}


def _full_rate(commands, acfg, arrivals=None, detail=True):
    """The schedule of ``commands`` when each input beat ``i`` of stream ``s`` can be taken from
    cycle ``arrivals[s][i]`` on (None: from cycle 0, every producer offering at once).  Beats of a
    stream are numbered across the commands."""
    out, cmd_free, w_gate = [], 0, 0
    idx = dict.fromkeys(("cmd", "w", "a", "p"), 0)
    arr = arrivals or {}
    t = AccelTiming(acfg)
    R, L, P = acfg.array.rows, t.array.latency, t.passes
    D, post = t.total_fifo_depth, t.post_latency
    pops = []                  # every last-K row (across the commands): when the lanes read it
    p_pops, p_check = [], []   # parameter FIFO (2 deep): pop cycles, due cycles
    for c in commands:
        M, K, N, load = c
        _dims(M, K, N, acfg)
        checks.integer("load", load, 0, 1)
        kt, nt = -(-K // R), -(-N // acfg.array.cols)
        cmd = cmd_free
        if arrivals:
            cmd = max(cmd, arr["cmd"][idx["cmd"]])
        idx["cmd"] += 1
        avail = cmd + t.check_cycles(K) + (0 if load else 1)
        tiles, beats = [], []
        for tile in range(kt * nt):
            if tile and load and tile == kt:
                avail += t.stream_to_buffer
            w_first = w_gate
            if arrivals:
                aw, i0 = arr["w"], idx["w"]
                w_first = w = max(w_gate, aw[i0])
                for k in range(1, R):
                    w = max(w + 1, aw[i0 + k])
                w_last = w
            else:
                w_last = w_gate + t.array.weight_load - 1
            idx["w"] += R
            ready = max(avail, w_last + t.array.switch)
            streamed = arrivals and load and tile < kt      # streamed rows: each when it arrived
            last_k = tile % kt == kt - 1
            rows_at = None
            if streamed or last_k:
                rows_at, at = [], ready
                for m in range(M):
                    if streamed:
                        at = max(at, arr["a"][idx["a"] + m])
                    if last_k:        # the credit rule: row i waits for the lanes to read row i-D
                        i = len(pops)
                        if i >= D:
                            at = max(at, pops[i - D] + 1)
                        pops.append(max(pops[-1] + P if pops else 0, at + L + 1))
                    rows_at.append(at)
                    at += 1
                a_first, a_last = rows_at[0], rows_at[-1]
            else:
                a_first, a_last = ready, ready + M - 1
            if load and tile < kt:
                idx["a"] += M
            if detail:
                tiles.append({"w_first": w_first, "a_first": a_first, "a_last": a_last})
                if rows_at is not None:
                    tiles[-1]["rows"] = rows_at
            if last_k:                                     # its results leave
                if detail:
                    beats += [x + post for x in pops[-M:]]
                p_check.append(pops[-M])                   # its first row needs the parameters
                p_pops.append(pops[-1] + P)
            w_gate, avail = a_first + 1, a_last + 1
        r_last = a_last + L
        out_last = pops[-1] + post
        rec = {"cmd": cmd, "r_last": r_last, "out_last": out_last}
        if detail:
            rec.update(tiles=tiles, out=beats)
        out.append(rec)
        cmd_free = r_last + 1
    if arrivals:                                           # the model's premise: no parameter stall
        ap = arr["p"]
        for j, due in enumerate(p_check):
            taken = max(ap[j], p_pops[j - 2] + 1 if j >= 2 else 0)
            if taken + 1 > due:
                raise ValueError(f"parameter beat {j} is taken at cycle {taken}, after its N tile's "
                                 f"first row is due in the post-processing lanes at {due}: the "
                                 "stream rate is outside what the cycle model covers (a "
                                 "post-processing stall)")
    return out


def _demand(commands, acfg, sched) -> dict:
    """Per stream, the full-rate cycle at which each beat is due (the memory fetches the beats in
    this order): command beats at their handshake, a parameter beat with its N tile's first
    weight beat, weight and activation beats when the full-rate schedule takes them, result
    beats when they leave."""
    import numpy as np

    R = acfg.array.rows
    d = {s: [] for s in STREAM_ORDER}
    for (_m, K, _n, load), s in zip(commands, sched):
        kt = -(-K // R)
        d["cmd"].append(s["cmd"])
        for n, tile in enumerate(s["tiles"]):
            if n % kt == 0:
                d["p"].append(tile["w_first"])
            d["w"].append(np.arange(tile["w_first"], tile["w_first"] + R))
            if load and n < kt:
                d["a"].append(np.asarray(tile["rows"]) if "rows" in tile
                              else np.arange(tile["a_first"], tile["a_last"] + 1))
        d["out"].append(np.asarray(s["out"]))
    return {k: np.concatenate([np.atleast_1d(np.asarray(x, dtype=np.int64)) for x in v])
            if v else np.zeros(0, dtype=np.int64) for k, v in d.items()}


def stream_arrivals(commands, acfg: AccelConfig, rate) -> dict:
    """The cycle from which each beat can cross the memory when the streams share one memory of
    ``rate`` (:class:`StreamRate`).

    The memory moves one byte sequence at ``rate.bytes_per_cycle`` from cycle ``rate.latency``
    on: every beat of the program (input beats and result beats alike) in the order the
    full-rate schedule needs them (:func:`_demand`; ties in :data:`STREAM_ORDER`), so that a
    beat whose last byte is byte ``S`` of the sequence is there from cycle
    ``latency + ceil(S / bytes_per_cycle) - 1`` (:meth:`StreamRate.arrival`).  Input beats wait
    in their stream's FIFO until taken; a result beat's bytes are the write-back's share of the
    memory (its slot in the sequence: later reads wait behind it).

    Returns per stream (``cmd``, ``w``, ``a``, ``p``, ``out``) a list of arrival cycles
    (for ``out``: the end of the beat's write slot), and ``end``: the cycle the last byte of the
    program has crossed (``latency + ceil(total / bytes_per_cycle) - 1``).
    """
    import numpy as np

    if not isinstance(rate, StreamRate):
        raise TypeError(f"rate must be a StreamRate, not {rate!r}")
    demand = _demand(commands, acfg, _full_rate(commands, acfg))
    size = beat_bytes(acfg)
    times = np.concatenate([demand[s] for s in STREAM_ORDER])
    prio = np.concatenate([np.full(len(demand[s]), i) for i, s in enumerate(STREAM_ORDER)])
    nbytes = np.concatenate([np.full(len(demand[s]), size[s], dtype=np.int64) for s in STREAM_ORDER])
    order = np.lexsort((np.arange(len(times)), prio, times))    # stable: a stream keeps its order
    cum = np.cumsum(nbytes[order])
    b = rate.bytes_per_cycle
    at = np.empty_like(cum)
    at[order] = rate.latency + -(-cum * b.denominator // b.numerator) - 1
    out, start = {}, 0
    for s in STREAM_ORDER:
        out[s] = at[start:start + len(demand[s])].tolist()
        start += len(demand[s])
    out["end"] = int(rate.latency + -(-int(cum[-1]) * b.denominator // b.numerator) - 1)
    return out


def accel_schedule(commands, acfg: AccelConfig, rate=None, *, arrivals=None) -> list[dict]:
    """The handshake cycles of ``commands`` (``(M, K, N, load)`` each) sent back to back from an
    idle accelerator, the first at cycle 0 (module docstring).

    A command is taken the cycle after its predecessor's last result row left the accumulator
    stage (``r_last + 1``); its first weight tile streams in as soon as the array's shadow
    buffer is free (the cycle after the predecessor's last tile started), so only the first
    command of a run pays the full weight load.  Per command: ``cmd`` (handshake), ``tiles``
    (per tile ``w_first``, ``a_first``, ``a_last``, and for a last K tile ``rows``, the cycle
    each of its ``M`` activation rows is taken: the credit rule may space them), ``r_last`` (its
    last result row taken from the array), ``out`` (the cycle of each result beat), ``out_last`` (the last).

    ``rate`` (a :class:`StreamRate`): the input streams are throttled to one
    memory of that rate (:func:`stream_arrivals`); every beat is then taken at the later of the
    cycle the accelerator can take it and the cycle it arrives (a streamed activation row, a
    weight beat and the command wait for their bytes; rows read from the activation buffer do
    not; a streamed tile's dict gains ``rows``, the cycle each row is taken), and each command's
    dict gains ``mem_end``, the cycle the program's last byte
    (result write-back included) has crossed the memory.  ``arrivals``: that dict, when
    computed already.
    """
    if rate is None and arrivals is None:
        return _full_rate(commands, acfg)
    if arrivals is None:
        arrivals = stream_arrivals(commands, acfg, rate)
    out = _full_rate(commands, acfg, arrivals)
    for s in out:
        s["mem_end"] = arrivals["end"]
    return out


def accel_gemm_cycles(M: int, K: int, N: int, acfg: AccelConfig, load: int = 1) -> AccelCycles:
    """Cycles and stream bytes of the command ``(M, K, N, load)`` on ``acfg``, from an idle
    accelerator (module docstring)."""
    sched = accel_schedule([(M, K, N, load)], acfg)[0]
    cfg = acfg.array
    R, C = cfg.rows, cfg.cols
    kt, nt = -(-K // R), -(-N // C)
    cycles = sched["out_last"] + 1
    macs = M * K * N
    bytes_out = M * nt * C * _lane_bytes(acfg.out_bits)
    return AccelCycles(
        M=M, K=K, N=N, load=load, rows=R, cols=C, k_tiles=kt, n_tiles=nt, tiles=kt * nt,
        cycles=cycles, macs=macs, utilisation=macs / (R * C * cycles),
        bytes_cmd=_lane_bytes(sum(w for _, w in CMD_FIELDS)), bytes_w=kt * nt * R * C,
        bytes_a=M * kt * R * _lane_bytes(cfg.act_bits) if load else 0,
        bytes_p=nt * C * (_lane_bytes(cfg.acc_bits) + 3),
        bytes_out=bytes_out, out_bytes_per_value=bytes_out / (M * N))
