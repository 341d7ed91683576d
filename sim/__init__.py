"""cocotb co-simulation of the generated RF8 array against the golden model (``docs/cosim.md``).

An importable package (listed in ``pyproject.toml``), so ``rf8hw cosim`` works from any directory
after ``pip install -e .`` and the simulator's embedded Python finds the cocotb test modules:
:mod:`rf8hw.sim.batch_test` (the HDL bench, :mod:`rf8hw.sim.hdlbench`; the default) and :mod:`rf8hw.sim.cosim_test`
(the per-cycle Python bench, :mod:`rf8hw.sim.testbench`; ``bench="python"``).  This module imports
neither cocotb nor the simulators: the host-side entry points below start the simulator through
``cocotb_tools.runner``.

Entry points
------------
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

Each takes the array as one :class:`rf8hw.arch.ArrayConfig`; only RF8 PE kinds are
co-simulated (:func:`check_cosim_config`: the testbench's golden model is RF8).
"""

from .build import (BENCHES, SIMULATORS, Build, RtlFile, check_cosim_config, check_simulator,
                    default_cache_root, load_rtl, prepare)
from .run import (CYCLES_FORMAT, check_stall_prob, run_cosim, run_gemm, run_gemms, run_tiles,
                  summary_line)
from .stimulus import exhaustive_pairs, exhaustive_tiles, gemm_tiles, random_tiles

__all__ = ["BENCHES", "SIMULATORS", "Build", "RtlFile", "check_cosim_config", "check_simulator",
           "default_cache_root", "load_rtl", "prepare", "CYCLES_FORMAT", "check_stall_prob",
           "run_cosim", "run_gemm", "run_gemms", "run_tiles", "summary_line", "exhaustive_pairs",
           "exhaustive_tiles", "gemm_tiles", "random_tiles"]
