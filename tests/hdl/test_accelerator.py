"""The accelerator (array + buffers + post-processing + sequencer) in the Amaranth simulator,
against the post-processing rule (rf8hw.format.postproc on golden.matmul)."""

import numpy as np
import pytest
from amaranth.hdl import Fragment

from rf8hw.arch import AccelConfig, AccelTiming, ArrayConfig
from rf8hw.hdl.accel_axi import RF8AccelAxiTop
from rf8hw.sim.accel_pysim import simulate_accel
from rf8hw.sim.accel_stimulus import accel_job, random_gemm

CONFIGS = {  # name: AccelConfig
    "3x4": AccelConfig(ArrayConfig(3, 4), max_m=9, max_k=20, act_depth=70),
    "2x3_a4_acc30_rf8_int32": AccelConfig(ArrayConfig(2, 3, act_bits=4, acc_bits=30, pe="rf8"),
                                          max_m=6, max_k=11, out_bits=32),
    "1x1": AccelConfig(ArrayConfig(1, 1), max_m=4, max_k=5),
    "3x4_3lanes": AccelConfig(ArrayConfig(3, 4), max_m=7, max_k=14, post_lanes=3),
    "8x8": AccelConfig(ArrayConfig(8, 8), max_m=16, max_k=40),
}


def check(trace, jobs):
    want = np.concatenate([j.expected for j in jobs])
    got = np.array(trace.results)
    assert got.shape == want.shape, f"{got.shape} result beats, expected {want.shape}"
    assert np.array_equal(got, want), f"got\n{got}\nexpected\n{want}"
    assert trace.lasts == [x for j in jobs for x in j.expected_last]
    assert trace.err_cmd == 0 and trace.err_w_tlast == 0


def ragged_jobs(rng, acfg):
    """Three back-to-back commands: a ragged GEMM loading its activations at an offset, a second
    GEMM reusing them from the buffer (load = 0), and a small one at the largest M."""
    R, C = acfg.array.rows, acfg.array.cols
    M = int(rng.integers(1, acfg.max_m + 1))
    K = int(rng.integers(1, acfg.max_k + 1))
    base = acfg.act_depth - M * -(-K // R)              # the last rows of the buffer
    a, codes, bias, mult, shift = random_gemm(rng, acfg, M, K, int(rng.integers(1, 3 * C + 2)))
    first = accel_job(acfg, a, codes, bias, mult, shift, act_base=base)
    _, codes2, bias2, mult2, shift2 = random_gemm(rng, acfg, M, K, int(rng.integers(C + 1, 3 * C)))
    reuse = accel_job(acfg, a, codes2, bias2, mult2, shift2, act_base=base, load=0)
    last = accel_job(acfg, *random_gemm(rng, acfg, acfg.max_m, int(rng.integers(1, R + 2)), 1))
    return [first, reuse, last]


@pytest.mark.parametrize("stalls", [0.0, 0.3], ids=["no_stalls", "random_stalls"])
@pytest.mark.parametrize("name", list(CONFIGS))
def test_random_ragged_gemms_equal_the_rule(name, stalls):
    acfg = CONFIGS[name]
    rng = np.random.default_rng([list(CONFIGS).index(name), int(stalls * 10)])
    jobs = ragged_jobs(rng, acfg)
    trace = simulate_accel(RF8AccelAxiTop(acfg), jobs, rng=rng, p_idle=stalls,
                           p_out_stall=stalls)
    check(trace, jobs)
    # the results are not trivial: many distinct values, some saturated
    want = np.concatenate([j.expected for j in jobs])
    assert np.unique(want).size >= 5


def test_long_output_backpressure_stalls_and_loses_nothing():
    acfg = CONFIGS["3x4"]
    rng = np.random.default_rng(5)
    jobs = [accel_job(acfg, *random_gemm(rng, acfg, 9, 20, 10)),
            accel_job(acfg, *random_gemm(rng, acfg, 9, 3, 32))]
    t = AccelTiming(acfg)
    # more result rows than the total FIFO, the lanes' pipeline and the result FIFO hold: the
    # consumer's stalls must reach the array (the credit rule) for nothing to be lost
    assert len(jobs[1].expected) > t.total_fifo_depth + t.post_stages + t.out_fifo_depth
    free = simulate_accel(RF8AccelAxiTop(acfg), jobs, rng=rng)
    trace = simulate_accel(RF8AccelAxiTop(acfg), jobs, rng=rng, p_out_stall=0.9)
    check(free, jobs)
    check(trace, jobs)
    # the consumer, ready 1 cycle in 10, held the array back: far more cycles than without stalls
    rows = sum(len(j.expected) for j in jobs)
    assert trace.cycles > free.cycles + 2 * rows


def test_refused_commands_set_err_cmd_and_run_nothing():
    acfg = CONFIGS["3x4"]
    rng = np.random.default_rng(6)
    bad = [(0, 3, 3, 0), (10, 3, 3, 0), (2, 21, 3, 0), (2, 3, 0, 0), (5, 20, 3, 36), (1, 1, 1, 70)]
    words = []
    for M, K, N, base in bad:
        assert acfg.command_error(M, K, N, base) is not None
        words.append(M | K << 16 | N << 32 | base << 48 | 1 << 64)
    job = accel_job(acfg, *random_gemm(rng, acfg, 5, 20, 3), act_base=35)   # the last fitting base
    trace = simulate_accel(RF8AccelAxiTop(acfg), [job], rng=rng, extra_cmds=words)
    assert trace.err_cmd == 1
    assert np.array_equal(np.array(trace.results), job.expected)
    assert len(trace.cmd_cycles) == len(bad) + 1


def test_reset_mid_gemm_drops_the_gemm_and_runs_the_next():
    acfg = CONFIGS["3x4"]
    rng = np.random.default_rng(7)
    jobs = [accel_job(acfg, *random_gemm(rng, acfg, 9, 20, 9)),
            accel_job(acfg, *random_gemm(rng, acfg, 4, 7, 5))]
    trace = simulate_accel(RF8AccelAxiTop(acfg), jobs, rng=rng, reset_at=60)
    assert trace.during_reset == (0, 0, 0, 0, 0)
    check(trace, jobs[-1:])


def test_int8_output_is_one_byte_per_value():
    for name, width in (("8x8", 8 * 8), ("2x3_a4_acc30_rf8_int32", 3 * 32)):
        top = RF8AccelAxiTop(CONFIGS[name])
        assert len(top.m_axis_out_tdata) == width       # cols values of out_bits per beat
        Fragment.get(top, None)                         # it elaborates


@pytest.mark.parametrize("kwargs, message", [
    (dict(max_m=0), r"^max_m must be an integer in 1\.\.65535, not 0$"),
    (dict(max_k=10923), r"^max_k must be an integer in 1\.\.10922 for act_bits=8, acc_bits=40 "),
    (dict(act_depth=100), r"^act_depth must be an integer in 24576\.\.65536 "),
    (dict(out_bits=16), r"^out_bits must be one of 8, 32, not 16$"),
    (dict(post_lanes=0), r"^post_lanes must be an integer in 1\.\.8 \(the array has 8 columns\), not 0$"),
    (dict(post_lanes=9), r"^post_lanes must be an integer in 1\.\.8 \(the array has 8 columns\), not 9$"),
    (dict(array=ArrayConfig(acc_bits=47)), r"^acc_bits must be an integer <= 46 for the accel"),
    (dict(array=(8, 8)), r"^array must be an ArrayConfig, not \(8, 8\)$"),
])
def test_bad_config_is_one_line_naming_the_value(kwargs, message):
    with pytest.raises(ValueError, match=message):
        AccelConfig(**kwargs)


def test_pack_command_refuses_what_the_hardware_refuses():
    acfg = CONFIGS["3x4"]
    with pytest.raises(ValueError, match=r"^act_base \+ M \* ceil\(K / rows\) must be <= "
                                         r"act_depth = 70, not 71 \(act_base=64, M=1, K=19\)$"):
        acfg.pack_command(1, 19, 1, act_base=64)
    assert acfg.pack_command(2, 3, 4, 5, 0) == 2 | 3 << 16 | 4 << 32 | 5 << 48


@pytest.mark.parametrize("out_bits", [8, 32])
def test_post_processing_at_every_shift_and_extreme_parameter(out_bits):
    """64 columns with shifts 0..63, multipliers 0, 1, 65535 and random, biases at both ends of
    the 40-bit range and 0, sums from the largest products: the RTL's post-processing equals the
    rule at every shift, INT8 and INT32."""
    acfg = AccelConfig(ArrayConfig(2, 4), max_m=4, max_k=6, out_bits=out_bits)
    rng = np.random.default_rng(out_bits)
    N = 64
    a = rng.integers(-128, 128, size=(4, 6))
    a[0] = -128
    codes = rng.integers(0, 256, size=(6, N)).astype(np.uint8)
    codes[:, ::3] = 0xF9                       # the largest weight magnitude, negative
    half = 1 << 39
    bias = rng.integers(-half, half, size=N)
    bias[::5], bias[1::5], bias[2::5] = -half, half - 1, 0
    mult = rng.integers(0, 1 << 16, size=N)
    mult[::7], mult[1::7], mult[2::7] = 0, 1, (1 << 16) - 1
    shift = np.arange(N)
    job = accel_job(acfg, a, codes, bias, mult, shift)
    trace = simulate_accel(RF8AccelAxiTop(acfg), [job], rng=rng)
    check(trace, [job])
    want = job.expected
    lo, hi = -(1 << (out_bits - 1)), (1 << (out_bits - 1)) - 1
    assert (want == lo).any() and (want == hi).any() and ((want > lo) & (want < hi)).sum() > 20
