"""The manifest ``<module>.json`` that :func:`rf8hw.hdl.generate.generate` writes next to
``<module>.v``: its type, :class:`Manifest`, and its one parser, :meth:`Manifest.from_dict` /
:meth:`Manifest.read`.

Standard library, :mod:`rf8hw.checks` and :mod:`rf8hw.arch` only (no Amaranth, no torch), so the
writer (:mod:`rf8hw.hdl.generate`) and the readers (the co-simulation, :mod:`rf8hw.sim`, on the
host and inside the simulator) share it.  :meth:`Manifest.as_dict` gives the JSON object back key
for key, in the order the generator writes it, so ``Manifest.read(p).as_dict() == json.load(p)``
for every generated manifest (``tests/hdl/test_generate.py``).

Sections (``docs/architecture.md``, "Verilog generation"): ``module``, ``generator`` (name,
version, the ``rf8hw generate`` command), ``tools`` (package versions), ``parameters`` (the
:class:`~rf8hw.arch.ArrayConfig` fields plus facts of the generated design:
:class:`Parameters`), ``ports``, ``interface`` (clock, reset and the three AXI4-Stream buses),
``timing`` (:meth:`rf8hw.arch.Timing.as_dict`) and ``files`` (the ``.v`` file's name and
SHA-256).  Keys the parser does not know are ignored.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import get_args, get_origin, get_type_hints

from rf8hw import checks
from rf8hw.arch import WEIGHT_FORMATS, ArrayConfig

__all__ = ["BUSES", "Generator", "Parameters", "Port", "Lanes", "Bus", "Clock", "Reset",
           "Interface", "Files", "Manifest"]

#: The AXI4-Stream buses of the generated top, in the order the manifest lists them.
BUSES = ("s_axis_w", "s_axis_a", "m_axis_acc")


@dataclass(frozen=True)
class Generator:
    """Who wrote the files: ``rf8hw``, its version and the command that writes them again."""

    name: str
    version: str
    command: str


@dataclass(frozen=True)
class Parameters:
    """The array (:class:`~rf8hw.arch.ArrayConfig`) and facts of its generated design.

    In the JSON the ``ArrayConfig`` fields come first, then these, in one flat object.
    """

    config: ArrayConfig
    pe_class: str            #: the PE's RTL class (``RF8PipePE``)
    weight_format: str       #: ``rf8``, ``int8`` or ``fp8_e4m3``
    weight_bits: int         #: bits per weight lane of ``s_axis_w``
    product_latency: int     #: 1, or 2 with a product register
    min_acc_bits: int        #: the narrowest accumulator for ``act_bits``
    act_lane_bits: int       #: bits per lane of ``s_axis_a`` (whole bytes)
    acc_lane_bits: int       #: bits per lane of ``m_axis_acc`` (whole bytes)

    def as_dict(self) -> dict:
        extra = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "config"}
        return {**self.config.as_dict(), **extra}

    @classmethod
    def from_dict(cls, d, where: str, path: str = "parameters") -> Parameters:
        try:
            config = ArrayConfig.from_dict(d, where=f"{where}: {path}")
        except (TypeError, ValueError) as exc:
            text = str(exc)
            raise ValueError(text if text.startswith(where) else f"{where}: {path}: {text}") from None
        extra = [f.name for f in fields(cls) if f.name != "config"]
        missing = [name for name in extra if name not in d]
        if missing:
            raise ValueError(f"{where}: {path} lack {', '.join(missing)} (written by an older "
                             f"rf8hw generate? regenerate the Verilog)")
        hints = get_type_hints(cls)
        values = {name: _value(hints[name], d[name], where, f"{path}.{name}") for name in extra}
        checks.choice(f"{where}: {path}.weight_format", values["weight_format"], WEIGHT_FORMATS)
        return cls(config, **values)


@dataclass(frozen=True)
class Port:
    """One port of the generated top."""

    name: str
    direction: str = field(metadata={"choices": ("input", "output")})
    width: int


@dataclass(frozen=True)
class Lanes:
    """How a bus's ``tdata`` is cut into lanes (``layout`` and ``value`` are descriptions)."""

    count: int
    bits: int
    layout: str
    value: str


@dataclass(frozen=True)
class Bus:
    """One AXI4-Stream bus: its role, clock and reset, signal names and ``tdata`` layout."""

    role: str = field(metadata={"choices": ("slave", "master")})
    clock: str
    reset: str
    signals: dict[str, str]      #: ``tdata``/``tvalid``/``tready``/``tlast`` -> port name
    tdata_bits: int
    lanes: Lanes


@dataclass(frozen=True)
class Clock:
    """The clock port, its active edge and the buses it clocks."""

    name: str
    edge: str
    buses: tuple[str, ...]


@dataclass(frozen=True)
class Reset:
    """The reset port: its name, the level that resets, and what it does."""

    name: str
    active: str = field(metadata={"choices": ("low", "high")})
    synchronous: bool
    effect: str

    @property
    def active_low(self) -> bool:
        return self.active == "low"


@dataclass(frozen=True)
class Interface:
    """Clock, reset, the buses (:data:`BUSES`, by name) and the sideband outputs."""

    clock: Clock
    reset: Reset
    buses: dict[str, Bus]
    sideband: dict[str, str]

    @classmethod
    def for_config(cls, cfg: ArrayConfig, weight_bits: int, act_lane: int,
                   acc_lane: int) -> Interface:
        """The interface of the generated top of ``cfg`` (``RF8AxiTop``) with these lane widths."""
        clock, reset = cfg.clock_port, cfg.reset
        level = "low" if cfg.reset_active_low else "high"

        def bus(prefix, role, lanes, lane_bits, what):
            return Bus(role, clock, reset,
                       {s: f"{prefix}_{s}" for s in ("tdata", "tvalid", "tready", "tlast")},
                       lanes * lane_bits,
                       Lanes(lanes, lane_bits, f"lane i in tdata[{lane_bits}*i +: {lane_bits}]", what))
        return cls(
            Clock(clock, "rising", BUSES),
            Reset(reset, level, True,
                  f"sampled on the rising edge of {clock}; tready/tvalid driven low from the "
                  f"first cycle {reset} is {level}; no handshake"),
            {"s_axis_w": bus("s_axis_w", "slave", cfg.cols, weight_bits,
                             f"W[k, i]: {cfg.pe_kind.weight_format} code (beat k = weight row k; "
                             f"tlast on beat rows-1)"),
             "s_axis_a": bus("s_axis_a", "slave", cfg.rows, act_lane,
                             f"a[m, i]: two's complement activation in the low {cfg.act_bits} "
                             f"bits of the lane, sign-extended (beat m; tlast on m = M-1)"),
             "m_axis_acc": bus("m_axis_acc", "master", cfg.cols, acc_lane,
                               f"acc[m, i]: two's complement {cfg.acc_bits}-bit sum "
                               f"sign-extended to the lane (tlast on the tile's last row)")},
            {"err_w_tlast": f"sticky until {reset}: a weight tlast on the wrong beat"})


@dataclass(frozen=True)
class Files:
    """The Verilog file the manifest describes (its name, next to the manifest) and its SHA-256."""

    verilog: str
    verilog_sha256: str


@dataclass(frozen=True)
class Manifest:
    """A generated module's manifest (the module docstring lists the sections)."""

    module: str
    generator: Generator
    tools: dict[str, str]
    parameters: Parameters
    ports: tuple[Port, ...]
    interface: Interface
    timing: dict             #: :meth:`rf8hw.arch.Timing.as_dict` (cycle counts and formulas)
    files: Files

    @property
    def config(self) -> ArrayConfig:
        """The array the module implements."""
        return self.parameters.config

    def as_dict(self) -> dict:
        """The JSON object, keys in the generator's order."""
        return _plain(self)

    def dumps(self) -> str:
        """The file's text: :meth:`as_dict` as JSON, indented by 2, with a final newline."""
        return json.dumps(self.as_dict(), indent=2) + "\n"

    @classmethod
    def from_dict(cls, d, where: str = "manifest") -> Manifest:
        """The manifest in the JSON object ``d``; ``where`` names it in errors (``manifest
        PATH``).

        Raises
        ------
        ValueError
            One line: ``<where> is not an rf8hw manifest: ...`` when ``d`` is not an object or
            lacks a section, else ``<where>: <field path> ...`` naming the bad value.
        """
        if not isinstance(d, dict):
            raise ValueError(f"{where} is not an rf8hw manifest (a JSON object is needed, not "
                             f"{_kind(d)})")
        missing = [f.name for f in fields(cls) if f.name not in d]
        if missing:
            raise ValueError(f"{where} is not an rf8hw manifest: it lacks {', '.join(missing)}")
        manifest = _record(cls, d, where, "")
        absent = [b for b in BUSES if b not in manifest.interface.buses]
        if absent:
            raise ValueError(f"{where}: interface.buses lacks {', '.join(absent)}")
        return manifest

    @classmethod
    def read(cls, path) -> Manifest:
        """The manifest in the file ``path``.

        Raises
        ------
        ValueError
            One line naming the file: unreadable (``manifest PATH is unreadable (...)``: missing,
            not UTF-8, not JSON) or not a manifest (:meth:`from_dict`).
        """
        path = Path(path)
        try:
            d = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ValueError(f"manifest {path} is unreadable ({exc})") from None
        return cls.from_dict(d, where=f"manifest {path}")


# --- the one parser: dataclass fields read by their annotations ---------------------------------

def _kind(value) -> str:
    return {dict: "an object", list: "a list", str: "a string"}.get(type(value), type(value).__name__)


def _record(cls, d, where: str, path: str):
    """``cls(**fields)`` from the JSON object ``d`` at ``path`` (``""``: the top level)."""
    if not isinstance(d, dict):
        raise ValueError(f"{where}: {path} must be a JSON object, not {_kind(d)}")
    missing = [f.name for f in fields(cls) if f.name not in d]
    if missing:
        raise ValueError(f"{where}: {path} lacks {', '.join(missing)}")
    hints = get_type_hints(cls)
    values = {}
    for f in fields(cls):
        at = f"{path}.{f.name}" if path else f.name
        values[f.name] = _value(hints[f.name], d[f.name], where, at)
        if "choices" in f.metadata:
            checks.choice(f"{where}: {at}", values[f.name], f.metadata["choices"])
    return cls(**values)


def _value(kind, value, where: str, path: str):
    """``value`` checked against the annotation ``kind`` (``str``, ``int``, ``bool``, ``dict``,
    ``dict[str, X]``, ``tuple[X, ...]`` or a dataclass)."""
    name = f"{where}: {path}"
    origin = get_origin(kind)
    if is_dataclass(kind):
        reader = getattr(kind, "from_dict", None)
        return reader(value, where, path) if reader else _record(kind, value, where, path)
    if origin is tuple:
        if not isinstance(value, list):
            raise ValueError(f"{name} must be a JSON list, not {_kind(value)}")
        return tuple(_value(get_args(kind)[0], v, where, f"{path}[{i}]")
                     for i, v in enumerate(value))
    if kind is dict or origin is dict:
        if not isinstance(value, dict):
            raise ValueError(f"{name} must be a JSON object, not {_kind(value)}")
        if origin is None:
            return value
        return {k: _value(get_args(kind)[1], v, where, f"{path}.{k}") for k, v in value.items()}
    if kind is int:
        return checks.integer(name, value, 0)
    if kind is bool and not isinstance(value, bool):
        raise ValueError(f"{name} must be true or false, not {value!r}")
    if kind is str and not isinstance(value, str):
        raise ValueError(f"{name} must be a string, not {value!r}")
    return value


def _plain(obj):
    """JSON-ready values of ``obj``: dataclasses as objects in field order, tuples as lists."""
    if isinstance(obj, Parameters):
        return obj.as_dict()
    if is_dataclass(obj):
        return {f.name: _plain(getattr(obj, f.name)) for f in fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    return obj
