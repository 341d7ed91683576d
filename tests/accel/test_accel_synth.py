"""``rf8hw synth --accel`` (rf8hw/accel/accel_synth.py): the accelerator through the array's Yosys
flow, its block RAM counted; option rules."""

import pytest

from rf8hw import cli
from rf8hw.accel.accel_synth import synthesize_accel
from rf8hw.arch import AccelConfig, ArrayConfig


@pytest.mark.parametrize("extra, words", [
    (["--max-m", "4"], "--max-m is for the accelerator: add --accel"),
    (["--place"], "--place is for the accelerator: add --accel"),
    (["--accel", "--max-k", "0"], "max_k must be"),
    (["--accel", "--max-m", "4", "--device", "ice40-up5k"], "the accelerator is synthesised for ECP5 only"),
])
def test_bad_options_are_one_line(extra, words, tmp_path, capsys):
    status = cli.main(["synth", "--rows", "2", "--cols", "2", "--device", "ecp5-25k",
                       "--workdir", str(tmp_path / "w"), *extra])
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and len(err) == 1 and words in err[0], err
    assert not (tmp_path / "w" / "top.v").exists()


@pytest.mark.slow
def test_block_ram_of_a_small_accelerator(tmp_path):
    """max_m 32 x max_k 16 on 1x1: act_mem 512 x 8 bits goes to DP16KD block RAM (Yosys).  A
    small configuration on purpose: the buffer is still block RAM, the flow takes about 46 s of
    CPU time (the 2 x 2, max_m 64, max_k 256 one it replaces took about 8 minutes in CI)."""
    acfg = AccelConfig(ArrayConfig(1, 1), max_m=32, max_k=16)
    res = synthesize_accel(acfg, workdir=tmp_path / "w", progress=None)
    assert res["unit"] == "accel" and res["accel"]["act_depth"] == 32 * 16
    assert res["bram"] >= 1 and res["cells"].get("DP16KD", 0) == res["bram"]
    assert res["fmax_mhz"] is None and res["nextpnr_command"] is None
    assert (tmp_path / "w" / "result.json").is_file()
    assert "core.act_mem via $__DP16KD_" in (tmp_path / "w" / "yosys.log").read_text()


def test_design_key_is_what_the_tools_read():
    """The accelerator's stored synthesis results are keyed on the Verilog, the Yosys script,
    nextpnr's arguments and the tool versions: equal inputs give equal keys, and a change of the
    design, the device or the placement seed gives another key."""
    from rf8hw.accel.accel_synth import design_key, elaborate_accel

    small = AccelConfig(ArrayConfig(2, 2), max_m=4, max_k=8)
    key = design_key(small)
    assert key == design_key(AccelConfig(ArrayConfig(2, 2), max_m=4, max_k=8))
    others = {design_key(AccelConfig(ArrayConfig(2, 2), max_m=5, max_k=8)),
              design_key(small, "ecp5-85k"), design_key(small, seed=1), design_key(small, seed=2)}
    assert key not in others and len(others) == 4
    text, wrapper = elaborate_accel(small)
    assert "module synth_" + small.module_name in text and wrapper.xor_luts > 0
