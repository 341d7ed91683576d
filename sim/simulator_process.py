"""The test step of cocotb's runner in a process of its own: ``python -m
rf8hw.sim.simulator_process REQUEST``, started by :mod:`rf8hw.sim.run` in a new session (so the
simulator it starts is in that session's process group, which the host kills on Ctrl-C or
``SIGTERM``).  ``REQUEST`` is a JSON object: ``simulator``, ``host_pid`` (the process that waits
for this one) and the keyword arguments of :meth:`cocotb_tools.runner.Runner.test`.  Public
cocotb API only.

A host killed outright (``SIGKILL``, the OOM killer) cannot kill the group itself: a watchdog
thread here sees this process re-parented (its parent no longer ``host_pid``) and kills the
whole group, simulator included, within :data:`WATCH_S` seconds.

Exit status 0 when the runner returned or reported a failed test or simulator (``SystemExit``,
``RuntimeError``: the run's ``result.json``, or its absence, says what happened); any other
exception keeps its traceback and exit status 1.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time

#: How often the watchdog checks that the host still waits for this process, in seconds.
WATCH_S = 0.5


def _watch_host(host_pid: int) -> None:
    while os.getppid() == host_pid:
        time.sleep(WATCH_S)
    os.killpg(os.getpgrp(), signal.SIGKILL)      # this process's group: the runner and simulator


def main(argv: list[str]) -> int:
    request = json.loads(argv[0])
    threading.Thread(target=_watch_host, args=(request.pop("host_pid"),), daemon=True).start()
    from cocotb_tools.runner import get_runner

    runner = get_runner(request.pop("simulator"))
    try:
        runner.test(**request)
    except (SystemExit, RuntimeError):
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
