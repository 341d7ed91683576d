"""The ``rf8hw`` command line: a thin layer over the library.

Each sub-command lives in a module that defines ``register(subparsers, name, help_text)``;
``register`` adds its parser and sets ``func`` (called with the parsed arguments, returns an exit
status).  Only the module of the command being run is imported (:func:`build_parser`), so
``rf8hw --help`` and ``rf8hw table`` load neither torch nor Amaranth.
"""

from __future__ import annotations

import argparse
import re
import sys
from importlib import import_module

# command name -> (module, one-line help).  Keep sorted by workflow, not alphabet.
COMMANDS: dict[str, tuple[str, str]] = {
    "table": ("rf8hw.commands.table", "print the 256-code RF8 table (code, fields, value)"),
    "generate": ("rf8hw.commands.generate",
                 "write Verilog + JSON manifest of a systolic MAC array of any PE kind (RF8, INT8, FP8)"),
    "export-tb": ("rf8hw.commands.export_tb", "self-checking Verilog testbench + vectors for any simulator"),
    "cosim": ("rf8hw.commands.cosim",
              "co-simulate an RF8 array's generated Verilog (Verilator/Icarus, cocotb) against the "
              "golden model"),
    "train": ("rf8hw.commands.train",
              "train a zoo model (tinygpt, mlp_digits); GG-init, BackSlash, DeepShape; DDP via torchrun"),
    "fit": ("rf8hw.commands.fit", "fit GG parameters per layer of a safetensors checkpoint and plot them"),
    "synth": ("rf8hw.commands.synth",
              "synthesise + place and route an array (yosys/nextpnr): LUT4/FF/DSP and post-route Fmax"),
    "estimate": ("rf8hw.commands.estimate",
                 "accuracy on the bit-exact RF8 hardware path, cycles, area and Fmax of a model on an "
                 "RF8 array (a zoo checkpoint, minilm, smollm2 or your own adapter)"),
    "prove": ("rf8hw.commands.prove",
              "formal proofs (SymbiYosys k-induction): PE products, PE equivalence, AXI4-Stream protocol"),
    "export": ("rf8hw.commands.export",
               "write a plain transformers checkpoint (bfloat16, exact) of an rf8hw-quantized "
               "Hugging Face checkpoint: loads without rf8hw"),
    "sweep": ("rf8hw.commands.sweep",
              "design-space exploration on Ray: PE kinds x sizes x accumulators x numerics -> Pareto front"),
}


class Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose usage errors are one line (exit status 2), like every other user
    error: ``rf8hw train: error: argument --model: invalid choice: 'x' (choose from ...)``.  The
    usage text is left to ``--help`` (sub-parsers are of this class too)."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {' '.join(message.split())}\n")


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser of ``rf8hw``: every command is listed with its one-line help, and only
    ``command``'s module is imported to add its options (None: none, enough for ``--help``)."""
    from rf8hw import __version__

    parser = Parser(
        prog="rf8hw",
        description="RF8 hardware/software co-design: format, golden model, RTL, co-simulation, "
                    "training and accelerator estimates.",
    )
    parser.add_argument("--version", action="version", version=f"rf8hw {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name, (module, help_text) in COMMANDS.items():
        if name == command:
            import_module(module).register(sub, name, help_text)
        else:
            sub.add_parser(name, help=help_text)
    return parser


def _command(argv: list[str]) -> str | None:
    """The command named in ``argv``: its first word that is not an option (``rf8hw`` itself
    takes no option with a value)."""
    return next((a for a in argv if not a.startswith("-")), None)


def user_error(exc: BaseException) -> str | None:
    """The one-line message of a user error (bad value, bad file, unusable path), or None for an
    internal error, which keeps its traceback.

    User errors are ``ValueError`` (a rejected value or file: its message names it) and ``OSError``
    naming a path (a missing input, an output location that is a file, read-only or not ours).
    """
    if isinstance(exc, ValueError):
        return str(exc)
    if isinstance(exc, OSError) and exc.filename is not None:
        return f"{exc.strerror or type(exc).__name__}: {exc.filename}"
    if isinstance(exc, FileNotFoundError):      # raised by our code with a full message
        return str(exc)
    return None


#: Exit status of a run stopped by Ctrl-C (128 + SIGINT, as a shell reports it).
INTERRUPTED = 130


#: A token that is a negative number (``-1``, ``-1e-3``, ``-.5``, ``-inf``, ``-nan``), not an option.
NEGATIVE_NUMBER = re.compile(r"^-(?:(?:\d+\.?\d*|\.\d+)(?:e[-+]?\d+)?|inf(?:inity)?|nan)$", re.IGNORECASE)


def attach_negative_numbers(argv: list[str]) -> list[str]:
    """``--opt -1e-3`` as ``--opt=-1e-3``: argparse takes a negative number after an option for
    another option (``expected one argument``) unless it looks like ``-1`` or ``-0.5``; joined,
    the value reaches the option and its range check.  No rf8hw option is named like a number
    and no command takes a negative number as a positional argument, so this is unambiguous."""
    out: list[str] = []
    for token in argv:
        if (out and NEGATIVE_NUMBER.match(token) and out[-1].startswith("--") and "=" not in out[-1]
                and out[-1] != "--"):
            out[-1] = f"{out[-1]}={token}"
        else:
            out.append(token)
    return out


def main(argv: list[str] | None = None) -> int:
    """Run ``rf8hw`` with ``argv``; returns the exit status.  A user error is one line and status
    2 (:func:`user_error`); Ctrl-C (``KeyboardInterrupt``, at any point, the imports included) is
    one line, ``rf8hw <command>: interrupted``, and status 130.  A command that handles its own
    interrupts (``rf8hw cosim`` stops its simulator and names the signal) returns its status."""
    argv = attach_negative_numbers(sys.argv[1:] if argv is None else list(argv))
    command = _command(argv)
    try:
        args = build_parser(command).parse_args(argv)
        command = args.command
        return int(args.func(args) or 0)
    except (ValueError, OSError) as exc:
        message = user_error(exc)
        if message is None:
            raise
        # Bad input is reported as one clear line, not a traceback.
        print(f"rf8hw {command}: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        # Ctrl-C (a terminal sends it to the whole process group: tools and workers stop too)
        print(f"rf8hw{' ' + command if command in COMMANDS else ''}: interrupted", file=sys.stderr,
              flush=True)
        return INTERRUPTED


if __name__ == "__main__":
    raise SystemExit(main())
