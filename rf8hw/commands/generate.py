"""``rf8hw generate``: write the Verilog and JSON manifest of one systolic MAC array (any PE
kind: RF8, INT8, FP8), or with ``--accel`` of the GEMM accelerator around it
(``docs/accelerator.md``)."""

import sys


def register(subparsers, name: str, help_text: str) -> None:
    from rf8hw.arch import AccelConfig, ArrayConfig
    from rf8hw.commands.options import add_config_args

    parser = subparsers.add_parser(name, help=help_text, description=help_text)
    add_config_args(parser, ArrayConfig)
    parser.add_argument("--accel", action="store_true",
                        help="the GEMM accelerator around the array (buffers, post-processing, "
                             "command sequencer; docs/accelerator.md) instead of the bare array")
    add_config_args(parser, AccelConfig, exclude=("array",), optional=True)
    parser.add_argument("-o", "--out-dir", required=True, help="output directory")
    parser.add_argument("--force", action="store_true",
                        help="overwrite DIR/<module>.v even if it was edited since it was generated")
    parser.set_defaults(func=run)


def run(args) -> int:
    from dataclasses import fields

    from rf8hw.arch import AccelConfig, ArrayConfig
    from rf8hw.commands.options import config_from_args

    cfg = config_from_args(ArrayConfig, args)
    accel_given = [f.name for f in fields(AccelConfig)
                   if f.name != "array" and getattr(args, f.name, None) is not None]
    if accel_given and not args.accel:
        raise ValueError(f"--{accel_given[0].replace('_', '-')} sets a parameter of the "
                         "accelerator: add --accel (or leave it out for the bare array)")
    try:
        if args.accel:
            from rf8hw.hdl.accel_generate import generate_accel

            acfg = config_from_args(AccelConfig, args, array=cfg)
            v_path, j_path = generate_accel(acfg, out_dir=args.out_dir, overwrite=args.force)
        else:
            from rf8hw.hdl.generate import generate

            v_path, j_path = generate(cfg, out_dir=args.out_dir, overwrite=args.force)
    except KeyboardInterrupt:
        # Ctrl-C (SIGINT to the process group): one line, not the traceback of the conversion
        print("rf8hw generate: interrupted (signal 2); no file was half-written (each is written "
              "under a temporary name, then renamed)", file=sys.stderr, flush=True)
        return 128 + 2
    from rf8hw.hdl.ippackage import ip_paths

    for path in (v_path, j_path, *ip_paths(v_path.parent, v_path.stem)):   # + core, component.xml
        print(path)
    return 0
