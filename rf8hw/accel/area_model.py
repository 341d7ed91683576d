"""Area and Fmax of an array without place and route: a small model fitted on synthesis results
(``rf8hw estimate --area model``, ``rf8hw sweep --area model``; ``docs/area_model.md``).

LUT4 sites (and LUT4, carry, FF, DSP cells)
-------------------------------------------
One linear model per FPGA family and PE kind (Yosys' netlist of a family does not depend on the
part), in the array's rows ``R``, columns ``C`` and accumulator width ``A``::

    count = R*C*(p0 + p1*A) + R*(r0 + r1*A) + C*(c0 + c1*A) + (k0 + k1*A)

per PE, per row edge (activation skew and input registers), per column edge (result path, output
FIFO and the measurement wrapper's XOR tree) and fixed (control, AXI handshake, wrapper).  The
eight coefficients of each count are least-squares fitted on Yosys-only syntheses of small arrays
(:data:`FEATURES`), and checked on larger arrays that were not used to fit them (the held-out
table of ``area_model.json``).  The accumulator widths the model accepts are the ones it was fitted
between (``acc_range``).

Fmax
----
Post-route Fmax per device and PE kind, from placed arrays: piecewise linear in the PE count
``R*C`` through the median Fmax of each fitted array size (the *anchors*; the array's broadcast
nets grow with it), constant beyond the largest; and above a device fill ``knee`` at most ``cap``
MHz (a nearly full device routes slowly: the fast pipelined kinds drop to it, a kind already
slower does not).  Fill = predicted logic sites / the device's (``comb_ratio`` x LUT4 sites:
nextpnr places a few more logic cells than Yosys' LUT4 sites).  The DSP kinds have a second knee
on the share of the device's DSP blocks they use (``dsp_knee``): above it their Fmax is at most
the kind's ``dsp_cap`` (the multipliers sit in a few DSP columns; an array that uses most of them
stretches its rows across the device).  A device with no placed arrays of
its own may borrow the anchors of a device of the same family and speed grade (``fmax_from``;
said in every prediction).

A design *fits* when its predicted logic sites and DSP blocks are within the device's.

The coefficients live in ``rf8hw/accel/area_model.json``, written by ``benchmarks/area_model.py``
(which also writes ``docs/area_model.md``); :func:`fit` recomputes them from the points stored in
the same file (a test checks that they agree).  Predictions are predictions, not measurements:
every report that uses them says so.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

from rf8hw import checks

__all__ = ["MODEL_FILE", "FORMAT", "FEATURES", "COUNTS", "AreaModelError", "features", "fit",
           "fit_area", "fit_fmax", "load", "predict", "available", "heldout_table", "summary",
           "render_markdown", "shape_pes", "fmax_at", "largest_square", "GOALS", "NOTE"]

#: Where the fitted model is stored (package data; regenerate with ``benchmarks/area_model.py``).
MODEL_FILE = Path(__file__).with_name("area_model.json")
#: ``format`` of :data:`MODEL_FILE`.
FORMAT = "rf8hw-area-model-1"
#: The terms of every count, in coefficient order (R rows, C columns, A accumulator bits).
FEATURES = ("R*C", "R*C*A", "R", "R*A", "C", "C*A", "1", "A")
#: The counts the area model predicts (``lut4_equiv``: LUT4 sites, the one its goal is stated on).
COUNTS = ("lut4_equiv", "lut4", "carry", "ff", "dsp")
#: The model's goals (issue 22): largest held-out error in percent, per predicted quantity.
GOALS = {"lut4_equiv": 5.0, "fmax_mhz": 10.0}
#: What every report that uses the model says.
NOTE = ("area and Fmax are predictions of the area model (rf8hw/accel/area_model.py, fitted on "
        "synthesis results; docs/area_model.md), not measured: no synthesis or place and route ran")


class AreaModelError(ValueError):
    """The model cannot predict this design (no data for its kind, device or accumulator width)."""


def features(rows: int, cols: int, acc_bits: int) -> list[float]:
    """The :data:`FEATURES` of one array."""
    r, c, a = float(rows), float(cols), float(acc_bits)
    return [r * c, r * c * a, r, r * a, c, c * a, 1.0, a]


def _lstsq(xs: list[list[float]], ys: list[float]) -> list[float]:
    import numpy as np

    coef, *_ = np.linalg.lstsq(np.asarray(xs, dtype=float), np.asarray(ys, dtype=float), rcond=None)
    return [round(float(v), 6) for v in coef]


def _dot(coef, x) -> float:
    return sum(c * v for c, v in zip(coef, x))


def fit_area(points: list[dict]) -> dict:
    """``{family: {pe: {"acc_range", "shapes", "n_points", "coef": {count: [8 floats]}}}}``
    least-squares fitted on the ``role == "fit"`` points (Yosys results of one family, one PE
    kind, ``act_bits`` 8, overflow ``wrap``)."""
    groups: dict = {}
    for p in points:
        if p["role"] == "fit":
            groups.setdefault(p["family"], {}).setdefault(p["pe"], []).append(p)
    out = {}
    for family, kinds in sorted(groups.items()):
        for pe, pts in sorted(kinds.items()):
            accs = sorted({p["acc_bits"] for p in pts})
            xs = [features(p["rows"], p["cols"], p["acc_bits"]) for p in pts]
            coef = {}
            for count in COUNTS:
                xs_, ys = zip(*[(x, p[count]) for x, p in zip(xs, pts)])
                coef[count] = _lstsq(list(xs_), list(ys))
            if len(accs) == 1:        # no accumulator term can be told apart: the model is for this A only
                for count in COUNTS:
                    c = coef[count]
                    a = accs[0]
                    coef[count] = [round(c[0] + c[1] * a, 6), 0.0, round(c[2] + c[3] * a, 6), 0.0,
                                   round(c[4] + c[5] * a, 6), 0.0, round(c[6] + c[7] * a, 6), 0.0]
            out.setdefault(family, {})[pe] = {
                "acc_range": [accs[0], accs[-1]], "n_points": len(pts),
                "shapes": sorted({f"{p['rows']}x{p['cols']}" for p in pts},
                                 key=lambda s: tuple(map(int, s.split("x")))),
                "coef": coef}
    return out


def _median(values):
    v = sorted(values)
    n = len(v)
    return v[n // 2] if n % 2 else (v[n // 2 - 1] + v[n // 2]) / 2


def fit_fmax(fmax_points: list[dict], devices: dict) -> dict:
    """``{device: {"pes": {pe: {"anchors": [[PEs, MHz], ...], "dsp_cap", "dsp_from"}}, "fill":
    {"knee", "cap", "from"}, "dsp_knee", "fmax_from"}}`` from the ``role == "fit"`` placed arrays:
    per PE count the median Fmax (over seeds and accumulator widths) of the points at most
    ``fill_knee`` full and using at most ``dsp_knee`` of the DSP blocks (the device's, see
    ``devices``; ``dsp_fill`` of a point: 0 when absent); the cap above the logic knee: the lowest
    Fmax of the fit points above it (None when there are none); per DSP kind the cap above the DSP
    knee, likewise."""
    fit_pts = [p for p in fmax_points if p["role"] == "fit"]
    out = {}
    for device, dev in sorted(devices.items()):
        src = dev.get("fmax_from", device)
        knee = devices[src]["fill_knee"]
        dsp_knee = devices[src].get("dsp_knee", 1.0)
        mine = [p for p in fit_pts if p["device"] == src]
        derated = [p for p in mine if p["fill"] > knee]
        dsp_derated = [p for p in mine if p["fill"] <= knee and p.get("dsp_fill", 0.0) > dsp_knee]
        plain = [p for p in mine if p["fill"] <= knee and p.get("dsp_fill", 0.0) <= dsp_knee]
        pes = {}
        for pe in sorted({p["pe"] for p in plain}):
            by_n: dict = {}
            for p in plain:
                if p["pe"] == pe:
                    by_n.setdefault(p["rows"] * p["cols"], []).append(p["fmax_mhz"])
            pes[pe] = {"anchors": [[n, round(_median(v), 3)] for n, v in sorted(by_n.items())]}
            over = [p for p in dsp_derated if p["pe"] == pe]
            if over:
                pes[pe]["dsp_cap"] = round(min(p["fmax_mhz"] for p in over), 3)
                pes[pe]["dsp_from"] = [p["key"] for p in over]
        fill = {"knee": knee, "cap": None, "from": []}
        if derated:
            fill["cap"] = round(min(p["fmax_mhz"] for p in derated), 3)
            fill["from"] = [p["key"] for p in derated]
        out[device] = {"pes": pes, "fill": fill, "dsp_knee": dsp_knee, "fmax_from": src}
    return out


def fit(doc: dict) -> dict:
    """The fitted parts of a model document (``area``, ``fmax``) from its stored points: what
    ``benchmarks/area_model.py`` stores and :func:`load` reads."""
    return {"area": fit_area(doc["points"]), "fmax": fit_fmax(doc["fmax_points"], doc["devices"])}


@functools.cache
def _load_cached(path: str) -> dict:
    doc = json.loads(Path(path).read_text())
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise AreaModelError(f"{path} is not an rf8hw area model ({FORMAT}); regenerate it with "
                             "benchmarks/area_model.py")
    return doc


def load(path=None) -> dict:
    """The stored model (default :data:`MODEL_FILE`)."""
    return _load_cached(str(Path(path) if path is not None else MODEL_FILE))


def available(doc: dict | None = None) -> dict:
    """What the model can predict: ``{"area": {family: [pe...]}, "fmax": {device: [pe...]}}``."""
    doc = load() if doc is None else doc
    return {"area": {f: sorted(k) for f, k in doc["area"].items()},
            "fmax": {d: sorted(v["pes"]) for d, v in doc["fmax"].items()}}


def _fmax_base(anchors, n: int) -> float:
    """Piecewise linear in the PE count through the anchors; constant outside them."""
    if n <= anchors[0][0]:
        return anchors[0][1]
    for (n0, f0), (n1, f1) in zip(anchors, anchors[1:]):
        if n <= n1:
            return f0 + (n - n0) / (n1 - n0) * (f1 - f0)
    return anchors[-1][1]


def fmax_at(fmax_dev: dict, pe: str, n: int, fill: float, dsp_fill: float = 0.0) -> float:
    """The model's Fmax of ``n`` PEs of kind ``pe`` at logic ``fill`` and DSP-block share
    ``dsp_fill`` on one device."""
    m = fmax_dev["pes"][pe]
    f = _fmax_base(m["anchors"], n)
    cap = fmax_dev["fill"]["cap"]
    if cap is not None and fill > fmax_dev["fill"]["knee"]:
        f = min(f, cap)
    if m.get("dsp_cap") is not None and dsp_fill > fmax_dev.get("dsp_knee", 1.0):
        f = min(f, m["dsp_cap"])
    return f


def _names(items) -> str:
    return ", ".join(sorted(items)) or "none"


def predict(array, device: str, doc: dict | None = None) -> dict:
    """Predicted area and Fmax of ``array`` (an :class:`rf8hw.arch.ArrayConfig`) on ``device``.

    Returns ``lut4_equiv`` (LUT4 sites), ``lut4``, ``carry``, ``ff``, ``dsp`` (rounded counts),
    ``bram`` (0: the array keeps its buffers in LUT RAM), ``fmax_mhz``, ``fill`` (predicted
    logic sites / the device's), ``fits``, ``utilisation`` (``{"logic": [used, available],
    "dsp": [...]}``), ``device``, ``part``, ``source`` (``"area model"``), ``fmax_from`` (the
    device whose placed arrays gave the Fmax) and ``note``.

    Raises :class:`AreaModelError` (a ValueError) naming what the model has when it has no data
    for the device, the PE kind, the accumulator width, or an activation width / overflow rule
    other than the fitted ones (8, ``wrap``).
    """
    from rf8hw.accel.synth import check_device
    from rf8hw.arch import ArrayConfig

    if not isinstance(array, ArrayConfig):
        raise TypeError(f"array must be an ArrayConfig, not {array!r}")
    dev = check_device(device)
    doc = load() if doc is None else doc
    fitted = doc["fitted_on"]
    if (array.act_bits, array.overflow) != (fitted["act_bits"], fitted["overflow"]):
        raise AreaModelError(f"the area model was fitted on act_bits {fitted['act_bits']}, overflow "
                             f"{fitted['overflow']!r}; not act_bits {array.act_bits}, overflow "
                             f"{array.overflow!r} (use --area synth)")
    area = doc["area"].get(dev.family)
    if area is None or array.pe not in area:
        raise AreaModelError(f"the area model has no area data for {array.pe!r} on {dev.family} "
                             f"({device}); it has: " + "; ".join(
                                 f"{f}: {_names(k)}" for f, k in sorted(doc["area"].items())))
    fmax = doc["fmax"].get(device)
    if fmax is None or array.pe not in fmax["pes"]:
        raise AreaModelError(f"the area model has no Fmax data for {array.pe!r} on {device}; it has: "
                             + "; ".join(f"{d}: {_names(v['pes'])}" for d, v in sorted(doc["fmax"].items())))
    m = area[array.pe]
    lo, hi = m["acc_range"]
    checks.integer("acc_bits", array.acc_bits, lo, hi,
                   why=f" (the area model of {array.pe} on {dev.family} was fitted on {lo}..{hi})")
    x = features(array.rows, array.cols, array.acc_bits)
    counts = {k: max(0, round(_dot(m["coef"][k], x))) for k in COUNTS}
    cap = doc["devices"][device]
    sites = counts["lut4_equiv"] * cap["comb_ratio"]
    fill = sites / cap["comb_available"]
    f = fmax_at(fmax, array.pe, array.rows * array.cols, fill, counts["dsp"] / cap["dsp_available"])
    fits = sites <= cap["comb_available"] and counts["dsp"] <= cap["dsp_available"]
    return {**counts, "bram": 0, "fmax_mhz": round(f, 3), "fill": round(fill, 4), "fits": fits,
            "utilisation": {"logic": [round(sites), cap["comb_available"]],
                            "dsp": [counts["dsp"], cap["dsp_available"]]},
            "device": device, "part": dev.part, "source": "area model", "fmax_from": fmax["fmax_from"],
            "note": NOTE}


def largest_square(pe: str, device: str, acc_bits: int = 40, doc: dict | None = None) -> int:
    """The largest ``N`` whose ``N x N`` array of ``pe`` the model predicts to fit ``device``
    (0: not even 1 x 1); errors as :func:`predict`."""
    from rf8hw.arch import MAX_DIM, ArrayConfig

    best = 0
    for n in range(1, MAX_DIM + 1):
        if not predict(ArrayConfig(n, n, pe=pe, acc_bits=acc_bits), device, doc)["fits"]:
            break
        best = n
    return best


def heldout_table(doc: dict) -> list[dict]:
    """Prediction vs measurement on every stored point (``role`` fit or heldout): LUT4 sites
    on the area points, Fmax on the placed ones; errors in percent of the measurement."""
    from rf8hw.arch import ArrayConfig

    rows = []
    for p in doc["points"]:
        dev = {"ecp5": "ecp5-25k", "ice40": "ice40-up5k"}[p["family"]]
        cfg = ArrayConfig(p["rows"], p["cols"], pe=p["pe"], acc_bits=p["acc_bits"])
        m = doc["area"][p["family"]][p["pe"]]
        pred = round(_dot(m["coef"]["lut4_equiv"], features(cfg.rows, cfg.cols, cfg.acc_bits)))
        rows.append({"what": "lut4_equiv", "role": p["role"], "family": p["family"], "device": dev,
                     "pe": p["pe"], "shape": f"{p['rows']}x{p['cols']}", "acc_bits": p["acc_bits"],
                     "measured": p["lut4_equiv"], "predicted": pred,
                     "error_pct": round(100 * (pred - p["lut4_equiv"]) / p["lut4_equiv"], 2)})
    for p in doc["fmax_points"]:
        fm = doc["fmax"].get(p["device"])
        if fm is None or p["pe"] not in fm["pes"]:
            continue
        f = fmax_at(fm, p["pe"], p["rows"] * p["cols"], p["fill"], p.get("dsp_fill", 0.0))
        rows.append({"what": "fmax_mhz", "role": p["role"], "family": p["device"].split("-")[0],
                     "device": p["device"], "pe": p["pe"], "shape": f"{p['rows']}x{p['cols']}",
                     "acc_bits": p["acc_bits"], "seed": p.get("seed"), "fill": p["fill"],
                     "same_netlist": p.get("same_netlist"), "rf8hw": p.get("rf8hw"),
                     "measured": round(p["fmax_mhz"], 3), "predicted": round(f, 3),
                     "error_pct": round(100 * (f - p["fmax_mhz"]) / p["fmax_mhz"], 2)})
    return rows


def summary(table: list[dict]) -> dict:
    """Per quantity (:data:`GOALS`), family and role: points, mean and largest absolute error in
    percent, and for the held-out points whether the goal is met."""
    out = {}
    for row in table:
        g = out.setdefault(row["what"], {}).setdefault(row["family"], {}).setdefault(row["role"], [])
        g.append(abs(row["error_pct"]))
    for what, fams in out.items():
        for roles in fams.values():
            for role, errs in roles.items():
                worst = max(errs)
                roles[role] = {"n": len(errs), "mean_abs_error_pct": round(sum(errs) / len(errs), 2),
                               "max_abs_error_pct": round(worst, 2)}
                if role == "heldout":
                    roles[role]["goal_pct"] = GOALS[what]
                    roles[role]["goal_met"] = worst <= GOALS[what]
    return out


def shape_pes(shape: str) -> int:
    """PEs of a ``"RxC"`` shape."""
    r, c = shape.split("x")
    return int(r) * int(c)


def _cell(v) -> str:
    if isinstance(v, float):
        return f"{v:,.1f}" if abs(v) >= 100 else f"{v:.4g}"
    if isinstance(v, int) and not isinstance(v, bool):
        return f"{v:,}"
    return "" if v is None else str(v)


def render_markdown(doc: dict) -> str:
    """``docs/area_model.md``: the model, its coefficients and its fit / held-out table."""
    lines = ["<!-- Generated by benchmarks/area_model.py from rf8hw/accel/area_model.json; do not edit.",
             f"     Regenerate: {doc['regenerate']}",
             "     (refit from the stored points only: "
             ".venv/bin/python benchmarks/area_model.py fit --stored) -->",
             "", "# Area and Fmax without place and route", "",
             "`rf8hw estimate --area model` and `rf8hw sweep --area model` predict an array's LUT4 sites "
             "and post-route Fmax with the model of `rf8hw/accel/area_model.py` instead of running "
             "Yosys and nextpnr; their reports say so.  The model and how it is fitted are described "
             "in the module; this page is its data.", "",
             f"Fitted on: LUT4 sites from {doc['sources']['lut4_equiv']} (RTL key `{doc['rtl_key']}`, "
             f"{doc['tools'].get('yosys', '')}); Fmax from {doc['sources']['fmax_mhz']}.", "",
             "## Held-out error", "",
             "| quantity | family | role | points | mean abs error % | max abs error % | goal |",
             "|---|---|---|---|---|---|---|"]
    for what, fams in doc["summary"].items():
        for fam, roles in fams.items():
            for role, s in roles.items():
                goal = "" if role != "heldout" else \
                    f"<= {s['goal_pct']:g} %: {'met' if s['goal_met'] else 'missed'}"
                lines.append(f"| {what} | {fam} | {role} | {s['n']} | {s['mean_abs_error_pct']:.2f} | "
                             f"{s['max_abs_error_pct']:.2f} | {goal} |")
    held = [r for r in doc["table"] if r["role"] == "heldout"]

    def largest(what, where):
        sizes = [r["shape"] for r in held if r["what"] == what and where(r)]
        return max(sizes, key=lambda t: shape_pes(t), default="none")

    fmax_devices = sorted({r["device"] for r in held if r["what"] == "fmax_mhz"})
    versions = sorted({p["rf8hw"] for p in doc["fmax_points"]})
    lines += ["", "What the held-out points can and cannot say: LUT4 sites are held out on arrays up to "
              f"{largest('lut4_equiv', lambda r: r['family'] == 'ecp5')} (ECP5) and "
              f"{largest('lut4_equiv', lambda r: r['family'] == 'ice40')} (iCE40), all synthesised from the "
              "same RTL as the fit points.  Fmax is held out only on "
              f"{', '.join(fmax_devices) or 'no device'} (largest "
              f"{largest('fmax_mhz', lambda r: True)}), on placed arrays measured by rf8hw "
              f"{', '.join(versions)} (older RTL than the LUT points for some: each point's version is in "
              "the JSON); a device without held-out points has no check of its Fmax (a device that borrows "
              "another's anchors says so in `fmax_from`)."]
    if doc.get("ablation"):
        errs = ", ".join(f"{r['pe']} {r['shape']} (A {r['acc_bits']}) {r['error_pct']:+.2f} %"
                         for r in doc["ablation"]["table"]
                         if r["family"] == "ecp5" and shape_pes(r["shape"]) >= 36)
        lines += ["", f"The same LUT4 model fitted on {doc['ablation']['fit']}, on the ECP5 held-out arrays "
                  f"of 36 PEs and more: {errs or 'none'} (all its held-out rows: `ablation` in the JSON)."]
    lines += ["", "## LUT4 sites: coefficients", "",
              "count = R*C*(p0 + p1*A) + R*(r0 + r1*A) + C*(c0 + c1*A) + (k0 + k1*A); "
              "R rows, C columns, A accumulator bits.", "",
              "| family | PE kind | A fitted | shapes fitted | " + " | ".join(doc["features"]) + " |",
              "|---|---|---|---|" + "---|" * len(doc["features"])]
    for fam, kinds in doc["area"].items():
        for pe, m in kinds.items():
            lines.append(f"| {fam} | {pe} | {m['acc_range'][0]}..{m['acc_range'][1]} | "
                         f"{', '.join(m['shapes'])} | "
                         + " | ".join(f"{c:.4g}" for c in m["coef"]["lut4_equiv"]) + " |")
    lines += ["", "## Fmax: anchors and fill derating", "",
              "| device | Fmax from | PE kind | anchors (PEs: MHz) |", "|---|---|---|---|"]
    for dev, f in doc["fmax"].items():
        for pe, m in f["pes"].items():
            lines.append(f"| {dev} | {f['fmax_from']} | {pe} | "
                         + ", ".join(f"{n}: {mhz:.1f}" for n, mhz in m["anchors"]) + " |")
    lines += ["", "| device | fill knee | cap above it (MHz) | fitted on |", "|---|---|---|---|"]
    for dev, f in doc["fmax"].items():
        d = f["fill"]
        lines.append(f"| {dev} | {d['knee']} | {_cell(d['cap']) or 'none'} | "
                     f"{', '.join(d['from']) or 'no fit point above the knee'} |")
    lines += ["", "DSP kinds above the DSP-block knee (share of the device's DSP blocks used):", "",
              "| device | DSP knee | PE kind | cap above it (MHz) | fitted on |", "|---|---|---|---|---|"]
    for dev, f in doc["fmax"].items():
        for pe, m in f["pes"].items():
            if m.get("dsp_cap") is not None:
                lines.append(f"| {dev} | {f['dsp_knee']} | {pe} | {_cell(m['dsp_cap'])} | "
                             f"{', '.join(m['dsp_from'])} |")
    lines += ["", "| device | logic sites | DSP | placed logic sites per LUT4 site |", "|---|---|---|---|"]
    for dev, c in doc["devices"].items():
        lines.append(f"| {dev} | {c['comb_available']:,} | {c['dsp_available']} | {c['comb_ratio']} |")
    lines += ["", "## Largest square array that fits (predicted, accumulator 40 bits)", "",
              "The largest N with an N x N array within the device's logic sites and DSP blocks, and "
              "its predicted LUT4 sites and Fmax: where a sweep with `--area model` can stop.", "",
              "| device | PE kind | N | LUT4 sites | DSP | Fmax (MHz) |", "|---|---|---|---|---|---|"]
    from rf8hw.accel.synth import DEVICES
    from rf8hw.arch import ArrayConfig

    for dev in doc["devices"]:
        family = DEVICES[dev].family
        for pe in sorted(doc["area"].get(family, {})):
            lo, hi = doc["area"][family][pe]["acc_range"]
            if pe not in doc["fmax"].get(dev, {}).get("pes", {}) or not lo <= 40 <= hi:
                continue
            n = largest_square(pe, dev, 40, doc)
            p = predict(ArrayConfig(max(n, 1), max(n, 1), pe=pe), dev, doc)
            lines.append(f"| {dev} | {pe} | {n} | {p['lut4_equiv']:,} | {p['dsp']} | {p['fmax_mhz']:.1f} |"
                         if n else f"| {dev} | {pe} | 0 | | | |")
    lines += ["", "## Every point", "",
              "Error = (predicted - measured) / measured.  Fmax points use the fill they were placed "
              "at (the model's own prediction of it only in `rf8hw estimate`/`sweep`); each one's "
              "source is in `area_model.json` (`fmax_points`).  *today's netlist*: whether the placed "
              "array had the LUT4 sites of today's Yosys run of the same array (yes: measured on "
              "today's RTL; no: older RTL; blank: no such run).", "",
              "| quantity | role | device | PE kind | shape | A | seed | fill | rf8hw | today's netlist "
              "| measured | predicted | error % |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in doc["table"]:
        where = r["device"] if r["what"] == "fmax_mhz" else r["family"]
        lines.append(f"| {r['what']} | {r['role']} | {where} | "
                     f"{r['pe']} | {r['shape']} | {r['acc_bits']} | {_cell(r.get('seed'))} | "
                     f"{_cell(r.get('fill'))} | {_cell(r.get('rf8hw'))} | "
                     f"{ {True: 'yes', False: 'no'}.get(r.get('same_netlist'), '')} | "
                     f"{_cell(r['measured'])} | {_cell(r['predicted'])} | "
                     f"{r['error_pct']:+.2f} |")
    return "\n".join(lines) + "\n"
