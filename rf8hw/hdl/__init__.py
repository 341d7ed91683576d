"""Amaranth RTL for RF8: decoder, shift-add PE, systolic MAC array, AXI4-Stream top, Verilog generation.

See ``docs/architecture.md`` for the block diagram, timing and port tables.  Amaranth (and its
bundled Yosys) is imported by these modules, so import them only where hardware is built.
"""
