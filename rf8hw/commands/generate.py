"""``rf8hw generate``: write the Verilog and JSON manifest of one systolic MAC array (any PE
kind: RF8, INT8, FP8), or with ``--accel`` of the GEMM accelerator around it
(``docs/accelerator.md``), or with ``--shell`` of the accelerator in its AXI4 shell
(``docs/shell.md``)."""

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
    parser.add_argument("--shell", action="store_true",
                        help="the accelerator inside its AXI4 shell (AXI4-Lite registers, AXI4 "
                             "memory master; docs/shell.md): also writes <module>_regs.md/.h")
    parser.add_argument("--data-bits", type=int, help="shell: AXI4 data width (default 64)")
    parser.add_argument("--addr-bits", type=int, help="shell: AXI4 address width (default 32)")
    parser.add_argument("--max-burst", type=int, help="shell: longest burst in beats (default 16)")
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
    if accel_given and not (args.accel or args.shell):
        raise ValueError(f"--{accel_given[0].replace('_', '-')} sets a parameter of the "
                         "accelerator: add --accel (or leave it out for the bare array)")
    shell = {k: getattr(args, k) for k in ("data_bits", "addr_bits", "max_burst")}
    given = [k for k, v in shell.items() if v is not None]
    if given and not args.shell:
        raise ValueError(f"--{given[0].replace('_', '-')} sets a parameter of the shell: add --shell")
    try:
        if args.accel or args.shell:
            from rf8hw.hdl.accel_generate import generate_accel

            acfg = config_from_args(AccelConfig, args, array=cfg)
            v_path, j_path = generate_accel(acfg, out_dir=args.out_dir, overwrite=args.force,
                                            shell=shell if args.shell else None)
        else:
            from rf8hw.hdl.generate import generate

            v_path, j_path = generate(cfg, out_dir=args.out_dir, overwrite=args.force)
    except KeyboardInterrupt:
        # Ctrl-C (SIGINT to the process group): one line, not the traceback of the conversion
        print("rf8hw generate: interrupted (signal 2); no file was half-written (each is written "
              "under a temporary name, then renamed)", file=sys.stderr, flush=True)
        return 128 + 2
    from rf8hw.hdl.ippackage import ip_paths

    regs = [v_path.with_name(f"{v_path.stem}_regs{x}") for x in (".md", ".h")] if args.shell else []
    for path in (v_path, j_path, *ip_paths(v_path.parent, v_path.stem), *regs):   # + core, component.xml
        print(path)
    return 0
