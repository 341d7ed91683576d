"""``rf8hw cosim --rtl FILE.v``: co-simulate a given generated file, parameters from its manifest.

One 2x2 array is generated per module and copied into each test's tmp_path; runs use Icarus (a
build takes about a second) and a few tiles.
"""

import json
import re
import shutil

import pytest

from rf8hw import sim
from rf8hw.arch import ArrayConfig
from rf8hw.hdl.generate import generate

CFG = ArrayConfig(rows=2, cols=2)
SUMMARY = re.compile(r"^tiles=(\d+) macs=(\d+) mismatches=(\d+) cycles=(\d+) cycles/s=(\d+)$")

# Row 0 of the array has no partial sum coming in: each row-0 PE adds its product to a constant
# zero, written by Amaranth as "$signed(1'h0) + $signed(<product>)".  Making that zero a one adds
# 1 to every result value: a deterministic, data-independent wrong design.
ROW0_ZERO = "$signed(1'h0) + $signed("
ROW0_ONE = "$signed(2'h1) + $signed("


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    v, j = generate(CFG, tmp_path_factory.mktemp("rtl"))
    return v, j


@pytest.fixture
def rtl(generated, tmp_path):
    """A private copy of the generated .v and .json."""
    v, j = generated
    dst = tmp_path / "rtl"
    dst.mkdir()
    shutil.copy(v, dst / v.name)
    shutil.copy(j, dst / j.name)
    return dst / v.name, dst / j.name


def run_cli(capsys, *args):
    from rf8hw.cli import main

    status = main(["cosim", *args])
    out, err = capsys.readouterr()
    return status, out.strip().splitlines(), err


def cosim_rtl(capsys, v, cache, out, *extra):
    return run_cli(capsys, "--rtl", str(v), "--tiles", "3", "--seed", "2", "--sim", "icarus",
                   "--cache-dir", str(cache), "--out-dir", str(out), *extra)


@pytest.mark.slow
def test_rtl_file_matches_then_a_hand_edited_copy_mismatches(capsys, rtl, cosim_cache, tmp_path):
    v, _ = rtl
    status, lines, err = cosim_rtl(capsys, v, cosim_cache, tmp_path / "run_ok")
    assert status == 0, err
    tiles, macs, mismatches = map(int, SUMMARY.match(lines[-1]).groups()[:3])
    assert (tiles, macs, mismatches) == (3, 3 * 2 * 4, 0)
    assert f"verilog: {v.resolve()}" in lines          # the given file, not a generated one
    assert "warning" not in err

    text = v.read_text()
    n = text.count(ROW0_ZERO)
    assert n == CFG.cols, f"expected one {ROW0_ZERO!r} per row-0 PE, found {n}"
    v.write_text(text.replace(ROW0_ZERO, ROW0_ONE))
    status, lines, err = cosim_rtl(capsys, v, cosim_cache, tmp_path / "run_edited")
    assert status == 1
    assert re.search(rf"warning: {re.escape(str(v))} differs from the file its manifest", err), err
    tiles, macs, mismatches = map(int, SUMMARY.match(lines[-1]).groups()[:3])
    assert mismatches == macs // CFG.rows                 # every value (M * cols per tile) is off
    first = re.search(r"FIRST MISMATCH: .* expected=(-?\d+) got=(-?\d+)", err)
    assert first and int(first.group(2)) == int(first.group(1)) + 1, err

    # the simulator build is keyed on the file's content: one build per text
    # (other tests of the session may add a waves build or another bench's build of this design)
    builds = sorted(b for b in (cosim_cache / "build").glob(f"{CFG.module_name}-icarus-hdl-*")
                    if not b.name.startswith(f"{CFG.module_name}-icarus-hdl-waves-"))
    assert len(builds) == 2, builds


def test_array_options_must_agree_with_the_manifest(capsys, rtl):
    v, j = rtl
    status, _, err = run_cli(capsys, "--rtl", str(v), "--rows", "3", "--tiles", "1", "--seed", "0",
                             "--sim", "icarus")
    assert status == 2
    assert f"--rows 3 disagrees with {j}: rows=2" in err
    assert len(err.strip().splitlines()) == 1


def _edit_manifest(j, change):
    manifest = json.loads(j.read_text())
    change(manifest)
    j.write_text(json.dumps(manifest))


@pytest.mark.parametrize("spoil, message", [
    ("no_manifest", r"no manifest rf8_pipe_array_2x2_a8_acc40_wrap\.json next to it"),
    ("not_json", r"manifest .* is unreadable \(Expecting"),
    ("not_a_manifest", r"manifest .* is not an rf8hw manifest \(a JSON object is needed, not a list\)"),
    ("no_interface", r"manifest .* is not an rf8hw manifest: it lacks interface$"),
    ("other_file", r"describes 'rf8_pipe_array_2x2_a8_acc40_wrap\.v' \(files\.verilog\), "
                   r"not 'copy\.v'"),
    ("no_module", r"declares no module 'rf8_pipe_array_2x2_a8_acc40_wrap', the module its manifest "
                  r"rf8_pipe_array_2x2_a8_acc40_wrap\.json names; it declares 'renamed'$"),
    ("submodule_top", r"module 'rf8_pipe_array_2x2_a8_acc40_wrap', the top its manifest .* names, "
                      r"is a submodule \(module 'shell' instantiates it\)$"),
    ("bad_parameters", r"manifest .*: parameters: rows must be an integer in 1\.\.64, not 0"),
    ("module_of_a_submodule", r"manifest .*: module '\\\\rf8_pipe_array_2x2_a8_acc40_wrap\.array' is "
                              r"not the module of its parameters"),
])
def test_bad_rtl_or_manifest_is_one_line_naming_the_file(capsys, rtl, spoil, message):
    v, j = rtl
    if spoil == "no_manifest":
        j.unlink()
    elif spoil == "not_json":
        j.write_text("{not json")
    elif spoil == "not_a_manifest":
        j.write_text("[1, 2]")
    elif spoil == "no_interface":
        _edit_manifest(j, lambda m: m.pop("interface"))
    elif spoil == "other_file":
        v, j = v.rename(v.with_name("copy.v")), j.rename(j.with_name("copy.json"))
    elif spoil == "no_module":
        v.write_text(v.read_text().replace(f"module {CFG.module_name}(", "module renamed("))
    elif spoil == "submodule_top":
        v.write_text(v.read_text() + f"module shell(aclk);\n  input aclk;\n  {CFG.module_name} "
                                     f"u (.aclk(aclk));\nendmodule\n")
    elif spoil == "bad_parameters":
        _edit_manifest(j, lambda m: m["parameters"].update(rows=0))
    elif spoil == "module_of_a_submodule":
        _edit_manifest(j, lambda m: m.update(module=f"\\{CFG.module_name}.array"))
    status, _, err = run_cli(capsys, "--rtl", str(v), "--tiles", "1", "--seed", "0",
                             "--sim", "icarus")
    assert status == 2
    assert len(err.strip().splitlines()) == 1, err
    assert str(v) in err, err
    assert re.search(message, err.strip()), err


@pytest.mark.parametrize("field, value, verilog", [
    ("act_bits", 4, 8), ("acc_bits", 48, 40), ("reset", "rst", "aresetn"), ("pe", "rf8", "rf8_pipe"),
    ("rows", 3, 2), ("cols", 1, 2), ("overflow", "saturate", "wrap"),
])
def test_edited_manifest_parameters_are_checked_against_the_verilog(capsys, rtl, field, value,
                                                                    verilog):
    """Issue 26, item 3: a manifest whose act_bits was edited 8 -> 4 (the Verilog and its SHA-256
    untouched) was co-simulated with 4-bit stimulus into the 8-bit design, exit 0.  Every array
    parameter is checked against the Verilog: one line naming the file, the field and both
    values, before anything is built."""
    v, j = rtl
    _edit_manifest(j, lambda m: m["parameters"].update({field: value}))
    status, _, err = run_cli(capsys, "--rtl", str(v), "--tiles", "1", "--seed", "0", "--sim", "icarus")
    assert status == 2
    assert len(err.strip().splitlines()) == 1, err
    assert err.startswith(f"rf8hw cosim: error: {v}: its manifest {j}: parameters.{field} is "
                          f"{value!r}, but its module '{CFG.module_name}' was generated with "
                          f"{field}={verilog}"), err


def test_edited_manifest_ports_and_port_widths_in_the_verilog_are_checked(rtl):
    """Widths the manifest records, and the ones the Verilog declares, must be those of its
    parameters: a lane width or a port of the top module changed by hand is named."""
    v, j = rtl
    text = v.read_text()
    _edit_manifest(j, lambda m: m["parameters"].update(act_lane_bits=16))
    with pytest.raises(ValueError, match=r"parameters\.act_lane_bits is 16, but "
                                         r"rf8_pipe_array_2x2_a8_acc40_wrap has 8$"):
        sim.load_rtl(v)
    _edit_manifest(j, lambda m: m["parameters"].update(act_lane_bits=8))
    assert sim.load_rtl(v).matches_manifest
    v.write_text(text.replace("input [15:0] s_axis_a_tdata;", "input [31:0] s_axis_a_tdata;"))
    with pytest.raises(ValueError, match=r"port s_axis_a_tdata is input 32 bits in the Verilog, but "
                                         r"its manifest .*\.json gives input 16 bits \(rows=2 x "
                                         r"act_lane_bits=8 for act_bits=8\)$"):
        sim.load_rtl(v)


@pytest.mark.slow
def test_a_byte_order_mark_is_ignored(capsys, rtl, cosim_cache, tmp_path):
    """A UTF-8 BOM (added by an editor) made Icarus find no top module: it is dropped before the
    file is hashed, checked and compiled, with a note; the file still matches its manifest."""
    v, _ = rtl
    v.write_bytes(b"\xef\xbb\xbf" + v.read_bytes())
    design = sim.load_rtl(v)
    assert design.bom and design.matches_manifest and not design.data.startswith(b"\xef")
    status, lines, err = cosim_rtl(capsys, v, cosim_cache, tmp_path / "run")
    assert status == 0, err
    assert SUMMARY.match(lines[-1]).group(3) == "0"
    assert "byte-order mark" in err and "warning" not in err, err


def test_an_int8_array_is_refused_by_the_rf8_golden_model(capsys, tmp_path):
    v, _ = generate(ArrayConfig(2, 2, pe="int8"), tmp_path)
    status, _, err = run_cli(capsys, "--rtl", str(v), "--tiles", "1", "--seed", "0", "--sim", "icarus")
    assert status == 2 and len(err.strip().splitlines()) == 1, err
    assert f"{v}: co-simulation checks RF8 products only" in err
    assert "PE kind 'int8' has weight format 'int8'" in err


def test_library_refuses_a_manifest_that_differs_from_the_config(rtl, tmp_path):
    v, _ = rtl
    assert sim.load_rtl(v).config == CFG and sim.load_rtl(v).matches_manifest
    options = sim.CosimOptions(simulator="icarus", rtl=v, cache_root=tmp_path)
    assert options.rtl.verilog == v and options.rtl.manifest.module == CFG.module_name
    with pytest.raises(ValueError, match=r"parameters differ .*acc_bits=40 vs 27"):
        sim.prepare(ArrayConfig(2, 2, acc_bits=27), options)


def test_a_fifo_is_refused_not_read_forever(tmp_path):
    """A named pipe given as --rtl (or as its manifest) blocked the read forever."""
    import os

    v = tmp_path / "pipe.v"
    os.mkfifo(v)
    with pytest.raises(ValueError, match=r"pipe\.v: cannot read the Verilog file \(not a regular file\)$"):
        sim.load_rtl(v)
    v.unlink()
    v.write_text("module m; endmodule\n")
    os.mkfifo(tmp_path / "pipe.json")
    with pytest.raises(ValueError, match=r"no manifest pipe\.json next to it"):
        sim.load_rtl(v)


def test_a_full_disk_during_the_build_leaves_no_partial_build(rtl, tmp_path, monkeypatch):
    """The build's copy of the Verilog cannot be written (ENOSPC): one OSError naming the build
    directory (it was a traceback), and nothing but the directory's lock file is left there."""
    import errno
    from pathlib import Path

    v, _ = rtl
    real = Path.write_bytes

    def write_bytes(self, data):
        if self.parent.name == "src":
            self.write_text("partial")                         # some of it made it to the disk
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(self, data)
    monkeypatch.setattr(Path, "write_bytes", write_bytes)
    options = sim.CosimOptions(simulator="icarus", rtl=v, cache_root=tmp_path / "cache")
    with pytest.raises(OSError) as info:
        sim.prepare(CFG, options)
    build_dir = Path(info.value.filename)
    assert info.value.errno == errno.ENOSPC and build_dir.parent == tmp_path / "cache" / "build"
    assert "the icarus build was not written (its partial files were removed)" in str(info.value)
    assert [p.name for p in build_dir.iterdir()] == [".lock"]
