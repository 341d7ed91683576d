"""Co-simulation of the generated RF8 array against the golden model (``docs/cosim.md``).

An importable package (``rf8hw.sim``, listed in ``pyproject.toml``), so ``rf8hw cosim`` works from
any directory after ``pip install -e .`` and the simulator's embedded Python finds the cocotb test
modules of the cocotb benches: :mod:`rf8hw.sim.hdl_bench` (stimulus and checking in a Verilog
wrapper; Icarus' default) and :mod:`rf8hw.sim.python_bench` (per cycle in Python;
``bench="python"``).  The library bench (:mod:`rf8hw.sim.lib_bench`, ``bench="lib"``, Verilator's
default) runs the Verilated model in this process (:mod:`rf8hw.sim.verilator_lib`).  This module
imports neither cocotb nor the simulators: the host-side entry points below start the simulator
through ``cocotb_tools.runner`` or load the library.

Entry points
------------
Each takes the array as one :class:`rf8hw.arch.ArrayConfig` (RF8 PE kinds only) and the run's
options as one :class:`CosimOptions`, both validated when they were made.

:func:`run_cosim`
    Random tiles (``rf8hw cosim``).
:func:`run_tiles`
    Given tiles; reset mid-run, a deliberately wrong model, observed results.
:func:`run_gemm`
    A whole GEMM split into tiles (ragged K and N zero-padded), for the cycle model.
:func:`run_gemms`
    Several GEMMs in one simulator run, each on an idle, empty array (as after reset).
:func:`prepare`
    Generate/reuse the Verilog (or take a given file, :func:`load_rtl`) and build/reuse the
    simulator build.

They return a :class:`CosimResult` (:class:`rf8hw.accel.cosim_layer.LayerResult` wraps one for a
model layer).
"""

from .build import Build, check_cosim_config, check_simulator, prepare
from .options import (
    BENCHES,
    MAX_STALL_PROB,
    RUNS_DIR,
    SIMULATORS,
    CosimOptions,
    CosimRequest,
    default_cache_root,
)
from .records import Mismatch, TileCycles
from .result import CosimResult, GemmResult
from .rtl import RtlFile, load_rtl
from .run import (
    CYCLES_FORMAT,
    MAX_STIMULUS_ROWS,
    MAX_TILES,
    SimulationInterrupted,
    run_cosim,
    run_gemm,
    run_gemms,
    run_tiles,
)
from .stimulus import exhaustive_pairs, exhaustive_tiles, gemm_tiles, random_tiles

__all__ = ["Build", "check_cosim_config", "check_simulator", "prepare", "BENCHES", "RUNS_DIR",
           "SIMULATORS", "MAX_STALL_PROB", "CosimOptions", "CosimRequest", "default_cache_root", "Mismatch",
           "TileCycles", "CosimResult", "GemmResult", "RtlFile", "load_rtl",
           "CYCLES_FORMAT", "MAX_STIMULUS_ROWS", "MAX_TILES", "SimulationInterrupted",
           "run_cosim", "run_gemm", "run_gemms", "run_tiles", "exhaustive_pairs",
           "exhaustive_tiles", "gemm_tiles", "random_tiles"]
