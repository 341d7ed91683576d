"""Helpers for the constructors of RTL components."""

from __future__ import annotations

from contextlib import contextmanager

__all__ = ["rejecting"]


@contextmanager
def rejecting(component):
    """Run parameter checks inside a component's constructor.

    A component whose constructor raises was never meant to be elaborated; marking it used keeps
    Amaranth from adding an ``UnusedElaboratable`` warning to the error.
    """
    try:
        yield
    except (ValueError, TypeError):
        component._MustUse__used = True
        raise
