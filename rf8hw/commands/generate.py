"""``rf8hw generate``: write the Verilog and JSON manifest of one systolic MAC array (any PE
kind: RF8, INT8, FP8)."""

import sys


def register(subparsers, name: str, help_text: str) -> None:
    from rf8hw.arch import ArrayConfig
    from rf8hw.commands.options import add_config_args

    parser = subparsers.add_parser(name, help=help_text, description=help_text)
    add_config_args(parser, ArrayConfig)
    parser.add_argument("-o", "--out-dir", required=True, help="output directory")
    parser.add_argument("--force", action="store_true",
                        help="overwrite DIR/<module>.v even if it was edited since it was generated")
    parser.set_defaults(func=run)


def run(args) -> int:
    from rf8hw.arch import ArrayConfig
    from rf8hw.commands.options import config_from_args
    from rf8hw.hdl.generate import generate

    try:
        v_path, j_path = generate(config_from_args(ArrayConfig, args), out_dir=args.out_dir,
                                  overwrite=args.force)
    except KeyboardInterrupt:
        # Ctrl-C (SIGINT to the process group): one line, not the traceback of the conversion
        print("rf8hw generate: interrupted (signal 2); no file was half-written (each is written "
              "under a temporary name, then renamed)", file=sys.stderr, flush=True)
        return 128 + 2
    print(v_path)
    print(j_path)
    return 0
