"""Rendering of an estimate report (:func:`rf8hw.accel.estimate.estimate`): Markdown, JSON, plot.

Computation stays in :mod:`rf8hw.accel.estimate`; this module only turns its dict into text and
files.  Words are computed first, then formatted.
"""

from __future__ import annotations

import json
from pathlib import Path

from rf8hw.files import write_files

__all__ = ["render_markdown", "write_report"]


def _fmt(v, spec=",.0f"):
    if v is None:
        return "absent"
    return format(v, spec)


def _refinements(c: dict) -> str:
    """`` + scale search + GPTQ`` for the options the estimate's RF8 nearest rows used."""
    gptq = "GPTQ" + (f" ({c['gptq_order']} order)" if c.get("gptq_order", "natural") != "natural" else "")
    return "".join(f" + {n}" for k, n in (("scale_search", "per-column scale search"), ("gptq", gptq))
                   if c.get(k))


def render_markdown(rep: dict) -> str:
    """The report as Markdown (what ``rf8hw estimate`` prints and writes to ``estimate.md``)."""
    from rf8hw.accel.estimate import PATHS

    c = rep["config"]
    metric = rep["metric"]
    pct = metric.endswith("acc")
    batch = rep["cycles"]["batch"]
    title = (f"# Estimate: {rep['model']} on a {c['rows']}x{c['cols']} RF8 array "
             f"({c['device']}, PE {c['pe']})")
    source = f"Checkpoint `{rep['checkpoint']}`" if rep.get("checkpoint") else f"Model `{rep['model']}`"
    calibrated = f"; --calibrate {c['calibrate_batches']}" if c.get("calibrate_batches") else ""
    setting = (f"{source}; accumulator {c['acc_bits']} bits, "
               f"{c['overflow']}; {c['act_bits']}-bit activations{calibrated}; "
               f"RF8 rounding {c['rounding']}{_refinements(c)}; batch {batch}.")
    lines = [title, "", setting, "",
             "## Accuracy", "",
             ]
    ref = rep["accuracy"]["fp32"]
    extra = [k for k, v in rep["metrics"]["fp32"].items() if k != metric and isinstance(v, float)]
    lines += [f"| path | {metric} | delta vs fp32 |" + "".join(f" {k} |" for k in extra),
              "|---|--:|--:|" + "--:|" * len(extra)]
    for k, v in rep["accuracy"].items():
        more = "".join(f" {rep['metrics'][k].get(e, float('nan')):.4f} |" for e in extra)
        if pct:
            lines.append(f"| {k} | {100 * v:.2f} % | {100 * (v - ref):+.2f} pt |" + more)
        else:
            lines.append(f"| {k} | {v:.4f} | {v - ref:+.4f} |" + more)
    lines += [""] + [f"* {k}: {PATHS[k].what}" for k in rep["accuracy"]]
    lines += ["", "Bit-exact paths run the array's integer arithmetic (`rf8hw.nn.bitexact`); bias and "
              "non-linear parts stay in float."]
    ov = rep["overflow"]
    lines += ["", "## Overflow events (bit-exact path)", "",
              "| layer | outputs | events | max abs sum | acc bits needed |", "|---|--:|--:|--:|--:|"]
    for name, s in ov.items():
        lines.append(f"| {name} | {s['outputs']:,} | {s['events']:,} | {s['max_abs_sum']:,} | "
                     f"{s['acc_bits_needed']} |")
    if rep.get("versions"):
        lines += ["", "Versions: " + ", ".join(f"{k} {v}" for k, v in rep["versions"].items()) + "."]
    cyc = rep["cycles"]
    lines += ["", "An event is one output accumulation whose accumulator result differs from the "
              "exact (64-bit) sum.", "",
              "## Cycles per inference", "",
              "| layer | M x K x N | tiles | cycles | utilisation |", "|---|---|--:|--:|--:|"]
    for r in cyc["layers"]:
        shape = f"{r['M']} x {r['K']} x {r['N']}" + (f" (x{r['count']})" if r["count"] > 1 else "")
        if r["on_array"]:
            lines.append(f"| {r['name']} | {shape} | {r['tiles']} | {r['cycles']:,} | "
                         f"{100 * r['utilisation']:.1f} % |")
        else:
            lines.append(f"| {r['name']} | {shape} | off-array | - | - |")
    lines += [f"| **total** | | | **{cyc['cycles']:,}** | {100 * cyc['utilisation']:.1f} % |", "",
              f"Cycles per inference: **{_fmt(rep['cycles_per_inference'], ',.1f')}** "
              f"({cyc['macs_on_array'] // batch:,} on-array MACs per inference).", "",
              "## FPGA", "",
              "| LUT4 | FF | carry | DSP | BRAM | Fmax (MHz) | inferences/s | GMAC/s |",
              "|--:|--:|--:|--:|--:|--:|--:|--:|",
              f"| {_fmt(rep['lut4'])} | {_fmt(rep['ff'])} | {_fmt(rep['carry'])} | {_fmt(rep['dsp'])} | "
              f"{_fmt(rep['bram'])} | {_fmt(rep['fmax_mhz'], '.1f')} | "
              f"{_fmt(rep['inferences_per_s'], ',.0f')} | "
              f"{_fmt(rep['gmac_per_s'], '.3f')} |", ""]
    s = rep["synth"]
    if s.get("tools"):
        cached = " (cached result)" if s.get("cached") else ""
        tools = ", ".join(f"{k} {v}" for k, v in s["tools"].items())
        lines += [f"Post-route Fmax, {s['part']}, seed {s['seed']}{cached}; tools: {tools}.", ""]
    if rep["notes"]:
        lines += ["## Notes", ""] + [f"* {n}" for n in rep["notes"]] + [""]
    return "\n".join(lines)


def write_report(rep: dict, out_dir) -> dict:
    """Write ``estimate.json``, ``estimate.md`` and ``estimate_cycles.png`` into ``out_dir`` as
    one unit (:func:`rf8hw.files.write_files`: a report that cannot be written, e.g. one holding
    a NaN, which JSON has not, leaves the old files as they were); returns their paths."""
    from rf8hw.accel import cycles

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / "estimate.json", "markdown": out / "estimate.md",
             "png": out / "estimate_cycles.png"}
    c = rep["config"]
    title = (f"{rep['model']} on {c['rows']}x{c['cols']}: {rep['cycles_per_inference']:,.0f} "
             f"cycles/inference, utilisation {100 * rep['cycles']['utilisation']:.1f} %")
    text = json.dumps(rep, indent=2, allow_nan=False) + "\n"          # refuses NaN before any write
    write_files({paths["png"]: lambda tmp: cycles.plot_model_cycles(rep["cycles"], tmp, title=title),
                 paths["markdown"]: render_markdown(rep), paths["json"]: text})
    return {k: str(v) for k, v in paths.items()}
