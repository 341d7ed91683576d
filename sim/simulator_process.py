"""The test step of cocotb's runner in a process of its own: ``python -m
rf8hw.sim.simulator_process REQUEST``, started by :mod:`rf8hw.sim.run` in a new session (so the
simulator it starts is in that session's process group, which the host kills on Ctrl-C or
``SIGTERM``).  ``REQUEST`` is a JSON object: ``simulator`` plus the keyword arguments of
:meth:`cocotb_tools.runner.Runner.test`.  Public cocotb API only.

Exit status 0 when the runner returned or reported a failed test or simulator (``SystemExit``,
``RuntimeError``: the run's ``result.json``, or its absence, says what happened); any other
exception keeps its traceback and exit status 1.
"""

from __future__ import annotations

import json
import sys


def main(argv: list[str]) -> int:
    from cocotb_tools.runner import get_runner

    request = json.loads(argv[0])
    runner = get_runner(request.pop("simulator"))
    try:
        runner.test(**request)
    except (SystemExit, RuntimeError):
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
