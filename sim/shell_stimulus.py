"""Memory images and descriptors of GEMMs for the shell (``docs/shell.md``; numpy only).

A GEMM's beats come from :func:`rf8hw.sim.accel_stimulus.accel_job` (the accelerator's own
packing, not re-derived here); :func:`shell_descriptor` lays them out as memory images
(:func:`rf8hw.hdl.shell_images.pack_image`) at given or random base addresses.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rf8hw.arch import AccelConfig
from rf8hw.hdl.shell_images import ShellLayout, pack_image
from rf8hw.sim.accel_stimulus import AccelJob, accel_job, random_gemm

__all__ = ["ShellDescriptor", "shell_layout", "shell_descriptor", "random_descriptors"]


def shell_layout(acfg: AccelConfig, data_bits: int = 64) -> ShellLayout:
    """The image layout of the shell around ``acfg``: the accelerator's stream widths
    (``docs/accelerator.md``, "Ports") in ``data_bits`` data beats.  The shell takes its own from
    its ports (:meth:`ShellLayout.of`); a co-simulation with a different one fails."""
    from rf8hw.hdl import registry
    from rf8hw.hdl.accel_axi import param_lane_bits
    from rf8hw.hdl.axi import lane_bits

    a = acfg.array
    return ShellLayout.from_bits({"w": registry.pe_class(a.pe).weight_bits * a.cols,
                                  "a": lane_bits(a.act_bits) * a.rows,
                                  "p": param_lane_bits(a.acc_bits) * a.cols,
                                  "o": acfg.out_bits * a.cols}, data_bits)


@dataclass
class ShellDescriptor:
    """One descriptor: its registers' values, its images and the expected result image."""

    M: int
    K: int
    N: int
    act_base: int
    load: int
    bases: dict              # w, a, p, o -> byte address
    images: dict             # w, a, p -> bytes (a: empty for load = 0)
    n_out: int               # result beats
    expected: np.ndarray     # [n_out, cols] (postproc.gemm, padded columns 0)
    golden: np.ndarray       # [M, N] postproc.gemm of the GEMM itself


def shell_descriptor(job: AccelJob, golden, layout: ShellLayout, bases: dict) -> ShellDescriptor:
    """The images of ``job`` (its beats) placed at ``bases``."""
    lw = layout.words
    images = {"w": pack_image([w for w, _ in job.w_beats], lw["w"], layout.data_bits),
              "a": pack_image(job.a_beats, lw["a"], layout.data_bits),
              "p": pack_image(job.p_beats, lw["p"], layout.data_bits)}
    return ShellDescriptor(job.M, job.K, job.N, job.act_base, job.load, dict(bases), images,
                           len(job.expected), job.expected, np.asarray(golden))


def random_descriptors(rng: np.random.Generator, acfg: AccelConfig, layout: ShellLayout,
                       n: int, *, region: int = 1 << 16) -> list[ShellDescriptor]:
    """``n`` random ragged GEMMs (a ``load = 0`` one reuses the last loaded activations: same M,
    K, buffer offset 0), each image at a random data-beat-aligned address of its own
    ``region``-byte window, starting less than the image (at most 64 data beats) before a 4 KB
    boundary, so every image of two or more data beats crosses a page end (where the shell must
    cut its bursts)."""
    from rf8hw.format import postproc

    cfg = acfg.array
    out, a0, M, K = [], None, 0, 0
    nb = layout.data_bits // 8
    for i in range(n):
        load = int(i == 0 or rng.random() < 0.6)
        if load:
            M, K = int(rng.integers(1, acfg.max_m + 1)), int(rng.integers(1, acfg.max_k + 1))
        N = int(rng.integers(1, 3 * cfg.cols + 2))
        a, codes, bias, mult, shift = random_gemm(rng, acfg, M, K, N)
        if load:
            a0 = a
        job = accel_job(acfg, a0, codes, bias, mult, shift, load=load)
        golden = postproc.gemm(a0, codes, bias, mult, shift, act_bits=cfg.act_bits,
                               acc_bits=cfg.acc_bits, out_bits=acfg.out_bits)
        d = shell_descriptor(job, golden, layout, {})
        sizes = {**{s: len(v) for s, v in d.images.items()}, "o": d.n_out * layout.beat_bytes("o")}
        if max(sizes.values()) + 4096 > region:
            raise ValueError(f"an image of {max(sizes.values())} bytes does not fit the region of "
                             f"{region} bytes: pass a larger region")
        for j, s in enumerate(("w", "a", "p", "o")):
            window = (4 * i + j + 1) * region
            beats = max(2, min(64, sizes[s] // nb))
            d.bases[s] = window + 4096 - int(rng.integers(1, beats)) * nb
        out.append(d)
    return out
