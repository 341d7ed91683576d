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
from rf8hw.files import write_atomic

__all__ = ["COLUMNS", "pareto_front", "pick_best", "summarize", "write_outputs", "render_markdown"]

#: Table columns, in order (CSV and Markdown; the JSON rows hold every field).
COLUMNS = ("device", "pe", "rows", "cols", "acc_bits", "rounding", "act", "status", "accuracy",
           "accuracy_path", "overflow_events", "lut4_equiv", "lut4", "ff", "carry", "dsp", "bram",
           "fmax_mhz", "cycles_per_inference", "array_utilisation", "inferences_per_s", "gmac_per_s",
           "pareto", "pareto_throughput", "pareto_accuracy", "accuracy_node", "synth_node",
           "accuracy_cached", "synth_cached", "synth_seconds", "error", "log")

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


def summarize(cfg, rows: list[dict], computed: dict, ray_info: dict, wall_s: float) -> dict:
    """The sweep's JSON document: config, versions, rows with their Pareto flags (per device:
    3-D over LUT4 sites, inferences/s and accuracy; 2-D for each plot), the best design under
    the constraints, counts and times."""
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
        "load_average": list(os.getloadavg()),
    }


def _fmt(v) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.4g}" if abs(v) < 1e4 else f"{v:,.0f}"
    if isinstance(v, int) and not isinstance(v, bool):
        return f"{v:,}" if abs(v) >= 1e4 else str(v)
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
    lines = [f"# rf8hw sweep: {cfg['model']}", "",
             f"{summary['n_points']} points ({summary['factors']['accuracy']} accuracy factors, "
             f"{summary['factors']['synthesis']} synthesis factors; computed this run: "
             f"{summary['computed']['accuracy']} accuracy, {summary['computed']['synthesis']} synthesis), "
             f"{len(summary['failed'])} failed, {summary['does_not_fit']} do not fit; wall "
             f"{summary['wall_s']} s, fresh synthesis {summary['synthesis_seconds_fresh']} s (sum over "
             f"tasks). Metric: {summary['metric']} ({'higher' if summary['higher_is_better'] else 'lower'} "
             "is better). `pareto`: not dominated in (LUT4 sites, inferences/s, accuracy) on its device.", "",
             "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    short = {"accuracy_node", "synth_node"}             # Ray node ids: the first 8 hex digits
    lines += ["| " + " | ".join(_fmt(r.get(c))[:8] if c in short else _fmt(r.get(c)) for c in cols) + " |"
              for r in rows]
    lines += ["", "## Best design under the constraint", "",
              f"max LUT4 sites: {cfg['max_luts']}, min accuracy: {cfg['min_accuracy']}", ""]
    for device, b in summary["best"].items():
        lines.append(f"- {device}: " + ("no point qualifies" if b is None else
                     f"{b['pe']} {b['rows']}x{b['cols']} acc{b['acc_bits']} "
                     f"{b.get('rounding') or ''} {b.get('act') or ''}: {_fmt(b['inferences_per_s'])} "
                     f"inferences/s, {_fmt(b['lut4_equiv'])} LUT4 sites, accuracy {_fmt(b['accuracy'])}"))
    if summary["failed"]:
        lines += ["", "## Failed points", ""]
        lines += [f"- {r['pe']} {r['rows']}x{r['cols']} acc{r['acc_bits']} on {r['device']}: {r['error']} "
                  f"(log: {r['log']})" for r in summary["failed"]]
    lines += ["", "Versions: " + ", ".join(f"{k} {v}" for k, v in summary["versions"].items()), ""]
    return "\n".join(lines)


#: Marker and colour per weight format / DSP use, so baselines and RF8 share the axes.
STYLE = {("rf8", False): ("o", "tab:blue", "RF8"), ("int8", False): ("s", "tab:orange", "INT8 soft"),
         ("int8", True): ("D", "tab:red", "INT8 DSP"), ("fp8_e4m3", False): ("^", "tab:green", "FP8-E4M3")}


def _plot(rows, y: str, front: str, ylabel: str, title: str, path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    ok = [r for r in rows if r.get("lut4_equiv") is not None and r.get(y) is not None]
    for (fmt, dsp), (marker, colour, label) in STYLE.items():
        pts = [r for r in ok if r["weight_format"] == fmt and bool(r["dsp_inference"]) == dsp]
        if pts:
            ax.scatter([r["lut4_equiv"] for r in pts], [r[y] for r in pts], marker=marker, color=colour,
                       label=label, alpha=0.75)
    fr = sorted((r for r in ok if r.get(front)), key=lambda r: r["lut4_equiv"])
    if fr:
        ax.step([r["lut4_equiv"] for r in fr], [r[y] for r in fr], where="post", color="black", lw=1,
                label="Pareto front")
        ax.scatter([r["lut4_equiv"] for r in fr], [r[y] for r in fr], s=120, facecolors="none",
                   edgecolors="black")
    ax.set_xscale("log")
    if y == "inferences_per_s":
        ax.set_yscale("log")
    ax.set_xlabel("LUT4 sites (LUT4 + 2 x CCU2C)")
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.grid(True, alpha=0.3)
    if ax.get_legend_handles_labels()[0]:       # a sweep whose points all failed has none
        ax.legend(fontsize=8)
    fig.tight_layout()
    write_atomic(path, lambda tmp: fig.savefig(tmp, dpi=110))
    plt.close(fig)


def write_outputs(summary: dict, out) -> dict:
    """Write ``sweep.json``, ``sweep.csv``, ``sweep.md`` and the two plots per device into ``out``
    (atomically); returns their paths."""
    from pathlib import Path

    out = Path(out)
    rows, model = summary["points"], summary["config"]["model"]
    paths = {"json": out / "sweep.json", "csv": out / "sweep.csv", "markdown": out / "sweep.md"}
    write_atomic(paths["json"], json.dumps(summary, indent=1, allow_nan=False) + "\n")
    write_atomic(paths["csv"], _csv(rows))
    write_atomic(paths["markdown"], render_markdown(summary))
    for device in dict.fromkeys(r["device"] for r in rows):
        mine = [r for r in rows if r["device"] == device]
        p1, p2 = out / f"sweep_{device}_throughput.png", out / f"sweep_{device}_accuracy.png"
        _plot(mine, "inferences_per_s", "pareto_throughput", "inferences/s (post-route Fmax)",
              f"{model} on {device}: throughput vs area", p1)
        _plot(mine, "accuracy", "pareto_accuracy", f"{summary['metric']}",
              f"{model} on {device}: accuracy vs area (RF8 bit-exact; INT8/FP8 weight-only)", p2)
        paths[f"{device}_throughput"], paths[f"{device}_accuracy"] = p1, p2
    return {k: str(v) for k, v in paths.items()}
