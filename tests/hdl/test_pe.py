"""The decoders and every PE kind of the registry in the Amaranth simulator.

Exhaustive check: each distinct PE class of ``rf8hw.hdl.registry.PE_CLASSES`` against the golden
product of its kind's ``weight_format`` (``rf8hw.arch.PE_KINDS``) (``rf8hw.format.golden.product`` for RF8,
``rf8hw.format.baselines`` for INT8 and FP8-E4M3) on all 65,536 (int8 activation, code) pairs.  Oracle chain:
``rf8hw.format.baselines`` (plain ints) is checked here against ml_dtypes / two's complement on all
256 codes, ``golden.product`` against the plain-int field table.  The RF8 reference PE is also
checked at other widths, for the overflow rules and for the clock enable; every other kind runs
inside the real array shell.
"""

import ml_dtypes
import numpy as np
import pytest
from amaranth.hdl import Module, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out
from amaranth.sim import Simulator

from rf8hw.arch import PE_KINDS, ArrayConfig, rf8_kinds
from rf8hw.format import baselines, golden, spec
from rf8hw.hdl.axi import RF8AxiTop
from rf8hw.hdl.decoder import RF8Decoder
from rf8hw.hdl.pe import RF8PE
from rf8hw.hdl.registry import pe_class
from rf8hw.sim.pysim import simulate_tiles

#: codes loaded at once by the exhaustive check: 16 PEs share one activation, so 16 x 257 cycles
#: cover the 65,536 pairs.
BANK = 16

#: One entry per distinct PE class (``int8``/``int8_dsp`` share ``Int8PE``, ``int8_pipe``/
#: ``int8_dsp_pipe`` share ``Int8PipePE``): kind name -> class, first name of each class.  Kinds
#: sharing a class share its weight format and product latency (checked below).
PE_CLASSES = {}
for _name in PE_KINDS:
    if pe_class(_name) not in PE_CLASSES.values():
        PE_CLASSES[_name] = pe_class(_name)


class PEBank(wiring.Component):
    """``n`` copies of ``decoder -> PE`` (as one array column wires them) with their own weight
    codes and one shared activation, clock enable and ``psum_in``.

    Ports: ``codes`` (code ``i`` in bits ``[weight_bits*i +: weight_bits]``), ``w_load`` (into the
    shadow registers), ``swap`` (shadow -> weight in use, on ``ce``), ``ce``, ``a_in``, ``psum_in``;
    ``a_out`` of PE 0; ``p0 .. p{n-1}`` the ``psum_out`` of each PE
    (also as the list :attr:`psum`).
    """

    def __init__(self, pe_cls, n=BANK, act_bits=8, acc_bits=40, overflow="wrap"):
        self.pe_cls, self.n = pe_cls, n
        self.pes = [pe_cls(act_bits, acc_bits, overflow) for _ in range(n)]
        super().__init__({"codes": In(pe_cls.weight_bits * n), "w_load": In(1), "swap": In(1),
                          "ce": In(1), "a_in": In(signed(act_bits)), "psum_in": In(signed(acc_bits)),
                          "a_out": Out(signed(act_bits)),
                          **{f"p{i}": Out(signed(acc_bits)) for i in range(n)}})
        self.psum = [getattr(self, f"p{i}") for i in range(n)]

    def elaborate(self, platform):
        m = Module()
        bits = self.pe_cls.weight_bits
        for i, pe in enumerate(self.pes):
            dec = self.pe_cls.make_decoder()
            m.submodules[f"dec{i}"] = dec
            m.submodules[f"pe{i}"] = pe
            m.d.comb += [dec.code.eq(self.codes[bits * i:bits * (i + 1)]), pe.w_data.eq(dec.fields),
                         pe.w_load.eq(self.w_load), pe.swap_in.eq(self.swap), pe.ce.eq(self.ce),
                         pe.a_in.eq(self.a_in),
                         pe.psum_in.eq(self.psum_in), self.psum[i].eq(pe.psum_out)]
        m.d.comb += self.a_out.eq(self.pes[0].a_out)
        return m


async def load_weights(ctx, dut):
    """Two ticks (``ce`` high): ``codes`` into the shadow registers, then the swap that puts them
    in use.  The product of the cycle after this uses the new weights."""
    ctx.set(dut.w_load, 1)
    await ctx.tick()
    ctx.set(dut.w_load, 0)
    ctx.set(dut.swap, 1)
    await ctx.tick()
    ctx.set(dut.swap, 0)


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


# --- the exhaustive check, every PE class of the registry -------------------------------------

XS = np.arange(-128, 128)
CODES = np.arange(256, dtype=np.uint8)


def expected_all_pairs(weight_format: str) -> np.ndarray:
    """``expected[code, x + 128] = P(x, code)`` of ``weight_format``'s golden model."""
    if weight_format == "rf8":
        return golden.product(XS[None, :], CODES[:, None])
    if weight_format in baselines.WEIGHT_INT_FUNCS:
        return np.array([[baselines.product(weight_format, int(x), c) for x in XS]
                         for c in range(256)], dtype=np.int64)
    pytest.fail(f"no golden product for weight_format {weight_format!r}")


def simulate_all_pairs(pe_cls, product_latency: int) -> np.ndarray:
    """``got[code, x + 128] = psum_out`` with ``psum_in = 0`` for every code and int8 activation;
    the product reaches ``psum_out`` ``product_latency - 1`` ticks after the activation."""
    dut = PEBank(pe_cls)
    got = np.zeros((256, 256), dtype=np.int64)
    lag = product_latency - 1
    bits = pe_cls.weight_bits

    async def bench(ctx):
        ctx.set(dut.ce, 1)
        for base in range(0, 256, BANK):
            ctx.set(dut.codes, sum(c << (bits * i) for i, c in enumerate(range(base, base + BANK))))
            await load_weights(ctx, dut)
            for t in range(256 + lag):              # P(x) reaches psum_out ``lag`` ticks later
                ctx.set(dut.a_in, t - 128 if t < 256 else 0)
                await ctx.tick()
                if t >= lag:
                    for i, p in enumerate(dut.psum):
                        got[base + i, t - lag] = ctx.get(p)

    simulate(dut, bench)
    return got


def assert_equal_pairs(got, expected):
    bad = np.argwhere(got != expected)
    assert bad.size == 0, [f"code {int(c):#04x} x={int(i) - 128}: got {got[c, i]}, expected "
                           f"{expected[c, i]}" for c, i in bad[:5]]


def test_every_pe_class_of_the_registry_is_checked():
    assert set(PE_CLASSES.values()) == {pe_class(k) for k in PE_KINDS}
    assert PE_CLASSES["rf8"] is RF8PE
    assert {PE_KINDS[k].weight_format for k in PE_CLASSES} == {"rf8", "int8", "fp8_e4m3"}


def test_kinds_sharing_a_class_share_its_facts():
    """The kinds of one class differ only in DSP use: the same weight format and latency."""
    for name, kind in PE_KINDS.items():
        first = PE_KINDS[next(k for k, c in PE_CLASSES.items() if c is pe_class(name))]
        assert (kind.weight_format, kind.product_latency) == (first.weight_format,
                                                              first.product_latency), name


@pytest.mark.parametrize("kind", list(PE_CLASSES))
def test_pe_all_65536_pairs(kind):
    """Every (int8 activation, weight code) pair: psum_out = P(x, code) from psum_in = 0, P the
    golden product of the PE's weight format, ``product_latency`` cycles after the activation."""
    facts = PE_KINDS[kind]
    got = simulate_all_pairs(PE_CLASSES[kind], facts.product_latency)
    assert_equal_pairs(got, expected_all_pairs(facts.weight_format))


def test_rf8_golden_product_agrees_with_the_field_table():
    """The RF8 oracle of the exhaustive check equals the plain-int field-table product on the
    extreme and the unit activations of every code (a chain of oracles, not a loop)."""
    expected = expected_all_pairs("rf8")
    for code in range(256):
        for i in (0, 127, 129, 255):                 # x = -128, -1, 1, 127
            assert expected[code, i] == python_product(int(XS[i]), code), f"code {code:#04x}"


# --- the baseline formats' golden models -----------------------------------------------------

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
                                         r"'fp8_e4m3', 'int8', not 'rf8'$"):
        baselines.product("rf8", 1, 1)
    with pytest.raises(ValueError, match=r"^weight code must be an integer in 0\.\.255, not 256$"):
        baselines.fp8_e4m3_weight_int(256)


# --- the RF8 decoder and the RF8 reference PE ---------------------------------------------------

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


def single_rf8_pe(act_bits=8, acc_bits=40, overflow="wrap") -> PEBank:
    return PEBank(RF8PE, n=1, act_bits=act_bits, acc_bits=acc_bits, overflow=overflow)


@pytest.mark.parametrize("act_bits", [2, 3, 16])
@pytest.mark.parametrize("kind", rf8_kinds())
def test_product_narrowest_and_widest_activations(kind, act_bits):
    """Every RF8 kind at act_bits 2 and 3 (all pairs) and 16 (extremes + random): the PE widths
    follow act_bits.  act_bits 2/3 caught a sign fill narrower than the fraction in rf8_lean and
    rf8_pipe (wrong products such as 196608 for 589824)."""
    acc_bits = spec.min_acc_bits(act_bits)
    dut = PEBank(pe_class(kind), n=1, act_bits=act_bits, acc_bits=acc_bits)
    lag = PE_KINDS[kind].product_latency - 1
    lo, hi = -(1 << (act_bits - 1)), (1 << (act_bits - 1)) - 1
    rng = np.random.default_rng(2)
    if act_bits < 8:
        xs = {c: list(range(lo, hi + 1)) for c in range(256)}
    else:
        xs = {c: [lo, hi, -1, 1] for c in range(256)}
        for x, c in zip(rng.integers(lo, hi + 1, 2000), rng.integers(0, 256, 2000)):
            xs[int(c)].append(int(x))
    got = []

    async def bench(ctx):
        ctx.set(dut.ce, 1)
        for code, col in xs.items():
            ctx.set(dut.codes, code)
            await load_weights(ctx, dut)
            for t in range(len(col) + lag):          # P(x) reaches psum_out ``lag`` ticks later
                ctx.set(dut.a_in, col[t] if t < len(col) else 0)
                await ctx.tick()
                if t >= lag:
                    got.append(ctx.get(dut.p0))

    simulate(dut, bench)
    expected = [python_product(x, c) for c, col in xs.items() for x in col]
    assert got == expected
    assert max(abs(e) for e in expected) == 3 << (act_bits + 16)   # the widest product was hit


@pytest.mark.parametrize("overflow", spec.OVERFLOW_MODES)
def test_accumulate_overflow_rule_at_min_acc_bits(overflow):
    """psum_out = overflow_rule(psum_in + P) with psum_in near both limits of a 27-bit accumulator."""
    acc_bits = spec.min_acc_bits(8)
    dut = single_rf8_pe(8, acc_bits, overflow)
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
            ctx.set(dut.codes, code)
            await load_weights(ctx, dut)
            ctx.set(dut.a_in, x)
            ctx.set(dut.psum_in, psum)
            await ctx.tick()
            got.append(ctx.get(dut.p0))

    simulate(dut, bench)
    exact = [psum + python_product(x, c) for psum, x, c in cases]
    expected = [apply_overflow(t, acc_bits, overflow) for t in exact]
    assert got == expected
    assert sum(not -lim <= t < lim for t in exact) > 100     # the rule was exercised, both ways
    assert any(t < -lim for t in exact) and any(t >= lim for t in exact)


def test_clock_enable_holds_outputs_shadow_load_ignores_it_and_swap_obeys_it():
    """``ce`` low: outputs hold, the shadow register still loads, a swap waits for ``ce``; the
    cycle of the swap still computes with the old weight (double buffering)."""
    dut = single_rf8_pe()
    code = spec.make_code(0, 3, 2)           # 1.25 * 2**(3-15): P = x * 20 * 4

    async def bench(ctx):
        ctx.set(dut.ce, 1)
        ctx.set(dut.codes, code)
        await load_weights(ctx, dut)
        ctx.set(dut.a_in, 5)
        ctx.set(dut.psum_in, 7)
        await ctx.tick()
        assert (ctx.get(dut.a_out), ctx.get(dut.p0)) == (5, 7 + 5 * 80)
        ctx.set(dut.ce, 0)
        ctx.set(dut.a_in, -3)
        ctx.set(dut.codes, spec.make_code(1, 1, 0))  # -1 * 2**0... P = -x * 16
        ctx.set(dut.w_load, 1)                       # loads the shadow even while ce is low
        ctx.set(dut.swap, 1)                         # ... but the swap waits for ce
        for _ in range(3):
            await ctx.tick()
            assert (ctx.get(dut.a_out), ctx.get(dut.p0)) == (5, 7 + 5 * 80)
        ctx.set(dut.w_load, 0)
        ctx.set(dut.ce, 1)
        await ctx.tick()                             # the swap's cycle: old weight
        assert (ctx.get(dut.a_out), ctx.get(dut.p0)) == (-3, 7 - 3 * 80)
        ctx.set(dut.swap, 0)
        await ctx.tick()
        assert (ctx.get(dut.a_out), ctx.get(dut.p0)) == (-3, 7 + 3 * 16)

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


# --- the other PE kinds in the array shell --------------------------------------------------------

BASELINE_KINDS = [name for name in PE_CLASSES if not PE_KINDS[name].is_rf8]
RF8_VARIANT_KINDS = [name for name, cls in PE_CLASSES.items()
                     if PE_KINDS[name].is_rf8 and cls is not RF8PE]


def test_kind_lists_cover_the_registry():
    assert {"int8", "fp8_e4m3", "int8_pipe"} <= set(BASELINE_KINDS)
    assert {"rf8_signlate", "rf8_lean", "rf8_pipe"} <= set(RF8_VARIANT_KINDS)
    assert len(BASELINE_KINDS) + len(RF8_VARIANT_KINDS) + 1 == len(PE_CLASSES)


@pytest.mark.parametrize("pe", BASELINE_KINDS)
def test_baseline_pe_in_array_matches_matmul(pe):
    """The baseline PE in the real array shell: a 3x4 array computes a @ W(codes) (with stalls)."""
    rng = np.random.default_rng(7)
    cfg = ArrayConfig(3, 4, pe=pe)
    top = RF8AxiTop(cfg)
    assert top.array.pe is pe_class(pe)
    codes = rng.integers(0, 256, (3, 4)).astype(np.uint8)
    codes[0, 0] = 0x7F                                    # a NaN code for FP8 (127 for INT8)
    a = rng.integers(-128, 128, (6, 3))
    a[0] = -128
    trace = simulate_tiles(top, [(codes, a)], rng=rng, p_a_idle=0.2, p_out_stall=0.2)
    weight_int = baselines.WEIGHT_INT_FUNCS[cfg.pe_kind.weight_format]
    weights = np.array([[weight_int(int(c)) for c in row] for row in codes])
    assert trace.results == (a @ weights).tolist()
    assert top.timing.latency == 3 + 4 + cfg.pe_kind.product_latency


@pytest.mark.parametrize("overflow", ["wrap", "saturate"])
@pytest.mark.parametrize("pe", RF8_VARIANT_KINDS)
def test_rf8_variant_in_array_at_min_acc_bits(pe, overflow):
    """A variant in the array shell at the narrowest accumulator (27 bits) matches golden.matmul,
    overflow rule included (large products drive the sums past the limits)."""
    rng = np.random.default_rng(11)
    acc_bits = 27
    top = RF8AxiTop(ArrayConfig(4, 3, acc_bits=acc_bits, overflow=overflow, pe=pe))
    assert top.array.pe is pe_class(pe)
    codes = rng.integers(0, 256, (4, 3)).astype(np.uint8)
    codes[:, 0] = 0x79                                    # largest magnitude: overflows quickly
    a = rng.integers(-128, 128, (8, 4))
    a[0] = -128
    trace = simulate_tiles(top, [(codes, a)], rng=rng, p_a_idle=0.2, p_out_stall=0.2)
    expected = golden.matmul(a, codes, acc_bits=acc_bits, overflow=overflow)
    assert trace.results == np.asarray(expected).tolist()


def test_pipelined_variant_back_to_back_tiles_and_latency():
    """rf8_pipe: two tiles back to back (the second tile's weights streaming in while the first
    computes) stay exact, and every result arrives ``rows + cols + 2`` cycles after its
    activation (one more than RF8PE)."""
    rng = np.random.default_rng(5)
    top = RF8AxiTop(ArrayConfig(3, 4, pe="rf8_pipe"))
    assert PE_KINDS["rf8_pipe"].product_latency == 2
    assert top.timing.latency == 3 + 4 + 2
    tiles = [(rng.integers(0, 256, (3, 4)).astype(np.uint8), rng.integers(-128, 128, (5, 3)))
             for _ in range(2)]
    trace = simulate_tiles(top, tiles, rng=rng)
    expected = [row for codes, a in tiles for row in np.asarray(golden.matmul(a, codes)).tolist()]
    assert trace.results == expected
    assert [r - a for r, a in zip(trace.result_cycles, trace.act_cycles)] == [9] * 10
