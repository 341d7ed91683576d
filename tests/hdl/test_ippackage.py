"""IP packaging (rf8hw/hdl/ippackage.py): the IP-XACT component validates against the IEEE 1685-2009
schema (offline) and declares the manifest's ports and buses in Vivado's conventions; the
validator catches a broken file; the FuseSoC core lists and runs its Icarus target."""

import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml

from rf8hw.arch import AccelConfig, ArrayConfig
from rf8hw.hdl import ippackage
from rf8hw.hdl.generate import generate

RTL = Path(__file__).resolve().parents[2] / "rtl"
NS = {"spirit": ippackage.SPIRIT_NS}
S = f"{{{ippackage.SPIRIT_NS}}}"


def _ports(n_bits: dict, prefix: str, sigs: dict) -> list[dict]:
    return [{"name": f"{prefix}_{s}", "direction": d, "width": n_bits.get(s, 1)}
            for s, d in sigs.items()]


def shell_manifest() -> dict:
    """A top with an AXI4 master, an AXI4-Lite slave, an AXI4-Stream pair and an interrupt, as the
    accelerator shell's manifest lists its ports (names only matter)."""
    into, out = "input", "output"
    m_axi = {"awid": out, "awaddr": out, "awlen": out, "awsize": out, "awburst": out,
             "awvalid": out, "awready": into, "wdata": out, "wstrb": out, "wlast": out,
             "wvalid": out, "wready": into, "bid": into, "bresp": into, "bvalid": into,
             "bready": out, "arid": out, "araddr": out, "arlen": out, "arsize": out,
             "arburst": out, "arvalid": out, "arready": into, "rid": into, "rdata": into,
             "rresp": into, "rlast": into, "rvalid": into, "rready": out}
    s_axi = {"awaddr": into, "awvalid": into, "awready": out, "wdata": into, "wstrb": into,
             "wvalid": into, "wready": out, "bresp": out, "bvalid": out, "bready": into,
             "araddr": into, "arvalid": into, "arready": out, "rdata": out, "rresp": out,
             "rvalid": out, "rready": into}
    widths = {"awaddr": 32, "araddr": 32, "wdata": 64, "rdata": 64, "wstrb": 8, "awlen": 8,
              "arlen": 8, "awsize": 3, "arsize": 3, "awburst": 2, "arburst": 2, "bresp": 2,
              "rresp": 2, "awid": 2, "arid": 2, "bid": 2, "rid": 2}
    lite = dict(widths, awaddr=12, araddr=12, wdata=32, rdata=32, wstrb=4)
    ports = ([{"name": "aclk", "direction": into, "width": 1},
              {"name": "aresetn", "direction": into, "width": 1}]
             + _ports(widths, "m_axi_mem", m_axi) + _ports(lite, "s_axi_ctrl", s_axi)
             + _ports({"tdata": 16}, "m_axis_dbg", {"tdata": out, "tvalid": out, "tready": into})
             + [{"name": "irq", "direction": out, "width": 1},
                {"name": "busy", "direction": out, "width": 1}])
    return {"module": "shell_top", "generator": {"version": "0.2.0", "command":
            "rf8hw generate --shell -o OUT_DIR"}, "ports": ports,
            "files": {"verilog": "shell_top.v"}}


def _bus_interfaces(text: str) -> dict:
    root = ET.fromstring(text)
    out = {}
    for bi in root.iterfind("spirit:busInterfaces/spirit:busInterface", NS):
        bt = bi.find("spirit:busType", NS).attrib
        at = bi.find("spirit:abstractionType", NS).attrib
        mode = next(c.tag.removeprefix(S) for c in bi if c.tag.removeprefix(S) in ("slave", "master"))
        out[bi.findtext("spirit:name", namespaces=NS)] = {
            "bus": ":".join(bt[S + k] for k in ("vendor", "library", "name", "version")),
            "abstraction": at[S + "name"], "mode": mode,
            "map": {pm.findtext("spirit:logicalPort/spirit:name", namespaces=NS):
                    pm.findtext("spirit:physicalPort/spirit:name", namespaces=NS)
                    for pm in bi.iterfind("spirit:portMaps/spirit:portMap", NS)},
            "params": {p.findtext("spirit:name", namespaces=NS): p.findtext("spirit:value", namespaces=NS)
                       for p in bi.iterfind("spirit:parameters/spirit:parameter", NS)}}
    return out


def _model_ports(text: str) -> dict:
    root = ET.fromstring(text)
    out = {}
    for p in root.iterfind("spirit:model/spirit:ports/spirit:port", NS):
        left = p.findtext("spirit:wire/spirit:vector/spirit:left", namespaces=NS)
        out[p.findtext("spirit:name", namespaces=NS)] = (
            {"in": "input", "out": "output"}[p.findtext("spirit:wire/spirit:direction", namespaces=NS)],
            1 if left is None else int(left) + 1)
    return out


def _check_against_manifest(text: str, manifest: dict) -> dict:
    ippackage.validate_component(text)
    assert _model_ports(text) == {p["name"]: (p["direction"], p["width"]) for p in manifest["ports"]}
    root = ET.fromstring(text)
    files = {f.text for f in root.iterfind("spirit:fileSets/spirit:fileSet/spirit:file/spirit:name", NS)}
    assert files == {f"../{manifest['files']['verilog']}"}
    return _bus_interfaces(text)


@pytest.mark.parametrize("name", sorted(p.stem for p in RTL.glob("*.json")))
def test_component_of_every_committed_array_validates_and_maps_its_buses(name):
    manifest = json.loads((RTL / f"{name}.json").read_text())
    bis = _check_against_manifest(ippackage.component_text(manifest), manifest)
    axis = "xilinx.com:interface:axis:1.0"
    assert {k: (v["bus"], v["abstraction"], v["mode"]) for k, v in bis.items()} == {
        "s_axis_w": (axis, "axis_rtl", "slave"), "s_axis_a": (axis, "axis_rtl", "slave"),
        "m_axis_acc": (axis, "axis_rtl", "master"),
        "aresetn": ("xilinx.com:signal:reset:1.0", "reset_rtl", "slave"),
        "aclk": ("xilinx.com:signal:clock:1.0", "clock_rtl", "slave")}
    assert bis["m_axis_acc"]["map"] == {s: f"m_axis_acc_{s.lower()}"
                                        for s in ("TDATA", "TVALID", "TREADY", "TLAST")}
    assert bis["aclk"]["params"] == {"ASSOCIATED_BUSIF": "s_axis_w:s_axis_a:m_axis_acc",
                                     "ASSOCIATED_RESET": "aresetn"}
    assert bis["aresetn"]["params"] == {"POLARITY": "ACTIVE_LOW"}


@pytest.mark.parametrize("name", sorted(p.stem for p in RTL.glob("*.json")))
def test_committed_ip_files_have_no_drift(name):
    """rtl/'s <module>.core and <module>_ip/component.xml are what generate writes for its manifest
    (regenerate with the commands in rtl/README.md)."""
    manifest = json.loads((RTL / f"{name}.json").read_text())
    for path, text in ippackage.ip_files(manifest, RTL).items():
        assert path.read_text() == text, f"{path.relative_to(RTL.parent)} drifted; regenerate rtl/"
        assert "GENERATED by rf8hw" in text.splitlines()[1]


def test_generate_writes_core_and_component_for_array_and_accelerator(tmp_path):
    """Every component generate writes (an active-high reset array, an accelerator) validates."""
    from rf8hw.hdl.accel_generate import generate_accel

    written = [generate(ArrayConfig(1, 2, reset="rst"), tmp_path),
               generate_accel(AccelConfig(ArrayConfig(2, 3), max_m=4, max_k=6), tmp_path)]
    for v, j in written:
        manifest = json.loads(j.read_text())
        core, component = ippackage.ip_paths(tmp_path, manifest["module"])
        assert component.parent.name == f"{manifest['module']}_ip"
        bis = _check_against_manifest(component.read_text(), manifest)
        reset = "rst" if manifest["module"].endswith("_rst") else "aresetn"
        assert bis[reset]["params"]["POLARITY"] == ("ACTIVE_HIGH" if reset == "rst" else "ACTIVE_LOW")
        spec = yaml.safe_load(core.read_text())
        assert core.read_text().startswith("CAPI=2:\n# GENERATED by rf8hw ")
        assert spec["name"] == f"rf8hw:rf8hw:{manifest['module']}:{manifest['generator']['version']}"
        assert spec["filesets"]["rtl"]["files"] == [v.name]
        assert set(spec["targets"]) == {"default", "sim", "lint"}
        assert spec["targets"]["sim"]["toplevel"] == f"tb_{manifest['module']}"
        assert spec["targets"]["lint"]["flow_options"]["tool"] == "verilator"
    accel = _bus_interfaces(ippackage.ip_paths(tmp_path, written[1][0].stem)[1].read_text())
    assert {k for k, v in accel.items() if v["abstraction"] == "axis_rtl"} == {
        "s_axis_cmd", "s_axis_w", "s_axis_a", "s_axis_p", "m_axis_out"}
    assert accel["aclk"]["params"]["ASSOCIATED_BUSIF"].split(":") == [
        "s_axis_cmd", "s_axis_w", "s_axis_a", "s_axis_p", "m_axis_out"]


def test_shell_like_top_gets_aximm_memory_map_address_space_and_interrupt():
    manifest = shell_manifest()
    text = ippackage.component_text(manifest)
    bis = _check_against_manifest(text, manifest)
    aximm = "xilinx.com:interface:aximm:1.0"
    assert (bis["m_axi_mem"]["bus"], bis["m_axi_mem"]["mode"]) == (aximm, "master")
    assert (bis["s_axi_ctrl"]["bus"], bis["s_axi_ctrl"]["mode"]) == (aximm, "slave")
    assert bis["m_axi_mem"]["params"] == {"PROTOCOL": "AXI4"}
    assert bis["s_axi_ctrl"]["params"] == {"PROTOCOL": "AXI4LITE"}
    assert bis["m_axi_mem"]["map"]["AWADDR"] == "m_axi_mem_awaddr"
    assert len(bis["s_axi_ctrl"]["map"]) == 17
    assert (bis["irq"]["bus"], bis["irq"]["mode"], bis["irq"]["params"]) == (
        "xilinx.com:signal:interrupt:1.0", "master", {"SENSITIVITY": "LEVEL_HIGH"})
    assert bis["aclk"]["params"]["ASSOCIATED_BUSIF"] == "m_axi_mem:s_axi_ctrl:m_axis_dbg"
    root = ET.fromstring(text)
    mm = root.find("spirit:memoryMaps/spirit:memoryMap", NS)
    assert mm.findtext("spirit:name", namespaces=NS) == "s_axi_ctrl"
    assert mm.findtext("spirit:addressBlock/spirit:range", namespaces=NS) == str(1 << 12)
    assert mm.findtext("spirit:addressBlock/spirit:width", namespaces=NS) == "32"
    ref = root.find("spirit:busInterfaces/spirit:busInterface/spirit:slave/spirit:memoryMapRef", NS)
    assert ref.attrib[S + "memoryMapRef"] == "s_axi_ctrl"
    space = root.find("spirit:addressSpaces/spirit:addressSpace", NS)
    assert (space.findtext("spirit:name", namespaces=NS), space.findtext("spirit:range", namespaces=NS),
            space.findtext("spirit:width", namespaces=NS)) == ("m_axi_mem", str(1 << 32), "64")
    core = yaml.safe_load(ippackage.core_text(manifest))       # only the AXI4-Stream bus has vectors
    assert [f for f in core["filesets"]["tb"]["files"] if "hex" in str(f)] == [
        {"tb_shell_top/tb_shell_top_m_axis_dbg.hex": {"file_type": "user",
                                                      "copyto": "tb_shell_top_m_axis_dbg.hex"}}]


@pytest.mark.parametrize("break_it, reason", [
    (lambda t: t.replace("<spirit:direction>in</spirit:direction>",
                         "<spirit:direction>sideways</spirit:direction>", 1),
     "value must be one of ['in', 'out', 'inout', 'phantom']"),
    (lambda t: t.replace("  <spirit:version>0.2</spirit:version>\n", "", 1), "version"),
    (lambda t: t.replace('<spirit:left spirit:format="long">', "<spirit:left>x", 1), "left"),
    (lambda t: t.replace("</spirit:component>", "", 1), "component.xml is not IEEE 1685-2009"),
])
def test_the_validator_catches_a_broken_component(break_it, reason):
    text = ippackage.component_text(json.loads((RTL / "rf8_pipe_array_4x4_a8_acc40_wrap.json").read_text()))
    ippackage.validate_component(text)
    bad = break_it(text)
    assert bad != text
    with pytest.raises(ValueError, match="^component.xml is not IEEE 1685-2009: ") as info:
        ippackage.validate_component(bad)
    assert reason in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize("edit, needle", [
    (lambda m: m["ports"].append({"name": "s_axis_w_tfoo", "direction": "input", "width": 1}),
     "port 's_axis_w_tfoo' starts with 's_axis_' but is not <bus>_<signal>"),
    (lambda m: m["ports"].append({"name": "s_axis_w_tdata", "direction": "input", "width": 1}),
     "port 's_axis_w_tdata' repeats a signal of bus s_axis_w"),
    (lambda m: m.update(ports=[p for p in m["ports"] if p["name"] != "aclk"]),
     "ports must hold one clock (aclk or clk) and one reset"),
])
def test_ports_that_fit_no_bus_are_refused(edit, needle):
    manifest = json.loads((RTL / "rf8_pipe_array_4x4_a8_acc40_wrap.json").read_text())
    edit(manifest)
    with pytest.raises(ValueError, match=needle.replace("(", r"\(").replace(")", r"\)")):
        ippackage.component_text(manifest)


def fusesoc_env(tmp_path: Path) -> dict:
    """No user configuration, no library to sync: FuseSoC sees only --cores-root."""
    from rf8hw.toolchain.tools import verilator_env

    env = verilator_env()
    for var in ("XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_CACHE_HOME"):
        env[var] = str(tmp_path / var.lower())
    return env


def fusesoc(tmp_path: Path, *args) -> subprocess.CompletedProcess:
    conf = tmp_path / "fusesoc.conf"
    conf.write_text("[main]\n")
    exe = Path(sys.executable).parent / "fusesoc"          # the venv's, next to its Python
    return subprocess.run([str(exe), "--config", str(conf), *args], capture_output=True, text=True,
                          env=fusesoc_env(tmp_path), cwd=tmp_path, timeout=300, check=False)


@pytest.mark.slow
def test_fusesoc_lists_the_core_and_runs_its_icarus_and_lint_targets(tmp_path):
    from rf8hw.sim.export_tb import export_tb

    cores = tmp_path / "cores"
    v, j = generate(ArrayConfig(2, 2), cores)
    export_tb(v, tiles=3, stall_prob=0.25)
    vlnv = f"rf8hw:rf8hw:{v.stem}:{json.loads(j.read_text())['generator']['version']}"
    listed = fusesoc(tmp_path, "--cores-root", str(cores), "core", "list")
    assert listed.returncode == 0, listed.stderr
    assert vlnv in listed.stdout
    sim = fusesoc(tmp_path, "--cores-root", str(cores), "run", "--target", "sim",
                  "--work-root", str(tmp_path / "build_sim"), vlnv)
    assert sim.returncode == 0, sim.stdout + sim.stderr
    assert f"PASS: 6 beats equal the golden model ({v.stem}, seed 1" in sim.stdout
    lint = fusesoc(tmp_path, "--cores-root", str(cores), "run", "--target", "lint",
                   "--work-root", str(tmp_path / "build_lint"), vlnv)
    assert lint.returncode == 0, lint.stdout + lint.stderr
    assert "--lint-only" in (tmp_path / "build_lint" / f"{vlnv.replace(':', '_')}.vc").read_text()
    # a corrupted expected vector makes the FuseSoC run fail
    hexfile = next((cores / f"tb_{v.stem}").glob("*_m_axis_acc.hex"))
    lines = hexfile.read_text().splitlines()
    lines[0] = lines[0][:-1] + ("0" if lines[0][-1] != "0" else "1")
    hexfile.write_text("\n".join(lines) + "\n")
    bad = fusesoc(tmp_path, "--cores-root", str(cores), "run", "--target", "sim",
                  "--work-root", str(tmp_path / "build_bad"), vlnv)
    assert bad.returncode != 0 and "FAIL 1 mismatches" in bad.stdout + bad.stderr
