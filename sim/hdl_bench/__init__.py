"""The HDL bench (``bench="hdl"``, the default): stimulus, stalls, the result sink and the cycle
stamps in a Verilog wrapper around the generated top; Python woken once per batch.

:mod:`rf8hw.sim.hdl_bench.wrapper`
    The wrapper's Verilog (from the manifest), its stall generators and the hex chunk format
    (host side and simulator side; no cocotb).
:mod:`rf8hw.sim.hdl_bench.cocotb_test`
    Its cocotb test module, which the simulator's embedded Python imports: drives the wrapper
    through one job and checks every chunk of result rows.

Importing this package imports neither cocotb nor the simulators.
"""
