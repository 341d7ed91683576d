"""rf8hw.format.spec: field splitting and assembly, and the argument checks it words."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from rf8hw.format import spec


def _fields_by_hand(code: int) -> tuple[int, int, int]:
    """Bit 7, bits 6..3, bits 2..0, written out (independent of spec's constants)."""
    return code // 128, (code // 8) % 16, code % 8


def test_split_codes_on_python_ints():
    for code in range(256):
        s, E, R = spec.split_codes(code)
        assert (s, E, R) == _fields_by_hand(code)
        assert all(type(v) is int for v in (s, E, R))
        assert spec.make_code(s, E, R) == code


@pytest.mark.parametrize("dtype", [np.uint8, np.int64])
def test_split_codes_on_numpy_arrays(dtype):
    codes = np.arange(256, dtype=dtype).reshape(16, 16)
    s, E, R = spec.split_codes(codes)
    for part in (s, E, R):
        assert part.shape == codes.shape and part.dtype == dtype
    expect = np.array([_fields_by_hand(c) for c in range(256)]).T.reshape(3, 16, 16)
    assert np.array_equal(np.stack([s, E, R]), expect)


def test_fields_agree_with_split_codes():
    for code in range(256):
        f = spec.fields(code)
        assert (f.s, f.E, f.R) == spec.split_codes(code)
        assert f.M == spec.M_TABLE[f.R] and f.is_zero == (f.E == 0)
    assert spec.fields(np.uint8(0x79)) == spec.fields(0x79)      # numpy integers are accepted


def test_spec_import_does_not_import_numpy():
    """split_codes works on arrays by plain operators: spec itself stays standard library only."""
    code = "import sys, rf8hw.format.spec; print('numpy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize(("call", "message"), [
    (lambda: spec.fields(256), r"^RF8 code must be an integer in 0\.\.255, not 256$"),
    (lambda: spec.fields(-1), r"^RF8 code must be an integer in 0\.\.255, not -1$"),
    (lambda: spec.fields(1.0), r"^RF8 code must be an integer in 0\.\.255, not 1\.0$"),
    (lambda: spec.fields(True), r"^RF8 code must be an integer in 0\.\.255, not True$"),
    (lambda: spec.make_code(2, 1, 0), r"^s must be an integer in 0\.\.1, not 2$"),
    (lambda: spec.make_code(0, 16, 0), r"^E must be an integer in 0\.\.15, not 16$"),
    (lambda: spec.make_code(0, 1, 8), r"^R must be an integer in 0\.\.7, not 8$"),
    (lambda: spec.check_mac(8, 40, "clip"), r"^overflow must be one of 'wrap', 'saturate', "
                                            r"not 'clip'$"),
    (lambda: spec.check_mac(1, 40, "wrap"), r"^act_bits must be an integer in 2\.\.16, not 1$"),
    (lambda: spec.check_mac(16, 34, "wrap"), r"^acc_bits must be an integer in 35\.\.64 for "
                                             r"act_bits=16 \(the largest single product needs 35 "
                                             r"bits\), not 34$"),
])
def test_spec_checks_word_each_rule_once(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_residual_gaps_reach_max_gap():
    gaps = [r[1] for r in spec.RESIDUAL if r is not None]
    assert max(gaps) == spec.MAX_GAP and min(gaps) == 1
    assert spec.RES_MASK == 7 and spec.EXP_MAX == 15
