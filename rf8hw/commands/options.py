"""Command-line options derived from the configuration dataclasses (one place for names, defaults,
choices and help: the dataclass fields and their ``metadata``).

A field ``acc_bits: int = field(default=40, metadata={"help": ...})`` becomes ``--acc-bits``
(``type=int``, default 40, help text with the default).  The option's type comes from the field's
annotation (``int``, ``float``, ``str``, ``bool``, ``tuple``, each possibly ``| None``):

* ``bool`` gives a pair of flags, ``--name`` / ``--no-name`` (``argparse.BooleanOptionalAction``);
* ``tuple`` takes a comma-separated list (``--rows 2,4,8``) of the element type named by the
  metadata key ``item`` (default: the type of the default's first element, else ``str``);
* ``X | None`` takes an ``X``; leaving the option out keeps the field's default.

Metadata keys: ``help``, ``choices`` (for a tuple: of each element), ``cli_required`` (required on
the command line even though the library has a default), ``metavar``, ``flag`` (an option name
other than the field's), ``item`` (a tuple's element type) and ``cli`` (``False``: no option, e.g.
a nested configuration).  Validation is not repeated here: a field with ``choices`` is checked by
argparse (its usage error, exit status 2, lists the choices); every other value by the dataclass
constructor, whose ``ValueError`` is the CLI's one-line error (exit status 2).
"""

from __future__ import annotations

import argparse
from dataclasses import MISSING, fields

__all__ = ["add_config_args", "config_from_args", "flag"]

_TYPES = {"int": int, "float": float, "str": str, "bool": bool, "tuple": tuple}


def flag(name: str) -> str:
    """The option spelling of field ``name``: ``acc_bits`` -> ``--acc-bits``."""
    return "--" + name.replace("_", "-")


def _type(f) -> type:
    """The option type of field ``f`` from its annotation (a type or, with postponed evaluation
    of annotations, its text): ``int``, ``float``, ``str``, ``bool`` or ``tuple``."""
    if isinstance(f.type, type):
        return f.type
    names = [t.strip() for t in str(f.type).split("|") if t.strip() != "None"]
    base = names[0].split("[")[0] if len(names) == 1 else None
    if base not in _TYPES:
        raise TypeError(f"field {f.name!r}: no command-line option for the annotation {f.type!r}; "
                        "give it metadata cli=False")
    return _TYPES[base]


def _list(name: str, kind: type, allowed):
    """argparse type of a comma-separated list of ``kind`` values (each in ``allowed``; the
    message of a bad one is :func:`rf8hw.checks.choice`'s, under the option's ``name``)."""
    from rf8hw import checks

    def parse(text: str):
        items = [t.strip() for t in text.split(",") if t.strip()]
        if not items:
            raise argparse.ArgumentTypeError(f"needs at least one value, not {text!r}")
        out = []
        for t in items:
            try:
                out.append(kind(t))
                if allowed is not None:
                    checks.choice(name, out[-1], allowed)
            except ValueError as exc:
                words = {int: "integers", float: "numbers"}.get(kind)
                raise argparse.ArgumentTypeError(
                    str(exc) if words is None else f"takes comma-separated {words}, not {t!r}") from None
        return tuple(out)
    parse.__name__ = f"list of {kind.__name__}"
    return parse


def add_config_args(parser: argparse.ArgumentParser, cls, *, only=None, exclude=(),
                    choices: dict | None = None, required=(), optional: bool = False) -> None:
    """Add one option per field of dataclass ``cls`` (``only``: these fields, in this order).

    ``choices`` overrides a field's choices (e.g. the RF8 PE kinds only); ``required`` makes more
    fields required.  ``optional``: no option is required and every default is ``None``, so the
    caller can tell a given value from one left out (e.g. to check it against a manifest); the
    help still names the library default.
    """
    by_name = {f.name: f for f in fields(cls)}
    names = list(only) if only is not None else [n for n in by_name if n not in exclude]
    for name in names:
        f = by_name[name]
        meta = f.metadata
        if meta.get("cli", True) is False:
            continue
        default = f.default if f.default is not MISSING else None
        kind = _type(f)
        allowed = (choices or {}).get(name, meta.get("choices"))
        kwargs = {"help": meta.get("help", ""), "dest": name}
        if kind is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        elif kind is tuple:
            item = meta.get("item") or (type(default[0]) if default else str)
            kwargs["type"] = _list(meta.get("flag", flag(name)).lstrip("-").replace("-", "_"), item,
                                   None if allowed is None else tuple(allowed))
            kwargs["metavar"] = meta.get("metavar", f"{item.__name__.upper()}[,...]")
        else:
            kwargs["type"] = kind
            if allowed is not None:
                kwargs["choices"] = tuple(allowed)
        if "metavar" in meta:
            kwargs["metavar"] = meta["metavar"]
        shown = ",".join(map(str, default)) if kind is tuple and default else default
        if optional:
            kwargs["default"] = None
        elif f.default is MISSING and f.default_factory is MISSING or meta.get("cli_required") \
                or name in required:
            kwargs["required"] = True
            shown = None
        else:
            kwargs["default"] = default
        if shown is not None and kind is not bool:
            kwargs["help"] += f" (default {shown})"
        elif kind is bool and not optional and default is not None:   # None: the help says
            kwargs["help"] += f" (default {'on' if default else 'off'})"
        parser.add_argument(meta.get("flag", flag(name)), **kwargs)


def config_from_args(cls, args: argparse.Namespace, **overrides):
    """``cls(**fields)`` from the parsed options that :func:`add_config_args` added (an option
    left out in ``optional`` mode, i.e. ``None``, keeps the field's default)."""
    values = {f.name: getattr(args, f.name) for f in fields(cls)
              if hasattr(args, f.name) and getattr(args, f.name) is not None}
    values.update(overrides)
    return cls(**values)
