"""The Python bench (``bench="python"``, for debugging): Python drives and samples every port of
the generated top at every clock.

:mod:`rf8hw.sim.python_bench.testbench`
    The roles (sources, result monitor, scoreboard) and :class:`Testbench`, which wires them.
:mod:`rf8hw.sim.python_bench.cocotb_test`
    Its cocotb test module, which the simulator's embedded Python imports: runs one job.

Importing this package imports neither cocotb nor the simulators.
"""
