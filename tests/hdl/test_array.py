"""The systolic array behind its AXI4-Stream top, in the Amaranth simulator, against golden.matmul."""

import re

import numpy as np
import pytest
from amaranth.hdl import Fragment, signed

from rf8hw.arch import PE_KINDS, ArrayConfig
from rf8hw.format import golden
from rf8hw.hdl.array import RF8Array, Timing
from rf8hw.hdl.axi import RF8AxiTop
from rf8hw.hdl.pe import WeightStationaryPE
from rf8hw.sim.pysim import simulate_tiles
from rf8hw.sim.stimulus import random_tiles


def expected_rows(tiles, acc_bits, overflow, act_bits):
    return np.concatenate([golden.matmul(a, codes, acc_bits, overflow, act_bits)
                           for codes, a in tiles])


def expected_lasts(tiles):
    return [int(i == len(a) - 1) for _, a in tiles for i in range(len(a))]


CASES = [  # rows, cols, act_bits, acc_bits, overflow, big
    (1, 1, 8, 40, "wrap", False),
    (3, 5, 8, 40, "wrap", False),
    (5, 3, 8, 40, "saturate", False),
    (4, 4, 8, 27, "wrap", True),
    (4, 4, 8, 27, "saturate", True),
    (6, 2, 4, 23, "saturate", True),
    (2, 3, 16, 35, "wrap", True),
    (8, 8, 8, 40, "wrap", False),
]


@pytest.mark.parametrize("stalls", [0.0, 0.35], ids=["no_stalls", "random_stalls"])
@pytest.mark.parametrize("rows, cols, act_bits, acc_bits, overflow, big", CASES,
                         ids=[f"{r}x{c}_a{b}_acc{a}_{o}{'_overflowing' if g else ''}"
                              for r, c, b, a, o, g in CASES])
def test_random_tiles_equal_golden(rows, cols, act_bits, acc_bits, overflow, big, stalls):
    """Back-to-back tiles (M = 1, 6, 3) with idle producers and a stalling consumer."""
    rng = np.random.default_rng(rows * 1000 + cols * 10 + act_bits)
    tiles = random_tiles(rng, rows, cols, ms=[1, 6, 3], act_bits=act_bits,
                         kind="overflow" if big else None)
    top = RF8AxiTop(ArrayConfig(rows, cols, act_bits, acc_bits, overflow))
    trace = simulate_tiles(top, tiles, rng=rng, p_w_idle=stalls, p_a_idle=stalls,
                           p_out_stall=stalls)
    expected = expected_rows(tiles, acc_bits, overflow, act_bits)
    assert np.array_equal(np.array(trace.results).reshape(expected.shape), expected), \
        f"got\n{np.array(trace.results)}\nexpected\n{expected}"
    assert trace.lasts == expected_lasts(tiles)
    assert trace.err_w_tlast == 0
    if big:   # the accumulator really overflowed: the exact sums differ from what it holds
        exact = np.concatenate([a @ golden.weight_int(codes) for codes, a in tiles])
        assert np.any(exact != expected)


def test_output_backpressure_long_stalls_lose_and_duplicate_nothing():
    """The consumer is ready only 1 cycle in 5: the array must stall, not drop or repeat rows."""
    rng = np.random.default_rng(11)
    tiles = random_tiles(rng, 3, 4, ms=[14, 4])
    top = RF8AxiTop(ArrayConfig(3, 4))
    trace = simulate_tiles(top, tiles, rng=rng, p_out_stall=0.8)
    assert np.array_equal(np.array(trace.results), expected_rows(tiles, 40, "wrap", 8))
    assert trace.lasts == expected_lasts(tiles)
    # the activation stream was held off inside the first tile (the stall reached the input:
    # 14 rows are more than the latency of 9 plus the 2-row output FIFO can hold)
    gaps = np.diff(trace.act_cycles[:14])
    assert gaps.max() > 1


@pytest.mark.parametrize("rows, cols", [(1, 1), (2, 5), (5, 2), (4, 4), (8, 8)])
def test_latency_matches_formula(rows, cols):
    """Every result row appears exactly ``rows + cols + product_latency`` cycles after its
    activation handshake (default PE kind),
    the next tile's weights stream in from the cycle after the first activation (double
    buffering), and its activations follow one cycle after its last weight beat or right after
    the previous tile's last activation, whichever is later."""
    rng = np.random.default_rng(5)
    ms = [4, 3]
    tiles = random_tiles(rng, rows, cols, ms=ms)
    t = Timing(ArrayConfig(rows, cols))
    trace = simulate_tiles(RF8AxiTop(ArrayConfig(rows, cols)), tiles, rng=rng)
    assert np.array_equal(np.array(trace.results), expected_rows(tiles, 40, "wrap", 8))
    assert t.latency == rows + cols + ArrayConfig(rows, cols).pe_kind.product_latency
    assert t.switch == 1
    assert trace.weight_cycles[:rows] == list(range(rows))                    # weight load: rows
    assert trace.act_cycles[:ms[0]] == list(range(rows, rows + ms[0]))       # then activations
    assert [r - a for r, a in zip(trace.result_cycles, trace.act_cycles)] == [t.latency] * sum(ms)
    assert trace.weight_cycles[rows:] == list(range(rows + 1, 2 * rows + 1))  # overlapping tile 0
    assert trace.act_cycles[ms[0]] == rows + t.tile_period(ms[0]) == rows + max(ms[0], rows + 1)
    assert trace.result_cycles[0] == t.result_cycle(0) + rows


@pytest.mark.parametrize("reset", ["aresetn", "rst"])
def test_reset_in_the_middle_of_a_tile_then_a_clean_tile(reset):
    """Reset (aresetn low, or rst high) while the first tile's activations are in flight: none of
    its results come out later, and the next tile (weights reloaded) is exact."""
    rng = np.random.default_rng(7)
    rows, cols = 4, 3
    tiles = random_tiles(rng, rows, cols, ms=[8, 5])
    top = RF8AxiTop(ArrayConfig(rows, cols, reset=reset))
    assert (top.clock_port, top.reset_port) == {"aresetn": ("aclk", "aresetn"),
                                                "rst": ("clk", "rst")}[reset]
    reset_cycle = rows + 4            # 4 activation rows of the first tile accepted, none out yet
    trace = simulate_tiles(top, tiles, rng=rng, reset_at=reset_cycle)
    clean = [tiles[-1]]
    assert np.array_equal(np.array(trace.results), expected_rows(clean, 40, "wrap", 8))
    assert trace.lasts == expected_lasts(clean)
    assert min(trace.result_cycles) > reset_cycle + rows     # nothing stale right after reset
    assert trace.during_reset == (0, 0, 0)


def test_reset_while_results_wait_on_backpressure():
    rng = np.random.default_rng(8)
    tiles = random_tiles(rng, 3, 3, ms=[6, 2])
    trace = simulate_tiles(RF8AxiTop(ArrayConfig(3, 3)), tiles, rng=rng, p_out_stall=0.9,
                           reset_at=20)
    assert np.array_equal(np.array(trace.results), expected_rows([tiles[-1]], 40, "wrap", 8))
    assert trace.during_reset == (0, 0, 0)


def test_weight_tlast_on_wrong_beat_sets_sticky_error_and_tile_still_loads():
    rng = np.random.default_rng(9)
    tiles = random_tiles(rng, 3, 2, ms=[2, 2])
    top = RF8AxiTop(ArrayConfig(3, 2))
    bad = simulate_tiles(top, tiles, rng=rng, w_last=lambda t, k: t == 0 and k == 1)
    assert bad.err_w_tlast == 1
    assert np.array_equal(np.array(bad.results), expected_rows(tiles, 40, "wrap", 8))
    good = simulate_tiles(RF8AxiTop(ArrayConfig(3, 2)), tiles, rng=rng)
    assert good.err_w_tlast == 0


class ProductPE(WeightStationaryPE):
    """A PE kind for this test only: stores the raw code as a signed byte and multiplies (INT8)."""

    weight_shape = signed(8)

    def product(self, m, a, w):
        return a * w


def test_array_shell_takes_another_pe_kind():
    """The array knows a PE class only through weight_bits/weight_shape/make_decoder (and the
    facts of the kind it stands in for: an INT8 product in one cycle, like ``int8``)."""
    rng = np.random.default_rng(10)
    tiles = random_tiles(rng, 3, 4, ms=[5])
    top = RF8AxiTop(ArrayConfig(3, 4, pe="int8"), pe_class=ProductPE)
    trace = simulate_tiles(top, tiles, rng=rng, p_out_stall=0.3)
    codes, a = tiles[0]
    assert np.array_equal(np.array(trace.results), a @ codes.view(np.int8).astype(np.int64))


@pytest.mark.parametrize("args, kwargs, message", [
    ((0, 4), {}, r"^rows must be an integer in 1\.\.64, not 0$"),
    ((4, 65), {}, r"^cols must be an integer in 1\.\.64, not 65$"),
    ((4, True), {}, r"^cols must be an integer in 1\.\.64, not True$"),
    ((4, 4, 8, 20), {}, r"^acc_bits must be an integer in 27\.\.64 for act_bits=8 \(the largest "
                        r"single product needs 27 bits\), not 20$"),
    ((4, 4, 8, 40, "round"), {}, r"^overflow must be one of 'wrap', 'saturate', not 'round'$"),
    ((4, 4), {"pe": "rf9"},
     "^pe must be one of " + re.escape(", ".join(map(repr, PE_KINDS))) + ", not 'rf9'$"),
])
def test_array_config_rejects_bad_parameters(args, kwargs, message):
    with pytest.raises(ValueError, match=message):
        ArrayConfig(*args, **kwargs)


@pytest.mark.parametrize("component", [RF8Array, RF8AxiTop])
def test_array_takes_only_an_array_config(component):
    """The old ``(rows, cols, ...)`` call is refused, naming the parameter; a config's fields
    reach the component."""
    with pytest.raises(TypeError, match=r"^cfg must be an ArrayConfig, not 4$"):
        component(4, 4)
    top = component(ArrayConfig(2, 3, 8, 30, "saturate", "fp8_e4m3"))
    Fragment.get(top, None)                                   # it elaborates
    assert (top.rows, top.cols, top.act_bits, top.acc_bits, top.overflow) == (2, 3, 8, 30,
                                                                               "saturate")
    assert top.timing.latency == 2 + 3 + 1


def test_timing_follows_the_pe_kinds_product_latency():
    assert Timing(ArrayConfig(3, 4, pe="rf8")).latency == 8
    assert Timing(ArrayConfig(3, 4, pe="rf8_pipe")).latency == 9


def test_timing_example_in_architecture_doc():
    """The 8 x 8, M = 8 column of the timing table in docs/architecture.md (default PE kind,
    rf8_pipe: latency 8 + 8 + 2), cycle by cycle."""
    rng = np.random.default_rng(12)
    tiles = random_tiles(rng, 8, 8, ms=[8, 8])
    trace = simulate_tiles(RF8AxiTop(ArrayConfig(8, 8)), tiles, rng=rng)
    assert trace.weight_cycles[:8] == list(range(0, 8))        # weight load: cycles 0..7
    assert trace.act_cycles[:8] == list(range(8, 16))          # activations 8..15
    assert Timing(ArrayConfig(8, 8)).latency == 18
    assert trace.result_cycles[:8] == list(range(26, 34))      # results 26..33
    assert trace.weight_cycles[8:] == list(range(9, 17))       # next tile's weights 9..16
    assert trace.act_cycles[8:] == list(range(17, 25))         # its activations 17..24
    assert trace.result_cycles[8:] == list(range(35, 43))      # its results 35..42
    assert np.array_equal(np.array(trace.results), expected_rows(tiles, 40, "wrap", 8))


def test_registered_clock_enable_equals_the_combinational_stall_rule():
    """``ce`` is a register, yet in every cycle of a run with idle inputs and heavy backpressure it
    equals the stall rule ``~bottom_valid | fifo.w_rdy`` evaluated in that cycle (so the
    registered control changes no cycle count), and the array did stall."""
    rng = np.random.default_rng(8)
    top = RF8AxiTop(ArrayConfig(3, 4))
    tiles = random_tiles(rng, 3, 4, ms=[14, 2, 5])
    seen = {"cycles": 0, "stalls": 0, "bad": []}

    async def watch(ctx):
        ce, bottom_valid, w_rdy = top.array._stall_rule     # recorded when the simulator elaborated
        async for _clk, _rst, c, b, w in ctx.tick().sample(ce, bottom_valid, w_rdy):
            seen["cycles"] += 1
            seen["stalls"] += not c
            if c != (not b or w):
                seen["bad"].append((seen["cycles"], c, b, w))

    trace = simulate_tiles(top, tiles, rng=rng, p_w_idle=0.2, p_a_idle=0.2, p_out_stall=0.7,
                           extra_processes=[watch])
    assert np.array_equal(np.array(trace.results), expected_rows(tiles, 40, "wrap", 8))
    assert seen["cycles"] > 50 and seen["stalls"] > 5 and not seen["bad"], seen["bad"][:5]
