"""``rf8hw export-tb``: a self-checking plain-Verilog testbench and its ``$readmemh`` vector files for
a generated design, to run in any simulator (``docs/ip.md``).

The design is a generated ``<module>.v`` with its manifest ``<module>.json`` next to it: the bare
array (read and checked by :func:`rf8hw.sim.rtl.load_rtl`, as ``rf8hw cosim --rtl``) or the
accelerator (``kind: "rf8hw-accelerator"``).  Stimulus comes from the co-simulation's generators
from one seed (:func:`rf8hw.sim.stimulus.random_tiles` for the array,
:func:`rf8hw.sim.accel_stimulus.random_program` for the accelerator), the expected beats from the
golden model (:func:`rf8hw.format.golden.matmul`; :func:`rf8hw.format.postproc.gemm` through
:func:`~rf8hw.sim.accel_stimulus.accel_job`).  The testbench
(:func:`rf8hw.sim.hdl_bench.wrapper.export_bench_verilog`) is derived from the manifest's port list
(:func:`rf8hw.hdl.ippackage.interfaces`).

Files, in ``<out>/tb_<module>/`` (the folder the FuseSoC core's ``sim`` target names):
``tb_<module>.v`` and ``tb_<module>_<bus>.hex`` for every AXI4-Stream bus.
"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import numpy as np

from rf8hw import __version__, checks
from rf8hw.arch import AccelConfig, ArrayConfig
from rf8hw.files import write_files
from rf8hw.format import golden
from rf8hw.hdl.ippackage import interfaces, tb_dir, tb_module, tb_vector

from .hdl_bench.wrapper import export_bench_verilog, vector_lines
from .options import check_probability
from .stimulus import pack_rows, random_tiles

__all__ = ["ACCEL_KIND", "read_design", "array_vectors", "accel_vectors", "export_tb"]

#: ``kind`` of an accelerator manifest (:data:`rf8hw.hdl.accel_generate.MANIFEST_KIND`; that
#: module imports Amaranth, this one must not).
ACCEL_KIND = "rf8hw-accelerator"


def read_design(path) -> tuple[Path, dict, ArrayConfig | AccelConfig]:
    """``(verilog, manifest, config)`` of a generated ``FILE.v``: its manifest (a JSON object)
    and the :class:`~rf8hw.arch.ArrayConfig` or :class:`~rf8hw.arch.AccelConfig` it gives.

    Raises ``ValueError`` (one line naming the file) for a file or manifest that cannot be read,
    or whose design the golden model cannot check (a PE kind of another weight format)."""
    from .build import check_cosim_config

    v = Path(path)
    j = v.with_suffix(".json")
    try:
        raw = json.loads(j.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{v}: its manifest {j.name} is unreadable ({exc}); rf8hw generate "
                         f"writes <module>.v and <module>.json side by side") from None
    if isinstance(raw, dict) and raw.get("kind") == ACCEL_KIND:
        try:
            p = dict(raw["parameters"])
            cfg = AccelConfig(array=ArrayConfig.from_dict(p.pop("array")), **p)
            module, verilog = raw["module"], raw["files"]["verilog"]
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"{v}: its manifest {j.name} is not an accelerator manifest "
                             f"({exc})") from None
        if module != cfg.module_name or verilog != v.name:
            raise ValueError(f"{v}: its manifest {j.name} describes module {module!r} in "
                             f"{verilog!r}, not the module of its parameters "
                             f"({cfg.module_name!r}) in {v.name!r}")
        try:
            text = v.read_text(errors="replace")
        except OSError as exc:
            raise ValueError(f"{v}: cannot read the Verilog file ({exc.strerror or exc})") from None
        if not re.search(rf"\bmodule\s+{re.escape(module)}\s*\(", text):
            raise ValueError(f"{v}: declares no module {module!r}, the module its manifest "
                             f"{j.name} names")
        array, manifest = cfg.array, raw
    else:
        from .rtl import load_rtl

        rtl = load_rtl(v)
        cfg = array = rtl.config
        manifest = rtl.manifest.as_dict()
    try:
        check_cosim_config(array)
    except ValueError as exc:
        raise ValueError(f"{v}: {exc}") from None
    return v, manifest, cfg


def _beats(blocks, width: int) -> tuple[list[int], list[int]]:
    """Words and tlast flags of consecutive blocks of rows (tlast on each block's last row)."""
    words, lasts = [], []
    for rows in blocks:
        w = pack_rows(rows, width)
        words += w
        lasts += [0] * (len(w) - 1) + [1]
    return words, lasts


def array_vectors(manifest: dict, cfg: ArrayConfig, *, seed: int, tiles: int,
                  m_rows: int | None) -> dict:
    """Bus -> (words, tlast flags) of ``tiles`` random tiles of ``m_rows`` rows (default
    ``rows``) from ``seed`` on the array (as ``rf8hw cosim --seed``), results from the golden
    model."""
    p = manifest["parameters"]
    rng = np.random.default_rng(seed)
    stim = random_tiles(rng, cfg.rows, cfg.cols, tiles, act_bits=cfg.act_bits,
                        m_rows=m_rows if m_rows is not None else cfg.rows)
    acc = [golden.matmul(np.asarray(a), codes, acc_bits=cfg.acc_bits, overflow=cfg.overflow,
                         act_bits=cfg.act_bits, impl="loop") for codes, a in stim]
    return {"s_axis_w": _beats([c for c, _ in stim], p["weight_bits"]),
            "s_axis_a": _beats([a for _, a in stim], p["act_lane_bits"]),
            "m_axis_acc": _beats(acc, p["acc_lane_bits"])}


def accel_vectors(acfg: AccelConfig, *, seed: int, cmds: int) -> dict:
    """Bus -> (words, tlast flags) of ``cmds`` random ragged GEMM commands from ``seed``
    (:func:`rf8hw.sim.accel_stimulus.random_program`, activation reuse included), results from
    the post-processing rule."""
    from .accel_stimulus import random_program

    jobs, _ = random_program(np.random.default_rng(seed), acfg, cmds)
    out = {"s_axis_cmd": ([], []), "s_axis_w": ([], []), "s_axis_a": ([], []),
           "s_axis_p": ([], []), "m_axis_out": ([], [])}

    def add(bus, words, lasts):
        out[bus][0].extend(int(w) for w in words)
        out[bus][1].extend(int(x) for x in lasts)
    for job in jobs:
        add("s_axis_cmd", [job.cmd], [0])
        add("s_axis_w", [w for w, _ in job.w_beats], [last for _, last in job.w_beats])
        add("s_axis_a", job.a_beats, [0] * len(job.a_beats))
        add("s_axis_p", job.p_beats, [0] * len(job.p_beats))
        add("m_axis_out", pack_rows(job.expected, acfg.out_bits), job.expected_last)
    return out


def export_tb(rtl, out_dir=None, *, seed: int = 1, tiles: int | None = None,
              m_rows: int | None = None, cmds: int | None = None,
              stall_prob: float = 0.0) -> list[Path]:
    """Write the testbench and vectors of the design ``rtl`` (a generated ``.v``) into
    ``<out_dir>/tb_<module>/`` (``out_dir`` defaults to the folder of ``rtl``), as one unit
    (:func:`rf8hw.files.write_files`); returns the paths, the testbench first.

    ``tiles`` (default 4) and ``m_rows`` apply to the array, ``cmds`` (default 3) to the
    accelerator; ``stall_prob`` is each stream's probability of an idle or stalled edge."""
    checks.integer("seed", seed, 0)
    stall_prob = check_probability("stall_prob", stall_prob)
    v, manifest, cfg = read_design(rtl)
    module = manifest["module"]
    if isinstance(cfg, AccelConfig):
        if tiles is not None or m_rows is not None:
            raise ValueError(f"--tiles and --m-rows set the bare array's stimulus; {v.name} is an "
                             f"accelerator: give --cmds")
        cmds = checks.integer("cmds", 3 if cmds is None else cmds, 1, 1000)
        vectors = accel_vectors(cfg, seed=seed, cmds=cmds)
        what = f"{cmds} random GEMM commands"
        extra = ["--cmds", str(cmds)]
    else:
        if cmds is not None:
            raise ValueError(f"--cmds sets the accelerator's stimulus; {v.name} is a bare array: "
                             f"give --tiles (and --m-rows)")
        tiles = checks.integer("tiles", 4 if tiles is None else tiles, 1, 100_000)
        if m_rows is not None:
            checks.integer("m_rows", m_rows, 1, 65_536)
        vectors = array_vectors(manifest, cfg, seed=seed, tiles=tiles, m_rows=m_rows)
        what = f"{tiles} random tiles"
        extra = ["--tiles", str(tiles)] + (["--m-rows", str(m_rows)] if m_rows is not None else [])
    itf = interfaces(manifest)
    missing = sorted(set(vectors) ^ {b for b, bus in itf.buses.items() if bus.kind == "axis"})
    if missing:
        raise ValueError(f"{v}: the manifest's AXI4-Stream buses differ from the ones this "
                         f"design's stimulus feeds ({', '.join(missing)})")
    out = (v.parent if out_dir is None else checks.output_dir("out_dir", out_dir)) / tb_dir(module)
    names = {bus: tb_vector(module, bus) for bus in vectors}
    command = shlex.join(["rf8hw", "export-tb", "--rtl", v.name, "--seed", str(seed), *extra,
                          "--stall-prob", repr(stall_prob)])
    header = (f"// GENERATED by rf8hw {__version__} (rf8hw export-tb). Do not edit.\n"
              f"// Regenerate: {command}\n"
              f"// Self-checking testbench of {module}: {what} (seed {seed}), every output beat\n"
              "// compared with the golden model's; streams stall with probability "
              f"{stall_prob} per edge.\n"
              "// Plain Verilog-2005.  Vectors: $readmemh files named below, read from the\n"
              "// simulator's working directory (or +<bus>=PATH).  The last line printed is\n"
              "// 'PASS: ...' or 'FAIL <n> mismatches ...' (grep '^PASS' / '^FAIL'); exit status 1\n"
              "// on FAIL under Icarus, Verilator, or any simulator given +define+RF8HW_TB_SV\n"
              "// ($fatal), else $finish.  docs/ip.md\n")
    width = {b: bus.width("tdata") for b, bus in itf.buses.items()}
    text = export_bench_verilog(itf, {b: len(w) for b, (w, _) in vectors.items()}, seed=seed,
                                stall_prob=stall_prob, vectors=names, header=header)
    files = {out / f"{tb_module(module)}.v": text}
    for bus, (words, lasts) in vectors.items():
        files[out / names[bus]] = vector_lines(words, lasts, width[bus])
    out.mkdir(parents=True, exist_ok=True)
    return write_files(files)
