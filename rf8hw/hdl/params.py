"""Parameter checks shared by every RTL block and by Verilog generation.

Each check raises :class:`ValueError` naming the bad value and what is allowed, before any
hardware is built or any file is written.
"""

from __future__ import annotations

from contextlib import contextmanager

from rf8hw.format import spec

__all__ = ["MAX_DIM", "check_mac_params", "check_overflow", "check_array_shape", "rejecting"]

#: Largest ``rows``/``cols`` accepted.  Bigger GEMMs are tiled; a 64 x 64 array (4,096 PEs)
#: already takes minutes to convert to Verilog and is far beyond any FPGA this project targets.
MAX_DIM = 64


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_mac_params(act_bits, acc_bits, overflow) -> None:
    """Check the arithmetic parameters of a PE or an array.

    Parameters
    ----------
    act_bits : int
        Signed activation width, ``spec.ACT_BITS_MIN..spec.ACT_BITS_MAX``.
    acc_bits : int
        Two's complement accumulator width, ``spec.min_acc_bits(act_bits)..spec.ACC_BITS_MAX``
        (the lower bound holds any single product ``P(x, code)``).
    overflow : str
        One of ``spec.OVERFLOW_MODES`` (``"wrap"``, ``"saturate"``).

    Raises
    ------
    ValueError
        Naming the offending value and the allowed range.
    """
    if not _is_int(act_bits) or not spec.ACT_BITS_MIN <= act_bits <= spec.ACT_BITS_MAX:
        raise ValueError(f"act_bits must be an integer in {spec.ACT_BITS_MIN}..{spec.ACT_BITS_MAX}, "
                         f"not {act_bits!r}")
    lo = spec.min_acc_bits(act_bits)
    if not _is_int(acc_bits) or not lo <= acc_bits <= spec.ACC_BITS_MAX:
        raise ValueError(f"acc_bits must be an integer in {lo}..{spec.ACC_BITS_MAX} for "
                         f"act_bits={act_bits} (the largest single product needs {lo} bits), "
                         f"not {acc_bits!r}")
    check_overflow(overflow)


def check_overflow(overflow) -> None:
    """Check an overflow rule name against ``spec.OVERFLOW_MODES``."""
    if overflow not in spec.OVERFLOW_MODES:
        allowed = ", ".join(repr(o) for o in spec.OVERFLOW_MODES)
        raise ValueError(f"overflow must be one of {allowed}, not {overflow!r}")


def check_array_shape(rows, cols) -> None:
    """Check the array size: ``rows`` (reduction depth) and ``cols`` in ``1..MAX_DIM``."""
    for name, value in (("rows", rows), ("cols", cols)):
        if not _is_int(value) or not 1 <= value <= MAX_DIM:
            raise ValueError(f"{name} must be an integer in 1..{MAX_DIM}, not {value!r}")


@contextmanager
def rejecting(component):
    """Run parameter checks inside a component's constructor.

    A component whose constructor raises was never meant to be elaborated; marking it used keeps
    Amaranth from adding an ``UnusedElaboratable`` warning to the ``ValueError``.
    """
    try:
        yield
    except ValueError:
        component._MustUse__used = True
        raise
