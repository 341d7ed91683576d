"""``rf8hw synth``: synthesise, place and route one MAC array; print area and post-route Fmax."""

#: Keys printed by the text report, in order (``--json`` prints everything).
_TEXT_KEYS = ("lut4", "carry", "lut4_equiv", "ff", "dsp", "bram", "lutram", "comb_used",
              "fmax_mhz")


def register(subparsers, name: str, help_text: str) -> None:
    from rf8hw.accel.synth import DEVICES
    from rf8hw.arch import ArrayConfig
    from rf8hw.commands.options import add_config_args

    parser = subparsers.add_parser(name, help=help_text, description=help_text)
    add_config_args(parser, ArrayConfig)
    parser.add_argument("--device", required=True, choices=tuple(DEVICES), help="target FPGA")
    parser.add_argument("--seed", type=int, default=1, help="nextpnr placement seed (default 1)")
    parser.add_argument("--workdir", default=None,
                        help="work directory (default build/synth/<design>_<device>_s<seed>)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    parser.set_defaults(func=run)


def run(args) -> int:
    import json
    import sys

    from rf8hw import checks
    from rf8hw.accel import synth
    from rf8hw.arch import ArrayConfig
    from rf8hw.commands.options import config_from_args

    cfg = config_from_args(ArrayConfig, args)
    checks.output_dir("--workdir", args.workdir)        # an empty name would be the current directory
    try:
        res = synth.synthesize(cfg, device=args.device, seed=args.seed, workdir=args.workdir)
    except synth.SynthError as exc:
        print(f"rf8hw synth: error: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(res, indent=2))
        return 0
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
