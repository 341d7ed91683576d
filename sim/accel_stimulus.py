"""Stream beats of accelerator commands and their expected results (numpy only; the rule is
:mod:`rf8hw.format.postproc`, the beat formats ``docs/accelerator.md``, "Ports").

A GEMM ``a[M, K] @ W(codes[K, N])`` becomes one command beat, ``kt * nt`` weight tiles of ``rows``
beats (N tile outer, K tile inner; zero codes pad K and N), ``M * kt`` activation beats (K tile
outer, row inner; zeros pad K; none for ``load = 0``), ``nt`` parameter beats and, expected,
``M * nt`` result beats (padded columns give 0: zero weights, bias 0, mult 0).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from rf8hw.arch import AccelConfig
from rf8hw.format import postproc
from rf8hw.hdl.axi import lane_bits
from rf8hw.sim.stimulus import pack_rows

__all__ = ["AccelJob", "accel_job", "random_gemm", "random_program"]


@dataclass
class AccelJob:
    """One command with its input beats and expected output beats."""

    M: int
    K: int
    N: int
    act_base: int
    load: int
    cmd: int
    w_beats: list = field(default_factory=list)       # (tdata, tlast)
    a_beats: list = field(default_factory=list)       # tdata
    p_beats: list = field(default_factory=list)       # tdata
    expected: np.ndarray | None = None                # [nt * M, cols] result beats
    expected_last: list = field(default_factory=list)


def _pad(x, rows, cols):
    out = np.zeros((rows, cols), dtype=x.dtype)
    out[:x.shape[0], :x.shape[1]] = x
    return out


def accel_job(acfg: AccelConfig, a, codes, bias=0, mult=1, shift=0, *, act_base: int = 0,
              load: int = 1) -> AccelJob:
    """The beats of ``y = postproc.gemm(a, codes, bias, mult, shift)`` on the accelerator ``acfg``.
    ``a`` is also needed for ``load = 0`` (to compute the expected results; its beats are not
    sent: the buffer must already hold them at ``act_base``)."""
    cfg = acfg.array
    R, C = cfg.rows, cfg.cols
    a = np.asarray(a, dtype=np.int64)
    codes = np.asarray(codes, dtype=np.uint8)
    M, K = a.shape
    N = codes.shape[1]
    cmd = acfg.pack_command(M, K, N, act_base, load)
    kt, nt = -(-K // R), -(-N // C)
    y = postproc.gemm(a, codes, bias, mult, shift, act_bits=cfg.act_bits, acc_bits=cfg.acc_bits,
                      out_bits=acfg.out_bits)
    bias, mult, shift, _, _ = postproc.check_params(N, bias, mult, shift, cfg.acc_bits,
                                                    acfg.out_bits)
    a_pad = _pad(a, M, kt * R)
    w_pad = _pad(codes, kt * R, nt * C)
    y_pad = _pad(y, M, nt * C)
    job = AccelJob(M=M, K=K, N=N, act_base=act_base, load=load, cmd=cmd)
    for j in range(nt):
        for i in range(kt):
            words = pack_rows(w_pad[i * R:(i + 1) * R, j * C:(j + 1) * C], 8)
            job.w_beats += [(w, int(k == R - 1)) for k, w in enumerate(words)]
    if load:
        for i in range(kt):
            job.a_beats += pack_rows(a_pad[:, i * R:(i + 1) * R], lane_bits(cfg.act_bits))
    bl = lane_bits(cfg.acc_bits)
    lane = bl + postproc.MULT_BITS + 8
    pb = _pad(bias[None, :], 1, nt * C)[0]
    pm = _pad(mult[None, :], 1, nt * C)[0]
    ps = _pad(shift[None, :], 1, nt * C)[0]
    for j in range(nt):
        word = 0
        for n in range(C):
            c = j * C + n
            value = (int(pb[c]) & ((1 << bl) - 1)) | int(pm[c]) << bl | int(ps[c]) << (bl + 16)
            word |= value << (lane * n)
        job.p_beats.append(word)
    job.expected = np.concatenate([y_pad[:, j * C:(j + 1) * C] for j in range(nt)])
    job.expected_last = [int(r == nt * M - 1) for r in range(nt * M)]
    return job


def random_gemm(rng: np.random.Generator, acfg: AccelConfig, M: int, K: int, N: int,
                out_scale_bits: int | None = None):
    """Random ``(a, codes, bias, mult, shift)`` for a GEMM on ``acfg``: full-range activations
    and codes, random biases, multipliers and shifts around the scale that maps the sums onto
    the output range (some saturate)."""
    cfg = acfg.array
    lo, hi = -(1 << (cfg.act_bits - 1)), (1 << (cfg.act_bits - 1)) - 1
    a = rng.integers(lo, hi + 1, size=(M, K))
    codes = rng.integers(0, 256, size=(K, N)).astype(np.uint8)
    codes[:, rng.random(N) < 0.2] &= 0x87          # small exponents: modest sums in some columns
    bias = rng.integers(-(1 << 20), 1 << 20, size=N)
    mult = rng.integers(1 << 15, 1 << 16, size=N)
    # |acc| is around sqrt(K) * 2**(act_bits-1) * 2**13: shift it down near the output range
    base = int(np.log2(np.sqrt(K) * 2 ** (cfg.act_bits - 1) * 2 ** 13)) + 16 - (acfg.out_bits - 1)
    shift = np.clip(base + rng.integers(-2, 3, size=N), 0, postproc.SHIFT_MAX)
    return a, codes, bias, mult, shift


def random_program(rng: np.random.Generator, acfg: AccelConfig, n_cmds: int):
    """``(jobs, commands)``: ``n_cmds`` random ragged GEMMs on ``acfg`` (``commands``: ``(M, K,
    N, load)`` each); a ``load = 0`` command reuses the activations of the last one that loaded
    (same ``M``, ``K``, buffer offset 0)."""
    jobs, cmds, a0, M, K = [], [], None, 0, 0
    C = acfg.array.cols
    for c in range(n_cmds):
        load = int(c == 0 or rng.random() < 0.6)
        if load:
            M, K = int(rng.integers(1, acfg.max_m + 1)), int(rng.integers(1, acfg.max_k + 1))
        N = int(rng.integers(1, 3 * C + 2))
        g = random_gemm(rng, acfg, M, K, N)
        if load:
            a0 = g[0]
        jobs.append(accel_job(acfg, a0, *g[1:], load=load))
        cmds.append((M, K, N, load))
    return jobs, cmds
