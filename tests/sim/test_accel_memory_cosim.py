"""The accelerator's generated Verilog with its input streams throttled to a memory (every
producer holds tvalid low until its beat's bytes have arrived: rf8hw.accel.accel_cycles.stream_arrivals),
under Verilator and Icarus: every result equal to the rule, every command handshake, streamed
activation row and result beat at the cycle the memory-aware cycle model gives (exact, so the
estimate's throttled cycles equal the co-simulation's)."""

from fractions import Fraction

import numpy as np
import pytest

from rf8hw.accel.accel_cycles import accel_schedule, stream_arrivals
from rf8hw.accel.memory import StreamRate
from rf8hw.arch import AccelConfig, ArrayConfig
from rf8hw.sim.accel_stimulus import random_program

pytestmark = pytest.mark.slow

ACFG = AccelConfig(ArrayConfig(3, 4), max_m=9, max_k=20)
SIMULATORS = ["verilator", "icarus"]
#: (simulator, engine) pairs: the library engine (Verilator's default) and cocotb on both
ENGINES = [("verilator", "lib"), ("verilator", "cocotb"), ("icarus", "cocotb")]
#: below, near and above the bytes the streams need per cycle; with and without a latency
RATES = [StreamRate(Fraction(1, 9)), StreamRate(Fraction(3, 7), 5), StreamRate(Fraction(5, 2), 3),
         StreamRate(Fraction(12))]


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    return {s: tmp_path_factory.mktemp(f"accel memory {s}") for s in SIMULATORS}


@pytest.mark.parametrize(("simulator", "engine"), ENGINES, ids=[f"{s}-{e}" for s, e in ENGINES])
def test_throttled_streams_equal_the_cycle_model(simulator, engine, work):
    from rf8hw.sim.accel_cosim import run_accel_cosim

    R = ACFG.array.rows
    for seed in range(2):
        rng = np.random.default_rng([seed, 5])
        jobs, cmds = random_program(rng, ACFG, 3)
        for i, rate in enumerate(RATES):
            arr = stream_arrivals(cmds, ACFG, rate)
            sched = accel_schedule(cmds, ACFG, arrivals=arr)
            r = run_accel_cosim(ACFG, jobs, simulator=simulator, work_dir=work[simulator],
                                seed=10 * seed + i, arrivals=arr, engine=engine,
                                cache_dir=work[simulator])
            assert np.array_equal(r["results"], np.concatenate([j.expected for j in jobs]))
            assert r["cmd_cycles"] == [s["cmd"] for s in sched]
            assert r["out_cycles"] == [c for s in sched for c in s["out"]]
            streamed = [row for (M, K, N, load), s in zip(cmds, sched) if load
                        for t in s["tiles"][:-(-K // R)] for row in t["rows"]]
            assert r["a_cycles"] == streamed
            assert r["err_cmd"] == 0 and r["err_w_tlast"] == 0
            # the estimate's cycles: the last result or the last byte written back, whichever is later
            assert max(r["out_cycles"][-1], arr["end"]) == max(sched[-1]["out_last"], sched[-1]["mem_end"])
