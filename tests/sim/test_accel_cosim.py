"""The accelerator's generated Verilog under Verilator (the library engine, the default, and
cocotb) and Icarus (cocotb, per-cycle Python drive): random ragged GEMMs with stalls against the
post-processing rule, the cycle model on every handshake without stalls, and a reset in the
middle of a GEMM."""

import numpy as np
import pytest

from rf8hw.accel.accel_cycles import accel_schedule
from rf8hw.arch import AccelConfig, ArrayConfig
from rf8hw.sim.accel_stimulus import accel_job, random_gemm, random_program

pytestmark = pytest.mark.slow

ACFG = AccelConfig(ArrayConfig(3, 4), max_m=9, max_k=20)
SIMULATORS = ["verilator", "icarus"]
#: (simulator, engine) pairs: every test runs on each
ENGINES = [("verilator", "lib"), ("verilator", "cocotb"), ("icarus", "cocotb")]
IDS = [f"{s}-{e}" for s, e in ENGINES]


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    """One build per simulator for the module's tests (the library engine's cache inside)."""
    return {s: tmp_path_factory.mktemp(f"accel {s}") for s in SIMULATORS}


def expected(jobs):
    return np.concatenate([j.expected for j in jobs])


@pytest.mark.parametrize(("simulator", "engine"), ENGINES, ids=IDS)
def test_random_programs_equal_the_rule_and_the_cycle_model(simulator, engine, work):
    from rf8hw.sim.accel_cosim import run_accel_cosim

    for seed in range(2):
        rng = np.random.default_rng([seed, 23])
        jobs, cmds = random_program(rng, ACFG, 3)
        # full rate: every handshake where the cycle model says
        r = run_accel_cosim(ACFG, jobs, simulator=simulator, work_dir=work[simulator], seed=seed,
                            engine=engine, cache_dir=work[simulator])
        assert np.array_equal(r["results"], expected(jobs))
        assert r["lasts"] == [x for j in jobs for x in j.expected_last]
        sched = accel_schedule(cmds, ACFG)
        c0 = r["cmd_cycles"][0]
        assert [c - c0 for c in r["cmd_cycles"]] == [s["cmd"] for s in sched]
        assert [c - c0 for c in r["out_cycles"]] == [c for s in sched for c in s["out"]]
        assert r["err_cmd"] == 0 and r["err_w_tlast"] == 0
        # idle producers and a stalling consumer: the same results
        r = run_accel_cosim(ACFG, jobs, simulator=simulator, work_dir=work[simulator],
                            seed=seed + 10, p_idle=0.3, p_out_stall=0.3, engine=engine,
                            cache_dir=work[simulator])
        assert np.array_equal(r["results"], expected(jobs))
        assert r["out_cycles"][-1] - r["cmd_cycles"][0] > sched[-1]["out_last"]


@pytest.mark.parametrize(("simulator", "engine"), ENGINES, ids=IDS)
def test_reset_mid_gemm(simulator, engine, work):
    from rf8hw.sim.accel_cosim import run_accel_cosim

    rng = np.random.default_rng(5)
    jobs = [accel_job(ACFG, *random_gemm(rng, ACFG, 9, 20, 9)),
            accel_job(ACFG, *random_gemm(rng, ACFG, 4, 7, 5))]
    r = run_accel_cosim(ACFG, jobs, simulator=simulator, work_dir=work[simulator], reset_at=70,
                        p_out_stall=0.2, engine=engine, cache_dir=work[simulator])
    assert r["during_reset"] == [0, 0, 0, 0, 0]
    assert np.array_equal(r["results"], expected(jobs[-1:]))
    assert r["lasts"] == jobs[-1].expected_last


@pytest.mark.parametrize("engine", ["lib", "cocotb"])
def test_a_relative_work_dir_works(engine, work, monkeypatch):
    """The simulator runs in the job's folder: a work_dir given relative to the caller's folder
    (as a benchmark's --work is) still finds its build."""
    from rf8hw.sim.accel_cosim import run_accel_cosim

    rng = np.random.default_rng(7)
    jobs = [accel_job(ACFG, *random_gemm(rng, ACFG, 3, 5, 4))]
    monkeypatch.chdir(work["verilator"].parent)
    r = run_accel_cosim(ACFG, jobs, simulator="verilator", work_dir=work["verilator"].name,
                        engine=engine, cache_dir=work["verilator"].name)
    assert np.array_equal(r["results"], expected(jobs))


def test_engine_choice_is_checked():
    """The library engine is Verilator's; a bad engine name is one line naming the choices."""
    from rf8hw.sim.accel_cosim import run_accel_cosim

    jobs = [accel_job(ACFG, *random_gemm(np.random.default_rng(1), ACFG, 2, 3, 4))]
    with pytest.raises(ValueError, match="engine 'lib' runs Verilator only"):
        run_accel_cosim(ACFG, jobs, simulator="icarus", work_dir=".", engine="lib")
    with pytest.raises(ValueError, match="engine"):
        run_accel_cosim(ACFG, jobs, work_dir=".", engine="vpi")
