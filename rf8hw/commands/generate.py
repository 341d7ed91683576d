"""``rf8hw generate``: write the Verilog and JSON manifest of one RF8 systolic array."""


def register(subparsers, name: str, help_text: str) -> None:
    parser = subparsers.add_parser(name, help=help_text, description=help_text)
    parser.add_argument("--rows", type=int, required=True,
                        help="PE rows = reduction depth K of a weight tile")
    parser.add_argument("--cols", type=int, required=True, help="PE columns = outputs per row")
    parser.add_argument("--act-bits", type=int, default=8, help="signed activation width (default 8)")
    parser.add_argument("--acc-bits", type=int, default=40, help="accumulator width (default 40)")
    parser.add_argument("--overflow", default="wrap",
                        help="accumulator overflow rule: wrap or saturate (default wrap)")
    parser.add_argument("-o", "--out-dir", required=True, help="output directory")
    parser.set_defaults(func=run)


def run(args) -> int:
    from rf8hw.hdl.generate import generate

    v_path, j_path = generate(args.rows, args.cols, act_bits=args.act_bits,
                              acc_bits=args.acc_bits, overflow=args.overflow,
                              out_dir=args.out_dir)
    print(v_path)
    print(j_path)
    return 0
