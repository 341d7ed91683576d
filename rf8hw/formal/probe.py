"""Internal registers of an elaborated design, for the strengthening invariants of a proof.

A k-induction proof starts its induction step from *any* state, reachable or not.  A property
about the ports alone is often not inductive: a PE whose weight register holds a value that no
load put there, or an output FIFO whose level disagrees with its pointers, satisfies the
property for any number of cycles and breaks it later.  The checkers therefore also assert how
the design's internal registers relate to the checker's own record of the inputs (the invariant
that makes the property inductive).  This module finds those registers by name in the design as
it is elaborated once: :func:`elaborate` returns the :class:`~amaranth.hdl.Fragment` that the
harness instantiates, so the signals found are the ones in the proved netlist.  Nothing in
:mod:`rf8hw.hdl` is changed or subclassed for it.
"""

from __future__ import annotations

from amaranth.hdl import Const, Fragment, MemoryInstance, Signal
from amaranth.utils import ceil_log2

__all__ = ["PLATFORM", "elaborate", "driven_signals", "internal", "origin", "memory_words"]

#: The platform the designs are elaborated for: Amaranth's ``SyncFIFO`` adds its own invariants
#: (pointers and level agree) for it, which the array's output-FIFO proofs need.
PLATFORM = "formal"


def elaborate(design) -> Fragment:
    """``design`` elaborated once for :data:`PLATFORM` (use the result, not ``design``, as the
    harness' submodule, so that probed signals belong to the proved netlist)."""
    return Fragment.get(design, PLATFORM)


def _lhs_signals(value, out: list) -> None:
    if isinstance(value, Signal):
        out.append(value)
        return
    for attr in ("value", "parts"):              # Slice / Part (.value), Cat (.parts)
        inner = getattr(value, attr, None)
        if inner is None:
            continue
        for v in (inner if isinstance(inner, (list, tuple)) else [inner]):
            _lhs_signals(v, out)


def _walk(statements, out: list) -> None:
    for stmt in statements:
        lhs = getattr(stmt, "lhs", None)
        if lhs is not None:
            _lhs_signals(lhs, out)
        for case in getattr(stmt, "cases", ()) or ():
            _walk(case[1], out)


def driven_signals(fragment: Fragment, registers: bool = True) -> dict[str, list[Signal]]:
    """Name -> the signals of that name assigned in ``fragment`` itself (not its subfragments):
    in a clocked domain only (registers), or also in ``comb`` (``registers=False``)."""
    found: list[Signal] = []
    for domain, statements in fragment.statements.items():
        if domain != "comb" or not registers:
            _walk(statements, found)
    by_name: dict[str, list[Signal]] = {}
    for sig in found:
        if all(sig is not s for s in by_name.get(sig.name, [])):
            by_name.setdefault(sig.name, []).append(sig)
    return by_name


def _descend(fragment: Fragment, path) -> Fragment:
    for name in path:
        fragment = fragment.find_subfragment(name)
    return fragment


def internal(fragment: Fragment, name: str, path=()) -> Signal:
    """The one register called ``name`` (assigned in a clocked domain) of the subfragment at
    ``path`` (submodule names from ``fragment`` down).

    Raises
    ------
    LookupError
        If no signal or more than one has that name there (a renamed register breaks the
        proof loudly, never silently).
    """
    where = _descend(fragment, path)
    hits = driven_signals(where).get(name, [])
    if len(hits) != 1:
        at = "/".join(path) or "the top"
        raise LookupError(f"{len(hits)} registers named {name!r} are assigned in {at}; the proof's "
                          "invariants need exactly one")
    return hits[0]


def origin(fragment: Fragment, path=()):
    """The elaboratable that the subfragment at ``path`` was elaborated from (the innermost
    one that is not an Amaranth ``Module``), e.g. the ``SyncFIFO`` object of ``("array",
    "out_fifo")``, whose public attributes (``level``) are its state."""
    where = _descend(fragment, path)
    candidates = [o for o in (where.origins or ()) if type(o).__name__ != "Module"]
    if not candidates:
        raise LookupError(f"no elaboratable recorded for {'/'.join(path) or 'the top'}")
    return candidates[-1]


def memory_words(fragment: Fragment, path, depth: int, width: int) -> list[Signal]:
    """The ``depth`` words of the memory at ``path`` (e.g. ``("array", "out_fifo", "storage")``),
    each as a signal of ``width`` bits read by an asynchronous read port added to that memory
    for the checker (it reads only: the design's own ports and behaviour are unchanged).

    Raises
    ------
    LookupError
        If the subfragment at ``path`` is not a memory.
    """
    where = _descend(fragment, path)
    if not isinstance(where, MemoryInstance):
        raise LookupError(f"{'/'.join(path)} is a {type(where).__name__}, not a memory")
    words = []
    for addr in range(depth):
        word = Signal(width, name=f"{path[-1]}_word{addr}")
        where.read_port(domain="comb", addr=Const(addr, ceil_log2(depth)), data=word, en=Const(1),
                        transparent_for=())
        words.append(word)
    return words
