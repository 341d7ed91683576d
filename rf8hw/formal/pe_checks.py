"""Formal harnesses of one PE: the product + overflow proof of every kind and the equivalence
of every RF8 kind with the reference :class:`~rf8hw.hdl.pe.RF8PE`.

Each function returns an Amaranth ``Module`` (the top ``top`` of one SymbiYosys task) whose
``Assert`` statements are the property; its inputs are ``AnyConst``/``AnySeq`` values, so the
solver ranges over every code, activation and partial sum.  The expected values come from
:mod:`rf8hw.formal.contract` (the format's tables and the overflow rule), never from the RTL.

Product proof (:func:`product_harness`)
    The PE under test loads the same code ``c`` (``AnyConst``) on every cycle and switches to
    it on every step (``w_load = swap_in = ce = 1``), so two cycles after any point its weight
    in use is ``c``, whatever state the induction starts from.  With ``a`` and ``psum_in`` free
    on every cycle it asserts, per overflow rule (``wrap`` and ``saturate`` PEs side by side on
    the same inputs)::

        psum_out(t+1) == rule(psum_in(t) + a(t - L + 1) * ROM[c])     L = product_latency
        a_out(t+1)    == a(t)

    from cycle ``2 + L`` on (the weight loaded and switched, the product register of the
    ``L = 2`` kinds filled).  Every check only depends on the last ``L + 2`` cycles of free
    inputs, whatever the state ``L + 2`` cycles before, so k-induction with ``k = 2 + L``
    proves it for all time, every ``c``, every ``a`` and every ``psum_in`` (its induction step
    checks cycle ``k`` from any state; its base case ends before the checks start, which the
    soundness of k-induction does not need; the mutants run at k = 5, where the base case
    reaches the checks, and fail there).

Equivalence proof (:func:`equivalence_harness`)
    The RF8 kind under test (``dut``) and ``RF8PE`` (``ref``) with every input free on every
    cycle (``ce``, ``w_load``, the code on the weight bus, ``swap_in``, ``a_in``,
    ``psum_in``), each behind its own decoder.  For ``product_latency = 1`` both get the same
    inputs and ``psum_out``, ``a_out`` and ``swap_out`` are asserted equal in every cycle
    (``psum_out`` once the first tile switch has reached it: before any switch the two
    reset-less weight registers hold their different encodings of "nothing").  For the
    registered-product kind (``rf8_pipe``) ``ref`` gets the activation and the tile switch one
    array step (``ce`` cycle) late -- the product-latency offset -- and ``psum_out`` is
    asserted equal in the same cycle.  Invariants that make it inductive (asserted too, so also
    proved): each PE's shadow and in-use weight registers hold its decoder's output for the code
    the checker recorded, and ``rf8_pipe``'s stage register holds ``x*M`` shifted by the low bits
    of ``E - 1`` (inverted for a negative weight), the high shift bits and the sign of the
    recorded activation and code.
"""

from __future__ import annotations

from amaranth.asserts import AnyConst, AnySeq
from amaranth.hdl import Assert, Assume, Const, Module, Mux, Signal, signed, unsigned

from rf8hw import checks
from rf8hw.arch import PE_KINDS, rf8_kinds
from rf8hw.formal import probe
from rf8hw.formal.contract import contract_product, overflow_rule, rom
from rf8hw.formal.harness import Harness, new_harness, ready_after
from rf8hw.format import spec
from rf8hw.hdl import registry
from rf8hw.hdl.decoder import CODE_BITS
from rf8hw.hdl.pe import RF8PE

__all__ = ["READY_CYCLES", "product_harness", "equivalence_harness", "EQUIVALENCE_KINDS"]

#: Cycles after which the product proof's assertions are checked: 2 (weight loaded, then
#: switched) + product_latency.  The task's depth exceeds it, so the base case checks them too.
READY_CYCLES = {1: 3, 2: 4}

#: The RF8 kinds proved equivalent to the reference ``rf8`` (every RF8 kind but itself).
EQUIVALENCE_KINDS = tuple(k for k in rf8_kinds() if k != "rf8")


def product_harness(kind: str, act_bits: int = 8, acc_bits: int = 40,
                    overflows=spec.OVERFLOW_MODES, pe_class=None, code_group=None) -> Harness:
    """The product + overflow proof of PE kind ``kind`` (see the module notes).

    ``pe_class`` replaces the registry's class (a mutant, for the tests).  ``code_group =
    (value, bits)`` restricts the free code to those whose top ``bits`` bits equal ``value``
    (an ``Assume``): the ``2**bits`` groups together are the whole proof, split so the solver
    meets a few constant products at a time.
    """
    kind_facts = PE_KINDS[checks.choice("pe", kind, tuple(PE_KINDS))]
    cls = registry.pe_class(kind) if pe_class is None else pe_class
    spec.check_mac(act_bits, acc_bits, overflows[0])
    h = new_harness()
    m = h.module
    code = Signal(CODE_BITS, name="code")
    a = Signal(signed(act_bits), name="a")
    psum = Signal(signed(acc_bits), name="psum")
    m.d.comb += [code.eq(AnyConst(CODE_BITS)), a.eq(AnySeq(signed(act_bits))),
                 psum.eq(AnySeq(signed(acc_bits)))]
    if code_group is not None:
        value, bits = code_group
        checks.integer("code group bits", bits, 1, CODE_BITS)
        checks.integer("code group", value, 0, (1 << bits) - 1)
        m.d.comb += Assume(code[CODE_BITS - bits:] == value)
    m.submodules.decoder = decoder = cls.make_decoder()
    m.d.comb += decoder.code.eq(code)
    a_prev = Signal(signed(act_bits), name="a_prev")
    m.d.sync += a_prev.eq(a)
    a_product = a if kind_facts.product_latency == 1 else a_prev
    product = Signal(signed(act_bits + 20), name="contract_product")
    m.d.comb += product.eq(contract_product(kind_facts.weight_format, a_product, code))
    ready = ready_after(m, READY_CYCLES[kind_facts.product_latency])
    for overflow in overflows:
        pe = cls(act_bits, acc_bits, overflow)
        m.submodules[f"pe_{overflow}"] = pe
        m.d.comb += [pe.ce.eq(1), pe.w_load.eq(1), pe.w_data.eq(decoder.fields),
                     pe.swap_in.eq(1), pe.a_in.eq(a), pe.psum_in.eq(psum)]
        expected = Signal(signed(acc_bits), name=f"expected_{overflow}")
        m.d.sync += expected.eq(overflow_rule(psum, product, acc_bits, overflow))
        with m.If(ready):
            m.d.comb += [
                Assert(pe.psum_out == expected, f"product_{overflow}"),
                Assert(pe.a_out == a_prev, f"a_forward_{overflow}"),
            ]
    return h



def _stage_invariant(m: Module, dut_fragment, a_d: Signal, code_d: Signal, act_bits: int):
    """``rf8_pipe``'s stage register (``xml_r``, ``shift_hi_r``, ``sign_r``) holds, for the
    activation and code of the previous array step: ``(x*M << ((E-1) mod 4)) ^ -s`` (0 for a zero
    code; the sign shifted in, so bit-inverted when the weight is negative), ``(E-1) // 4`` and
    the sign (``RF8LeanFields``' meaning; 0 for zero codes)."""
    xml_r = probe.internal(dut_fragment, "xml_r")
    shift_hi_r = probe.internal(dut_fragment, "shift_hi_r")
    sign_r = probe.internal(dut_fragment, "sign_r")
    e_field = code_d[spec.RES_BITS:spec.RES_BITS + spec.EXP_BITS]
    nonzero = e_field != 0
    sign = code_d[spec.SIGN_BIT] & nonzero
    shift = Mux(nonzero, e_field - 1, 0)[:spec.EXP_BITS]
    low = len(shift) - len(shift_hi_r)
    m_rom = _rom(spec.M_TABLE, code_d[:spec.RES_BITS])
    xml = Signal(signed(len(xml_r)), name="contract_xml")
    m.d.comb += xml.eq(Mux(nonzero, a_d * m_rom, 0) << shift[:low])
    return [
        xml_r == (xml ^ sign.replicate(len(xml)).as_signed()),
        shift_hi_r == shift[low:],
        sign_r == sign,
    ]


def _rom(values, index):
    width = max(values).bit_length()
    return rom([Const(v, unsigned(width)) for v in values], index)


def equivalence_harness(kind: str, act_bits: int = 8, acc_bits: int = 40, overflow: str = "wrap",
                        pe_class=None) -> Harness:
    """The equivalence proof of RF8 kind ``kind`` against ``RF8PE`` (see the module notes);
    ``pe_class`` replaces the registry's class of ``kind`` (a mutant, for the tests)."""
    kind = checks.choice("pe", kind, EQUIVALENCE_KINDS)
    latency = PE_KINDS[kind].product_latency
    cls = registry.pe_class(kind) if pe_class is None else pe_class
    h = new_harness()
    m = h.module
    ce, w_load, swap_in = (Signal(name=n) for n in ("ce", "w_load", "swap_in"))
    code = Signal(CODE_BITS, name="w_code")
    a = Signal(signed(act_bits), name="a")
    psum = Signal(signed(acc_bits), name="psum")
    m.d.comb += [s.eq(AnySeq(len(s))) for s in (ce, w_load, swap_in, code)]
    m.d.comb += [a.eq(AnySeq(signed(act_bits))), psum.eq(AnySeq(signed(acc_bits)))]

    dut, ref = cls(act_bits, acc_bits, overflow), RF8PE(act_bits, acc_bits, overflow)
    dut_fragment, ref_fragment = probe.elaborate(dut), probe.elaborate(ref)
    m.submodules.dut, m.submodules.ref = dut_fragment, ref_fragment

    # The checker's record of the codes: shadow (last loaded), in use (switched on ce & swap).
    shadow_code, weight_code = Signal(CODE_BITS, name="shadow_code"), Signal(CODE_BITS, name="weight_code")
    shadow_known, weight_known = Signal(name="shadow_known"), Signal(name="weight_known")
    with m.If(w_load):
        m.d.sync += [shadow_code.eq(code), shadow_known.eq(1)]
    with m.If(ce & swap_in):
        m.d.sync += [weight_code.eq(shadow_code), weight_known.eq(shadow_known)]

    def decoded(decoder_cls_owner, value, name):
        dec = decoder_cls_owner.make_decoder()
        m.submodules[name] = dec
        m.d.comb += dec.code.eq(value)
        return dec.fields.as_value()

    m.d.comb += [dut.ce.eq(ce), dut.w_load.eq(w_load), dut.w_data.eq(decoded(cls, code, "dut_dec")),
                 dut.swap_in.eq(swap_in), dut.a_in.eq(a), dut.psum_in.eq(psum)]
    invariants = []
    invariants.append((shadow_known, probe.internal(dut_fragment, "shadow")
                       == decoded(cls, shadow_code, "dut_dec_shadow")))
    invariants.append((weight_known, probe.internal(dut_fragment, "weight")
                       == decoded(cls, weight_code, "dut_dec_weight")))
    psum_known = Signal(name="psum_known")
    if latency == 1:
        m.d.comb += [ref.ce.eq(ce), ref.w_load.eq(w_load),
                     ref.w_data.eq(decoded(RF8PE, code, "ref_dec")), ref.swap_in.eq(swap_in),
                     ref.a_in.eq(a), ref.psum_in.eq(psum)]
        ref_shadow, ref_weight = (shadow_known, shadow_code), (weight_known, weight_code)
        with m.If(ce):
            m.d.sync += psum_known.eq(weight_known)
        outputs = [(1, dut.a_out == ref.a_out, "a_out"), (1, dut.swap_out == ref.swap_out, "swap_out")]
    else:
        # ref runs one array step behind: activation, tile switch and shadow contents delayed.
        a_d, swap_d = Signal(signed(act_bits), name="a_d"), Signal(name="swap_d")
        shadow_d, weight_d = Signal(CODE_BITS, name="shadow_code_d"), Signal(CODE_BITS, name="weight_code_d")
        shadow_known_d, weight_known_d = Signal(name="shadow_known_d"), Signal(name="weight_known_d")
        stage_known = Signal(name="stage_known")
        with m.If(ce):
            m.d.sync += [a_d.eq(a), swap_d.eq(swap_in), shadow_d.eq(shadow_code),
                         weight_d.eq(weight_code), shadow_known_d.eq(shadow_known),
                         weight_known_d.eq(weight_known), stage_known.eq(weight_known),
                         psum_known.eq(stage_known)]
        m.d.comb += [ref.ce.eq(ce), ref.w_load.eq(ce),
                     ref.w_data.eq(decoded(RF8PE, shadow_code, "ref_dec")), ref.swap_in.eq(swap_d),
                     ref.a_in.eq(a_d), ref.psum_in.eq(psum)]
        ref_shadow, ref_weight = (shadow_known_d, shadow_d), (weight_known_d, weight_d)
        # the checker's own records agree: after a step with a switch, the code in use is the
        # shadow code of that step; after one without, it did not change
        invariants.append((1, Mux(swap_d, (weight_code == shadow_d) & (weight_known == shadow_known_d),
                                  (weight_code == weight_d) & (weight_known == weight_known_d))))
        invariants.append((1, stage_known == weight_known_d))
        invariants += [(stage_known, inv) for inv in _stage_invariant(m, dut_fragment, a_d, weight_d,
                                                                     act_bits)]
        outputs = [(1, dut.a_out == a_d, "a_out")]
    invariants.append((ref_shadow[0], probe.internal(ref_fragment, "shadow")
                       == decoded(RF8PE, ref_shadow[1], "ref_dec_shadow")))
    invariants.append((ref_weight[0], probe.internal(ref_fragment, "weight")
                       == decoded(RF8PE, ref_weight[1], "ref_dec_weight")))
    outputs.append((psum_known, dut.psum_out == ref.psum_out, "psum_out"))
    for i, (when, test) in enumerate(invariants):
        with m.If(when):
            m.d.comb += Assert(test, f"invariant_{i}")
    for when, test, name in outputs:
        with m.If(when):
            m.d.comb += Assert(test, f"equal_{name}")
    return h
