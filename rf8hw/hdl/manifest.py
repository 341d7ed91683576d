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

The parser also checks that the sections agree with each other (:meth:`Manifest.from_dict`): the
module name, the derived ``parameters`` (lane widths, weight format, product latency), the ports
and the interface must be the ones its :class:`~rf8hw.arch.ArrayConfig` gives, so a hand-edited
field (``act_bits`` 8 -> 4) is named instead of being believed.  Whether the Verilog file itself
declares those ports is :func:`rf8hw.sim.rtl.load_rtl`'s check (:meth:`Manifest.expected_ports`).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import get_args, get_origin, get_type_hints

from rf8hw import checks
from rf8hw.arch import DEFAULT_RESET, PE_KINDS, WEIGHT_FORMATS, ArrayConfig
from rf8hw.format import spec

__all__ = ["BUSES", "Generator", "Parameters", "Port", "Lanes", "Bus", "Clock", "Reset",
           "Interface", "Files", "Manifest", "module_fields"]

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
        _check_consistent(manifest, where)
        return manifest

    def expected_ports(self) -> dict[str, tuple[str, int, str]]:
        """Port name -> (direction, width, why) of the top module that this manifest's parameters
        give (``why`` says where the width comes from, e.g. ``rows=4 x act_lane_bits=8``)."""
        cfg, p = self.config, self.parameters
        ports = {cfg.clock_port: ("input", 1, f"reset={cfg.reset!r}"),
                 cfg.reset: ("input", 1, f"reset={cfg.reset!r}")}
        widths = {"s_axis_w": (cfg.cols * p.weight_bits,
                               f"cols={cfg.cols} x weight_bits={p.weight_bits} of pe {cfg.pe!r}"),
                  "s_axis_a": (cfg.rows * p.act_lane_bits,
                               f"rows={cfg.rows} x act_lane_bits={p.act_lane_bits} for "
                               f"act_bits={cfg.act_bits}"),
                  "m_axis_acc": (cfg.cols * p.acc_lane_bits,
                                 f"cols={cfg.cols} x acc_lane_bits={p.acc_lane_bits} for "
                                 f"acc_bits={cfg.acc_bits}")}
        for bus in BUSES:
            into, out = ("input", "output") if bus.startswith("s_") else ("output", "input")
            ports[f"{bus}_tdata"] = (into, *widths[bus])
            ports[f"{bus}_tvalid"] = (into, 1, "a valid flag")
            ports[f"{bus}_tready"] = (out, 1, "a ready flag")
            ports[f"{bus}_tlast"] = (into, 1, "a last flag")
        ports["err_w_tlast"] = ("output", 1, "the sideband flag")
        return ports

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
        if path.exists() and not path.is_file():      # a FIFO would block the read forever
            raise ValueError(f"manifest {path} is unreadable (not a regular file)")
        try:
            d = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ValueError(f"manifest {path} is unreadable ({exc})") from None
        return cls.from_dict(d, where=f"manifest {path}")


# --- the sections must agree with the parameters --------------------------------------------------

#: ``<pe>_array_<rows>x<cols>_a<act_bits>_acc<acc_bits>_<overflow>[_<reset>]``
#: (:attr:`rf8hw.arch.ArrayConfig.module_name`).
_MODULE_NAME = re.compile(r"(?P<pe>\w+?)_array_(?P<rows>\d+)x(?P<cols>\d+)_a(?P<act_bits>\d+)"
                          r"_acc(?P<acc_bits>\d+)_(?P<overflow>[a-z]+?)(?:_(?P<reset>[a-z]+))?")


def module_fields(module: str) -> dict | None:
    """The :class:`~rf8hw.arch.ArrayConfig` fields (as text) that a generated module's name
    spells (:attr:`~rf8hw.arch.ArrayConfig.module_name`), or None for another name."""
    match = _MODULE_NAME.fullmatch(module)
    if match is None:
        return None
    out = match.groupdict()
    if out["reset"] is None:
        out["reset"] = DEFAULT_RESET
    return out


def _lane_bits(bits: int) -> int:
    """Width of one ``tdata`` lane of a ``bits``-wide value: the next multiple of 8
    (:func:`rf8hw.hdl.axi.lane_bits`, which this module may not import: it loads Amaranth)."""
    return -(-bits // 8) * 8


def _check_consistent(m: Manifest, where: str) -> None:
    """``ValueError`` naming the first field of ``m`` that its parameters contradict."""
    cfg, p = m.config, m.parameters
    if m.module != cfg.module_name:
        spelled = module_fields(m.module)
        given = {k: str(v) for k, v in cfg.as_dict().items()}
        differ = [] if spelled is None else [k for k in given if spelled[k] != given[k]]
        if not differ:
            raise ValueError(f"{where}: module {m.module!r} is not the module of its parameters "
                             f"({cfg.module_name!r}); a generated module's name spells them")
        raise ValueError(f"{where}: " + "; ".join(
            f"parameters.{k} is {getattr(cfg, k)!r}" for k in differ) + f", but its module "
            f"{m.module!r} was generated with " + ", ".join(f"{k}={spelled[k]}" for k in differ)
            + " (a hand-edited manifest? regenerate it with rf8hw generate)")
    kind = PE_KINDS[cfg.pe]
    derived = {"weight_format": kind.weight_format, "product_latency": kind.product_latency,
               "min_acc_bits": spec.min_acc_bits(cfg.act_bits),
               "act_lane_bits": _lane_bits(cfg.act_bits), "acc_lane_bits": _lane_bits(cfg.acc_bits)}
    for name, want in derived.items():
        if getattr(p, name) != want:
            raise ValueError(f"{where}: parameters.{name} is {getattr(p, name)!r}, but "
                             f"{cfg.module_name} has {want!r}")
    ports = {port.name: (port.direction, port.width) for port in m.ports}
    expected = m.expected_ports()
    for name, (direction, width, why) in expected.items():
        if name not in ports:
            raise ValueError(f"{where}: ports lack {name!r}, a port of {cfg.module_name}")
        if ports[name] != (direction, width):
            raise ValueError(f"{where}: ports: {name} is {ports[name][0]} {ports[name][1]} bits, "
                             f"but its parameters give {direction} {width} bits ({why})")
    extra = [name for name in ports if name not in expected]
    if extra:
        raise ValueError(f"{where}: ports: {', '.join(extra)} is not a port of {cfg.module_name}")
    want = Interface.for_config(cfg, p.weight_bits, p.act_lane_bits, p.acc_lane_bits)
    difference = _differ(_plain(want), _plain(m.interface), "interface",
                         skip=("effect", "layout", "value"))
    if difference:
        path, have, need = difference
        raise ValueError(f"{where}: {path} is {have!r}, but its parameters give {need!r}")


def _differ(want, have, path: str, skip=()):
    """The first ``(path, have, want)`` where the JSON values differ (keys in ``skip``, which are
    descriptions, are not compared), or None."""
    if isinstance(want, dict) and isinstance(have, dict):
        for key in want:
            if key in skip:
                continue
            if key not in have:
                return f"{path}.{key}", None, want[key]
            found = _differ(want[key], have[key], f"{path}.{key}", skip)
            if found:
                return found
        return None
    if isinstance(want, list) and isinstance(have, list) and len(want) == len(have):
        for i, (a, b) in enumerate(zip(want, have)):
            found = _differ(a, b, f"{path}[{i}]", skip)
            if found:
                return found
        return None
    return None if want == have else (path, have, want)


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
