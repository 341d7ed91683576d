"""Amaranth RTL for RF8: decoder, PEs and the PE-kind registry, systolic MAC array, AXI4-Stream top,
the array configuration, Verilog emission.

See ``docs/architecture.md`` for the block diagram, timing and port tables.  Modules here import
Amaranth and :mod:`rf8hw.format`, never torch.
"""
