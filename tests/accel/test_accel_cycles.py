"""The accelerator's cycle model (rf8hw.accel.accel_cycles) against the Amaranth simulation of the
RTL: every result beat's cycle and every streamed activation's, on random command sequences."""

import numpy as np
import pytest

from rf8hw.accel.accel_cycles import accel_gemm_cycles, accel_schedule
from rf8hw.arch import AccelConfig, ArrayConfig


def check_program(seed):
    from rf8hw.sim.accel_stimulus import random_program

    rng = np.random.default_rng(seed)
    R, C = int(rng.integers(1, 7)), int(rng.integers(1, 7))
    pe = ("rf8", "rf8_pipe", "rf8_lean")[seed % 3]
    acfg = AccelConfig(ArrayConfig(R, C, pe=pe), max_m=int(rng.integers(1, 14)),
                       max_k=int(rng.integers(1, 30)), post_lanes=int(rng.integers(1, C + 1)))
    jobs, cmds = random_program(rng, acfg, int(rng.integers(1, 4)))
    return check_jobs(acfg, jobs, cmds, rng)


def check_jobs(acfg, jobs, cmds, rng):
    from rf8hw.hdl.accel_axi import RF8AccelAxiTop
    from rf8hw.sim.accel_pysim import simulate_accel

    R = acfg.array.rows
    trace = simulate_accel(RF8AccelAxiTop(acfg), jobs, rng=rng)
    assert np.array_equal(np.array(trace.results), np.concatenate([j.expected for j in jobs]))
    sched = accel_schedule(cmds, acfg)
    assert trace.cmd_cycles == [s["cmd"] for s in sched]
    assert trace.result_cycles[:len(trace.results)] == [c for s in sched for c in s["out"]]
    kt = [-(-K // R) for _, K, _, _ in cmds]
    streamed = [row for s, (M, _, _, load), k in zip(sched, cmds, kt) if load
                for tile in s["tiles"][:k]
                for row in tile.get("rows", range(tile["a_first"], tile["a_first"] + M))]
    assert trace.act_cycles == streamed
    return acfg, cmds, sched


@pytest.mark.parametrize("seed", range(6))
def test_model_equals_simulation_on_random_programs(seed):
    check_program(seed)


@pytest.mark.parametrize("post_lanes", [1, 2])
def test_short_k_lanes_are_the_bottleneck_and_stall_the_array(post_lanes):
    """K <= rows (one K tile) on 2 x 6: the lanes need ceil(6 / post_lanes) cycles per result
    row, the array one; the total FIFO fills and the credit rule holds last-K rows back."""
    from rf8hw.sim.accel_stimulus import accel_job, random_gemm

    rng = np.random.default_rng(post_lanes)
    acfg = AccelConfig(ArrayConfig(2, 6), max_m=12, max_k=8, post_lanes=post_lanes)
    jobs = [accel_job(acfg, *random_gemm(rng, acfg, 12, 2, 40)),
            accel_job(acfg, *random_gemm(rng, acfg, 5, 8, 13), load=1)]
    cmds = [(j.M, j.K, j.N, j.load) for j in jobs]
    _, _, sched = check_jobs(acfg, jobs, cmds, rng)
    gated = [tile for s in sched for tile in s["tiles"]
             if "rows" in tile and tile["a_last"] - tile["a_first"] + 1 > len(tile["rows"])]
    assert gated, "the credit rule never held a row back"
    # the result rows leave at the lanes' rate: ceil(6 / post_lanes) cycles apart
    out = sched[0]["out"]
    assert min(np.diff(out)) == -(-6 // post_lanes)


def test_lanes_keep_up_when_kt_is_at_least_the_passes():
    """kt >= passes: the schedule is the one with a lane per column (no row held back)."""
    for M, K, N in ((9, 24, 30), (1, 8, 13), (12, 40, 7)):
        one = AccelConfig(ArrayConfig(4, 6), max_m=12, max_k=40, post_lanes=1)
        six = AccelConfig(ArrayConfig(4, 6), max_m=12, max_k=40, post_lanes=6)
        assert -(-K // 4) >= 6 or M == 1
        a, b = accel_schedule([(M, K, N, 1)] * 2, one), accel_schedule([(M, K, N, 1)] * 2, six)
        assert [s["tiles"] for s in a] == [s["tiles"] for s in b]
        assert [s["cmd"] for s in a] == [s["cmd"] for s in b]


def test_one_command_from_idle_is_the_schedule():
    acfg = AccelConfig(ArrayConfig(3, 4), max_m=9, max_k=20)
    c = accel_gemm_cycles(9, 20, 9, acfg)
    assert c.cycles == accel_schedule([(9, 20, 9, 1)], acfg)[0]["out_last"] + 1
    assert (c.k_tiles, c.n_tiles, c.tiles, c.macs) == (7, 3, 21, 9 * 20 * 9)
    assert c.bytes_out == 9 * 3 * 4 and c.bytes_a == 9 * 7 * 3 and c.bytes_w == 21 * 12


def test_int8_output_bytes_per_value():
    """Goal: <= 1 byte per output value (of K MACs) with INT8 out; INT32 is 4."""
    for out_bits, per_value in ((8, 1.0), (32, 4.0)):
        acfg = AccelConfig(ArrayConfig(8, 8), max_m=128, max_k=1536, out_bits=out_bits)
        assert accel_gemm_cycles(128, 384, 1536, acfg).out_bytes_per_value == per_value


def test_bad_command_is_refused_by_the_model():
    acfg = AccelConfig(ArrayConfig(3, 4), max_m=9, max_k=20)
    with pytest.raises(ValueError, match=r"^M must be an integer in 1\.\.9, not 10$"):
        accel_gemm_cycles(10, 3, 3, acfg)
