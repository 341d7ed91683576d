"""Verilog generation: rtl/ drift, manifest, parameter errors, CLI, and the two Verilog front ends."""

import hashlib
import json
import re
import shutil
from pathlib import Path

import pytest

from rf8hw.arch import PE_KINDS, ArrayConfig
from rf8hw.cli import main
from rf8hw.hdl.generate import generate, regenerate_command, render, verilog_tool_versions
from rf8hw.hdl.ippackage import ip_paths
from rf8hw.hdl.manifest import Manifest
from rf8hw.toolchain import tools

RTL = Path(__file__).resolve().parents[2] / "rtl"
RTL_SIZES = [4, 8, 16]


def rtl_command(size: int) -> str:
    return (f"rf8hw generate --rows {size} --cols {size} --act-bits 8 --acc-bits 40 "
            "--overflow wrap --pe rf8_pipe --reset aresetn -o OUT_DIR")


@pytest.mark.parametrize("size", [pytest.param(n, id=f"{n}x{n}", marks=[pytest.mark.slow] if n > 8 else [])
                                  for n in RTL_SIZES])
def test_rtl_has_no_drift(size, tmp_path):
    """Regenerating rtl/ (same configuration, into a scratch dir) gives the same bytes."""
    cfg = ArrayConfig(size, size)
    name = cfg.module_name
    committed = json.loads((RTL / f"{name}.json").read_text())
    versions = verilog_tool_versions()
    assert committed["tools"] == versions, (
        f"rtl/{name} was generated with {committed['tools']}, this environment has {versions}; "
        "install the pinned versions from pyproject.toml or regenerate rtl/ (rtl/README.md)")
    v_path, j_path = generate(cfg, out_dir=tmp_path / "scratch")
    for fresh in (v_path, j_path):
        old = (RTL / fresh.name).read_bytes()
        assert fresh.read_bytes() == old, f"rtl/{fresh.name} drifted; regenerate it (rtl/README.md)"


@pytest.mark.parametrize("size", RTL_SIZES, ids=[f"{n}x{n}" for n in RTL_SIZES])
def test_manifest_type_round_trips_the_committed_files(size):
    """The one parser (rf8hw.hdl.manifest) reads every committed manifest and gives its JSON
    back key for key, in order (the writer builds the file from the same type)."""
    path = RTL / f"{ArrayConfig(size, size).module_name}.json"
    manifest = Manifest.read(path)
    assert manifest.config == ArrayConfig(size, size)
    assert manifest.as_dict() == json.loads(path.read_text())
    assert manifest.dumps() == path.read_text()
    assert manifest.interface.reset.active_low and manifest.interface.clock.name == "aclk"
    assert manifest.files.verilog == path.with_suffix(".v").name


@pytest.mark.parametrize("change, message", [
    (lambda m: [m], r"^manifest m\.json is not an rf8hw manifest \(a JSON object is needed, not a list\)$"),
    (lambda m: m.pop("interface"), r"^manifest m\.json is not an rf8hw manifest: it lacks interface$"),
    (lambda m: m["interface"]["reset"].update(active="x"),
     r"^manifest m\.json: interface\.reset\.active must be one of 'low', 'high', not 'x'$"),
    (lambda m: m["parameters"].update(rows=0),
     r"^manifest m\.json: parameters: rows must be an integer in 1\.\.64, not 0$"),
    (lambda m: m["parameters"].pop("acc_lane_bits"), r"^manifest m\.json: parameters lack acc_lane_bits "),
    (lambda m: m["ports"][1].update(width="1"), r"^manifest m\.json: ports\[1\]\.width must be an integer"),
    (lambda m: m["interface"]["buses"].pop("m_axis_acc"),
     r"^manifest m\.json: interface\.buses lacks m_axis_acc$"),
    # the sections must agree with the parameters (issue 26: a hand-edited act_bits was believed)
    (lambda m: m["parameters"].update(act_bits=4),
     r"^manifest m\.json: parameters\.act_bits is 4, but its module 'rf8_pipe_array_4x4_a8_acc40_wrap' "
     r"was generated with act_bits=8 \(a hand-edited manifest\? regenerate it with rf8hw generate\)$"),
    (lambda m: m["parameters"].update(rows=2, cols=3),
     r"^manifest m\.json: parameters\.rows is 2; parameters\.cols is 3, but its module '.*' was "
     r"generated with rows=4, cols=4 "),
    (lambda m: m.update(module="top"),
     r"^manifest m\.json: module 'top' is not the module of its parameters "
     r"\('rf8_pipe_array_4x4_a8_acc40_wrap'\); a generated module's name spells them$"),
    (lambda m: m["parameters"].update(product_latency=1),
     r"^manifest m\.json: parameters\.product_latency is 1, but rf8_pipe_array_4x4_a8_acc40_wrap has 2$"),
    (lambda m: m["parameters"].update(weight_bits=4),
     r"^manifest m\.json: ports: s_axis_w_tdata is input 32 bits, but its parameters give input 16 "
     r"bits \(cols=4 x weight_bits=4 of pe 'rf8_pipe'\)$"),
    (lambda m: m["ports"].pop(),
     r"^manifest m\.json: ports lack 'err_w_tlast', a port of rf8_pipe_array_4x4_a8_acc40_wrap$"),
    (lambda m: m["ports"].append({"name": "dbg", "direction": "output", "width": 1}),
     r"^manifest m\.json: ports: dbg is not a port of rf8_pipe_array_4x4_a8_acc40_wrap$"),
    (lambda m: m["interface"]["buses"]["s_axis_a"]["lanes"].update(bits=16),
     r"^manifest m\.json: interface\.buses\.s_axis_a\.lanes\.bits is 16, but its parameters "
     r"give 8$"),
    (lambda m: m["interface"]["clock"].update(name="clk"),
     r"^manifest m\.json: interface\.clock\.name is 'clk', but its parameters give 'aclk'$"),
])
def test_manifest_parser_names_the_bad_field(change, message):
    import copy

    d = copy.deepcopy(json.loads((RTL / f"{ArrayConfig(4, 4).module_name}.json").read_text()))
    changed = change(d)
    d = changed if isinstance(changed, list) else d          # the others change d in place
    with pytest.raises(ValueError, match=message):
        Manifest.from_dict(d, where="manifest m.json")


def test_rtl_files_carry_regenerate_header():
    for size in RTL_SIZES:
        cfg = ArrayConfig(size, size)
        name = cfg.module_name
        assert name == f"rf8_pipe_array_{size}x{size}_a8_acc40_wrap"     # the default PE kind
        head = (RTL / f"{name}.v").read_text().splitlines()[:4]
        command = rtl_command(size)
        assert regenerate_command(cfg) == command
        assert head[0].startswith("// GENERATED by rf8hw ") and "Do not edit" in head[0]
        assert head[2] == f"// Regenerate: {command}"
        assert json.loads((RTL / f"{name}.json").read_text())["generator"]["command"] == command


def test_output_folder_does_not_change_the_files(tmp_path, monkeypatch):
    """The same design generated into two different folders (one relative, one absolute and
    nested) gives identical bytes, equal to what render() returns without writing anything."""
    cfg = ArrayConfig(2, 3, act_bits=4, acc_bits=30, overflow="saturate")
    monkeypatch.chdir(tmp_path)
    first = generate(cfg, out_dir="rtl")
    second = generate(cfg, out_dir=tmp_path / "some" / "other place")
    assert [p.name for p in first] == [p.name for p in second] == [
        "rf8_pipe_array_2x3_a4_acc30_saturate.v", "rf8_pipe_array_2x3_a4_acc30_saturate.json"]
    assert first[0].parent != second[0].parent
    for a, b in zip(first, second):
        assert a.read_bytes() == b.read_bytes(), a.name
    text, manifest = render(cfg)
    assert first[0].read_text() == text
    assert first[1].read_text() == manifest.dumps()
    assert json.loads(first[1].read_text()) == manifest.as_dict()
    for path in first:
        assert "other place" not in path.read_text() and str(tmp_path) not in path.read_text()


def verilog_ports(text: str, module: str) -> dict:
    """{name: (direction, width)} from the port declarations of ``module`` in Yosys output."""
    body = text[text.index(f"module {module}("):]
    body = body[:body.index("endmodule")]
    ports = {}
    for direction, msb, name in re.findall(r"^\s*(input|output)\s+(?:\[(\d+):0\]\s+)?(\w+);",
                                           body, flags=re.MULTILINE):
        ports[name] = (direction, int(msb) + 1 if msb else 1)
    return ports


def test_manifest_matches_verilog_ports_and_timing(tmp_path):
    cfg = ArrayConfig(3, 5, act_bits=4, acc_bits=30, overflow="saturate")
    v_path, j_path = generate(cfg, out_dir=tmp_path)
    name = "rf8_pipe_array_3x5_a4_acc30_saturate"
    assert cfg.module_name == name
    assert v_path == tmp_path / f"{name}.v" and j_path == tmp_path / f"{name}.json"
    manifest = json.loads(j_path.read_text())
    ports = {p["name"]: (p["direction"], p["width"]) for p in manifest["ports"]}
    assert ports == verilog_ports(v_path.read_text(), name)
    assert ports["s_axis_w_tdata"] == ("input", 8 * 5)
    assert ports["s_axis_a_tdata"] == ("input", 8 * 3)      # 4-bit activations in byte lanes
    assert ports["m_axis_acc_tdata"] == ("output", 32 * 5)  # 30-bit sums in 32-bit lanes
    assert manifest["parameters"] == {"rows": 3, "cols": 5, "act_bits": 4, "acc_bits": 30,
                                      "overflow": "saturate", "pe": "rf8_pipe",
                                      "reset": "aresetn", "pe_class": "RF8PipePE",
                                      "weight_format": "rf8", "weight_bits": 8,
                                      "product_latency": 2, "min_acc_bits": 23,
                                      "act_lane_bits": 8, "acc_lane_bits": 32}
    assert ArrayConfig.from_dict(manifest["parameters"]) == cfg
    assert manifest["module"] == name
    assert manifest["generator"]["command"] == (
        "rf8hw generate --rows 3 --cols 5 --act-bits 4 --acc-bits 30 --overflow saturate "
        "--pe rf8_pipe --reset aresetn -o OUT_DIR")
    timing = manifest["timing"]
    assert (timing["weight_load_cycles"], timing["latency_cycles"], timing["switch_cycles"]) == (3, 10, 1)
    # AXI clock and reset: aclk, synchronous active-low aresetn, named by every bus
    assert ports["aclk"] == ports["aresetn"] == ("input", 1) and "clk" not in ports
    interface = manifest["interface"]
    assert interface["clock"] == {"name": "aclk", "edge": "rising",
                                  "buses": ["s_axis_w", "s_axis_a", "m_axis_acc"]}
    assert {k: interface["reset"][k] for k in ("name", "active", "synchronous")} == {
        "name": "aresetn", "active": "low", "synchronous": True}
    assert {(b["clock"], b["reset"]) for b in interface["buses"].values()} == {("aclk", "aresetn")}
    assert manifest["files"]["verilog_sha256"] == hashlib.sha256(v_path.read_bytes()).hexdigest()


@pytest.mark.parametrize("kwargs, message", [
    ({"rows": 0}, r"^rows must be an integer in 1\.\.64, not 0$"),
    ({"cols": 100}, r"^cols must be an integer in 1\.\.64, not 100$"),
    ({"act_bits": 17}, r"^act_bits must be an integer in 2\.\.16, not 17$"),
    ({"acc_bits": 26}, r"^acc_bits must be an integer in 27\.\.64 for act_bits=8 \(the largest "
                       r"single product needs 27 bits\), not 26$"),
    ({"acc_bits": 65}, r"^acc_bits must be an integer in 27\.\.64 .*not 65$"),
    ({"act_bits": 16, "acc_bits": 34}, r"^acc_bits must be an integer in 35\.\.64 for act_bits=16"),
    ({"overflow": "clip"}, r"^overflow must be one of 'wrap', 'saturate', not 'clip'$"),
    ({"pe": "int4"}, "^pe must be one of " + re.escape(", ".join(map(repr, PE_KINDS)))
                     + ", not 'int4'$"),
])
def test_generate_rejects_bad_parameters_before_writing(kwargs, message, tmp_path):
    """ArrayConfig refuses them, so nothing is built or written."""
    params = {"rows": 4, "cols": 4, **kwargs}
    out = tmp_path / "out"
    with pytest.raises(ValueError, match=message):
        generate(ArrayConfig(**params), out_dir=out)
    assert not out.exists()


def test_generate_takes_only_an_array_config(tmp_path):
    out = tmp_path / "out"
    with pytest.raises(TypeError, match=r"^cfg must be an ArrayConfig, not 4$"):
        generate(4, out_dir=out)
    assert not out.exists()


def test_generate_rejects_a_file_as_output_directory(tmp_path):
    target = tmp_path / "taken"
    target.write_text("not a directory")
    with pytest.raises(ValueError, match=r"^out_dir '.*taken' exists and is not a directory$"):
        generate(ArrayConfig(2, 2), out_dir=target)
    assert target.read_text() == "not a directory"


def test_cli_generate(tmp_path, capsys):
    out = tmp_path / "gen"
    assert main(["generate", "--rows", "2", "--cols", "3", "-o", str(out)]) == 0
    printed = capsys.readouterr().out.split()
    assert printed == [str(out / "rf8_pipe_array_2x3_a8_acc40_wrap.v"),
                       str(out / "rf8_pipe_array_2x3_a8_acc40_wrap.json"),
                       *map(str, ip_paths(out, "rf8_pipe_array_2x3_a8_acc40_wrap"))]
    assert (out / "rf8_pipe_array_2x3_a8_acc40_wrap.v").read_text().splitlines()[2] == (
        "// Regenerate: rf8hw generate --rows 2 --cols 3 --act-bits 8 --acc-bits 40 "
        "--overflow wrap --pe rf8_pipe --reset aresetn -o OUT_DIR")
    # regenerating the same design over its own unedited files is silent and succeeds
    assert main(["generate", "--rows", "2", "--cols", "3", "-o", str(out)]) == 0
    assert capsys.readouterr().err == ""
    # ... but an edited file is not overwritten: one line naming it, exit status 2
    v = out / "rf8_pipe_array_2x3_a8_acc40_wrap.v"
    v.write_text(v.read_text() + "// my change\n")
    assert main(["generate", "--rows", "2", "--cols", "3", "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"rf8hw generate: error: {v} exists and was changed") and err.count("\n") == 1
    assert v.read_text().endswith("// my change\n")
    # a value ArrayConfig refuses: its one-line message, exit status 2
    assert main(["generate", "--rows", "0", "--cols", "3", "-o", str(tmp_path / "bad")]) == 2
    err = capsys.readouterr().err
    assert err == "rf8hw generate: error: rows must be an integer in 1..64, not 0\n"
    assert not (tmp_path / "bad").exists()
    # a name outside a field's choices: argparse refuses it (its error line last), status 2
    with pytest.raises(SystemExit) as exit_info:
        main(["generate", "--rows", "2", "--cols", "3", "--overflow", "clip",
              "-o", str(tmp_path / "bad")])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.splitlines()[-1] == ("rf8hw generate: error: argument --overflow: invalid choice: "
                                    "'clip' (choose from 'wrap', 'saturate')")
    assert not (tmp_path / "bad").exists()


def _full_disk(monkeypatch, when):
    """Make ``Path.write_text``/``write_bytes`` raise ``ENOSPC`` for the paths ``when`` picks."""
    import errno

    for name in ("write_text", "write_bytes"):
        real = getattr(Path, name)

        def write(self, data, *args, _real=real, **kwargs):
            if when(self):
                raise OSError(errno.ENOSPC, "No space left on device")
            return _real(self, data, *args, **kwargs)
        monkeypatch.setattr(Path, name, write)


def _tree(folder):
    """Relative path -> bytes of every file below ``folder`` (the IP files are in a subfolder)."""
    return {p.relative_to(folder): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_a_full_disk_leaves_no_half_written_output(tmp_path, monkeypatch, capsys):
    """Issue 26: a full disk during generate gave a traceback and could leave a new .v beside an
    old .json (or an empty folder).  Both files are written as one unit: a failure leaves the old
    files, no temporary and no folder that generate made, and is one line naming the path."""
    import errno

    cfg = ArrayConfig(2, 2)
    old = tmp_path / "old"
    v_old, j_old = generate(cfg, old)
    before = _tree(old)
    _full_disk(monkeypatch, lambda p: p.name.startswith(".") and ".json." in p.name)   # the 2nd file
    with pytest.raises(OSError) as info:
        generate(ArrayConfig(2, 2, acc_bits=27, overflow="saturate"), old)
    assert info.value.errno == errno.ENOSPC and info.value.filename == str(
        old / "rf8_pipe_array_2x2_a8_acc27_saturate.v")
    assert _tree(old) == before      # no temporary either
    with pytest.raises(OSError, match="the files there before are unchanged"):
        generate(cfg, old)                                                  # replacing its own
    assert _tree(old) == before

    new = tmp_path / "new" / "sub"
    assert main(["generate", "--rows", "2", "--cols", "2", "-o", str(new)]) == 2
    err = capsys.readouterr().err
    assert err == (f"rf8hw generate: error: No space left on device; {cfg.module_name}.v and "
                   f"{cfg.module_name}.json were not written (nothing was left there): "
                   f"{new / cfg.module_name}.v\n")
    assert not (tmp_path / "new").exists()


def test_a_directory_in_the_way_and_ctrl_c_are_one_line(tmp_path, capsys, monkeypatch):
    """A <module>.json that is a directory used to be found only after the .v was written; Ctrl-C
    during the conversion printed the conversion's traceback."""
    cfg = ArrayConfig(1, 2)
    (tmp_path / f"{cfg.module_name}.json").mkdir()
    assert main(["generate", "--rows", "1", "--cols", "2", "-o", str(tmp_path)]) == 2
    assert capsys.readouterr().err == (f"rf8hw generate: error: {tmp_path / cfg.module_name}.json "
                                       f"is a directory, where generate writes a file; move it away\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"{cfg.module_name}.json"]

    def interrupted(cfg):
        raise KeyboardInterrupt
    monkeypatch.setattr("rf8hw.hdl.generate.render", interrupted)
    assert main(["generate", "--rows", "1", "--cols", "2", "-o", str(tmp_path / "x")]) == 130
    assert capsys.readouterr().err == ("rf8hw generate: interrupted (signal 2); no file was "
                                       "half-written (each is written under a temporary name, then "
                                       "renamed)\n")
    assert not (tmp_path / "x").exists()


def test_cli_generate_another_pe_kind(tmp_path, capsys):
    """``--pe int8``: an ``int8_array_...`` module whose manifest names the INT8 PE."""
    out = tmp_path / "gen"
    assert main(["generate", "--rows", "2", "--cols", "3", "--pe", "int8", "-o", str(out)]) == 0
    name = "int8_array_2x3_a8_acc40_wrap"
    assert capsys.readouterr().out.split() == [str(out / f"{name}.v"), str(out / f"{name}.json"),
                                               *map(str, ip_paths(out, name))]
    assert sorted(p.name for p in out.iterdir()) == [f"{name}.core", f"{name}.json", f"{name}.v",
                                                     f"{name}_ip"]
    text = (out / f"{name}.v").read_text()
    head = text.splitlines()
    assert head[1].startswith("// INT8 weight-stationary systolic MAC array: 2 x 3 PEs")
    assert head[2] == ("// Regenerate: rf8hw generate --rows 2 --cols 3 --act-bits 8 --acc-bits 40 "
                       "--overflow wrap --pe int8 --reset aresetn -o OUT_DIR")
    assert f"module {name}(" in text and "module rf8_array" not in text
    manifest = json.loads((out / f"{name}.json").read_text())
    assert manifest["module"] == name
    params = manifest["parameters"]
    assert (params["pe"], params["pe_class"], params["weight_format"]) == ("int8", "Int8PE", "int8")
    assert ArrayConfig.from_dict(params) == ArrayConfig(2, 3, pe="int8")
    assert manifest["generator"]["command"] == head[2][len("// Regenerate: "):]
    ports = {p["name"]: (p["direction"], p["width"]) for p in manifest["ports"]}
    assert ports == verilog_ports(text, name)
    assert manifest["files"]["verilog_sha256"] == hashlib.sha256(text.encode()).hexdigest()


def require_tool(locate):
    try:
        return locate()
    except FileNotFoundError as exc:
        pytest.skip(f"tool not installed here: {exc}")


LINT_CASES = {  # the acceptance case, and a variant exercising the other widths and saturate
    "8x8_default": (["--rows", "8", "--cols", "8"], "rf8_pipe_array_8x8_a8_acc40_wrap"),
    "3x5_a4_acc30_saturate": (["--rows", "3", "--cols", "5", "--act-bits", "4", "--acc-bits", "30",
                               "--overflow", "saturate", "--pe", "rf8"],
                              "rf8_array_3x5_a4_acc30_saturate"),
    "2x3_int8_rst": (["--rows", "2", "--cols", "3", "--pe", "int8", "--reset", "rst"],
                     "int8_array_2x3_a8_acc40_wrap_rst"),
}


@pytest.fixture(scope="module", params=list(LINT_CASES))
def fresh_verilog(request, tmp_path_factory):
    """``rf8hw generate ... -o DIR`` into a fresh directory (the acceptance check)."""
    args, top = LINT_CASES[request.param]
    out = tmp_path_factory.mktemp("gen")
    assert main(["generate", *args, "-o", str(out)]) == 0
    return out / f"{top}.v", top


@pytest.mark.slow
def test_iverilog_accepts_generated_verilog(fresh_verilog, tmp_path):
    require_tool(tools.iverilog_executable)
    path, top = fresh_verilog
    result = tools.lint_iverilog(path, top, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "error" not in (result.stdout + result.stderr).lower()
    assert (tmp_path / f"{top}.vvp").stat().st_size > 0


@pytest.mark.slow
def test_verilator_lint_accepts_generated_verilog(fresh_verilog):
    require_tool(tools.verilator_executable)
    path, top = fresh_verilog
    result = tools.lint_verilator(path, top)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "%Error" not in result.stderr and "%Warning" not in result.stderr


@pytest.mark.slow
def test_linters_reject_broken_verilog(tmp_path):
    """Negative control: both lint helpers report a real error."""
    require_tool(tools.iverilog_executable)
    require_tool(tools.verilator_executable)
    bad = tmp_path / "broken.v"
    bad.write_text("module broken(input a, output b);\n  assign b = a +;\nendmodule\n")
    assert tools.lint_iverilog(bad, "broken", tmp_path).returncode != 0
    assert tools.lint_verilator(bad, "broken").returncode != 0


def test_verilator_env_puts_bundled_binary_first():
    require_tool(tools.verilator_executable)
    env = tools.verilator_env({"PATH": "/usr/bin"})
    first = env["PATH"].split(":")[0]
    assert Path(first) / "verilator" == tools.verilator_executable()
    assert shutil.which("verilator", path=env["PATH"]) == str(tools.verilator_executable())
    assert env["VERILATOR_ROOT"] == str(tools.verilator_root())


EDGE_SHAPES = [(1, 1), (1, 2), (2, 1), (2, 2), (1, 7), (7, 1)]


@pytest.mark.slow
@pytest.mark.parametrize("shape", EDGE_SHAPES, ids=[f"{r}x{c}" for r, c in EDGE_SHAPES])
def test_verilator_lint_wall_accepts_edge_shapes(shape, tmp_path):
    """``rows == 1`` and ``cols <= 2`` once gave zero-width vectors (``w_row``, ``guard_count``)
    that Verilator rejects; with the header's justified waivers even ``-Wall`` is clean."""
    import subprocess

    require_tool(tools.verilator_executable)
    cfg = ArrayConfig(*shape)
    v, _ = generate(cfg, tmp_path)
    assert not re.search(r"\[-1:0\]", v.read_text())
    result = subprocess.run([str(tools.verilator_executable()), "--lint-only", "-Wall",
                             "--top-module", cfg.module_name, str(v)],
                            capture_output=True, text=True, env=tools.verilator_env())
    assert result.returncode == 0, result.stderr
    assert "%Warning" not in result.stderr and "%Error" not in result.stderr


def test_array_clock_enable_is_a_register_in_the_verilog():
    """Registered global control: ``ce`` (the enable of every PE) is a flip-flop of the array
    module (init 1), not a net computed from the FIFO level."""
    text = (RTL / f"{ArrayConfig(4, 4).module_name}.v").read_text()
    assert re.search(r"^  reg ce = 1'h1;$", text, re.M)
    assert re.search(r"^  always @\(posedge array_clk\)\n    ce <= ", text, re.M)
    assert not re.search(r"^  assign ce = ", text, re.M)


def test_active_high_reset_variant_has_its_own_module_name_and_ports(tmp_path):
    """``reset="rst"``: ports clk + active-high rst (the pre-AXI convention), a module name of its
    own (``..._rst``) so both variants can live in one project, and a manifest that says so."""
    default, high = ArrayConfig(2, 3), ArrayConfig(2, 3, reset="rst")
    assert default.module_name == "rf8_pipe_array_2x3_a8_acc40_wrap"
    assert high.module_name == "rf8_pipe_array_2x3_a8_acc40_wrap_rst"
    v_default, _ = generate(default, tmp_path)
    v_path, j_path = generate(high, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        f"{c.module_name}{ext}" for c in (default, high) for ext in (".v", ".json", ".core", "_ip"))
    manifest = json.loads(j_path.read_text())
    ports = {p["name"]: (p["direction"], p["width"]) for p in manifest["ports"]}
    assert ports == verilog_ports(v_path.read_text(), high.module_name)
    assert ports["clk"] == ports["rst"] == ("input", 1)
    assert not {"aclk", "aresetn"} & set(ports)
    assert {"aclk", "aresetn"} <= set(verilog_ports(v_default.read_text(), default.module_name))
    reset = manifest["interface"]["reset"]
    assert (reset["name"], reset["active"], reset["synchronous"]) == ("rst", "high", True)
    assert manifest["interface"]["clock"]["name"] == "clk"
    assert manifest["parameters"]["reset"] == "rst"
    assert ArrayConfig.from_dict(manifest["parameters"]) == high
    assert manifest["generator"]["command"].endswith("--reset rst -o OUT_DIR")
    with pytest.raises(ValueError, match=r"^reset must be one of 'aresetn', 'rst', not 'rstn'$"):
        ArrayConfig(2, 3, reset="rstn")


def test_generate_refuses_to_overwrite_an_edited_file(tmp_path):
    """An edited ``.v`` (its SHA-256 no longer the manifest's) is not overwritten without
    ``overwrite=True``; an unedited one is replaced silently; nothing is written on refusal."""
    cfg = ArrayConfig(2, 2)
    v_path, j_path = generate(cfg, tmp_path)
    fresh, manifest = v_path.read_bytes(), j_path.read_bytes()
    assert generate(cfg, tmp_path) == (v_path, j_path)           # identical: silent
    edited = fresh.replace(b"Do not edit.", b"Edited anyway.")
    assert edited != fresh
    v_path.write_bytes(edited)
    with pytest.raises(ValueError, match=rf"^{re.escape(str(v_path))} exists and was changed since "
                                         r"it was generated .*pass --force \(overwrite=True\)$"):
        generate(cfg, tmp_path)
    assert v_path.read_bytes() == edited and j_path.read_bytes() == manifest
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [v_path.name, j_path.name, *(p.relative_to(tmp_path).parts[0]
                                     for p in ip_paths(tmp_path, cfg.module_name))])
    # a .v with no manifest next to it cannot be checked: refused as well
    j_path.unlink()
    with pytest.raises(ValueError, match=r"has no readable manifest .*\.json to check it against"):
        generate(cfg, tmp_path)
    assert generate(cfg, tmp_path, overwrite=True) == (v_path, j_path)
    assert v_path.read_bytes() == fresh and j_path.read_bytes() == manifest
    # the .v of a run killed between its two renames (new .v, old manifest) is its own output
    j_path.write_text(json.dumps({"files": {"verilog_sha256": "0" * 64}}))
    assert generate(cfg, tmp_path) == (v_path, j_path)
    assert j_path.read_bytes() == manifest


def test_cli_generate_force_overwrites_an_edited_file(tmp_path, capsys):
    from rf8hw import cli

    args = ["generate", "--rows", "1", "--cols", "2", "-o", str(tmp_path)]
    assert cli.main(args) == 0
    v_path = Path(capsys.readouterr().out.splitlines()[0])
    fresh = v_path.read_text()
    v_path.write_text(fresh + "// local edit\n")
    assert cli.main(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "was changed since it was generated" in err and "--force" in err
    assert v_path.read_text().endswith("// local edit\n")
    assert cli.main(args + ["--force"]) == 0
    assert v_path.read_text() == fresh
