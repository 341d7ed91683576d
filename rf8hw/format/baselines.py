"""Golden integer products of the baseline PE kinds (INT8 and FP8-E4M3 weights), in plain Python ints.

The FPGA comparison (``docs/hardware.md``) puts three weight formats into the same systolic array
shell; each PE computes ``psum_out = psum_in + P(x, code)`` for a signed ``act_bits`` activation
``x`` and an 8-bit weight code.  This module defines ``P`` for the two baselines, independently of
the RTL (``rf8hw/hdl/baseline_pe.py``), which is tested against it on all 65,536 (x, code) pairs.
RF8's own product is :func:`rf8hw.format.golden.product`.

INT8 (``int8``, ``int8_dsp``)
    The code is a two's complement byte ``w`` in -128..127; ``P(x, code) = x * w``.

FP8-E4M3 (``fp8_e4m3``; the OCP "E4M3FN" encoding, ``torch.float8_e4m3fn``)
    Code bits ``s EEEE MMM`` (bit 7 = sign, exponent bias 7, no infinities).  The value is
    ``(-1)**s * (8 + M) * 2**(E - 10)`` for ``E >= 1`` and ``(-1)**s * M * 2**-9`` for ``E == 0``
    (subnormals), i.e. every value is an integer multiple of ``2**-9``.  The *integer weight* is
    ``W(code) = value * 2**9 = (-1)**s * sig * 2**(e - 1)`` with ``sig = 8 + M, e = E`` (normal) or
    ``sig = M, e = 1`` (subnormal), so ``|W| <= 14 * 2**14`` (value 448), and
    ``P(x, code) = x * W(code)``: the exact product scaled by ``2**9``.  The two NaN codes
    ``0x7f`` and ``0xff`` (``E = 15, M = 7``) have ``W = 0``: the hardware treats NaN as zero
    (quantizers never emit them; :mod:`rf8hw.nn.quant` saturates to +-448).  Both zeros
    (``0x00``, ``0x80``) give 0.
"""

from __future__ import annotations

from rf8hw import checks
from rf8hw.format import spec

__all__ = ["FP8_E4M3_SCALE_BITS", "FP8_E4M3_NAN_CODES", "int8_weight_int", "fp8_e4m3_weight_int",
           "WEIGHT_INT_FUNCS", "FORMATS", "product", "max_abs_weight_int", "product_bits"]

#: ``W(code) = value * 2**FP8_E4M3_SCALE_BITS``: the smallest subnormal, ``2**-9``, becomes 1.
FP8_E4M3_SCALE_BITS = 9
#: E = 15, M = 7 with either sign.
FP8_E4M3_NAN_CODES = (0x7F, 0xFF)


def _check_code(code: int) -> int:
    return checks.integer("weight code", code, 0, 0xFF)


def _check_format(fmt: str) -> str:
    return checks.choice("baseline weight format", fmt, FORMATS)


def int8_weight_int(code: int) -> int:
    """Two's complement value of an INT8 weight byte (-128..127)."""
    code = _check_code(code)
    return code - 256 if code >= 128 else code


def fp8_e4m3_weight_int(code: int) -> int:
    """Integer weight ``W = value * 2**9`` of an FP8-E4M3 (E4M3FN) code; 0 for the NaN codes."""
    code = _check_code(code)
    s, e_field, mant = code >> 7, (code >> 3) & 0xF, code & 0x7
    if code in FP8_E4M3_NAN_CODES:
        return 0
    sig, e = (mant, 1) if e_field == 0 else (8 + mant, e_field)
    return (-1) ** s * (sig << (e - 1))


#: Weight format name -> ``code -> integer weight``.
WEIGHT_INT_FUNCS = {"int8": int8_weight_int, "fp8_e4m3": fp8_e4m3_weight_int}
#: The baseline weight format names, in the order error messages list them.
FORMATS = tuple(sorted(WEIGHT_INT_FUNCS))


def product(fmt: str, x: int, code: int) -> int:
    """Golden ``P(x, code) = x * W(code)`` of one baseline PE kind (``"int8"`` or ``"fp8_e4m3"``)."""
    return x * WEIGHT_INT_FUNCS[_check_format(fmt)](code)


def max_abs_weight_int(fmt: str) -> int:
    """Largest ``|W(code)|`` over all 256 codes (128 for INT8, ``14 * 2**14`` for FP8-E4M3)."""
    weight_int = WEIGHT_INT_FUNCS[_check_format(fmt)]
    return max(abs(weight_int(c)) for c in range(256))


def product_bits(fmt: str, act_bits: int) -> int:
    """Narrowest two's complement width holding every ``P(x, code)`` with ``act_bits`` activations.

    The extreme products are ``-2**(act_bits-1) * W`` for the most positive and most negative
    ``W``; 16 bits for INT8 and 26 bits for FP8-E4M3 at ``act_bits = 8``.
    """
    act_bits = spec.check_act_bits(act_bits)
    weights = [WEIGHT_INT_FUNCS[_check_format(fmt)](c) for c in range(256)]
    lo_x, hi_x = -(1 << (act_bits - 1)), (1 << (act_bits - 1)) - 1
    extremes = [x * w for x in (lo_x, hi_x) for w in (min(weights), max(weights))]
    return max(max(e.bit_length() for e in extremes if e >= 0) + 1,
               max((-e - 1).bit_length() for e in extremes if e < 0) + 1)
