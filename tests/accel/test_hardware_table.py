"""``benchmarks/hardware_table.py``: the ``--beside`` form, its table, and runs stored by several
copies of the script at once (none lost)."""

import importlib.util
import json
from pathlib import Path

import pytest

from rf8hw.arch import ArrayConfig

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture()
def ht(tmp_path, monkeypatch):
    spec = importlib.util.spec_from_file_location("hardware_table", ROOT / "benchmarks" / "hardware_table.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    monkeypatch.setattr(mod, "ROOT", tmp_path)
    monkeypatch.setattr(mod, "DOCS", tmp_path)
    monkeypatch.setattr(mod, "JSON_PATH", tmp_path / "hardware_table.json")
    monkeypatch.setattr(mod, "MD_PATH", tmp_path / "hardware_table.md")
    monkeypatch.setattr(mod, "plot", lambda db: None)
    return mod


def test_beside_form(ht):
    first, second = ht.parse_beside("int8_pipe:9x10+int8_dsp_pipe:4x7")
    assert (first.pe, first.rows, first.cols) == ("int8_pipe", 9, 10)
    assert (second.pe, second.rows, second.cols) == ("int8_dsp_pipe", 4, 7)
    for bad in ("int8_pipe:9x10", "int8_pipe:9x10+bogus", "int8_pipe:9by10+int8_dsp:1x1", "a+b+c"):
        with pytest.raises(ValueError, match="expected PE:RxC\\+PE:RxC"):
            ht.parse_beside(bad)
    with pytest.raises(ValueError, match="pe"):
        ht.parse_beside("int9:1x1+int8_dsp:1x1")


def test_runs_stored_by_two_copies_are_both_kept(ht, monkeypatch):
    monkeypatch.setattr(ht, "markdown", lambda db: "table\n")
    a, b = ht.load(), ht.load()               # two copies of the script, each with its own view
    ht.store(b, "runs", "k2", {"from": "b"})
    ht.store(a, "runs", "k1", {"from": "a"})
    ht.store(b, "beside", "k3", {"from": "b"})
    on_disk = json.loads(ht.JSON_PATH.read_text())
    assert on_disk == {"runs": {"k1": {"from": "a"}, "k2": {"from": "b"}}, "beside": {"k3": {"from": "b"}}}
    assert b == on_disk                        # a copy holds the merged state of its last store
    assert a == {"runs": on_disk["runs"]}
    assert ht.MD_PATH.read_text() == "table\n"


def test_beside_table_marks_what_it_measured(ht, monkeypatch):
    monkeypatch.setattr(ht.synth, "design_key", lambda *args, **kwargs: "current")
    arrays = [ArrayConfig(9, 10, pe="int8_pipe").as_dict(), ArrayConfig(4, 7, pe="int8_dsp_pipe").as_dict()]
    db = {"beside": {
        "ok": {"fits": True, "device": "ecp5-25k", "arrays": arrays, "seed": 1, "design_key": "current",
               "lut4_equiv": 19937, "ff": 13160, "dsp": 28, "comb_used": 21735, "comb_available": 24288,
               "fmax_mhz": 69.86, "pes": 118},
        "old": {"fits": False, "device": "ecp5-85k", "arrays": arrays, "seed": 1, "design_key": "older",
                "error": "does not fit: TRELLIS_COMB 90000/83640 (108%)", "pes": 118}}}
    lines = ht.beside_markdown(db)
    ok = next(line for line in lines if "ecp5-25k" in line)
    assert "int8_pipe 9x10 + int8_dsp_pipe 4x7 |" in ok and "| 69.9 | 118 | 8.24 | 1 |" in ok
    old = next(line for line in lines if "ecp5-85k" in line)
    assert "int8_dsp_pipe 4x7 † |" in old and "does not fit" in old
    assert ht.beside_markdown({}) == []


def test_a_run_is_measured_once_per_design_and_every_outcome_is_stored(ht, monkeypatch):
    monkeypatch.setattr(ht, "markdown", lambda db: "table\n")
    monkeypatch.setattr(ht, "design_key", lambda *args: "current")
    calls = []
    fields = dict.fromkeys(ht.RESULT_FIELDS, 1)

    def synthesize(cfg, device, seed, unit, workdir):
        calls.append((cfg.rows, cfg.cols, workdir))
        if cfg.rows == 2:
            raise ht.synth.DoesNotFitError("2x2 does not fit: TRELLIS_COMB 9/8 (112%) (log: x)",
                                           {"TRELLIS_COMB": (9, 8)})
        if cfg.rows == 3:
            raise ht.synth.ToolError("yosys stopped")
        return {**fields, "utilization": {"MULT18X18D": {"available": 28}, "TRELLIS_COMB": {"available": 8}}}

    monkeypatch.setattr(ht.synth, "synthesize", synthesize)
    db = ht.load()
    ok = ht.run_one(db, "ecp5-25k", "rf8_pipe", 1, 1, 1)
    assert ok == {"fits": True, **fields, "dsp_available": 28, "device": "ecp5-25k", "pe": "rf8_pipe",
                  "unit": "array", "rows": 1, "cols": 1, "seed": 1, "seconds": ok["seconds"],
                  "design_key": "current"}
    assert calls[0][2] == ht.ROOT / "build" / "hardware_table" / "ecp5-25k_rf8_pipe_1x1_s1"
    assert ht.run_one(db, "ecp5-25k", "rf8_pipe", 1, 1, 1) == ok and len(calls) == 1   # stored, not redone
    assert ht.run_one(db, "ecp5-25k", "rf8_pipe", 1, 1, 1, force=True)["fits"] and len(calls) == 2
    nofit = ht.run_one(db, "ecp5-25k", "rf8_pipe", 2, 2, 1)
    assert (nofit["fits"], nofit["error"], nofit["utilisation"]) == \
        (False, "2x2 does not fit: TRELLIS_COMB 9/8 (112%)", {"TRELLIS_COMB": [9, 8]})
    failed = ht.run_one(db, "ecp5-25k", "rf8_pipe", 3, 3, 1)
    assert (failed["fits"], failed["error"]) == (None, "yosys stopped")
    on_disk = json.loads(ht.JSON_PATH.read_text())["runs"]
    assert sorted(on_disk) == [f"ecp5-25k|rf8_pipe|{n}x{n}|s1" for n in (1, 2, 3)]


def test_goals_take_the_median_of_three_seeds_and_say_when_there_is_none(ht, monkeypatch):
    monkeypatch.setattr(ht, "design_key", lambda *args: "current")

    def run(pe, rows, cols, seed, fmax):
        return {"device": "ecp5-25k", "unit": "array", "fits": True, "pe": pe, "rows": rows, "cols": cols,
                "seed": seed, "fmax_mhz": fmax, "comb_used": 21117, "comb_available": 24288, "dsp": 0,
                "design_key": "current"}

    runs = [run("rf8_pipe", 11, 11, s, f) for s, f in ((1, 115.3), (2, 106.2), (3, 114.3))]
    runs += [run("rf8_pipe", 8, 8, s, f) for s, f in ((1, 117.2), (2, 116.0))]
    runs += [run("int8_pipe", 10, 10, 2, 113.9), run("int8_pipe", 10, 10, 1, 114.4)]
    text = "\n".join(ht.targets(runs))
    assert "rf8_pipe: 11x11 at median 114.3 MHz of seeds' 106.2, 114.3, 115.3 = 13.83 GMAC/s" in text
    assert "int8_pipe: 10x10 at 113.9, 114.4 MHz (2 seeds: no median of 3) = 11.44 GMAC/s" in text
    assert "rf8_pipe: 116.0, 117.2 MHz (2 seeds: no median of 3) (not decided)" in text
