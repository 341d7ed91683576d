"""Fit the area / Fmax model (:mod:`rf8hw.accel.area_model`) and write ``rf8hw/accel/area_model.json``
and ``docs/area_model.md``.

Two steps:

``synth``
    Yosys-only syntheses (``rf8hw.accel.synth.synthesize(..., place=False)``, the measurement
    wrapper included, as ``rf8hw synth`` counts) of the array shapes below, per PE kind, accumulator
    width and family, appended as JSON lines to ``build/area_model/points.jsonl`` (resumable: a
    point already there is skipped).  A 16 x 16 array takes about 1-3 minutes here.
``fit``
    Reads those points (role ``fit``: :data:`FIT_SHAPES` x :data:`FIT_ACC`; every other point is
    held out), the placed arrays of ``docs/hardware_table.json`` measured on the current design
    and the Pareto arrays placed by the MiniLM sweeps (:data:`PLACED_SWEEPS`, held out) (post-route
    Fmax), fits the model
    (:func:`rf8hw.accel.area_model.fit`) and writes the JSON (points, coefficients, the held-out
    table) and the Markdown page.  ``--stored`` refits from the points already stored in the JSON
    (no Yosys, no build folder): what the drift test does; ``--keep-area`` keeps the stored LUT
    points and re-reads the placed arrays (after new place-and-route runs).

Regenerate::

    .venv/bin/python benchmarks/area_model.py synth            # all kinds, ecp5 and ice40
    .venv/bin/python benchmarks/area_model.py fit
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rf8hw.accel import area_model  # noqa: E402
from rf8hw.arch import PE_KINDS, ArrayConfig  # noqa: E402
from rf8hw.files import write_atomic  # noqa: E402

POINTS_DIR = ROOT / "build" / "area_model"
DOC = ROOT / "docs" / "area_model.md"
HARDWARE_TABLE = ROOT / "docs" / "hardware_table.json"
#: Sweeps whose Pareto points were placed and routed (``--place-pareto``) on the current design:
#: their post-route Fmax are held-out points (never fitted on).
PLACED_SWEEPS = tuple(ROOT / "docs" / "results" / "dse_minilm_deployable" / d / "sweep.json"
                      for d in ("placed_25k", "placed_85k_dsp"))

#: Shapes and accumulator widths the LUT model is fitted on, and one larger array (8 x 8,
#: accumulator 40) where there is one; every other point is held out.  Fitted on 1 x 1 .. 4 x 4
#: alone, the model came out 3-5 % low on 8 x 8 and 16 x 16 (per-PE cost grows slightly with the
#: array: 4 x 4 = 160.0, 8 x 8 = 160.7, 16 x 16 = 161.3 LUT4 sites per rf8_pipe PE); the page shows
#: that fit's held-out errors too (``ablation``).
FIT_SHAPES = ("1x1", "1x2", "2x1", "2x2", "1x4", "4x1", "2x4", "4x2", "4x4")
FIT_ACC = (28, 40)
FIT_LARGE = (("8x8", 40),)
#: Held-out arrays per family and PE kind ("*": every other kind): (shape, acc_bits).  Sized to what
#: two shared cores synthesise in an hour (a 16 x 16 array: 5-15 minutes of Yosys).
HELDOUT = {
    "ecp5": {"rf8_pipe": [("3x5", 40), ("6x6", 40), ("12x12", 40), ("16x16", 40), ("8x8", 32)],
             "int8_pipe": [("3x5", 40), ("16x16", 40)],
             "int8_dsp_pipe": [("16x16", 40)],
             "*": [("6x6", 40)]},
    "ice40": {"*": [("3x5", 40), ("5x5", 40)]},
}
#: The PE kinds of each family's model.
KINDS = {"ecp5": tuple(k for k in PE_KINDS if k != "rf8_signlate"), "ice40": ("rf8_pipe", "int8_pipe")}
#: The device each family is synthesised for (Yosys' netlist of a family is the same for every part).
FAMILY_DEVICE = {"ecp5": "ecp5-25k", "ice40": "ice40-up5k"}
#: Placed array sizes whose post-route Fmax the Fmax model is fitted on (the rest are held out).
FMAX_FIT_SHAPES = ("1x1", "2x2", "4x4", "8x8")
#: The placed array above the fill knee whose Fmax gives the cap (the least full one whose Fmax
#: dropped below the kind's plateau); the other arrays above the knee are held out.
CAP_FIT = {"ecp5-25k": "hardware_table.json runs[ecp5-25k|rf8_pipe|10x10|s1]"}
#: Device capacities: logic sites and DSP blocks as nextpnr reports them (TRELLIS_COMB /
#: ICESTORM_LC, MULT18X18D / ICESTORM_DSP; the LFE5U-85F's 156 multipliers from Lattice's data
#: sheet: no placed 85k run reports them), and the device whose placed arrays give the Fmax.
#: ``fill_knee``: logic fill (placed logic sites / the device's) above which Fmax is capped; on ECP5
#: above the fullest fitted array of a fast kind (int8_pipe 8x8: 60 %); on the current RTL the drop
#: above it is small (rf8_pipe 10x10 at 72 %: 119.6 MHz, 11x11 at 87 %: 115.3; int8_pipe 10x10 at
#: 95 %: 114.4 against 118.3 at 8x8).  On the iCE40UP5K every placed 4x4 array fills 73-83 % and
#: nothing between 1x1 and 4x4 was placed: fill and size cannot be told apart, no knee.
#: ``dsp_knee``: share of the DSP blocks above which a DSP kind's Fmax is capped (ECP5: 16 of 28
#: blocks, 57 %, kept int8_dsp_pipe at 140 MHz; 25 of 28 dropped it to 97); the least DSP-full
#: placed array above it gives each kind's cap, the others are held out.
DEVICES = {
    "ecp5-25k": {"comb_available": 24288, "dsp_available": 28, "fill_knee": 0.7, "dsp_knee": 0.75},
    "ecp5-85k": {"comb_available": 83640, "dsp_available": 156, "fill_knee": 0.7, "fmax_from": "ecp5-25k"},
    "ice40-up5k": {"comb_available": 5280, "dsp_available": 8, "fill_knee": 1.0},
}


def specs(pes, families):
    for family in families:
        for pe in pes:
            if pe not in KINDS[family]:
                continue
            for acc in FIT_ACC:
                for s in FIT_SHAPES:
                    yield pe, s, acc, family
            if family == "ecp5":
                for s, acc in FIT_LARGE:
                    yield pe, s, acc, family
            held = HELDOUT[family]
            for s, acc in held.get(pe, held["*"]):
                yield pe, s, acc, family


def read_points(folder: Path) -> list[dict]:
    """Every Yosys point in ``folder/*.jsonl`` (the last one of each key wins)."""
    found = {}
    for f in sorted(folder.glob("*.jsonl")):
        for line in f.read_text().splitlines():
            if line.strip():
                r = json.loads(line)
                found[(r["family"], r["pe"], r["rows"], r["cols"], r["acc_bits"])] = r
    return list(found.values())


def cmd_synth(args) -> int:
    from rf8hw.accel.synth import synthesize

    folder = Path(args.points_dir)
    folder.mkdir(parents=True, exist_ok=True)
    have = {(r["family"], r["pe"], r["rows"], r["cols"], r["acc_bits"]) for r in read_points(folder)}
    out = folder / "points.jsonl"
    for pe, shape, acc, family in specs(args.pe, args.family):
        rows, cols = map(int, shape.split("x"))
        if (family, pe, rows, cols, acc) in have:
            continue
        cfg = ArrayConfig(rows, cols, pe=pe, acc_bits=acc)
        t0 = time.monotonic()
        res = synthesize(cfg, FAMILY_DEVICE[family], place=False, progress=None,
                         workdir=folder / "work" / f"{pe}_{shape}_acc{acc}_{family}")
        keep = {k: res[k] for k in ("lut4", "carry", "lut4_equiv", "ff", "dsp", "bram", "lutram", "pe",
                                    "rows", "cols", "acc_bits", "act_bits", "overflow", "yosys_command",
                                    "booth", "wrapper", "tools", "seconds")}
        keep.update(family=family, wall_s=round(time.monotonic() - t0, 1))
        with out.open("a") as f:
            f.write(json.dumps(keep) + "\n")
        print(f"{pe} {shape} acc{acc} {family}: {keep['lut4_equiv']} LUT4 sites ({keep['wall_s']} s)",
              flush=True)
    return 0


def area_points(raw: list[dict], large=FIT_LARGE) -> list[dict]:
    out = []
    for r in raw:
        shape = f"{r['rows']}x{r['cols']}"
        fit = (shape in FIT_SHAPES and r["acc_bits"] in FIT_ACC) or (shape, r["acc_bits"]) in large
        role = "fit" if fit else "heldout"
        out.append({"family": r["family"], "pe": r["pe"], "rows": r["rows"], "cols": r["cols"],
                    "acc_bits": r["acc_bits"], "role": role,
                    **{k: r[k] for k in area_model.COUNTS}})
    return sorted(out, key=lambda p: (p["family"], p["pe"], p["role"] != "fit", p["acc_bits"],
                                      p["rows"] * p["cols"], p["rows"]))


def placed_sweep_points(path: Path, comb_ratio: dict) -> list[dict]:
    """The placed Pareto arrays of one ``--place-pareto`` sweep (one point per array), as Fmax points."""
    sweep = json.loads(path.read_text())
    pts, seen = [], set()
    for r in sweep["points"]:
        if not r.get("measured_fmax_mhz") or r["synth_key"] in seen:
            continue
        seen.add(r["synth_key"])
        ratio = comb_ratio[r["device"].split("-")[0]]
        pts.append({"key": f"{path.relative_to(ROOT / 'docs')} synth_key {r['synth_key']}",
                    "device": r["device"], "pe": r["pe"], "rows": r["rows"], "cols": r["cols"],
                    "acc_bits": r["acc_bits"], "seed": r["seed"], "fmax_mhz": r["measured_fmax_mhz"],
                    "fill": round(r["measured_lut4_equiv"] * ratio / DEVICES[r["device"]]["comb_available"],
                                  4),
                    "dsp_fill": round(r["dsp"] / DEVICES[r["device"]]["dsp_available"], 4),
                    "rf8hw": sweep["versions"]["rf8hw"], "lut4_equiv": r["measured_lut4_equiv"],
                    "placed_sweep": True})
    return pts


def fmax_points(comb_ratio: dict, area: list[dict]) -> list[dict]:
    """Placed arrays with a post-route Fmax: the hardware table's array runs measured on the
    current design (:func:`rf8hw.accel.synth.design_key` equal to the stored one: a run on older
    RTL or another flow is left out).  ``same_netlist``: whether the LUT4 sites it was placed with
    are those of the stored Yosys run of the same array (``area``; None: no such run), i.e. whether
    the LUT points were measured on the same netlist.  ``dsp_fill``: DSP blocks used / the device's."""
    from rf8hw.accel.synth import design_key

    today = {(p["pe"], p["rows"], p["cols"], p["acc_bits"]): p["lut4_equiv"] for p in area
             if p["family"] == "ecp5"}
    pts = []
    table = json.loads(HARDWARE_TABLE.read_text())["runs"]
    for key, r in sorted(table.items()):
        if r.get("unit") == "pe" or not r.get("fits") or not r.get("fmax_mhz"):
            continue
        if r.get("design_key") != design_key(ArrayConfig(r["rows"], r["cols"], pe=r["pe"]), r["device"],
                                             r["seed"]):
            print(f"left out (measured on another design): {key}", file=sys.stderr)
            continue
        pts.append({"key": f"hardware_table.json runs[{key}]", "device": r["device"], "pe": r["pe"],
                    "rows": r["rows"], "cols": r["cols"], "acc_bits": 40, "seed": r["seed"],
                    "fmax_mhz": r["fmax_mhz"], "fill": round(r["comb_used"] / r["comb_available"], 4),
                    "dsp_fill": round(r["dsp"] / r["dsp_available"], 4) if r.get("dsp_available") else 0.0,
                    "rf8hw": r["tools"]["rf8hw"], "lut4_equiv": r["lut4_equiv"]})
    for path in PLACED_SWEEPS:
        pts += placed_sweep_points(path, comb_ratio)
    for p in pts:
        now = today.get((p["pe"], p["rows"], p["cols"], p["acc_bits"])) if p["device"].startswith("ecp5") \
            else None
        p["same_netlist"] = None if now is None else now == p["lut4_equiv"]
        p["above"] = p["fill"] > DEVICES[p["device"]]["fill_knee"]
        p["dsp_above"] = not p["above"] and p["dsp_fill"] > DEVICES[p["device"]].get("dsp_knee", 1.0)
    # per device and DSP kind, the least DSP-full array above the DSP knee gives the cap
    dsp_cap_fit = {}
    for p in pts:
        if p["dsp_above"] and "fmax_from" not in DEVICES[p["device"]] and not p.get("placed_sweep"):
            k = (p["device"], p["pe"])
            if k not in dsp_cap_fit or p["dsp_fill"] < dsp_cap_fit[k]["dsp_fill"]:
                dsp_cap_fit[k] = p
    for p in pts:
        shape = f"{p['rows']}x{p['cols']}"
        plain = not p.pop("above") and not p.pop("dsp_above")
        swept = p.pop("placed_sweep", False)
        own = "fmax_from" not in DEVICES[p["device"]] and not swept
        p["role"] = "fit" if own and ((shape in FMAX_FIT_SHAPES and plain) or p["key"] == CAP_FIT.get(
            p["device"]) or dsp_cap_fit.get((p["device"], p["pe"])) is p) else "heldout"
    return sorted(pts, key=lambda p: (p["device"], p["pe"], p["role"] != "fit", p["rows"] * p["cols"],
                                      p["rows"], p["acc_bits"], p["seed"]))


def comb_ratios() -> dict:
    """Per family, the median of nextpnr's placed logic sites / Yosys' LUT4 sites over the
    hardware table's placed arrays of at least 16 PEs without DSP multipliers (ECP5: route-through
    LUTs, 1.06-1.14; iCE40: LUT-less flip-flops, 1.32-1.40; the DSP kinds' few LUTs are not what
    fills a device)."""
    table = json.loads(HARDWARE_TABLE.read_text())["runs"]
    by = {}
    for r in table.values():
        if r.get("unit") != "pe" and r.get("fits") and r.get("comb_used") and r["rows"] * r["cols"] >= 16 \
                and not PE_KINDS[r["pe"]].dsp:
            by.setdefault(r["device"].split("-")[0], []).append(r["comb_used"] / r["lut4_equiv"])
    return {f: round(sorted(v)[len(v) // 2], 4) for f, v in sorted(by.items())}


def build(doc_points: list[dict], doc_fmax: list[dict], ratios: dict, meta: dict) -> dict:
    devices = {d: {**c, "comb_ratio": ratios[d.split("-")[0]]} for d, c in DEVICES.items()}
    doc = {"format": area_model.FORMAT, **meta, "fitted_on": {"act_bits": 8, "overflow": "wrap"},
           "features": list(area_model.FEATURES), "devices": devices,
           "points": doc_points, "fmax_points": doc_fmax}
    doc.update(area_model.fit(doc))
    doc["table"] = area_model.heldout_table(doc)
    doc["summary"] = area_model.summary(doc["table"])
    # the same LUT fit without the 8 x 8 points: its error on them and on every other held-out array
    small = [{**p, "role": "fit" if p["role"] == "fit" and (f"{p['rows']}x{p['cols']}", p["acc_bits"])
              not in FIT_LARGE else "heldout"} for p in doc_points]
    alt = {**doc, "points": small, "fmax_points": [], "area": area_model.fit_area(small)}
    doc["ablation"] = {"fit": "1x1 .. 4x4 only (no 8x8)",
                       "table": [r for r in area_model.heldout_table(alt) if r["role"] == "heldout"]}
    return doc


FMAX_SOURCE = ("post-route Fmax of the placed arrays of docs/hardware_table.json measured on the "
               "current design (its design key; the *today's netlist* column compares their LUT4 "
               "sites with the LUT points'), and, held out only, the Pareto arrays the MiniLM sweep "
               "placed (docs/results/dse_minilm_deployable/placed_25k/ and placed_85k_dsp/sweep.json)")


def cmd_fit(args) -> int:
    from rf8hw.toolchain import cache
    from rf8hw.toolchain.tools import synthesis_tool_versions

    out = Path(args.out)
    if args.keep_area:
        old = json.loads(area_model.MODEL_FILE.read_text())
        ratios = comb_ratios()
        meta = {k: old[k] for k in ("generated_by", "regenerate", "rtl_key", "tools", "sources")}
        meta["sources"] = {**meta["sources"], "fmax_mhz": FMAX_SOURCE}
        doc = build(old["points"], fmax_points(ratios, old["points"]), ratios, meta)
    elif args.stored:
        old = json.loads(area_model.MODEL_FILE.read_text())
        meta = {k: old[k] for k in ("generated_by", "regenerate", "rtl_key", "tools", "sources")}
        doc = build(old["points"], old["fmax_points"], {d.split("-")[0]: c["comb_ratio"]
                                                        for d, c in old["devices"].items()}, meta)
    else:
        ratios = comb_ratios()
        raw = read_points(Path(args.points_dir))
        if not raw:
            raise SystemExit(f"no points in {args.points_dir}: run `benchmarks/area_model.py synth` first")
        meta = {"generated_by": "benchmarks/area_model.py",
                "regenerate": ".venv/bin/python benchmarks/area_model.py synth && "
                              ".venv/bin/python benchmarks/area_model.py fit",
                "rtl_key": cache.synthesis_key({}, ("accel/synth.py",)),
                "tools": synthesis_tool_versions("ecp5"),
                "sources": {"lut4_equiv": "Yosys-only syntheses (place=False) of the current RTL, "
                                          "measurement wrapper included",
                            "fmax_mhz": FMAX_SOURCE}}
        area = area_points(raw)
        doc = build(area, fmax_points(ratios, area), ratios, meta)
    text = json.dumps(doc, indent=1) + "\n"
    write_atomic(out, text)
    write_atomic(Path(args.doc), area_model.render_markdown(doc))
    s = doc["summary"]
    print(json.dumps(s, indent=1))
    print(f"wrote {out}, {args.doc}", file=sys.stderr)
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("synth", help="Yosys-only syntheses of the model's points")
    s.add_argument("--pe", type=lambda t: t.split(","), default=list(PE_KINDS))
    s.add_argument("--family", type=lambda t: t.split(","), default=list(FAMILY_DEVICE))
    s.add_argument("--points-dir", default=str(POINTS_DIR))
    s.set_defaults(func=cmd_synth)
    f = sub.add_parser("fit", help="fit the model, write the JSON and the Markdown page")
    f.add_argument("--points-dir", default=str(POINTS_DIR))
    f.add_argument("--stored", action="store_true",
                   help="refit from the points stored in rf8hw/accel/area_model.json (no Yosys)")
    f.add_argument("--keep-area", action="store_true",
                   help="keep the LUT points stored in rf8hw/accel/area_model.json (no Yosys), re-read "
                        "the Fmax points from docs/hardware_table.json")
    f.add_argument("--out", default=str(area_model.MODEL_FILE))
    f.add_argument("--doc", default=str(DOC))
    f.set_defaults(func=cmd_fit)
    args = ap.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    raise SystemExit(main())
