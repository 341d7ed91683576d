"""``rf8hw export-tb --rtl FILE.v``: write a self-checking plain-Verilog testbench and its
``$readmemh`` vector files for a generated array or accelerator, for any simulator
(``docs/ip.md``).  Thin over :func:`rf8hw.sim.export_tb.export_tb`; prints the written paths,
the testbench first.  Exit status 2 on bad input (one line)."""


def register(subparsers, name: str, help_text: str) -> None:
    parser = subparsers.add_parser(name, help=help_text, description=help_text)
    parser.add_argument("--rtl", required=True, metavar="FILE.v",
                        help="a Verilog file rf8hw generate wrote (bare array or --accel); its "
                             "manifest FILE.json next to it gives the design")
    parser.add_argument("-o", "--out-dir", default=None,
                        help="write DIR/tb_<module>/ (default: the folder of FILE.v, where the "
                             "FuseSoC core's sim target looks)")
    parser.add_argument("--seed", type=int, default=1, help="seed of the random stimulus (default 1)")
    parser.add_argument("--tiles", type=int, default=None,
                        help="bare array: random tiles (default 4)")
    parser.add_argument("--m-rows", type=int, default=None,
                        help="bare array: activation rows per tile (default rows)")
    parser.add_argument("--cmds", type=int, default=None,
                        help="accelerator: random GEMM commands (default 3)")
    parser.add_argument("--stall-prob", type=float, default=0.0,
                        help="probability of an idle source / stalled sink edge on every stream "
                             "(default 0)")
    parser.set_defaults(func=run)


def run(args) -> int:
    from rf8hw.sim.export_tb import export_tb

    for path in export_tb(args.rtl, args.out_dir, seed=args.seed, tiles=args.tiles,
                          m_rows=args.m_rows, cmds=args.cmds, stall_prob=args.stall_prob):
        print(path)
    return 0
