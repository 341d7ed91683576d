"""The contract as the checkers state it: integer weights from the format's tables and the
overflow rule, written without any of the RTL's code.

* :func:`weight_table`: ``W(code)`` for all 256 codes of a weight format, from
  :func:`rf8hw.format.spec.code_value` (RF8: the code's exact value times ``2**PRODUCT_SHIFT``)
  or :data:`rf8hw.format.baselines.WEIGHT_INT_FUNCS` (INT8, FP8-E4M3);
* :func:`weight_rom`: that table as a constant ROM in the checker, ``P = a * ROM[code]``;
* :func:`overflow_rule`: ``psum + P`` reduced by the rule of ``docs/rf8-format.md`` section 5 --
  ``wrap``: modulo ``2**acc_bits``; ``saturate``: clamped to the signed range, by comparison
  with the two limits (not the RTL's top-two-bits test).
"""

from __future__ import annotations

from amaranth.hdl import Const, Mux, Value, signed

from rf8hw import checks
from rf8hw.arch import WEIGHT_FORMATS
from rf8hw.format import baselines, spec

__all__ = ["weight_table", "weight_rom", "contract_product", "rom", "overflow_rule"]


def weight_table(fmt: str) -> tuple[int, ...]:
    """``W(code)`` for codes 0..255 of weight format ``fmt`` (``"rf8"``, ``"int8"``,
    ``"fp8_e4m3"``): the integer the contract multiplies an activation by."""
    fmt = checks.choice("weight format", fmt, WEIGHT_FORMATS)
    if fmt == "rf8":
        scale = 1 << spec.PRODUCT_SHIFT
        table = []
        for code in range(256):
            value = spec.code_value(code, 0) * scale
            if value.denominator != 1:
                raise AssertionError(f"RF8 code {code:#04x}: value * 2**{spec.PRODUCT_SHIFT} = "
                                     f"{value} is not an integer")
            table.append(int(value))
        return tuple(table)
    return tuple(baselines.WEIGHT_INT_FUNCS[fmt](code) for code in range(256))


def weight_rom(fmt: str, code: Value) -> Value:
    """``W(code)`` as a signed value read from a 256-entry constant ROM indexed by ``code``."""
    table = weight_table(fmt)
    width = max(abs(w) for w in table).bit_length() + 1
    return rom([Const(w, signed(width)) for w in table], code)


def contract_product(fmt: str, a: Value, code: Value) -> Value:
    """The contract's ``P(a, code) = a * W(code)`` for weight format ``fmt``, exact and signed.

    One product per code, ``a * W(code)`` with the constant ``W(code)`` of :func:`weight_table`
    (the code's value), selected by ``code``: a constant ROM of the code's value times the
    activation.  (A ROM of ``W`` followed by one ``a * W`` multiplier is the same number, but
    proving a shift-add datapath equal to a variable 27-bit multiplier takes the SAT solver many
    minutes; products by constants it proves in seconds.)
    """
    table = weight_table(fmt)
    return rom([(a.as_signed() * Const(w, signed(max(abs(w).bit_length() + 1, 2))))
                .as_signed() for w in table], code)


def rom(entries, index: Value) -> Value:
    """``entries[index]`` as a balanced tree of 2:1 multiplexers on the bits of ``index``
    (``len(entries)`` a power of two).

    Not Amaranth's ``Array``, whose ``switch`` Yosys' ``proc_rom`` turns into a memory: in the
    induction step of k-induction a memory's contents are free state, so a ROM there would hold
    any values (the proof then fails for a reason that has nothing to do with the design).
    """
    level = list(entries)
    if len(level) != 1 << (len(level).bit_length() - 1):
        raise ValueError(f"rom needs a power-of-two number of entries, not {len(level)}")
    for bit in range(len(level).bit_length() - 1):
        level = [Mux(index[bit], hi, lo) for lo, hi in zip(level[0::2], level[1::2])]
    return level[0]


def overflow_rule(psum: Value, product: Value, acc_bits: int, overflow: str) -> Value:
    """``psum + product`` (both signed, exact) reduced to ``acc_bits`` signed bits by the rule."""
    overflow = checks.choice("overflow", overflow, spec.OVERFLOW_MODES)
    exact = psum.as_signed() + product.as_signed()
    if overflow == "wrap":
        return exact[:acc_bits].as_signed()
    lo, hi = -(1 << (acc_bits - 1)), (1 << (acc_bits - 1)) - 1
    return Mux(exact > hi, Const(hi, signed(acc_bits)),
               Mux(exact < lo, Const(lo, signed(acc_bits)), exact[:acc_bits].as_signed()))
