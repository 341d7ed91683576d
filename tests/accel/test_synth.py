"""``rf8hw synth``: the real yosys + nextpnr flow on tiny designs (and Yosys' xc7 mapping of one
PE), the parsers on fixtures, bad arguments.

The flow tests run the WebAssembly tools (the first run on a machine spends ~40 s compiling them).
"""

import gc
import json
from pathlib import Path

import pytest

from rf8hw.accel import synth
from rf8hw.arch import PE_KINDS, ArrayConfig, rf8_kinds
from rf8hw.cli import main

FIXTURES = Path(__file__).parent / "fixtures" / "synth"
RESULT_KEYS = {"lut4", "ff", "carry", "dsp", "bram", "fmax_mhz", "device", "tools", "package",
               "seed", "part", "comb_used", "lut4_equiv"}


# --- the real flow ---------------------------------------------------------------------------

@pytest.mark.slow
def test_cli_synth_json_1x1_rf8_ecp5(tmp_path, capsys):
    """A 1x1 RF8 array through yosys + nextpnr: sane numbers, all keys, versions recorded.

    The work dir is under /tmp (invisible inside the YoWASP sandbox): the flow must still work.
    """
    status = main(["synth", "--rows", "1", "--cols", "1", "--device", "ecp5-25k", "--pe", "rf8",
                   "--seed", "3", "--json", "--workdir", str(tmp_path / "w")])
    assert status == 0
    captured = capsys.readouterr()
    res = json.loads(captured.out)
    assert RESULT_KEYS <= res.keys()
    assert res["lut4"] > 0 and res["ff"] > 0 and res["carry"] > 0
    assert res["dsp"] == 0 and res["bram"] == 0
    assert 10 < res["fmax_mhz"] < 500, res["fmax_mhz"]
    assert (res["device"], res["package"], res["seed"]) == ("ecp5-25k", "CABGA256", 3)
    assert res["tools"]["yosys"].startswith("Yosys 0.")
    assert res["tools"]["nextpnr-ecp5"].startswith("nextpnr-0.")
    assert "-nodsp" in res["yosys_command"] and "--seed 3" in res["nextpnr_command"]
    assert res["comb_used"] >= res["lut4"]          # placed logic sites hold every LUT4
    for stage in ("elaborating", "yosys:", "nextpnr-ecp5:"):
        assert stage in captured.err                # progress lines on stderr
    assert Path(res["paths"]["report"]).is_file() and Path(res["paths"]["yosys_log"]).is_file()


@pytest.mark.slow
def test_int8_dsp_uses_mult18x18d_and_int8_does_not(tmp_path):
    """Same Int8PE RTL: DSP inference on maps the multiply to MULT18X18D, off builds it in LUTs."""
    common = dict(device="ecp5-25k", unit="pe", place=False, progress=None)
    dsp = synth.synthesize(ArrayConfig(1, 1, pe="int8_dsp"), workdir=tmp_path / "dsp", **common)
    soft = synth.synthesize(ArrayConfig(1, 1, pe="int8"), workdir=tmp_path / "soft", **common)
    assert dsp["cells"].get("MULT18X18D", 0) == 1 and dsp["dsp"] == 1
    assert "MULT18X18D" not in soft["cells"] and soft["dsp"] == 0
    assert soft["lut4"] > dsp["lut4"] + 100         # an 8x8 soft multiplier is hundreds of LUT4


@pytest.mark.slow
def test_design_that_does_not_fit_reports_utilisation(tmp_path):
    """9 DSP multipliers on an iCE40UP5K (8 DSPs): DoesNotFitError with nextpnr's numbers."""
    with pytest.raises(synth.DoesNotFitError,
                       match=r"^3x3 int8_dsp array does not fit iCE40UP5K-SG48: "
                             r"ICESTORM_DSP 9/8 \(112%\) \(log: .*nextpnr\.log\)$") as info:
        synth.synthesize(ArrayConfig(3, 3, pe="int8_dsp"), device="ice40-up5k", workdir=tmp_path,
                         progress=None)
    assert info.value.utilisation["ICESTORM_DSP"] == (9, 8)


@pytest.mark.slow
def test_map_xilinx_one_dsp_pe_uses_dsp48e1_and_records_yosys_only(tmp_path):
    """Yosys' xc7 mapping of one int8_dsp PE: the multiply in a DSP48E1, LUT6 counts, no nextpnr."""
    res = synth.map_xilinx(ArrayConfig(1, 1, pe="int8_dsp"), unit="pe", workdir=tmp_path,
                           progress=None)
    assert res["dsp"] == res["cells"]["DSP48E1"] == 1
    assert res["lut6"] == sum(res["lut_sizes"].values()) > 0 and res["ff"] > 0
    assert "lut4" not in res and "lut4_equiv" not in res
    assert res["yosys_command"].startswith("synth_xilinx -family xc7 ")
    assert "-nodsp" not in res["yosys_command"]
    assert (res["device"], res["seed"], res["fmax_mhz"], res["nextpnr_command"]) == ("xc7", None, None, None)
    assert res["tools"]["yosys"].startswith("Yosys 0.")
    assert not any("nextpnr" in k for k in res["tools"])


@pytest.mark.slow
def test_soft_int8_pe_is_booth_encoded_and_smaller_than_the_plain_mapping(tmp_path):
    """Item 1 of the hardware-truth issue: the soft INT8 baseline goes through Yosys' Booth pass
    (synth_ecp5 runs it only for MachXO3), so a flow change cannot silently weaken it again."""
    common = dict(device="ecp5-25k", unit="bare", place=False, progress=None)
    default = synth.synthesize(ArrayConfig(1, 1, pe="int8"), workdir=tmp_path / "default", **common)
    plain = synth.synthesize(ArrayConfig(1, 1, pe="int8"), workdir=tmp_path / "plain", booth=False,
                             **common)
    assert default["booth"] and not plain["booth"]
    assert "\nbooth\n" in (tmp_path / "default" / "synth.ys").read_text()
    assert "booth" not in (tmp_path / "plain" / "synth.ys").read_text()
    # measured with Yosys 0.70: 227 vs 592 LUT4 sites; a Booth mapping lost would fail here
    assert default["lut4_equiv"] < 0.6 * plain["lut4_equiv"], (default["lut4_equiv"], plain["lut4_equiv"])
    assert default["wrapper"] is None and default["ff"] == plain["ff"]


def test_booth_pre_pass_only_for_the_soft_multipliers_that_measured_smaller():
    """The script per family and kind: Booth for soft INT8 everywhere, for FP8-E4M3 on iCE40 only;
    never with DSP inference on (the DSPs take the multiplier) nor for RF8 (no multiplier)."""
    def booth(family, pe):
        script, _ = synth.synth_script("top", family, PE_KINDS[pe])
        return "\nbooth\n" in script

    for family in ("ecp5", "ice40", "xc7"):
        assert booth(family, "int8") and booth(family, "int8_pipe")
        assert not booth(family, "int8_dsp") and not booth(family, "int8_dsp_pipe")
        assert not any(booth(family, k) for k in rf8_kinds())
        assert booth(family, "fp8_e4m3") == (family == "ice40")
    script, cmd = synth.synth_script("top", "ecp5", PE_KINDS["int8"])
    assert script.index("booth") < script.index(cmd) and cmd.endswith("-nodsp")
    forced, _ = synth.synth_script("top", "ecp5", PE_KINDS["int8"], booth=False)
    assert "booth" not in forced


@pytest.mark.slow
def test_dsp_array_beside_a_booth_soft_array_adds_up(tmp_path):
    """Two arrays in one design (the strongest INT8 design of a device: DSP INT8 beside Booth soft
    INT8): the DSP array's multipliers and only those in MULT18X18D, the soft one Booth-encoded,
    the cells those of the two arrays alone (the wrapper shared); a soft array whose multipliers
    slipped into DSP blocks is a tool error, not a result."""
    common = dict(device="ecp5-25k", place=False, progress=None)
    soft, dsp = ArrayConfig(2, 2, pe="int8_pipe"), ArrayConfig(1, 2, pe="int8_dsp_pipe")
    both = synth.synthesize(soft, beside=dsp, workdir=tmp_path / "both", **common)
    alone = [synth.synthesize(c, workdir=tmp_path / c.pe, **common) for c in (soft, dsp)]
    assert both["dsp"] == 2 and both["booth"] and both["pes"] == 6
    assert both["beside"] == dsp.as_dict() and (both["rows"], both["cols"], both["pe"]) == (2, 2, "int8_pipe")
    assert both["wrapper"]["xor_lut4"] <= sum(a["wrapper"]["xor_lut4"] for a in alone)   # one tree
    parts = sum(a["lut4_equiv"] for a in alone)
    assert abs(both["lut4_equiv"] - parts) <= 0.03 * parts, (both["lut4_equiv"], parts)
    assert "booth synth_int8_pipe_2x2_int8_dsp_pipe_1x2_a8_acc40_wrap.inner " in \
        (tmp_path / "both" / "synth.ys").read_text()

    def no_booth(name, family, kind, booth=None, beside=None):
        return f"read_verilog top.v\nsynth_ecp5 -top {name} -json netlist.json\ntee -q -o stat.json " \
               "stat -json\n", f"synth_ecp5 -top {name}"

    mp = pytest.MonkeyPatch()
    mp.setattr(synth, "synth_script", no_booth)
    try:
        with pytest.raises(synth.ToolError, match="DSP blocks .* expected 2"):
            synth.synthesize(soft, beside=dsp, workdir=tmp_path / "lost", **common)
    finally:
        mp.undo()


def test_two_arrays_side_by_side_rules():
    rf8, dsp = PE_KINDS["rf8_pipe"], PE_KINDS["int8_dsp_pipe"]
    script, cmd = synth.synth_script("t", "ecp5", rf8, beside=dsp)
    assert "booth" not in script and cmd == "synth_ecp5 -top t"          # RF8 has no multiplier
    script, _ = synth.synth_script("t", "ice40", PE_KINDS["fp8_e4m3"], beside=dsp)
    assert "booth t.inner t.inner.*\n" in script
    with pytest.raises(ValueError, match="fp8_e4m3 multipliers would be mapped onto DSP blocks"):
        synth.synth_script("t", "ecp5", PE_KINDS["fp8_e4m3"], beside=dsp)
    with pytest.raises(ValueError, match="one DSP kind and one soft kind"):
        synth.synth_script("t", "ecp5", rf8, beside=PE_KINDS["int8_pipe"])
    with pytest.raises(ValueError, match="acc_bits 40 vs 32"):
        synth.design_key(ArrayConfig(1, 1), beside=ArrayConfig(1, 1, pe="int8_dsp", acc_bits=32))
    with pytest.raises(ValueError, match="unit='array'"):
        synth.design_key(ArrayConfig(1, 1), unit="pe", beside=ArrayConfig(1, 1, pe="int8_dsp"))
    one = synth.design_key(ArrayConfig(1, 1))
    assert synth.design_key(ArrayConfig(1, 1), beside=ArrayConfig(1, 1, pe="int8_dsp")) != one


def test_a_placement_at_the_utilisation_limit_is_does_not_fit(tmp_path, monkeypatch):
    """nextpnr at 99 % logic that cannot legalise its placement exits non-zero without any
    resource above 100 %: that is a design that does not fit, not a tool failure."""
    def fail(cmd, cwd, log, stage, done):
        log.write_text("Info: \t        TRELLIS_COMB:   83541/  83640    99%\n"
                       "ERROR: Unable to find legal placement for all cells, design is probably at "
                       "utilisation limit.\n")
        raise synth.ToolError(f"{stage} failed (exit 125)")

    monkeypatch.setattr(synth, "run_tool", fail)
    with pytest.raises(synth.DoesNotFitError, match="TRELLIS_COMB 83541/83640") as exc:
        synth.place_and_route(["nextpnr-ecp5"], tmp_path, "19x19 int8_pipe array does not fit", "ecp5")
    assert exc.value.utilisation["TRELLIS_COMB"] == (83541, 83640)


def test_bare_unit_is_yosys_only(tmp_path):
    with pytest.raises(ValueError, match=r"^unit='bare' is Yosys only .*: place must be False$"):
        synth.synthesize(ArrayConfig(1, 1), unit="bare", workdir=tmp_path, progress=None)
    with pytest.raises(ValueError, match=r"^unit='bare' measures one PE: rows and cols must be 1"):
        synth.synthesize(ArrayConfig(1, 2), unit="bare", place=False, workdir=tmp_path, progress=None)


def test_map_xilinx_rejects_a_pe_unit_with_an_array_shape(tmp_path):
    with pytest.raises(ValueError, match=r"^unit='pe' measures one PE: rows and cols must be 1, not 2x2$"):
        synth.map_xilinx(ArrayConfig(2, 2), unit="pe", workdir=tmp_path, progress=None)
    assert not any(tmp_path.iterdir())


# --- parsers on fixtures -------------------------------------------------------------------

def test_parse_yosys_stat_ecp5_fixture():
    stat = json.loads((FIXTURES / "stat_ecp5.json").read_text())
    area = synth.parse_yosys_stat(stat, "ecp5")
    cells = stat["design"]["num_cells_by_type"]
    assert area["lut4"] == cells["LUT4"] == 321
    assert area["carry"] == cells["CCU2C"] == 14
    assert area["ff"] == cells["TRELLIS_FF"]
    assert area["lutram"] == cells["TRELLIS_DPR16X4"]
    assert area["lut4_equiv"] == 321 + 2 * 14
    assert area["dsp"] == 0 and area["bram"] == 0


def test_parse_yosys_stat_ice40_fixture_sums_every_ff_kind():
    stat = json.loads((FIXTURES / "stat_ice40.json").read_text())
    area = synth.parse_yosys_stat(stat, "ice40")
    assert area["ff"] == 53 + 50 + 8                 # SB_DFF + SB_DFFE + SB_DFFESR
    assert (area["lut4"], area["dsp"], area["carry"]) == (50, 1, 0)
    assert area["lut4_equiv"] == 50                  # iCE40 carries share the LUT's logic cell


def test_parse_yosys_stat_xc7_fixture():
    """Real ``stat -json`` of a 1x1 rf8 array mapped by ``map_xilinx`` (synth_xilinx -family xc7)."""
    stat = json.loads((FIXTURES / "stat_xc7.json").read_text())
    area = synth.parse_yosys_stat(stat, "xc7")
    assert area["lut_sizes"] == {"LUT1": 0, "LUT2": 20, "LUT3": 31, "LUT4": 32, "LUT5": 33,
                                 "LUT6": 37, "INV": 10}
    assert area["lut6"] == 20 + 31 + 32 + 33 + 37 + 10
    assert area["ff"] == 147 + 2                     # FDRE + FDSE
    assert (area["carry"], area["lutram"], area["dsp"], area["bram"]) == (9, 7, 0, 0)  # CARRY4, RAM32M
    assert area["cells"]["MUXF7"] == 4               # listed, not counted as LUTs
    assert "lut4" not in area and "lut4_equiv" not in area


def test_parse_nextpnr_report_fixture():
    report = json.loads((FIXTURES / "report_ecp5.json").read_text())
    timing = synth.parse_nextpnr_report(report)
    assert timing["fmax_mhz"] == pytest.approx(81.0898, abs=1e-3)
    assert timing["fmax_target_mhz"] == 200
    assert timing["clock"] == "$glbnet$clk$TRELLIS_IO_IN"
    assert timing["utilization"]["TRELLIS_COMB"] == {"available": 24288, "used": 429}
    assert timing["critical_path"]["from"] == "inner.array.pe_0_0.a_in_TRELLIS_FF_Q_1"


def test_parse_nextpnr_report_without_clock():
    assert synth.parse_nextpnr_report({"fmax": {}, "utilization": {}})["fmax_mhz"] is None


def test_parse_nextpnr_utilisation_fixture():
    util = synth.parse_nextpnr_utilisation((FIXTURES / "nextpnr_ice40_overfull.log").read_text())
    assert util["ICESTORM_DSP"] == (9, 8)
    assert util["ICESTORM_LC"] == (502, 5280)
    assert util["SB_IO"] == (4, 39)


# --- bad arguments -------------------------------------------------------------------------

@pytest.mark.parametrize(("kwargs", "message"), [
    ({"device": "xc7a35t"}, r"^device must be one of 'ecp5-25k', 'ecp5-85k', 'ice40-up5k', "
                            r"not 'xc7a35t'$"),
    ({"seed": -1}, r"^seed must be an integer in 0..2147483647 \(nextpnr.s placement seed is a C int\), "
                   r"not -1$"),
    ({"unit": "chip"}, r"^unit must be one of 'array', 'pe', 'bare', not 'chip'$"),
    ({"cfg": ArrayConfig(2, 1), "unit": "pe"},
     r"^unit='pe' measures one PE: rows and cols must be 1, not 2x1$"),
])
def test_synthesize_rejects_bad_arguments(tmp_path, kwargs, message):
    args = {"cfg": ArrayConfig(1, 1), "workdir": tmp_path, "progress": None, **kwargs}
    with pytest.raises(ValueError, match=message):
        synth.synthesize(**args)
    assert not any(tmp_path.iterdir())               # rejected before anything was written


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"pe": "bf16"}, r"^pe must be one of 'rf8', 'int8', 'int8_dsp', 'fp8_e4m3', "),
    ({"rows": 0}, r"^rows must be an integer in 1\.\.64, not 0$"),
    ({"acc_bits": 20}, r"^acc_bits must be an integer in 27\.\.64 for act_bits=8"),
    ({"overflow": "clip"}, r"^overflow must be one of 'wrap', 'saturate', not 'clip'$"),
])
def test_array_config_rejects_bad_arguments(kwargs, message):
    """The array's parameters are checked once, by ArrayConfig, before synthesis is reached."""
    with pytest.raises(ValueError, match=message):
        ArrayConfig(**{"rows": 1, "cols": 1, **kwargs})


def test_cli_synth_bad_device_is_one_line_error(capsys):
    with pytest.raises(SystemExit) as info:
        main(["synth", "--rows", "1", "--cols", "1", "--device", "ecp5-12k"])
    assert info.value.code == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith("rf8hw synth: error: argument --device: invalid choice: 'ecp5-12k'")
    assert "ecp5-25k" in last and "Traceback" not in last


@pytest.mark.filterwarnings("ignore:.*created but never used")   # the design is never converted
def test_tool_failure_shows_log_tail(tmp_path, monkeypatch):
    """A Yosys failure (here: an unreadable design) raises ToolError with the log tail and path."""
    from amaranth.back import verilog

    monkeypatch.setattr(verilog, "convert", lambda *a, **k: "module broken(;\n")
    with pytest.raises(synth.ToolError, match=r"(?s)^yosys failed \(exit 1\); command: .*"
                                              r"--- last lines of .*yosys\.log ---\n.*ERROR") as info:
        synth.synthesize(ArrayConfig(1, 1), workdir=tmp_path, progress=None)
    # the never-converted design warns when it is collected: here, under this test's filter, not
    # in whichever test runs next
    del info
    gc.collect()


@pytest.mark.slow
def test_concurrent_runs_in_one_workdir_take_turns(tmp_path):
    """A second synthesis in a work directory that another run holds waits for it (no mixed files)."""
    import threading

    from rf8hw.toolchain import cache

    done = threading.Event()
    result = {}

    def second():
        result["res"] = synth.synthesize(ArrayConfig(1, 1), workdir=tmp_path, unit="pe",
                                         place=False, progress=None)
        done.set()

    with cache.locked(tmp_path):                      # the "first run" holds the directory
        worker = threading.Thread(target=second)
        worker.start()
        assert not done.wait(2.0), "synthesize ran while another run held its work directory"
        assert not (tmp_path / "top.v").exists()
    worker.join(300)
    assert done.is_set() and result["res"]["lut4"] > 0 and (tmp_path / "top.v").is_file()


def test_workdir_that_is_a_file_is_refused(tmp_path):
    f = tmp_path / "afile"
    f.write_text("")
    with pytest.raises(ValueError, match=r"^workdir '.*afile' exists and is not a directory$"):
        synth.synthesize(ArrayConfig(1, 1), workdir=f, progress=None)


def test_design_key_is_what_the_tools_read(tmp_path, monkeypatch):
    """The key of a run is a digest of the files the tools get: stopping a run at Yosys, its
    top.v and synth.ys are the texts design_key hashes; another design, seed or device changes
    the key, a repeat does not."""
    def stop(cmd, cwd, log, stage, done):
        raise synth.ToolError(f"{stage} stopped by the test")

    monkeypatch.setattr(synth, "run_tool", stop)
    cfg = ArrayConfig(1, 1, pe="rf8_pipe")
    with pytest.raises(synth.ToolError, match="stopped by the test"):
        synth.synthesize(cfg, workdir=tmp_path, progress=None)
    text, _ = synth.elaborate(cfg)
    assert (tmp_path / "top.v").read_text() == text
    script, _ = synth.synth_script(synth.design_name(cfg), "ecp5", PE_KINDS["rf8_pipe"])
    assert (tmp_path / "synth.ys").read_text() == script
    key = synth.design_key(cfg)
    assert synth.design_key(ArrayConfig(1, 1, pe="rf8_pipe")) == key
    others = {synth.design_key(cfg, seed=2), synth.design_key(cfg, device="ice40-up5k"),
              synth.design_key(ArrayConfig(1, 1, pe="rf8_pipe", acc_bits=27)),
              synth.design_key(cfg, unit="pe"), synth.design_key(cfg, device="xc7", seed=None),
              synth.design_key(cfg, booth=True)}
    assert key not in others and len(others) == 6
    with pytest.raises(ValueError, match="device"):
        synth.design_key(cfg, device="ecp5-12k")
