"""The area / Fmax model (rf8hw/accel/area_model.py): the fit against known coefficients, the
stored model against a refit of its own points (drift), its held-out error against a small
stored table, its errors, and `--area model` in rf8hw estimate and rf8hw sweep."""

import json
import random
from pathlib import Path

import pytest

from rf8hw import cli
from rf8hw.accel import area_model, dse, estimate, synth_cache
from rf8hw.arch import ArrayConfig

ROOT = Path(__file__).resolve().parents[2]

#: A small table of held-out measurements (Yosys LUT4 sites of the current RTL, post-route Fmax of
#: docs/hardware_table.json) and the model's error on each in percent, as
#: docs/area_model.md reports them.  (quantity, family or device, PE kind, shape, acc, seed) ->
#: (measured, error %).
HELDOUT = {
    ("lut4_equiv", "ecp5", "rf8_pipe", "16x16", 40, None): (41284, -0.43),
    ("lut4_equiv", "ecp5", "int8_pipe", "16x16", 40, None): (56212, -0.72),
    ("lut4_equiv", "ecp5", "rf8_pipe", "6x6", 40, None): (5774, 0.29),
    ("fmax_mhz", "ecp5-25k", "rf8_pipe", "11x11", 40, 1): (115.34, 1.65),
    ("fmax_mhz", "ecp5-25k", "int8_pipe", "10x10", 40, 1): (114.351, 3.42),
    ("fmax_mhz", "ecp5-25k", "int8_dsp_pipe", "4x7", 40, 1): (97.972, -1.07),    # every DSP used
    ("fmax_mhz", "ecp5-25k", "int8_dsp", "4x7", 40, 1): (81.413, 13.07),        # missed
}


@pytest.fixture(scope="module")
def doc():
    return area_model.load()


# ------------------------------------------------------------------ the fit, on known numbers

def test_fit_recovers_the_coefficients_that_made_the_points():
    rng = random.Random(1)
    true = [rng.uniform(-3, 3) for _ in area_model.FEATURES]
    shapes = [(1, 1), (1, 2), (2, 1), (2, 2), (1, 4), (4, 1), (2, 4), (4, 2), (4, 4)]
    points = []
    for acc in (28, 40):
        for r, c in shapes:
            x = area_model.features(r, c, acc)
            counts = {k: sum(a * b for a, b in zip(true, x)) * (i + 1)
                      for i, k in enumerate(area_model.COUNTS)}
            points.append({"family": "ecp5", "pe": "rf8_pipe", "rows": r, "cols": c, "acc_bits": acc,
                           "role": "fit", **counts})
    points.append({**points[0], "role": "heldout", "lut4_equiv": 1e9})      # never fitted
    m = area_model.fit_area(points)["ecp5"]["rf8_pipe"]
    assert m["acc_range"] == [28, 40] and m["n_points"] == 18
    for i, k in enumerate(area_model.COUNTS):
        assert m["coef"][k] == pytest.approx([t * (i + 1) for t in true], abs=1e-4)


def test_one_accumulator_width_folds_the_accumulator_terms():
    pts = [{"family": "ice40", "pe": "rf8", "rows": r, "cols": c, "acc_bits": 40, "role": "fit",
            **dict.fromkeys(area_model.COUNTS, 100 * r * c + 7 * r + 3 * c + 11)}
           for r, c in [(1, 1), (1, 2), (2, 1), (2, 2), (4, 4), (2, 4)]]
    m = area_model.fit_area(pts)["ice40"]["rf8"]
    assert m["acc_range"] == [40, 40]
    coef = m["coef"]["lut4_equiv"]
    assert coef[1] == coef[3] == coef[5] == coef[7] == 0.0
    assert [coef[0], coef[2], coef[4], coef[6]] == pytest.approx([100, 7, 3, 11], abs=1e-4)


def test_fmax_is_linear_in_pes_between_anchors_and_capped_above_the_knee():
    pts = [{"key": f"p{n}", "device": "ecp5-25k", "pe": "rf8_pipe", "rows": 1, "cols": n, "acc_bits": 40,
            "fmax_mhz": f, "fill": 0.1, "role": "fit"} for n, f in ((1, 150.0), (4, 140.0), (16, 110.0))]
    pts.append({"key": "full", "device": "ecp5-25k", "pe": "rf8_pipe", "rows": 10, "cols": 10, "acc_bits": 40,
                "fmax_mhz": 75.0, "fill": 0.85, "role": "fit"})
    pts.append({"key": "held", "device": "ecp5-25k", "pe": "rf8_pipe", "rows": 2, "cols": 4, "acc_bits": 40,
                "fmax_mhz": 1.0, "fill": 0.1, "role": "heldout"})
    f = area_model.fit_fmax(pts, {"ecp5-25k": {"fill_knee": 0.7}})["ecp5-25k"]
    assert f["pes"]["rf8_pipe"]["anchors"] == [[1, 150.0], [4, 140.0], [16, 110.0]]
    assert f["fill"] == {"knee": 0.7, "cap": 75.0, "from": ["full"]}
    assert area_model.fmax_at(f, "rf8_pipe", 8, 0.2) == pytest.approx(140 - 30 * 4 / 12)
    assert area_model.fmax_at(f, "rf8_pipe", 64, 0.5) == 110.0
    assert area_model.fmax_at(f, "rf8_pipe", 64, 0.9) == 75.0
    assert area_model.fmax_at(f, "rf8_pipe", 1, 0.9) == 75.0


def test_dsp_kinds_are_capped_above_the_dsp_knee():
    pts = [{"key": f"p{n}", "device": "ecp5-25k", "pe": "int8_dsp_pipe", "rows": 1, "cols": n,
            "acc_bits": 40, "fmax_mhz": f, "fill": 0.01, "dsp_fill": n / 28, "role": "fit"}
           for n, f in ((1, 145.0), (16, 140.0))]
    pts.append({"key": "many", "device": "ecp5-25k", "pe": "int8_dsp_pipe", "rows": 5, "cols": 5,
                "acc_bits": 40, "fmax_mhz": 97.0, "fill": 0.04, "dsp_fill": 25 / 28, "role": "fit"})
    f = area_model.fit_fmax(pts, {"ecp5-25k": {"fill_knee": 0.7, "dsp_knee": 0.75}})["ecp5-25k"]
    m = f["pes"]["int8_dsp_pipe"]
    assert m["anchors"] == [[1, 145.0], [16, 140.0]]                 # the capped point is no anchor
    assert (m["dsp_cap"], m["dsp_from"], f["dsp_knee"]) == (97.0, ["many"], 0.75)
    assert area_model.fmax_at(f, "int8_dsp_pipe", 16, 0.03, 16 / 28) == 140.0
    assert area_model.fmax_at(f, "int8_dsp_pipe", 28, 0.05, 1.0) == 97.0


# ------------------------------------------------------------------ the stored model

def test_stored_model_is_a_refit_of_its_stored_points(doc):
    again = area_model.fit(doc)
    assert again["area"] == doc["area"]
    assert again["fmax"] == doc["fmax"]
    table = area_model.heldout_table(doc)
    assert table == doc["table"]
    assert area_model.summary(table) == doc["summary"]


def test_docs_page_is_rendered_from_the_stored_model(doc):
    assert (ROOT / "docs" / "area_model.md").read_text() == area_model.render_markdown(doc)


def test_heldout_error_against_the_stored_table(doc):
    rows = {(r["what"], r["device"] if r["what"] == "fmax_mhz" else r["family"], r["pe"], r["shape"],
             r["acc_bits"], r.get("seed")): r for r in doc["table"] if r["role"] == "heldout"}
    for key, want in HELDOUT.items():
        got = rows[key]
        assert (got["measured"], got["error_pct"]) == pytest.approx(want), key
    # the LUT4 sites of every held-out point, predicted through the public API
    for p in doc["points"]:
        if p["role"] == "heldout":
            dev = {"ecp5": "ecp5-25k", "ice40": "ice40-up5k"}[p["family"]]
            cfg = ArrayConfig(p["rows"], p["cols"], pe=p["pe"], acc_bits=p["acc_bits"])
            pred = area_model.predict(cfg, dev)["lut4_equiv"]
            row = rows[("lut4_equiv", p["family"], p["pe"], f"{p['rows']}x{p['cols']}", p["acc_bits"], None)]
            assert pred == row["predicted"]
            err = 100 * (pred - p["lut4_equiv"]) / p["lut4_equiv"]
            assert err == pytest.approx(row["error_pct"], abs=0.01)
    for what, fams in doc["summary"].items():
        for fam, roles in fams.items():
            s = roles.get("heldout")
            if s is not None:
                errs = [abs(r["error_pct"]) for r in doc["table"]
                        if r["what"] == what and r["family"] == fam and r["role"] == "heldout"]
                assert s["max_abs_error_pct"] == round(max(errs), 2)
                assert s["goal_met"] == (max(errs) <= area_model.GOALS[what])


# ------------------------------------------------------------------ predictions and errors

def test_prediction_and_fit_to_the_device(doc):
    small = area_model.predict(ArrayConfig(4, 4, pe="rf8_pipe"), "ecp5-25k")
    assert small["fits"] and small["source"] == "area model" and "not measured" in small["note"]
    assert small["lut4_equiv"] > 0 and small["fmax_mhz"] > 0 and small["dsp"] == 0
    assert small["utilisation"]["logic"][1] == doc["devices"]["ecp5-25k"]["comb_available"]
    big = area_model.predict(ArrayConfig(32, 32, pe="rf8_pipe"), "ecp5-25k")
    assert not big["fits"] and big["fill"] > 1
    on_85k = area_model.predict(ArrayConfig(16, 16, pe="rf8_pipe"), "ecp5-85k")
    assert on_85k["fits"] and on_85k["fmax_from"] == "ecp5-25k"
    on_25k = area_model.predict(ArrayConfig(16, 16, pe="rf8_pipe"), "ecp5-25k")
    assert on_85k["lut4_equiv"] == on_25k["lut4_equiv"] and on_85k["fill"] < on_25k["fill"]
    dsp = area_model.predict(ArrayConfig(6, 6, pe="int8_dsp_pipe"), "ecp5-25k")
    assert dsp["dsp"] == 36 and not dsp["fits"]                   # 28 MULT18X18D on the LFE5U-25F


@pytest.mark.parametrize("cfg, device, words", [
    (ArrayConfig(4, 4, pe="rf8_signlate"), "ecp5-25k", "no area data for 'rf8_signlate'"),
    (ArrayConfig(4, 4, acc_bits=27), "ecp5-25k", "acc_bits"),
    (ArrayConfig(4, 4, acc_bits=60), "ecp5-25k", "fitted on 28..40"),
    (ArrayConfig(4, 4, act_bits=6), "ecp5-25k", "act_bits 8"),
    (ArrayConfig(4, 4, overflow="saturate"), "ecp5-25k", "overflow 'wrap'"),
])
def test_what_the_model_has_no_data_for_is_refused_naming_what_it_has(cfg, device, words):
    with pytest.raises(ValueError) as exc:
        area_model.predict(cfg, device)
    assert words in str(exc.value)
    if "no area data" in words:
        assert "ecp5: " in str(exc.value) and "rf8_pipe" in str(exc.value)


def test_a_model_file_of_another_format_is_refused(tmp_path):
    bad = tmp_path / "m.json"
    bad.write_text(json.dumps({"format": "something else"}))
    with pytest.raises(area_model.AreaModelError, match="regenerate"):
        area_model.load(bad)


# ------------------------------------------------------------------ rf8hw estimate / sweep

@pytest.fixture(scope="module")
def checkpoint(train_mlp_digits):
    return train_mlp_digits(300)


def test_estimate_with_the_area_model_runs_no_synthesis_and_says_so(checkpoint, tmp_path, capsys,
                                                                    monkeypatch):
    def no_synthesis(*args, **kwargs):
        raise AssertionError("--area model must not synthesize")

    monkeypatch.setattr(synth_cache, "cached_synthesis", no_synthesis)
    out = tmp_path / "report"
    rc = cli.main(["estimate", "--model", "mlp_digits", "--checkpoint", str(checkpoint), "--rows", "8",
                   "--cols", "8", "--paths", "fp32", "--area", "model", "--json", "--quiet",
                   "--out", str(out)])
    assert rc == 0
    rep = json.loads(capsys.readouterr().out)
    pred = area_model.predict(ArrayConfig(8, 8), "ecp5-25k")
    assert rep["config"]["area"] == "model"
    assert (rep["lut4"], rep["ff"], rep["dsp"], rep["fmax_mhz"]) == \
        (pred["lut4"], pred["ff"], pred["dsp"], pred["fmax_mhz"])
    assert rep["synth"]["ran"] is False and rep["synth"]["source"] == "area model"
    assert rep["inferences_per_s"] == pytest.approx(pred["fmax_mhz"] * 1e6 / rep["cycles_per_inference"])
    assert any(area_model.NOTE in n for n in rep["notes"])
    assert "Predicted, not measured" in (out / "estimate.md").read_text()


def test_estimate_area_option_errors_are_one_line_exit_2(checkpoint, tmp_path, capsys):
    base = ["estimate", "--model", "mlp_digits", "--checkpoint", str(checkpoint), "--rows", "4",
            "--cols", "4", "--out", str(tmp_path / "r")]
    assert cli.main(base + ["--area", "model", "--pe", "rf8_signlate"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "no area data for 'rf8_signlate'" in err and "rf8_pipe" in err
    with pytest.raises(SystemExit) as exc:
        cli.main(base + ["--area", "guess"])
    assert exc.value.code == 2
    assert "invalid choice: 'guess'" in capsys.readouterr().err
    with pytest.raises(ValueError, match="area"):
        estimate.EstimateConfig(model="mlp_digits", checkpoint=str(checkpoint), area="guess")


def test_sweep_config_checks_the_model_covers_the_grid(checkpoint):
    ok = dse.SweepConfig(model="mlp_digits", checkpoint=str(checkpoint), pes=("rf8_pipe", "int8_dsp_pipe"),
                         rows=(4, 32), cols=(4,), acc_bits=(28, 40), area="model", place_pareto=True)
    assert ok.area == "model" and ok.place_pareto
    with pytest.raises(ValueError, match="no area data for 'rf8_signlate'"):
        dse.SweepConfig(model="mlp_digits", checkpoint=str(checkpoint), pes=("rf8_signlate",), area="model")
    with pytest.raises(ValueError, match="fitted on 28..40"):
        dse.SweepConfig(model="mlp_digits", checkpoint=str(checkpoint), acc_bits=(48,), area="model")
    with pytest.raises(ValueError, match="needs area 'model'"):
        dse.SweepConfig(model="mlp_digits", checkpoint=str(checkpoint), place_pareto=True)
    with pytest.raises(ValueError, match="give --place-pareto too"):
        dse.SweepConfig(model="mlp_digits", checkpoint=str(checkpoint), area="model", place_limit=2)
    with pytest.raises(ValueError, match="place_limit"):
        dse.SweepConfig(model="mlp_digits", checkpoint=str(checkpoint), area="model", place_pareto=True,
                        place_limit=0)


def test_place_limit_places_the_fastest_pareto_arrays_of_each_device_and_kind(checkpoint, tmp_path):
    cfg = dse.SweepConfig(model="mlp_digits", checkpoint=str(checkpoint), area="model", place_pareto=True,
                          place_limit=1)
    rows = [{"device": d, "pe": "rf8_pipe", "synth_key": f"{d}-{n}", "pareto": True,
             "inferences_per_s": float(n), "lut4_equiv": 100 * n, "fmax_mhz": 100.0}
            for d in ("ecp5-25k", "ecp5-85k") for n in (1, 3, 2)]
    rows.append({"device": "ecp5-25k", "pe": "int8_pipe", "synth_key": "int8", "pareto": True,
                 "inferences_per_s": 0.5, "lut4_equiv": 90, "fmax_mhz": 90.0})
    rows.append({"device": "ecp5-25k", "pe": "rf8_pipe", "synth_key": "off-front", "pareto": False,
                 "inferences_per_s": 9.0})
    jobs = {r["synth_key"]: (ArrayConfig(1, 1), r["device"], tmp_path / "nofit" / f"{r['synth_key']}.json")
            for r in rows}
    asked = []

    def run_factors(keys, into, what):
        asked.extend(keys)
        for k in keys:
            into[k] = {"ok": True, "value": {"fits": True, "lut4_equiv": 150, "fmax_mhz": 50.0}}

    # a does-not-fit result of the sweep's cache is read, not placed again
    dse._store(jobs["ecp5-85k-3"][2], "ecp5-85k-3", dse._nofit_params(ArrayConfig(1, 1), "ecp5-85k", 1),
               {"fits": False, "utilisation": {"TRELLIS_COMB": [9, 8]}})
    dse._place_pareto(cfg, rows, jobs, tmp_path / "synth", run_factors, tmp_path)
    assert asked == ["ecp5-25k-3", "int8"]                      # per device and PE kind
    assert [r["measured_fits"] for r in rows if r["synth_key"] == "ecp5-85k-3"] == [False]
    placed = {r["synth_key"]: r.get("pareto_placed") for r in rows}
    assert placed == {"ecp5-25k-1": False, "ecp5-25k-3": True, "ecp5-25k-2": False, "ecp5-85k-1": False,
                      "ecp5-85k-3": True, "ecp5-85k-2": False, "int8": True, "off-front": None}
    (hit,) = [r for r in rows if r["synth_key"] == "ecp5-25k-3"]
    assert (hit["measured_lut4_equiv"], hit["lut4_error_pct"], hit["fmax_error_pct"]) == (150, 100.0, 100.0)


def test_model_factor_and_its_sweep_row():
    fits = dse.model_factor(ArrayConfig(16, 16, pe="rf8_pipe"), "ecp5-85k")
    pred = area_model.predict(ArrayConfig(16, 16, pe="rf8_pipe"), "ecp5-85k")
    assert fits["fits"] and fits["source"] == "model"
    assert (fits["lut4_equiv"], fits["fmax_mhz"]) == (pred["lut4_equiv"], pred["fmax_mhz"])
    full = dse.model_factor(ArrayConfig(6, 6, pe="int8_dsp_pipe"), "ecp5-25k")
    assert not full["fits"] and "DSP 36/28" in full["error"]
    assert full["utilisation"]["dsp"] == [36, 28]


@pytest.mark.slow
def test_sweep_with_the_area_model_then_placing_its_pareto_point(checkpoint, tmp_path, capsys):
    synth, cache, out = tmp_path / "synth", tmp_path / "dse", tmp_path / "out"
    base = ["sweep", "--model", "mlp_digits", "--checkpoint", str(checkpoint), "--pe", "rf8_pipe",
            "--acc-bits", "28", "--area", "model", "--synth-cache", str(synth), "--cache", str(cache),
            "--num-cpus", "2", "--quiet", "--json"]
    # 1. arrays up to 64 x 64 without any synthesis: the model says which fit
    assert cli.main(base + ["--rows", "1,64", "--cols", "1,64", "--out", str(out)]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert not synth.exists() and rep["computed"]["synthesis"] == 0
    by = {(r["rows"], r["cols"]): r for r in rep["points"]}
    assert by[(64, 64)]["status"] == "does not fit"
    for shape in ((1, 1), (1, 64), (64, 1)):
        r = by[shape]
        pred = area_model.predict(ArrayConfig(*shape, pe="rf8_pipe", acc_bits=28), "ecp5-25k")
        assert r["status"] == "ok" and r["area_source"] == "model"
        assert (r["lut4_equiv"], r["fmax_mhz"]) == (pred["lut4_equiv"], pred["fmax_mhz"])
    assert area_model.NOTE in rep["notes"]
    assert "Area and Fmax are predictions of the area model" in (out / "sweep.md").read_text()
    # 2. --place-pareto: the front's arrays are synthesised, placed and routed; the accuracy is cached
    out2 = tmp_path / "out2"
    assert cli.main(base + ["--rows", "1", "--cols", "1", "--place-pareto", "--out", str(out2)]) == 0
    rep = json.loads(capsys.readouterr().out)
    (r,) = rep["points"]
    assert r["pareto"] and rep["computed"] == {"accuracy": 0, "synthesis": 1}
    placed, cached = synth_cache.cached_synthesis(ArrayConfig(1, 1, pe="rf8_pipe", acc_bits=28), "ecp5-25k",
                                                  cache_dir=synth)
    assert cached and r["measured_lut4_equiv"] == placed["lut4_equiv"]
    assert r["measured_fmax_mhz"] == placed["fmax_mhz"]
    want = round(100 * (r["lut4_equiv"] - placed["lut4_equiv"]) / placed["lut4_equiv"], 2)
    assert r["lut4_error_pct"] == want
    assert "measured_fmax_mhz" in (out2 / "sweep.md").read_text()
