"""Baseline (INT8, FP8-E4M3) and RF8-variant PEs in the Amaranth simulator, all 65,536 pairs each.

Oracle chain: ``rf8hw.format.baselines`` (plain ints) is checked against ml_dtypes / two's complement on all
256 codes; each PE is checked against ``rf8hw.format.baselines`` (or ``rf8hw.format.golden`` for RF8 variants) on
every (int8 activation, code) pair.
"""

import ml_dtypes
import numpy as np
import pytest
from amaranth.hdl import Module, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out
from amaranth.sim import Simulator

from rf8hw.format import baselines, golden
from rf8hw.hdl.axi import RF8AxiTop
from rf8hw.hdl.baseline_pe import FP8E4M3PE, Int8PE
from sim.pysim import run_tiles
from rf8hw.hdl.rf8_variants import RF8LeanPE, RF8PipePE, RF8SignLatePE

#: codes loaded at once: 16 PEs share one activation, so 16 x 257 cycles cover 65,536 pairs.
BANK = 16


class PEBank(wiring.Component):
    """``BANK`` copies of ``decoder -> PE`` with their own weight codes and one shared activation."""

    def __init__(self, pe_cls, act_bits=8, acc_bits=40, overflow="wrap"):
        self.pe_cls = pe_cls
        self.pes = [pe_cls(act_bits, acc_bits, overflow) for _ in range(BANK)]
        super().__init__({"codes": In(8 * BANK), "w_load": In(1), "a_in": In(signed(act_bits)),
                          "psum_in": In(signed(acc_bits)),
                          **{f"p{i}": Out(signed(acc_bits)) for i in range(BANK)}})

    def elaborate(self, platform):
        m = Module()
        for i, pe in enumerate(self.pes):
            dec = self.pe_cls.make_decoder()
            m.submodules[f"dec{i}"] = dec
            m.submodules[f"pe{i}"] = pe
            m.d.comb += [dec.code.eq(self.codes[8 * i:8 * i + 8]), pe.w_data.eq(dec.fields),
                         pe.w_load.eq(self.w_load), pe.ce.eq(1), pe.a_in.eq(self.a_in),
                         pe.psum_in.eq(self.psum_in), getattr(self, f"p{i}").eq(pe.psum_out)]
        return m


def simulate_all_pairs(pe_cls) -> np.ndarray:
    """``got[code, x + 128] = psum_out`` with ``psum_in = 0`` for every code and int8 activation."""
    dut = PEBank(pe_cls)
    got = np.zeros((256, 256), dtype=np.int64)
    lag = getattr(pe_cls, "product_latency", 1) - 1

    async def bench(ctx):
        for base in range(0, 256, BANK):
            ctx.set(dut.codes, sum(c << (8 * i) for i, c in enumerate(range(base, base + BANK))))
            ctx.set(dut.w_load, 1)
            await ctx.tick()
            ctx.set(dut.w_load, 0)
            for t in range(256 + lag):              # P(x) reaches psum_out ``lag`` ticks later
                ctx.set(dut.a_in, t - 128 if t < 256 else 0)
                await ctx.tick()
                if t >= lag:
                    for i in range(BANK):
                        got[base + i, t - lag] = ctx.get(getattr(dut, f"p{i}"))

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    return got


def expected_all_pairs(fmt: str) -> np.ndarray:
    return np.array([[baselines.product(fmt, x, c) for x in range(-128, 128)]
                     for c in range(256)], dtype=np.int64)


def assert_equal_pairs(got, expected):
    bad = np.argwhere(got != expected)
    assert bad.size == 0, [f"code {int(c):#04x} x={int(i) - 128}: got {got[c, i]}, expected "
                           f"{expected[c, i]}" for c, i in bad[:5]]


def test_int8_weight_int_is_twos_complement_all_256_codes():
    assert [baselines.int8_weight_int(c) for c in range(256)] == \
        list(np.arange(256, dtype=np.uint8).view(np.int8).astype(int))


def test_fp8_e4m3_weight_int_matches_ml_dtypes_all_256_codes():
    """W(code) = value * 2**9 for every finite E4M3FN code; NaN codes map to 0."""
    values = np.arange(256, dtype=np.uint8).view(ml_dtypes.float8_e4m3fn).astype(np.float64)
    for code in range(256):
        w = baselines.fp8_e4m3_weight_int(code)
        if np.isnan(values[code]):
            assert code in baselines.FP8_E4M3_NAN_CODES and w == 0, f"code {code:#04x}"
        else:
            assert w == values[code] * 2 ** baselines.FP8_E4M3_SCALE_BITS, f"code {code:#04x}"
    assert baselines.max_abs_weight_int("fp8_e4m3") == 448 * 2 ** 9


@pytest.mark.parametrize(("fmt", "bits"), [("int8", 16), ("fp8_e4m3", 26)])
def test_product_bits(fmt, bits):
    """The widest products need exactly these widths: -128 * -128 = 2**14, -128 * -448*2**9."""
    assert baselines.product_bits(fmt, 8) == bits


def test_baseline_product_rejects_unknown_format_and_bad_code():
    with pytest.raises(ValueError, match=r"^baseline weight format must be one of "
                                         r"\['fp8_e4m3', 'int8'\], not 'rf8'$"):
        baselines.product("rf8", 1, 1)
    with pytest.raises(ValueError, match=r"^weight code must be an int byte 0\.\.255, not 256$"):
        baselines.fp8_e4m3_weight_int(256)


@pytest.mark.parametrize(("pe_cls", "fmt"), [(Int8PE, "int8"), (FP8E4M3PE, "fp8_e4m3")],
                         ids=["int8", "fp8_e4m3"])
def test_baseline_pe_all_65536_pairs(pe_cls, fmt):
    """Every (int8 activation, weight code) pair: psum_out = P(x, code) from psum_in = 0."""
    assert_equal_pairs(simulate_all_pairs(pe_cls), expected_all_pairs(fmt))


@pytest.mark.parametrize(("pe_cls", "fmt"), [(Int8PE, "int8"), (FP8E4M3PE, "fp8_e4m3")],
                         ids=["int8", "fp8_e4m3"])
def test_baseline_pe_in_array_matches_matmul(pe_cls, fmt):
    """The baseline PE in the real array shell: a 3x4 array computes a @ W(codes) (with stalls)."""
    rng = np.random.default_rng(7)
    top = RF8AxiTop(3, 4, pe=pe_cls)
    codes = rng.integers(0, 256, (3, 4)).astype(np.uint8)
    codes[0, 0] = 0x7F                                    # a NaN code for FP8 (127 for INT8)
    a = rng.integers(-128, 128, (6, 3))
    a[0] = -128
    trace = run_tiles(top, [(codes, a)], rng=rng, p_a_idle=0.2, p_out_stall=0.2)
    weights = np.array([[baselines.WEIGHT_INT_FUNCS[fmt](int(c)) for c in row] for row in codes])
    assert trace.results == (a @ weights).tolist()



VARIANTS = pytest.mark.parametrize("pe_cls", [RF8SignLatePE, RF8LeanPE, RF8PipePE],
                                   ids=["signlate", "lean", "pipe"])


@VARIANTS
def test_rf8_variant_pe_all_65536_pairs(pe_cls):
    """Every (int8 activation, RF8 code) pair of a variant PE equals golden.product."""
    expected = golden.product(np.arange(-128, 128)[None, :], np.arange(256, dtype=np.uint8)[:, None])
    assert_equal_pairs(simulate_all_pairs(pe_cls), expected)


@pytest.mark.parametrize("overflow", ["wrap", "saturate"])
@VARIANTS
def test_rf8_variant_in_array_at_min_acc_bits(pe_cls, overflow):
    """A variant in the array shell at the narrowest accumulator (27 bits) matches golden.matmul,
    overflow rule included (large products drive the sums past the limits)."""
    rng = np.random.default_rng(11)
    acc_bits = 27
    top = RF8AxiTop(4, 3, acc_bits=acc_bits, overflow=overflow, pe=pe_cls)
    codes = rng.integers(0, 256, (4, 3)).astype(np.uint8)
    codes[:, 0] = 0x79                                    # largest magnitude: overflows quickly
    a = rng.integers(-128, 128, (8, 4))
    a[0] = -128
    trace = run_tiles(top, [(codes, a)], rng=rng, p_a_idle=0.2, p_out_stall=0.2)
    expected = golden.matmul(a, codes, acc_bits=acc_bits, overflow=overflow)
    assert trace.results == np.asarray(expected).tolist()


def test_pipelined_variant_back_to_back_tiles_and_latency():
    """RF8PipePE: two tiles back to back (weight reload right after the guard) stay exact, and
    every result arrives ``rows + cols + 1`` cycles after its activation (one more than RF8PE)."""
    rng = np.random.default_rng(5)
    top = RF8AxiTop(3, 4, pe=RF8PipePE)
    assert top.timing.latency == 3 + 4 + 1
    tiles = [(rng.integers(0, 256, (3, 4)).astype(np.uint8), rng.integers(-128, 128, (5, 3)))
             for _ in range(2)]
    trace = run_tiles(top, tiles, rng=rng)
    expected = [row for codes, a in tiles for row in np.asarray(golden.matmul(a, codes)).tolist()]
    assert trace.results == expected
    assert [r - a for r, a in zip(trace.result_cycles, trace.act_cycles)] == [8] * 10
