"""rf8hw.format.baselines: argument checks (the products themselves are tested against the RTL in
tests/hdl/test_pe.py::test_pe_all_65536_pairs)."""

from __future__ import annotations

import numpy as np
import pytest

from rf8hw.format import baselines


def test_baselines_accept_python_and_numpy_integer_codes():
    assert baselines.int8_weight_int(np.uint8(0xFF)) == baselines.int8_weight_int(0xFF) == -1
    assert baselines.product("fp8_e4m3", 3, 0x38) == 3 * 512                  # 1.0 * 2**9


@pytest.mark.parametrize(("call", "message"), [
    (lambda: baselines.fp8_e4m3_weight_int(256), r"^weight code must be an integer in 0\.\.255, "
                                                 r"not 256$"),
    (lambda: baselines.int8_weight_int(True), r"^weight code must be an integer in 0\.\.255, "
                                              r"not True$"),
    (lambda: baselines.product("rf8", 1, 1), r"^baseline weight format must be one of "
                                             r"'fp8_e4m3', 'int8', not 'rf8'$"),
    (lambda: baselines.max_abs_weight_int("rf8"), r"^baseline weight format must be one of "),
    (lambda: baselines.product_bits("rf8", 8), r"^baseline weight format must be one of "),
    (lambda: baselines.product_bits("int8", 17), r"^act_bits must be an integer in 2\.\.16, "
                                                 r"not 17$"),
])
def test_baselines_reject_bad_arguments(call, message):
    with pytest.raises(ValueError, match=message):
        call()
