"""Tables and plots of an ``rf8hw sweep`` (:mod:`rf8hw.accel.dse`): ``sweep.json``, ``sweep.csv``,
``sweep.md``, and per device ``sweep_<device>_throughput.png`` (inferences/s vs LUT4 sites) and
``sweep_<device>_accuracy.png`` (accuracy vs LUT4 sites), each with its Pareto front marked and
the INT8 (soft and DSP) and FP8 baselines drawn in the same axes as the RF8 points."""

from __future__ import annotations

import csv
import io
import json
import os

from rf8hw import checks
from rf8hw.accel.report import decimals_to_tell_apart
from rf8hw.files import write_files

__all__ = ["COLUMNS", "pareto_front", "pick_best", "summarize", "write_outputs", "render_markdown"]

#: Table columns, in order (CSV and Markdown; the JSON rows hold every field).
COLUMNS = ("device", "pe", "rows", "cols", "acc_bits", "rounding", "act", "status", "accuracy",
           "accuracy_path", "overflow_events", "lut4_equiv", "lut4", "ff", "carry", "dsp", "bram",
           "fmax_mhz", "cycles_per_inference", "array_utilisation", "inferences_per_s", "gmac_per_s",
           "pareto", "pareto_throughput", "pareto_accuracy", "area_source", "pareto_placed",
           "measured_lut4_equiv", "measured_fmax_mhz", "lut4_error_pct", "fmax_error_pct", "accuracy_node",
           "synth_node", "accuracy_cached", "synth_cached", "synth_seconds", "error", "log")

#: (x, y) objectives of the fronts: LUT4 sites down, the other up (accuracy: its own direction).
THROUGHPUT = {"lut4_equiv": "min", "inferences_per_s": "max"}


def pareto_front(rows: list[dict], objectives: dict) -> list[bool]:
    """Which rows are Pareto-optimal under ``objectives`` (column -> ``"min"`` or ``"max"``).

    A row with a missing (None) objective is never on the front and dominates nothing.  Row ``a``
    dominates ``b`` when it is at least as good in every objective and better in one; rows equal
    in every objective are all on the front."""
    for col, sense in objectives.items():
        checks.choice(f"objective {col!r}", sense, ("min", "max"))
    sign = {c: (1 if s == "max" else -1) for c, s in objectives.items()}
    vals = [None if any(r.get(c) is None for c in objectives) else tuple(sign[c] * r[c] for c in objectives)
            for r in rows]

    def dominates(a, b):
        return all(x >= y for x, y in zip(a, b)) and any(x > y for x, y in zip(a, b))

    return [v is not None and not any(w is not None and dominates(w, v) for w in vals) for v in vals]


def pick_best(points: list[dict], max_luts=None, min_accuracy=None):
    """The fitting point with the most inferences/s whose LUT4 sites are ``<= max_luts`` and whose
    accuracy is at least ``min_accuracy`` (at most, for a metric where lower is better); ties go
    to fewer LUT4 sites.  None when no point qualifies."""
    ok = []
    for p in points:
        if p.get("inferences_per_s") is None or p.get("lut4_equiv") is None or p.get("accuracy") is None:
            continue
        if max_luts is not None and p["lut4_equiv"] > max_luts:
            continue
        if min_accuracy is not None and not (p["accuracy"] >= min_accuracy if p["higher_is_better"]
                                             else p["accuracy"] <= min_accuracy):
            continue
        ok.append(p)
    return max(ok, key=lambda p: (p["inferences_per_s"], -p["lut4_equiv"]), default=None)


def _accuracy_sense(rows) -> str:
    higher = next((r["higher_is_better"] for r in rows if "higher_is_better" in r), True)
    return "max" if higher else "min"


def summarize(cfg, rows: list[dict], computed: dict, ray_info: dict, wall_s: float, notes=()) -> dict:
    """The sweep's JSON document: config, versions, rows with their Pareto flags (per device:
    3-D over LUT4 sites, inferences/s and accuracy; 2-D for each plot), the best design under
    the constraints, counts and times; ``notes`` (e.g. the model's work that runs off the array)."""
    from rf8hw.accel.estimate import report_versions
    from rf8hw.toolchain.tools import package_versions, synthesis_tool_versions

    sense = _accuracy_sense(rows)
    fronts = {"pareto": {**THROUGHPUT, "accuracy": sense}, "pareto_throughput": THROUGHPUT,
              "pareto_accuracy": {"lut4_equiv": "min", "accuracy": sense}}
    for device in dict.fromkeys(r["device"] for r in rows):
        mine = [r for r in rows if r["device"] == device]
        for col, objectives in fronts.items():
            for r, on in zip(mine, pareto_front(mine, objectives)):
                r[col] = on
    best = {d: pick_best([r for r in rows if r["device"] == d], cfg.max_luts, cfg.min_accuracy)
            for d in dict.fromkeys(r["device"] for r in rows)}
    fresh = {r["synth_key"]: r["synth_seconds"] for r in rows if r.get("synth_cached") is False}
    synth_s = sum(v for v in fresh.values() if v is not None)
    try:
        tools = synthesis_tool_versions()
    except Exception as exc:
        tools = {"error": str(exc)}
    return {
        "config": cfg.as_dict(), "versions": {**report_versions(), **package_versions(("ray",)), **tools},
        "metric": next((r["metric"] for r in rows if "metric" in r), None),
        "higher_is_better": sense == "max",
        "points": rows, "n_points": len(rows),
        "failed": [r for r in rows if r["status"] == "failed"],
        "does_not_fit": sum(r["status"] == "does not fit" for r in rows),
        "constraint": {"max_luts": cfg.max_luts, "min_accuracy": cfg.min_accuracy}, "best": best,
        "computed": computed, "factors": {"accuracy": len({r["acc_key"] for r in rows}),
                                          "synthesis": len({r["synth_key"] for r in rows})},
        "synthesis_seconds_fresh": round(synth_s, 1), "wall_s": round(wall_s, 1), "ray": ray_info,
        "load_average": list(os.getloadavg()), "notes": list(notes),
    }


def _fmt(v, decimals: int | None = None) -> str:
    """A table cell: integers and numbers from 1,000 up with thousands separators, smaller
    numbers with 4 significant digits (``decimals``: that many decimals instead)."""
    if v is None:
        return ""
    if isinstance(v, float):
        if decimals is not None:
            return f"{v:.{decimals}f}"
        return f"{v:,.0f}" if abs(v) >= 1000 else f"{v:.4g}"
    if isinstance(v, int) and not isinstance(v, bool):
        return f"{v:,}"
    return str(v)


def _csv(rows) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(COLUMNS)
    for r in rows:
        w.writerow(["" if r.get(c) is None else r.get(c) for c in COLUMNS])
    return buf.getvalue()


def render_markdown(summary: dict) -> str:
    """The table and the constraint pick as Markdown."""
    cfg, rows = summary["config"], summary["points"]
    cols = [c for c in COLUMNS if c not in ("log", "error") and any(r.get(c) is not None for r in rows)]
    direction = "higher" if summary["higher_is_better"] else "lower"
    metric = (f"{summary['metric']} ({direction} is better)" if summary["metric"]
              else "unknown (no point has an accuracy)")
    lines = [f"# rf8hw sweep: {cfg['model']}", "",
             f"{summary['n_points']} points ({summary['factors']['accuracy']} accuracy factors, "
             f"{summary['factors']['synthesis']} synthesis factors; computed this run: "
             f"{summary['computed']['accuracy']} accuracy, {summary['computed']['synthesis']} synthesis), "
             f"{len(summary['failed'])} failed, {summary['does_not_fit']} do not fit; wall "
             f"{summary['wall_s']} s, fresh synthesis {summary['synthesis_seconds_fresh']} s (sum over "
             f"tasks). Metric: {metric}. `pareto`: not dominated in (LUT4 sites, inferences/s, accuracy) "
             "on its device; `#`: the number of the point in the plots.", ""]
    if cfg.get("area") == "model":
        placed = ""
        if cfg.get("place_pareto"):
            limit = cfg.get("place_limit")
            placed = ("; `measured_*` columns: the Pareto points placed and routed (`--place-pareto`"
                      + (f" --place-limit {limit}: the {limit} Pareto arrays of each device and PE kind "
                         "with the most predicted inferences/s; `pareto_placed` False: not placed"
                         if limit else "") + ")")
        lines += ["**Area and Fmax are predictions of the area model** (`--area model`, "
                  "docs/area_model.md), not measured: no synthesis or place and route ran for them"
                  + placed + ".", ""]
    lines += [
             "| # | " + " | ".join(cols) + " |", "|--:|" + "---|" * len(cols)]
    short = {"accuracy_node", "synth_node"}             # Ray node ids: the first 8 hex digits
    # accuracies, utilisation: as many decimals as it takes for different values to look different
    digits = {c: decimals_to_tell_apart([r.get(c) for r in rows], 4)
              for c in ("accuracy", "array_utilisation")}
    # "#": the number a point carries in the plots
    lines += [f"| {i} | " + " | ".join(_fmt(r.get(c))[:8] if c in short else _fmt(r.get(c), digits.get(c))
                                       for c in cols) + " |" for i, r in enumerate(rows, 1)]
    lines += ["", "## Best design under the constraint", "",
              f"max LUT4 sites: {_fmt(cfg['max_luts']) or 'none'}, min accuracy: "
              f"{_fmt(cfg['min_accuracy']) or 'none'}", ""]
    for device, b in summary["best"].items():
        lines.append(f"- {device}: " + ("no point qualifies" if b is None else
                     f"{b['pe']} {b['rows']}x{b['cols']} acc{b['acc_bits']} "
                     f"{b.get('rounding') or ''} {b.get('act') or ''}: {_fmt(b['inferences_per_s'])} "
                     f"inferences/s, {_fmt(b['lut4_equiv'])} LUT4 sites, accuracy "
                     f"{_fmt(b['accuracy'], digits['accuracy'])}"))
    if summary["failed"]:
        lines += ["", "## Failed points", ""]
        lines += [f"- {r['pe']} {r['rows']}x{r['cols']} acc{r['acc_bits']} on {r['device']}: {r['error']} "
                  f"(log: {r['log']})" for r in summary["failed"]]
    if summary.get("notes"):
        lines += ["", "## Notes", ""] + [f"- {n}" for n in summary["notes"]]
    lines += ["", "## Versions", "", ", ".join(f"{k} {v}" for k, v in summary["versions"].items()), ""]
    return "\n".join(lines)


#: Marker and colour per weight format / DSP use, so baselines and RF8 share the axes.
STYLE = {("rf8", False): ("o", "tab:blue", "RF8"), ("int8", False): ("s", "tab:orange", "INT8 soft"),
         ("int8", True): ("D", "tab:red", "INT8 DSP"), ("fp8_e4m3", False): ("^", "tab:green", "FP8-E4M3")}


def _nice_bounds(lo: float, hi: float) -> tuple[float, float]:
    """Limits of a log axis that enclose ``lo .. hi`` between two 1-2-5 ticks, so that every point
    sits below a labelled tick (the top points included) and above one."""
    import math

    def nice(v, up):
        e = math.floor(math.log10(v))
        steps = [m * 10.0 ** k for k in (e - 1, e, e + 1) for m in (1, 2, 5)]
        return min(x for x in steps if x >= v) if up else max(x for x in steps if x <= v)

    return nice(lo / 1.05, False), nice(hi * 1.05, True)


def _log_axis(axis) -> None:
    """Labelled ticks at 1, 2 and 5 times the powers of ten (thousands separators) on a log
    ``axis``, even when its range spans less than a decade."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}" if v >= 1 else f"{v:.2g}"))
    axis.set_minor_formatter(NullFormatter())


def _label(r: dict, acc=None) -> str:
    """A point's label: array size, PE kind, accumulator width(s) (``acc``: several points drawn
    at one place) and activation scheme."""
    widths = ",".join(map(str, acc or [r["acc_bits"]]))
    return f"{r['rows']}x{r['cols']} {r['pe']} a{widths}" + (f" {r['act']}" if r.get("act") else "")


#: Most entries of a plot's key of point numbers (a larger sweep's key ends with "...").
KEY_ENTRIES = 40


def _annotate(ax, rows, y: str, number: dict) -> list[str]:
    """Number every point (``number``: id of a row -> its row in ``sweep.md``, from 1); points of
    one design that differ only in their accumulator and sit at one place share a number
    (``3,4``).  Returns the key: one ``"3,4: 2x2 rf8_pipe a28,32 token"`` line per number."""
    groups: list[tuple[dict, list]] = []
    for r in sorted(rows, key=lambda r: number[id(r)]):
        for first, members in groups:
            if all(first.get(k) == r.get(k) for k in ("pe", "rows", "cols", "act")) and \
                    abs(first["lut4_equiv"] - r["lut4_equiv"]) <= 0.01 * first["lut4_equiv"] and \
                    abs(first[y] - r[y]) <= 0.01 * abs(first[y]):
                members.append(r)
                break
        else:
            groups.append((r, [r]))
    key = []
    placed = sorted(groups, key=lambda g: (g[0]["lut4_equiv"], g[0][y]))
    for i, (first, members) in enumerate(placed):
        tag = ",".join(str(number[id(m)]) for m in members)
        ax.annotate(tag, (first["lut4_equiv"], first[y]), textcoords="offset points",
                    xytext=(4, 4 if i % 2 == 0 else -10), fontsize=7, color="0.15")
    for first, members in groups:
        tag = ",".join(str(number[id(m)]) for m in members)
        key.append(f"{tag}: {_label(first, sorted({m['acc_bits'] for m in members}))}")
    return key


def _accuracy_axis(ax, ys) -> None:
    """Limits (and scale) of an accuracy axis holding ``ys``.  Fractions that crowd near 1 (a mean
    cosine of 0.9996 next to 0.98 and 0.64) go on a logit axis, which spreads 0.9, 0.99 and 0.999
    apart and never reaches 1; other fractions on a linear axis that ends at 1.0 at most; other
    metrics (a perplexity) on a linear axis with a margin."""
    import math

    from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter, NullLocator

    lo, hi = min(ys), max(ys)
    if 0 < lo and hi < 1 and hi > 0.99:
        logit = [math.log(v / (1 - v)) for v in (lo, hi)]
        pad = 0.08 * (logit[1] - logit[0]) or 0.5
        ax.set_yscale("logit")
        bottom, top = (1 / (1 + math.exp(-v)) for v in (logit[0] - pad, logit[1] + pad))
        ax.set_ylim(bottom, top)
        ticks = [t for t in (0.01, 0.1, 0.5, 0.9, 0.95, 0.99, 0.995, 0.999, 0.9995, 0.9999, 0.99999)
                 if bottom <= t <= top]
        ax.yaxis.set_major_locator(FixedLocator(ticks))
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.yaxis.set_minor_locator(NullLocator())
        ax.yaxis.set_minor_formatter(NullFormatter())
        ax.set_ylabel(f"{ax.get_ylabel()} (logit axis: 0.9, 0.99, 0.999 equally apart)")
        return
    pad = 0.06 * (hi - lo) or 0.01 * abs(hi) or 0.01
    top = hi + pad
    if hi <= 1.0 < top:                        # a fraction (accuracy, cosine): the axis ends at 1
        top = 1.0 if hi < 1.0 else 1.0 + pad / 4
    ax.set_ylim(lo - pad, top)


def _plot(rows, y: str, front: str, ylabel: str, title: str, constraint: dict, best, tmp,
          number: dict) -> None:
    """One plot into ``tmp``: every point with a result, numbered as its row of ``sweep.md``
    (``number``) with a key of the numbers beside the axes; the Pareto front; the ``--max-luts`` /
    ``--min-accuracy`` constraint as lines and the chosen design as a star; a note instead of
    empty axes when no point has a result."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(10.5, 5.5))
    ok = [r for r in rows if (r.get("lut4_equiv") or 0) > 0 and r.get(y) is not None
          and (y != "inferences_per_s" or r[y] > 0)]
    for (fmt, dsp), (marker, colour, label) in STYLE.items():
        pts = [r for r in ok if r["weight_format"] == fmt and bool(r["dsp_inference"]) == dsp]
        if pts:
            ax.scatter([r["lut4_equiv"] for r in pts], [r[y] for r in pts], marker=marker, color=colour,
                       label=label, alpha=0.75, zorder=3)
    key = _annotate(ax, ok, y, number) if ok else []
    if key:
        shown = key if len(key) <= KEY_ENTRIES else \
            key[:KEY_ENTRIES - 1] + [f"... ({len(key)} in all: sweep.md)"]
        ax.text(1.02, 1.0, "points (rows of sweep.md)\n" + "\n".join(shown), transform=ax.transAxes,
                va="top", ha="left", fontsize=6.5, family="monospace")
    fr = sorted((r for r in ok if r.get(front)), key=lambda r: r["lut4_equiv"])
    if fr:
        ax.step([r["lut4_equiv"] for r in fr], [r[y] for r in fr], where="post", color="black", lw=1,
                label="Pareto front")
        ax.scatter([r["lut4_equiv"] for r in fr], [r[y] for r in fr], s=120, facecolors="none",
                   edgecolors="black", zorder=4)
    if constraint.get("max_luts") is not None:
        ax.axvline(constraint["max_luts"], color="tab:purple", ls="--", lw=1,
                   label=f"--max-luts {constraint['max_luts']:,}")
    if y == "accuracy" and constraint.get("min_accuracy") is not None:
        ax.axhline(constraint["min_accuracy"], color="tab:purple", ls=":", lw=1,
                   label=f"--min-accuracy {constraint['min_accuracy']:g}")
    if best is not None and best.get(y) is not None:
        ax.scatter([best["lut4_equiv"]], [best[y]], marker="*", s=260, color="gold", edgecolors="black",
                   zorder=5, label=f"chosen: {_label(best)}")
    ax.set_xscale("log")
    ax.set_ylabel(ylabel)
    if ok:
        xs = [r["lut4_equiv"] for r in ok] + ([constraint["max_luts"]] if constraint.get("max_luts") else [])
        ax.set_xlim(*_nice_bounds(min(xs), max(xs)))
        _log_axis(ax.xaxis)
        ys = [r[y] for r in ok]
        if y == "inferences_per_s":
            ax.set_yscale("log")
            ax.set_ylim(*_nice_bounds(min(ys), max(ys)))
            _log_axis(ax.yaxis)
        else:
            if constraint.get("min_accuracy") is not None:
                ys.append(constraint["min_accuracy"])
            _accuracy_axis(ax, ys)
    else:
        failed = sum(r.get("status") == "failed" for r in rows)
        ax.text(0.5, 0.5, f"no point has a result to plot:\n{failed} of {len(rows)} points failed, "
                          f"{sum(r.get('status') == 'does not fit' for r in rows)} do not fit\n"
                          "(errors and logs: sweep.md)", ha="center", va="center", transform=ax.transAxes,
                fontsize=11, color="tab:red")
        ax.set_xticks([], minor=True)
        ax.set_xticks([])
        ax.set_yticks([])
    ax.set_xlabel("LUT4 sites (LUT4 + 2 x CCU2C)")
    ax.set_title(title, fontsize=10, pad=12)
    ax.grid(True, which="major", alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7, loc="best")
    fig.subplots_adjust(left=0.08, right=0.68 if key else 0.97, bottom=0.11, top=0.93)
    fig.savefig(tmp, dpi=110)
    plt.close(fig)


def write_outputs(summary: dict, out) -> dict:
    """Write ``sweep.json``, ``sweep.csv``, ``sweep.md`` and the two plots per device into ``out``
    as one unit (:func:`rf8hw.files.write_files`: a failure leaves the old files, never a mix);
    returns their paths."""
    from pathlib import Path

    out = Path(out)
    rows, model = summary["points"], summary["config"]["model"]
    paths = {"json": out / "sweep.json", "csv": out / "sweep.csv", "markdown": out / "sweep.md"}
    files = {paths["csv"]: _csv(rows), paths["markdown"]: render_markdown(summary)}
    constraint = summary["constraint"]
    number = {id(r): i for i, r in enumerate(rows, 1)}             # a point's row in sweep.md
    for device in dict.fromkeys(r["device"] for r in rows):
        mine, best = [r for r in rows if r["device"] == device], summary["best"].get(device)
        p1, p2 = out / f"sweep_{device}_throughput.png", out / f"sweep_{device}_accuracy.png"
        predicted = summary["config"].get("area") == "model"
        t1 = f"{model} on {device}: throughput vs area" + (" (area and Fmax predicted by the area model)"
                                                           if predicted else "")
        like = summary["config"].get("baselines", "bitexact") == "bitexact"
        how = "all bit-exact, INT8 activations" if like else "RF8 bit-exact; INT8/FP8 weight-only"
        t2 = f"{model} on {device}: accuracy vs area ({how})"
        y1 = "inferences/s (" + ("predicted Fmax" if predicted else "post-route Fmax") + ")"
        files[p1] = lambda tmp, mine=mine, best=best, t1=t1, y1=y1: _plot(
            mine, "inferences_per_s", "pareto_throughput", y1, t1, constraint, best, tmp, number)
        files[p2] = lambda tmp, mine=mine, best=best, t2=t2: _plot(
            mine, "accuracy", "pareto_accuracy", summary["metric"] or "accuracy", t2, constraint, best, tmp,
            number)
        paths[f"{device}_throughput"], paths[f"{device}_accuracy"] = p1, p2
    result = {k: str(v) for k, v in paths.items()}
    files[paths["json"]] = json.dumps({**summary, "paths": result}, indent=1, allow_nan=False) + "\n"
    write_files(files)
    return result
