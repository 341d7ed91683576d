"""Rendering of an estimate report (:func:`rf8hw.accel.estimate.estimate`): Markdown, JSON, plot.

Computation stays in :mod:`rf8hw.accel.estimate`; this module only turns its dict into text and
files.  Words are computed first, then formatted.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from rf8hw.files import write_files

__all__ = ["render_markdown", "render_memory", "write_report", "decimals_to_tell_apart"]


def _fmt(v, spec=",.0f"):
    if v is None:
        return "absent"
    return format(v, spec)


def decimals_to_tell_apart(values, least: int = 2, most: int = 12) -> int:
    """The fewest decimals (``least`` .. ``most``) at which ``values`` that differ print
    differently and every non-zero difference between them prints as non-zero: a tiny model whose
    paths all reach a mean cosine of 0.99998... shows ``0.999981`` and ``0.999962``, not ``1.0000``
    twice."""
    vals = sorted({float(v) for v in values if v is not None and math.isfinite(v)})
    for d in range(least, most + 1):
        shown = [round(v, d) for v in vals]
        steps = [abs(b - a) for a, b in zip(vals, vals[1:])]
        if len(set(shown)) == len(vals) and all(round(x, d) != 0 for x in steps):
            return d
    return most


def _refinements(c: dict) -> str:
    """`` + scale search + GPTQ`` for the options the estimate's RF8 nearest rows used."""
    gptq = "GPTQ" + (f" ({c['gptq_order']} order)" if c.get("gptq_order", "natural") != "natural" else "")
    return "".join(f" + {n}" for k, n in (("scale_search", "per-column scale search"), ("gptq", gptq))
                   if c.get(k))


def render_markdown(rep: dict) -> str:
    """The report as Markdown (what ``rf8hw estimate`` prints and writes to ``estimate.md``)."""
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
    # as many decimals as it takes for different values (and non-zero deltas) to look different
    scale = 100 if pct else 1
    d = decimals_to_tell_apart([scale * v for v in rep["accuracy"].values()], 2 if pct else 4)
    ds = {e: decimals_to_tell_apart([m.get(e) for m in rep["metrics"].values()], 4) for e in extra}
    unit, delta_unit = (" %", " pt") if pct else ("", "")
    for k, v in rep["accuracy"].items():
        more = "".join(f" {_fmt(rep['metrics'][k].get(e), f'.{ds[e]}f')} |" for e in extra)
        delta = "0" if v == ref else f"{scale * (v - ref):+.{d}f}"
        lines.append(f"| {k} | {scale * v:.{d}f}{unit} | {delta}{delta_unit} |" + more)
    lines += [""] + [f"* {k}: {rep['path_descriptions'][k]}" for k in rep["accuracy"]]
    lines += ["", "Bit-exact paths run the array's integer arithmetic (`rf8hw.nn.bitexact`); bias and "
              "non-linear parts stay in float."]
    ov = rep["overflow"]
    lines += ["", "## Overflow events (bit-exact path)", "",
              "| layer | outputs | events | max abs sum | acc bits needed |", "|---|--:|--:|--:|--:|"]
    for name, s in ov.items():
        lines.append(f"| {name} | {s['outputs']:,} | {s['events']:,} | {s['max_abs_sum']:,} | "
                     f"{s['acc_bits_needed']} |")
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
    off = cyc["macs_off_array"]
    share = (f"; another {off / batch:,.0f} per inference, {100 * off / (off + cyc['macs_on_array']):.1f} % "
             "of all MACs, run off the array: see the notes") if off else ""
    lines += [f"| **total** | | | **{cyc['cycles']:,}** | {100 * cyc['utilisation']:.1f} % |", "",
              f"Cycles per inference: **{_fmt(rep['cycles_per_inference'], ',.1f')}** "
              f"({cyc['macs_on_array'] / batch:,.0f} on-array MACs per inference{share}).", "",
              "## FPGA", "",
              "| LUT4 | FF | carry | DSP | BRAM | Fmax (MHz) | inferences/s | GMAC/s |",
              "|--:|--:|--:|--:|--:|--:|--:|--:|",
              f"| {_fmt(rep['lut4'])} | {_fmt(rep['ff'])} | {_fmt(rep['carry'])} | {_fmt(rep['dsp'])} | "
              f"{_fmt(rep['bram'])} | {_fmt(rep['fmax_mhz'], '.1f')} | "
              f"{_fmt(rep['inferences_per_s'], ',.0f')} | "
              f"{_fmt(rep['gmac_per_s'], '.3f')} |", ""]
    s = rep["synth"]
    if s.get("source") == "area model":
        lines += [f"**Predicted, not measured**: area and Fmax from the area model for {s['part']} "
                  f"(`--area model`, docs/area_model.md; Fmax from placed arrays on {s['fmax_from']}).", ""]
    if s.get("tools"):
        cached = " (cached result)" if s.get("cached") else ""
        tools = ", ".join(f"{k} {v}" for k, v in s["tools"].items())
        lines += [f"Post-route Fmax, {s['part']}, seed {s['seed']}{cached}; tools: {tools}.", ""]
    lines += ["inferences/s and GMAC/s above: **compute peak** at Fmax (the array's cycle model, every "
              "operand on time; memory bandwidth not modelled" + (": see Memory below)." if rep.get("memory")
                                                                 else "; `--memory PROFILE` models it)."), ""]
    if off:
        lines += ["inferences/s and GMAC/s count the array's work only: the off-array MACs above are "
                  "not in them.", ""]
    if rep.get("memory"):
        lines += render_memory(rep["memory"])
    if rep["notes"]:
        lines += ["## Notes", ""] + [f"* {n}" for n in rep["notes"]] + [""]
    if rep.get("versions"):
        lines += ["## Versions", "", ", ".join(f"{k} {v}" for k, v in rep["versions"].items()) + ".", ""]
    return "\n".join(lines)


def render_memory(mem: dict) -> list[str]:
    """The Markdown lines of the memory-aware estimate (:func:`rf8hw.accel.memory.model_memory`)."""
    p = mem["profile"]
    batch = mem["batch"]
    lines = ["## Memory", "",
             f"Profile `{p['name']}`: {p['peak_gbps']:g} GB/s peak x {p['efficiency']:g} sustained = "
             f"{mem['bandwidth_gbps']:.4g} GB/s, first access {p['latency_ns']:g} ns, on-chip buffer "
             f"budget {p['buffer_bytes']:,} bytes ({p['source']}).  Accelerator clock "
             f"{mem['clock_mhz']:g} MHz ({mem['clock_from']}): {mem['bytes_per_cycle']:.4g} bytes per cycle "
             f"({mem['bytes_per_cycle_exact']}), latency {mem['latency_cycles']} cycles.", "",
             "Each on-array GEMM runs as accelerator commands from idle (`rf8hw.accel.accel_cycles`, INT8 "
             "results), every stream fed by the one memory: *compute* = cycles with every stream at "
             "full rate, *memory* = the bytes moved at the sustained rate plus the latency, *cycles* = "
             "the exact schedule with the streams throttled to the profile (the result write-back "
             "included); the bound is the larger of compute and memory.", "",
             "| layer | M x K x N | bytes | MAC/byte | compute | memory | cycles | bound | buffer |",
             "|---|---|--:|--:|--:|--:|--:|---|--:|"]
    for r in mem["layers"]:
        shape = f"{r['M']} x {r['K']} x {r['N']}" + (f" (x{r['count']})" if r["count"] > 1 else "")
        fits = "" if r["fits"] is None else (" fits" if r["fits"] else " **over**")
        lines.append(f"| {r['name']} | {shape} | {r['bytes']['total']:,} | {r['intensity']:.1f} | "
                     f"{r['compute_cycles']:,} | {r['memory_cycles']:,} | {r['cycles']:,} | {r['bound']} | "
                     f"{r['buffer_bytes']:,}{fits} |")
    n = len(mem["layers"])
    lines += [f"| **total** | | {sum(r['bytes']['total'] for r in mem['layers']):,} | | "
              f"**{mem['compute_cycles']:,}** | **{mem['memory_cycles']:,}** | **{mem['cycles']:,}** | "
              f"{mem['memory_bound_layers']} of {n} memory-bound | |", "",
              f"With this memory: **{_fmt(mem['inferences_per_s'], ',.1f')} inferences/s**, "
              f"**{_fmt(mem['gmac_per_s'], '.3f')} GMAC/s** at {mem['clock_mhz']:g} MHz "
              f"({mem['cycles'] / batch:,.1f} cycles per inference; compute only: "
              f"{_fmt(mem['compute_inferences_per_s'], ',.1f')} inferences/s; peak "
              f"{mem['peak_gmac_per_s']:.3f} GMAC/s).  Roofline: `estimate_roofline.png`.", ""]
    if mem["not_fitting_layers"]:
        lines += [f"Buffers over the profile's budget in {len(mem['not_fitting_layers'])} layer(s) "
                  "(activation buffer one command's M x K, accumulator M x cols x acc bytes): "
                  "such a layer needs a larger FPGA or an M split.", ""]
    return lines


def write_report(rep: dict, out_dir) -> dict:
    """Write ``estimate.json``, ``estimate.md``, ``estimate_cycles.png`` and, with a memory
    profile, ``estimate_roofline.png`` (without one, a roofline left by an earlier report is
    removed after the new files are in place) into ``out_dir`` as one unit
    (:func:`rf8hw.files.write_files`: a report that cannot be written, e.g. one holding
    a NaN, which JSON has not, leaves the old files as they were); returns their paths."""
    from rf8hw.accel import cycles

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / "estimate.json", "markdown": out / "estimate.md",
             "png": out / "estimate_cycles.png"}
    c = rep["config"]
    batch = rep["cycles"]["batch"]
    per_batch = f" ({rep['cycles']['cycles']:,} per batch of {batch})" if batch > 1 else ""
    title = (f"{rep['model']} on {c['rows']}x{c['cols']}: {rep['cycles_per_inference']:,.1f} "
             f"cycles/inference{per_batch}, utilisation {100 * rep['cycles']['utilisation']:.1f} %")
    text = json.dumps(rep, indent=2, allow_nan=False) + "\n"          # refuses NaN before any write
    files = {paths["png"]: lambda tmp: cycles.plot_model_cycles(rep["cycles"], tmp, title=title),
             paths["markdown"]: render_markdown(rep), paths["json"]: text}
    mem = rep.get("memory")
    if mem:
        from rf8hw.accel.memory import plot_roofline

        paths["roofline"] = out / "estimate_roofline.png"
        rtitle = (f"{rep['model']} on {c['rows']}x{c['cols']}, {mem['profile']['name']}: "
                  f"{mem['memory_bound_layers']} of {len(mem['layers'])} layers memory-bound, "
                  f"{mem['inferences_per_s']:,.1f} inferences/s")
        files[paths["roofline"]] = lambda tmp: plot_roofline(mem, tmp, title=rtitle)
    write_files(files)
    if not mem:         # the roofline of an earlier report in this folder is not this report's
        (out / "estimate_roofline.png").unlink(missing_ok=True)
    return {k: str(v) for k, v in paths.items()}
