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
  activation (:class:`rf8hw.arch.Timing`), and is taken at once; the last one leaves on ``out``
  ``post_latency`` cycles later (:class:`rf8hw.arch.AccelTiming`).

``cycles`` counts cycle 0 through the cycle of the last result beat, inclusive.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from rf8hw import checks
from rf8hw.arch import CMD_FIELDS, AccelConfig, AccelTiming

__all__ = ["AccelCycles", "accel_schedule", "accel_gemm_cycles"]


def _lane_bytes(bits: int) -> int:
    return -(-bits // 8)


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


def accel_schedule(commands, acfg: AccelConfig) -> list[dict]:
    """The handshake cycles of ``commands`` (``(M, K, N, load)`` each) sent back to back from an
    idle accelerator, the first at cycle 0 (module docstring).

    A command is taken the cycle after its predecessor's last result row left the accumulator
    stage (``r_last + 1``); its first weight tile streams in as soon as the array's shadow
    buffer is free (the cycle after the predecessor's last tile started), so only the first
    command of a run pays the full weight load.  Per command: ``cmd`` (handshake), ``tiles``
    (per tile ``w_first``, ``a_first``, ``a_last``), ``r_last`` (its last result row taken
    from the array), ``out`` (the cycle of each result beat), ``out_last`` (the last).
    """
    out, cmd, w_first = [], 0, 0
    for c in commands:
        M, K, N, load = c
        _dims(M, K, N, acfg)
        checks.integer("load", load, 0, 1)
        t = AccelTiming(acfg)
        R = acfg.array.rows
        kt, nt = -(-K // R), -(-N // acfg.array.cols)
        avail = cmd + t.check_cycles(K) + (0 if load else 1)
        tiles = []
        for tile in range(kt * nt):
            if tile and load and tile == kt:
                avail += t.stream_to_buffer
            a_first = max(avail, w_first + t.array.weight_load - 1 + t.array.switch)
            tiles.append({"w_first": w_first, "a_first": a_first, "a_last": a_first + M - 1})
            w_first, avail = a_first + 1, a_first + M
        r_last = tiles[-1]["a_last"] + t.array.latency
        beats = [tiles[j * kt + kt - 1]["a_first"] + m + t.array.latency + t.post_latency
                 for j in range(nt) for m in range(M)]
        out.append({"cmd": cmd, "tiles": tiles, "r_last": r_last, "out": beats,
                    "out_last": beats[-1]})
        cmd = r_last + 1
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
