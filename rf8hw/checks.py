"""Argument checks shared by every layer (standard library only, so any module may import it).

Each check returns the value it accepted and raises :class:`ValueError` with one line naming the
parameter, the value given and what is allowed.  A rule is worded once, here; modules state only
their bounds.
"""

from __future__ import annotations

import math
import numbers

__all__ = ["integer", "number", "choice", "output_dir", "listing"]


def _range_text(lo, hi) -> str:
    if lo is not None and hi is not None:
        return f"in {lo}..{hi}"
    if lo is not None:
        return f">= {lo}"
    if hi is not None:
        return f"<= {hi}"
    return ""


def integer(name: str, value, lo: int | None = None, hi: int | None = None, why: str = "") -> int:
    """``value`` as an ``int`` if it is an integer (Python or numpy; never ``bool``) in ``lo..hi``.

    ``why`` is appended to the message (e.g. ``" for act_bits=8 (one product needs 27 bits)"``).
    """
    ok = isinstance(value, numbers.Integral) and not isinstance(value, bool) and not (
        type(value).__name__ == "bool_")
    if ok:
        v = int(value)
        ok = (lo is None or v >= lo) and (hi is None or v <= hi)
    if not ok:
        allowed = " ".join(filter(None, ["an integer", _range_text(lo, hi)]))
        raise ValueError(f"{name} must be {allowed}{why}, not {value!r}")
    return int(value)


def number(name: str, value, lo: float, hi: float, *, hi_open: bool = False, what: str = "") -> float:
    """``value`` as a ``float`` if it is a real number in ``[lo, hi]`` (``[lo, hi)`` when
    ``hi_open``); ``what`` says what the number means, e.g. ``" (a probability per cycle)"``."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        v = math.nan
    ok = not isinstance(value, bool) and lo <= v and (v < hi if hi_open else v <= hi)
    if not ok:
        interval = f"[{lo}, {hi}{')' if hi_open else ']'}"
        raise ValueError(f"{name} must be a number in {interval}{what}, not {value!r}")
    return v


def choice(name: str, value, allowed) -> str:
    """``value`` if it is one of ``allowed`` (shown in order)."""
    if not isinstance(value, str) or value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, allowed))}, not {value!r}")
    return value


def output_dir(name: str, path):
    """``path`` as a :class:`pathlib.Path` if a directory can be created or filled there: it is a
    directory, or it does not exist and its nearest existing ancestor is a directory.  Checked
    before long work starts, so that a run is not lost at the end for want of a place to write.
    None (an option left out) is returned as None; an empty name, which the file system would
    take for the current directory, is refused."""
    from pathlib import Path

    if path is None:
        return None
    if not isinstance(path, (str, Path)) or not str(path).strip():
        raise ValueError(f"{name} is empty ({path!r}): give a directory ('.' for the current one)")
    path = Path(path)
    if path.exists():
        if not path.is_dir():
            raise ValueError(f"{name} {str(path)!r} exists and is not a directory")
        return path
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise ValueError(f"{name} {str(path)!r}: {str(parent)!r} is not a directory")
            break
    return path


def listing(names, most: int = 5) -> str:
    """``names`` for a message: the first ``most`` joined by commas, then ``... (N in all)``."""
    names = list(names)
    return ", ".join(names[:most]) + (f", ... ({len(names)} in all)" if len(names) > most else "")
