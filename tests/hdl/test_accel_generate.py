"""rf8hw generate --accel: the accelerator's Verilog and manifest."""

import json

import pytest

from rf8hw.arch import AccelConfig, ArrayConfig
from rf8hw.cli import main
from rf8hw.hdl.accel_generate import generate_accel
from rf8hw.hdl.ippackage import ip_paths

SMALL = AccelConfig(ArrayConfig(2, 3), max_m=4, max_k=6, out_bits=32)


def test_cli_writes_the_files_and_the_manifest_describes_them(tmp_path, capsys):
    assert main(["generate", "--accel", "--rows", "2", "--cols", "3", "--max-m", "4",
                 "--max-k", "6", "--out-bits", "32", "-o", str(tmp_path)]) == 0
    v = tmp_path / f"{SMALL.module_name}.v"
    j = tmp_path / f"{SMALL.module_name}.json"
    assert capsys.readouterr().out.split() == [str(v), str(j),
                                               *map(str, ip_paths(tmp_path, SMALL.module_name))]
    manifest = json.loads(j.read_text())
    assert manifest["kind"] == "rf8hw-accelerator" and manifest["module"] == SMALL.module_name
    assert AccelConfig(array=ArrayConfig(**manifest["parameters"]["array"]),
                       **{k: v for k, v in manifest["parameters"].items() if k != "array"}) == SMALL
    ports = {p["name"]: p for p in manifest["ports"]}
    assert ports["m_axis_out_tdata"]["width"] == 3 * 32
    assert ports["s_axis_cmd_tdata"]["width"] == 72
    text = v.read_text()
    assert f"module {SMALL.module_name}(" in text
    assert manifest["generator"]["command"] in text            # the header's regenerate line
    # generating again gives the same bytes and replaces the file silently
    before = v.read_bytes()
    generate_accel(SMALL, tmp_path)
    assert v.read_bytes() == before


def test_an_edited_file_is_refused(tmp_path):
    v, _ = generate_accel(SMALL, tmp_path)
    v.write_text(v.read_text() + "// edit\n")
    with pytest.raises(ValueError, match=r"exists and was changed since it was generated"):
        generate_accel(SMALL, tmp_path)
    generate_accel(SMALL, tmp_path, overwrite=True)


def test_accelerator_options_without_accel_are_refused(tmp_path, capsys):
    assert main(["generate", "--rows", "2", "--cols", "3", "--max-k", "6",
                 "-o", str(tmp_path)]) == 2
    assert "--max-k sets a parameter of the accelerator: add --accel" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


@pytest.mark.slow
@pytest.mark.parametrize("acfg", [AccelConfig(ArrayConfig(1, 1), max_m=1, max_k=1),
                                  AccelConfig(ArrayConfig(1, 2, pe="rf8"), max_m=2, max_k=3),
                                  SMALL], ids=["1x1_m1_k1", "1x2_rf8", "2x3_int32"])
def test_verilator_lint_wall_accepts_edge_shapes(acfg, tmp_path):
    from rf8hw.toolchain.tools import lint_verilator

    v, _ = generate_accel(acfg, tmp_path)
    result = lint_verilator(v, acfg.module_name)
    assert result.returncode == 0, result.stdout + result.stderr
