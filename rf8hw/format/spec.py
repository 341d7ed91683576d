"""The RF8 format as data: every constant the numeric model, the RTL, the docs and the tests use.

Nothing here computes on tensors; :mod:`rf8hw.format.codec` (format),
:mod:`rf8hw.format.golden` (MAC arithmetic), :mod:`rf8hw.hdl` (RTL) and ``docs/rf8-format.md`` all
derive from these tables.  The prose contract is ``docs/rf8-format.md``.

Code byte layout (bit 7 is the most significant)::

    bit   7   6 5 4 3   2 1 0
          s   E E E E   R R R

* ``E == 0``: zero, whatever ``s`` and ``R``; the canonical zero is ``0x00``.
* ``E >= 1``: ``value = (-1)**s * M(R) / 16 * 2**(E - 15 + X)`` with a shared integer exponent ``X``.
* ``M(R) = 16 + rsign(R) * 2**(4 - gap(R))`` or 16 when ``R == 0`` (no residual term).
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

from rf8hw import checks

__all__ = [
    "SIGN_BIT", "EXP_BITS", "RES_BITS", "EXP_BIAS", "EXP_MAX", "FRAC_BITS", "MAX_GAP",
    "RESIDUAL", "M_TABLE", "PRODUCT_SHIFT", "X_MIN", "X_MAX", "ACT_BITS_MIN", "ACT_BITS_MAX",
    "ACC_BITS_MAX", "RES_MASK", "Fields", "split_codes", "fields", "make_code", "is_canonical",
    "min_acc_bits", "max_abs_weight_int", "ROUNDING_MODES", "OVERFLOW_MODES", "code_value",
    "check_act_bits", "check_acc_bits", "check_mac",
]

SIGN_BIT = 7          #: position of the sign bit s
EXP_BITS = 4          #: width of the exponent field E (bits 6..3)
RES_BITS = 3          #: width of the residual field R (bits 2..0)
EXP_BIAS = 15         #: value exponent is E - EXP_BIAS + X
EXP_MAX = (1 << EXP_BITS) - 1   #: largest exponent field, 15
RES_MASK = (1 << RES_BITS) - 1  #: mask of the residual field R, 7
FRAC_BITS = 4         #: M(R) is the significand times 2**FRAC_BITS (M(0) = 16 means 1.0)
MAX_GAP = 4           #: the residual power is at most 2**MAX_GAP below the leading power

#: Residual field R -> (residual sign, gap d = e1 - e2); ``None`` for R = 0 (no residual).
#: ``M(R) = 16 + sign * 2**(4 - d)``: R = 1..4 add 2**(4-R); R = 5..7 subtract 2**(7-R).
RESIDUAL: tuple[tuple[int, int] | None, ...] = (
    None,       # R=0: m = 1
    (+1, 1),    # R=1: m = 1.5
    (+1, 2),    # R=2: m = 1.25
    (+1, 3),    # R=3: m = 1.125
    (+1, 4),    # R=4: m = 1.0625
    (-1, 2),    # R=5: m = 0.75
    (-1, 3),    # R=6: m = 0.875
    (-1, 4),    # R=7: m = 0.9375
)
assert len(RESIDUAL) == 1 << RES_BITS and max(r[1] for r in RESIDUAL if r) == MAX_GAP

#: ``M(R) = 16 * m(R)``: the integer significand the hardware multiplies by (with shifts).
M_TABLE: tuple[int, ...] = tuple(
    (1 << FRAC_BITS) if r is None else (1 << FRAC_BITS) + r[0] * (1 << (FRAC_BITS - r[1]))
    for r in RESIDUAL
)
assert M_TABLE == (16, 24, 20, 18, 17, 12, 14, 15)

#: ``P(x, code) = (-1)**s * x * M(R) * 2**(E-1)``; real product ``= P * 2**(X - PRODUCT_SHIFT) * act_scale``.
#: 18 = FRAC_BITS + EXP_BIAS - 1.
PRODUCT_SHIFT = FRAC_BITS + EXP_BIAS - 1

#: Allowed shared exponents.  With X in this range every code decodes to a float32 *normal*
#: number (smallest magnitude 1.5 * 2**(X-15) >= 1.5 * 2**-125, largest 1.5 * 2**X <= 1.5 * 2**127),
#: and every float32/float64 subnormal input lies below the flush threshold of both rounding modes.
X_MIN = -110
X_MAX = 127

ACT_BITS_MIN = 2      #: narrowest signed activation the golden model and RTL accept
ACT_BITS_MAX = 16     #: widest signed activation (keeps every product and sum inside int64)
ACC_BITS_MAX = 64     #: widest accumulator (the golden model returns int64)

ROUNDING_MODES = ("nearest", "paper")
OVERFLOW_MODES = ("wrap", "saturate")


@dataclass(frozen=True)
class Fields:
    """The decoded fields of one code byte, as the datapath sees them."""

    code: int
    s: int            #: sign bit
    E: int            #: exponent field, 0 means zero
    R: int            #: residual field
    is_zero: bool
    M: int            #: integer significand M(R) (16 * m)
    rsign: int        #: +1/-1 residual sign, 0 when R == 0
    gap: int          #: e1 - e2, 0 when R == 0

    @property
    def exp_shift(self) -> int:
        """Left shift applied to ``x * M(R)`` in the product: ``E - 1`` (meaningless for zero)."""
        return self.E - 1


def split_codes(codes):
    """Split code bytes into their fields ``(s, E, R)``.

    Plain shifts and masks, so it works on a Python ``int`` (giving ints) and on a numpy integer
    array (giving three arrays of the same dtype; widen a ``uint8`` array first if the fields go
    into signed arithmetic such as ``1 - 2 * s``).  No range check: bits above bit 7 land in ``s``.
    """
    return codes >> SIGN_BIT, (codes >> RES_BITS) & EXP_MAX, codes & RES_MASK


def fields(code: int) -> Fields:
    """Split one code byte into its fields (plain Python, no validation beyond the byte range)."""
    code = checks.integer("RF8 code", code, 0, 0xFF)
    s, E, R = split_codes(code)
    res = RESIDUAL[R]
    return Fields(code=code, s=s, E=E, R=R, is_zero=E == 0, M=M_TABLE[R],
                  rsign=0 if res is None else res[0], gap=0 if res is None else res[1])


def make_code(s: int, E: int, R: int) -> int:
    """Assemble a code byte from its fields (each checked against its width)."""
    s = checks.integer("s", s, 0, 1)
    E = checks.integer("E", E, 0, EXP_MAX)
    R = checks.integer("R", R, 0, RES_MASK)
    return (s << SIGN_BIT) | (E << RES_BITS) | R


def is_canonical(code: int) -> bool:
    """Whether the encoder can emit ``code``.

    Two kinds of codes are accepted by the decoder but never emitted:
    zeros other than ``0x00`` (E = 0 with s or R non-zero), and ``(E, R=1)`` for E <= 14, which has
    the same value ``1.5 * 2**(E-15+X)`` as ``(E+1, R=5)``.  The encoder uses the larger exponent,
    as the paper's rule ``e1 = round(log2|w|)`` does; only the largest magnitude ``(15, R=1)`` uses R=1.
    """
    f = fields(code)
    if f.is_zero:
        return code == 0
    return not (f.R == 1 and f.E < EXP_MAX)


def code_value(code: int, X: int = 0) -> Fraction:
    """Exact value of a code as a Fraction (reference, used for docs and tests)."""
    f = fields(code)
    if f.is_zero:
        return Fraction(0)
    return (-1) ** f.s * Fraction(f.M, 1 << FRAC_BITS) * Fraction(2) ** (f.E - EXP_BIAS + X)


def max_abs_weight_int() -> int:
    """Largest ``|M(R) * 2**(E-1)|`` over all codes: ``24 * 2**14``."""
    return max(M_TABLE) << (EXP_MAX - 1)


def min_acc_bits(act_bits: int) -> int:
    """Narrowest two's complement accumulator that holds any single product ``P(x, code)``.

    The largest product magnitude is ``2**(act_bits-1) * 24 * 2**14 = 3 * 2**(act_bits+16)``, reached
    with either sign (``x = -2**(act_bits-1)`` times a weight of either sign), so it needs
    ``act_bits + 19`` bits.
    """
    need = (1 << (act_bits - 1)) * max_abs_weight_int()
    return need.bit_length() + 1


def check_act_bits(act_bits) -> int:
    """``act_bits`` if it is a signed activation width the golden model and the RTL accept."""
    return checks.integer("act_bits", act_bits, ACT_BITS_MIN, ACT_BITS_MAX)


def check_acc_bits(acc_bits, act_bits: int) -> int:
    """``acc_bits`` if it holds any single product of ``act_bits`` activations (and fits int64)."""
    lo = min_acc_bits(act_bits)
    return checks.integer("acc_bits", acc_bits, lo, ACC_BITS_MAX,
                          f" for act_bits={act_bits} (the largest single product needs {lo} bits)")


def check_mac(act_bits, acc_bits, overflow) -> tuple[int, int, str]:
    """The arithmetic parameters of a MAC (PE, array, golden model), checked in that order.

    Raises
    ------
    ValueError
        One line naming the first bad value and what is allowed.
    """
    act_bits = check_act_bits(act_bits)
    return act_bits, check_acc_bits(acc_bits, act_bits), checks.choice("overflow", overflow,
                                                                       OVERFLOW_MODES)
