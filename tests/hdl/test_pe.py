"""RF8 decoder and PE in the Amaranth simulator, against the golden model and plain Python ints."""

import numpy as np
import pytest
from amaranth.hdl import Module, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out
from amaranth.sim import Simulator

from rf8hw.format import golden, spec
from rf8hw.hdl.decoder import RF8Decoder
from rf8hw.hdl.pe import RF8PE


class DecodedPE(wiring.Component):
    """Test harness: code byte -> RF8Decoder -> RF8PE, as one column of the array wires them."""

    def __init__(self, act_bits=8, acc_bits=40, overflow="wrap"):
        self.pe = RF8PE(act_bits, acc_bits, overflow)
        super().__init__({"code": In(8), "w_load": In(1), "ce": In(1),
                          "a_in": In(signed(act_bits)), "psum_in": In(signed(acc_bits)),
                          "a_out": Out(signed(act_bits)), "psum_out": Out(signed(acc_bits))})

    def elaborate(self, platform):
        m = Module()
        m.submodules.dec = dec = RF8Decoder()
        m.submodules.pe = pe = self.pe
        m.d.comb += [dec.code.eq(self.code), pe.w_data.eq(dec.fields), pe.w_load.eq(self.w_load),
                     pe.ce.eq(self.ce), pe.a_in.eq(self.a_in), pe.psum_in.eq(self.psum_in),
                     self.a_out.eq(pe.a_out), self.psum_out.eq(pe.psum_out)]
        return m


def simulate(dut, bench):
    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()


def python_product(x: int, code: int) -> int:
    """P(x, code) from the field table with plain ints (second oracle next to golden.product)."""
    f = spec.fields(code)
    return 0 if f.is_zero else (-1) ** f.s * x * f.M * 2 ** (f.E - 1)


def apply_overflow(total: int, acc_bits: int, overflow: str) -> int:
    lo, hi = -(1 << (acc_bits - 1)), (1 << (acc_bits - 1)) - 1
    if overflow == "saturate":
        return min(max(total, lo), hi)
    return (total - lo) % (1 << acc_bits) + lo


def test_decoder_all_256_codes():
    """Every code byte decodes to the fields of spec.fields()/spec.RESIDUAL."""
    dut = RF8Decoder()
    seen = {}

    async def bench(ctx):
        for code in range(256):
            ctx.set(dut.code, code)
            f = dut.fields
            seen[code] = (ctx.get(f.zero), ctx.get(f.sign), ctx.get(f.shift), ctx.get(f.res),
                          ctx.get(f.res_neg), ctx.get(f.res_shift))

    sim = Simulator(dut)
    sim.add_testbench(bench)
    sim.run()
    for code in range(256):
        f = spec.fields(code)
        expected = (int(f.is_zero), f.s, (f.E - 1) % 16, int(f.R != 0), int(f.rsign < 0),
                    spec.FRAC_BITS - f.gap if f.R else 0)
        assert seen[code] == expected, f"code {code:#04x}"


def test_product_all_act_code_pairs():
    """All 65,536 (int8 activation, code) pairs: psum_out = P(x, code) from psum_in = 0."""
    dut = DecodedPE()
    xs = np.arange(-128, 128)
    got = np.zeros((256, 256), dtype=np.int64)

    async def bench(ctx):
        ctx.set(dut.ce, 1)
        for code in range(256):
            ctx.set(dut.code, code)
            ctx.set(dut.w_load, 1)
            await ctx.tick()
            ctx.set(dut.w_load, 0)
            for i, x in enumerate(xs):
                ctx.set(dut.a_in, int(x))
                await ctx.tick()
                got[code, i] = ctx.get(dut.psum_out)

    simulate(dut, bench)
    expected = golden.product(xs[None, :], np.arange(256, dtype=np.uint8)[:, None])
    bad = np.argwhere(got != expected)
    assert bad.size == 0, [f"code {int(c):#04x} x={int(xs[i])}: got {got[c, i]}, "
                           f"expected {expected[c, i]}" for c, i in bad[:5]]
    # golden agrees with the plain-int oracle on the extreme activations (a chain, not a loop)
    for code in range(256):
        for i in (0, 127, 255):
            assert expected[code, i] == python_product(int(xs[i]), code)


@pytest.mark.parametrize("act_bits", [2, 16])
def test_product_narrowest_and_widest_activations(act_bits):
    """act_bits 2 (all pairs) and 16 (extremes + random): the PE widths follow act_bits."""
    acc_bits = spec.min_acc_bits(act_bits)
    dut = DecodedPE(act_bits, acc_bits)
    lo, hi = -(1 << (act_bits - 1)), (1 << (act_bits - 1)) - 1
    rng = np.random.default_rng(2)
    if act_bits == 2:
        pairs = [(x, c) for c in range(256) for x in range(lo, hi + 1)]
    else:
        pairs = [(x, c) for c in range(256) for x in (lo, hi, -1, 1)]
        pairs += [(int(x), int(c)) for x, c in zip(rng.integers(lo, hi + 1, 2000),
                                                     rng.integers(0, 256, 2000))]
    got = []

    async def bench(ctx):
        ctx.set(dut.ce, 1)
        for x, code in pairs:
            ctx.set(dut.code, code)
            ctx.set(dut.w_load, 1)
            ctx.set(dut.a_in, x)
            await ctx.tick()          # loads the weight (this cycle's product uses the old one)
            ctx.set(dut.w_load, 0)
            await ctx.tick()
            got.append(ctx.get(dut.psum_out))

    simulate(dut, bench)
    expected = [python_product(x, c) for x, c in pairs]
    assert got == expected
    assert max(abs(e) for e in expected) == 3 << (act_bits + 16)   # the widest product was hit


@pytest.mark.parametrize("overflow", spec.OVERFLOW_MODES)
def test_accumulate_overflow_rule_at_min_acc_bits(overflow):
    """psum_out = overflow_rule(psum_in + P) with psum_in near both limits of a 27-bit accumulator."""
    acc_bits = spec.min_acc_bits(8)
    dut = DecodedPE(8, acc_bits, overflow)
    rng = np.random.default_rng(3)
    lim = 1 << (acc_bits - 1)
    cases = []
    for _ in range(1500):
        edge = int(rng.choice([-lim, lim - 1, 0]))
        psum = int(np.clip(edge + int(rng.integers(-(3 << 24), (3 << 24) + 1)), -lim, lim - 1))
        cases.append((psum, int(rng.integers(-128, 128)), int(rng.integers(0, 256))))
    cases += [(lim - 1, -128, 0xF9), (-lim, -128, 0x79), (lim - 1, 127, 0x79), (-lim, 127, 0xF9)]
    got = []

    async def bench(ctx):
        ctx.set(dut.ce, 1)
        for psum, x, code in cases:
            ctx.set(dut.code, code)
            ctx.set(dut.w_load, 1)
            await ctx.tick()
            ctx.set(dut.w_load, 0)
            ctx.set(dut.a_in, x)
            ctx.set(dut.psum_in, psum)
            await ctx.tick()
            got.append(ctx.get(dut.psum_out))

    simulate(dut, bench)
    exact = [psum + python_product(x, c) for psum, x, c in cases]
    expected = [apply_overflow(t, acc_bits, overflow) for t in exact]
    assert got == expected
    assert sum(not -lim <= t < lim for t in exact) > 100     # the rule was exercised, both ways
    assert any(t < -lim for t in exact) and any(t >= lim for t in exact)


def test_clock_enable_holds_outputs_and_weight_load_ignores_it():
    dut = DecodedPE()
    code = spec.make_code(0, 3, 2)           # 1.25 * 2**(3-15): P = x * 20 * 4

    async def bench(ctx):
        ctx.set(dut.ce, 1)
        ctx.set(dut.code, code)
        ctx.set(dut.w_load, 1)
        await ctx.tick()
        ctx.set(dut.w_load, 0)
        ctx.set(dut.a_in, 5)
        ctx.set(dut.psum_in, 7)
        await ctx.tick()
        assert (ctx.get(dut.a_out), ctx.get(dut.psum_out)) == (5, 7 + 5 * 80)
        ctx.set(dut.ce, 0)
        ctx.set(dut.a_in, -3)
        ctx.set(dut.code, spec.make_code(1, 1, 0))   # -1 * 2**0... P = -x * 16
        ctx.set(dut.w_load, 1)                       # loads even while ce is low
        for _ in range(3):
            await ctx.tick()
            assert (ctx.get(dut.a_out), ctx.get(dut.psum_out)) == (5, 7 + 5 * 80)
        ctx.set(dut.w_load, 0)
        ctx.set(dut.ce, 1)
        await ctx.tick()
        assert (ctx.get(dut.a_out), ctx.get(dut.psum_out)) == (-3, 7 + 3 * 16)

    simulate(dut, bench)


@pytest.mark.parametrize("kwargs, message", [
    ({"act_bits": 1}, r"^act_bits must be an integer in 2\.\.16, not 1$"),
    ({"act_bits": 17}, r"^act_bits must be an integer in 2\.\.16, not 17$"),
    ({"act_bits": 8.0}, r"^act_bits must be an integer in 2\.\.16, not 8\.0$"),
    ({"acc_bits": 26}, r"^acc_bits must be an integer in 27\.\.64 for act_bits=8 \(the largest "
                       r"single product needs 27 bits\), not 26$"),
    ({"acc_bits": 65}, r"^acc_bits must be an integer in 27\.\.64 .*, not 65$"),
    ({"overflow": "clamp"}, r"^overflow must be one of 'wrap', 'saturate', not 'clamp'$"),
])
def test_pe_rejects_bad_parameters(kwargs, message):
    with pytest.raises(ValueError, match=message):
        RF8PE(**kwargs)
