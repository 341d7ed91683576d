"""Command-line options derived from the configuration dataclasses (one place for names, defaults,
choices and help: the dataclass fields and their ``metadata``).

A field ``acc_bits: int = field(default=40, metadata={"help": ...})`` becomes ``--acc-bits``
(``type=int``, default 40, help text with the default).  Metadata keys: ``help``, ``choices``,
``cli_required`` (required on the command line even though the library has a default),
``metavar`` and ``flag`` (an option name other than the field's).  Validation is not repeated
here: a field with ``choices`` is checked by argparse (its usage error, exit status 2, lists the
choices); every other value by the dataclass constructor, whose ``ValueError`` is the CLI's
one-line error (exit status 2).
"""

from __future__ import annotations

import argparse
from dataclasses import MISSING, fields

__all__ = ["add_config_args", "config_from_args"]


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


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
        default = f.default if f.default is not MISSING else None
        kind = int if f.type in (int, "int") else type(default) if default is not None else str
        if kind is bool:
            raise TypeError(f"{cls.__name__}.{name}: boolean fields need a hand-written flag")
        kwargs = {"type": kind, "help": meta.get("help", ""), "dest": name}
        allowed = (choices or {}).get(name, meta.get("choices"))
        if allowed is not None:
            kwargs["choices"] = tuple(allowed)
        if "metavar" in meta:
            kwargs["metavar"] = meta["metavar"]
        if optional:
            kwargs["default"] = None
            if default is not None:
                kwargs["help"] += f" (default {default})"
        elif f.default is MISSING or meta.get("cli_required") or name in required:
            kwargs["required"] = True
        else:
            kwargs["default"] = default
            if default is not None:
                kwargs["help"] += f" (default {default})"
        parser.add_argument(meta.get("flag", _flag(name)), **kwargs)


def config_from_args(cls, args: argparse.Namespace, **overrides):
    """``cls(**fields)`` from the parsed options that :func:`add_config_args` added."""
    values = {f.name: getattr(args, f.name) for f in fields(cls) if hasattr(args, f.name)}
    values.update(overrides)
    return cls(**values)
