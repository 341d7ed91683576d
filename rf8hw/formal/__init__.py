"""Formal proofs of the RTL with SymbiYosys (``rf8hw prove``, ``tests/formal``;
``docs/verification.md`` lists what is proved and what is not).

Modules: :mod:`~rf8hw.formal.contract` (the contract from the format's tables),
:mod:`~rf8hw.formal.pe_checks` (product + overflow and equivalence harnesses of one PE),
:mod:`~rf8hw.formal.protocol` (the port protocol of the array's and the accelerator's
AXI4-Stream tops), :mod:`~rf8hw.formal.probe`
(internal registers for the inductive invariants), :mod:`~rf8hw.formal.harness` (a task's top
and its RTLIL), :mod:`~rf8hw.formal.mutants` (one broken copy per property),
:mod:`~rf8hw.formal.sby` (running SymbiYosys, reading its verdict) and
:mod:`~rf8hw.formal.suite` (the task list, :class:`~rf8hw.formal.suite.ProveConfig`, the
cached runner).
"""
