"""``rf8hw synth``: synthesise, place and route one MAC array; print area and post-route Fmax.
With ``--accel``: the GEMM accelerator around it (``rf8hw.accel.accel_synth``; Yosys only
unless ``--place``), its block RAM included."""

#: Keys printed by the text report, in order (``--json`` prints everything).
_TEXT_KEYS = ("lut4", "carry", "lut4_equiv", "ff", "dsp", "bram", "lutram", "comb_used",
              "fmax_mhz")


def register(subparsers, name: str, help_text: str) -> None:
    from rf8hw.accel.synth import DEVICES
    from rf8hw.arch import AccelConfig, ArrayConfig
    from rf8hw.commands.options import add_config_args

    parser = subparsers.add_parser(name, help=help_text, description=help_text)
    add_config_args(parser, ArrayConfig)
    parser.add_argument("--accel", action="store_true",
                        help="the GEMM accelerator around the array (docs/accelerator.md): Yosys "
                             "cell counts with its block RAM; place and route only with --place")
    parser.add_argument("--place", action="store_true",
                        help="with --accel: also place and route (nextpnr; tens of minutes)")
    add_config_args(parser, AccelConfig, exclude=("array",), optional=True)
    parser.add_argument("--device", required=True, choices=tuple(DEVICES), help="target FPGA")
    parser.add_argument("--seed", type=int, default=1, help="nextpnr placement seed (default 1)")
    parser.add_argument("--workdir", default=None,
                        help="work directory (default build/synth/<design>_<device>_s<seed>)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    parser.set_defaults(func=run)


def run(args) -> int:
    import json
    import sys
    from dataclasses import fields

    from rf8hw import checks
    from rf8hw.accel import synth
    from rf8hw.arch import AccelConfig, ArrayConfig
    from rf8hw.commands.options import config_from_args

    cfg = config_from_args(ArrayConfig, args)
    checks.output_dir("--workdir", args.workdir)        # an empty name would be the current directory
    accel_given = [f.name for f in fields(AccelConfig)
                   if f.name != "array" and getattr(args, f.name, None) is not None]
    if (accel_given or args.place) and not args.accel:
        first = accel_given[0] if accel_given else "place"
        raise ValueError(f"--{first.replace('_', '-')} is for the accelerator: add --accel "
                         f"(the bare array is always placed and routed)")
    try:
        if args.accel:
            from rf8hw.accel.accel_synth import synthesize_accel

            acfg = config_from_args(AccelConfig, args, array=cfg)
            res = synthesize_accel(acfg, device=args.device, seed=args.seed,
                                   workdir=args.workdir, place=args.place)
        else:
            res = synth.synthesize(cfg, device=args.device, seed=args.seed, workdir=args.workdir)
    except synth.SynthError as exc:
        print(f"rf8hw synth: error: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(res, indent=2))
        return 0
    if args.accel:
        return _print_accel(res)
    print(f"{res['rows']}x{res['cols']} {res['pe']} array (act {res['act_bits']} bit, acc "
          f"{res['acc_bits']} bit, {res['overflow']}) on {res['part']} ({res['device']}, package "
          f"{res['package']}, speed {res['speed']}), nextpnr seed {res['seed']}")
    for key in _TEXT_KEYS:
        value = res[key]
        if key == "fmax_mhz":
            value = "none (no register-to-register path)" if value is None else \
                f"{value:.1f} MHz post-route (target {res['fmax_target_mhz']} MHz)"
        print(f"  {key:<11} {value}")
    print("  tools       " + ", ".join(f"{k} {v}" for k, v in res["tools"].items()))
    print(f"  yosys       {res['yosys_command']}")
    print(f"  nextpnr     {res['nextpnr_command']}")
    print(f"  work dir    {res['paths']['workdir']}")
    return 0


def _print_accel(res: dict) -> int:
    a = res["accel"]
    print(f"accelerator {res['rows']}x{res['cols']} {res['pe']} (max_m {a['max_m']}, max_k "
          f"{a['max_k']}, act_depth {a['act_depth']}, INT{a['out_bits']} out) on {res['part']} "
          f"({res['device']})" + ("" if res["seed"] is None else f", nextpnr seed {res['seed']}"))
    for key in ("lut4", "carry", "lut4_equiv", "lut4_sites", "ff", "dsp", "bram", "lutram"):
        value = res[key]
        if key == "bram":
            placed = res["utilization"].get("DP16KD")
            value = f"{value} DP16KD (Yosys)" + ("" if not placed else
                                                 f"; placed {placed['used']} of {placed['available']}")
        print(f"  {key:<11} {value}")
    if res["fmax_mhz"] is not None:
        print(f"  fmax_mhz    {res['fmax_mhz']:.1f} MHz post-route (target {res['fmax_target_mhz']} MHz)")
    else:
        print("  fmax_mhz    not placed (add --place)")
    print("  tools       " + ", ".join(f"{k} {v}" for k, v in res["tools"].items()))
    print(f"  yosys       {res['yosys_command']}")
    if res["nextpnr_command"]:
        print(f"  nextpnr     {res['nextpnr_command']}")
    print(f"  work dir    {res['paths']['workdir']}")
    return 0
