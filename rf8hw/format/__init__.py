"""The RF8 format and its arithmetic, bit for bit: numpy and Numba only.

* :mod:`rf8hw.format.spec`      -- the format as data (field layout, residual table, ranges, rules)
* :mod:`rf8hw.format.codec`     -- encode / decode / shared exponent (Numba kernels)
* :mod:`rf8hw.format.golden`    -- bit-exact model of the MAC array arithmetic
* :mod:`rf8hw.format.baselines` -- integer products of the INT8 and FP8-E4M3 baseline PEs

Importing this package (or any module in it) imports neither torch nor Amaranth nor cocotb
(``tests/test_import_rules.py`` checks it in a fresh interpreter).
"""
