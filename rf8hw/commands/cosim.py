"""``rf8hw cosim``: co-simulate an RF8 array's Verilog against the golden model (cocotb).

Either generates (or reuses) the Verilog of the array given by ``--rows/--cols/...``, or takes a
generated file (``--rtl FILE.v``, parameters from the manifest ``FILE.json`` next to it); builds (or
reuses) the simulator model, streams random tiles (or one model layer's GEMM) with random input
gaps and output backpressure, checks every result row, and prints a one-line summary as the last
line: ``tiles=T macs=N mismatches=E cycles=C cycles/s=R``.  Exit status 0 when every result
matched, 1 on any mismatch (the first one is named) or a hung or failed simulation (one line), 2
on bad input.  The options are the fields of :class:`rf8hw.arch.ArrayConfig`,
:class:`rf8hw.sim.options.CosimOptions` and :class:`rf8hw.sim.options.CosimRequest`, validated by
their constructors; the run directory follows the library's rule
(:meth:`rf8hw.sim.options.CosimOptions.run_dir`).
"""

import signal
import sys
import time


def register(subparsers, name: str, help_text: str) -> None:
    from rf8hw.arch import ArrayConfig, rf8_kinds
    from rf8hw.commands.options import add_config_args
    from rf8hw.sim.options import CosimOptions, CosimRequest

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
    add_config_args(parser, CosimRequest, only=("tiles", "m_rows"))
    add_config_args(parser, CosimOptions)
    layer = parser.add_argument_group(
        "layer", "instead of random tiles, the GEMM of one layer of a real RF8-quantized model, "
                 "its INT8 activations from a real forward pass; compared with the golden model "
                 "and with the bit-exact PyTorch layer's integers (rf8hw/accel/cosim_layer.py); "
                 "--model without --layer: every RF8 GEMM of the model's forward pass through the "
                 "accelerator, each layer's output taken from the RTL (rf8hw/accel/cosim_model.py)")
    add_config_args(layer, CosimRequest, only=("layer", "model", "checkpoint", "batch", "accel",
                                               "out_bits"))
    parser.set_defaults(func=run)


def array_config(args):
    """The :class:`ArrayConfig` of the parsed options, and the ``RtlFile`` of ``--rtl`` (or None).

    Without ``--rtl``: ``--rows`` and ``--cols`` are required, other options default as in
    :class:`ArrayConfig`.  With ``--rtl``: the manifest's parameters; an option also given must
    equal the manifest's value.
    """
    from dataclasses import fields

    from rf8hw.arch import ArrayConfig
    from rf8hw.commands.options import flag
    from rf8hw.sim import check_cosim_config, load_rtl

    names = [f.name for f in fields(ArrayConfig)]
    given = {name: getattr(args, name) for name in names if getattr(args, name) is not None}
    if args.rtl is None:
        missing = [flag(n) for n in ("rows", "cols") if n not in given]
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
            raise ValueError(f"{flag(name)} {value} disagrees with {rtl.manifest_path}: "
                             f"{name}={manifest[name]!r} (leave {flag(name)} out with --rtl)")
    return rtl.config, rtl


def run(args) -> int:
    from rf8hw.commands.options import config_from_args
    from rf8hw.sim import CosimOptions, CosimRequest, run_cosim

    t0 = time.perf_counter()
    cfg, rtl = array_config(args)
    if args.model is not None and args.layer is None:
        return _run_model(args, cfg, rtl, t0)
    request = config_from_args(CosimRequest, args)
    options = config_from_args(CosimOptions, args, rtl=rtl)
    if rtl is not None and rtl.bom:
        print(f"note: {rtl.verilog} starts with a UTF-8 byte-order mark (an editor's); it is "
              f"ignored", file=sys.stderr, flush=True)
    if rtl is not None and not rtl.matches_manifest:
        print(f"warning: {rtl.verilog} differs from the file its manifest {rtl.manifest_path.name} "
              f"describes (SHA-256 {rtl.sha256[:16]}..., manifest "
              f"{rtl.manifest.files.verilog_sha256[:16]}...): hand-edited? "
              f"Co-simulating it anyway", file=sys.stderr, flush=True)

    def progress(line):
        print(line, flush=True)

    try:
        if request.is_layer:
            from rf8hw.accel.cosim_layer import cosim_layer
            from rf8hw.sim.build import require_simulator

            require_simulator(options.simulator)           # before the model is loaded
            result = cosim_layer(request.model, request.layer, cfg, options,
                                 checkpoint=request.checkpoint, batch=request.batch,
                                 progress=progress, out_bits=request.accel_out_bits)
        else:
            result = run_cosim(request.tiles, cfg, options, m_rows=request.m_rows,
                               progress=progress)
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
    return _report(result, cfg, time.perf_counter() - t0)


def _run_model(args, cfg, rtl, t0: float) -> int:
    """``--model`` without ``--layer``: every RF8 GEMM of the model's forward pass through the
    accelerator (:func:`rf8hw.accel.cosim_model.cosim_model`); the report, the summary line
    last."""
    from rf8hw.accel.cosim_model import cosim_model
    from rf8hw.commands.options import config_from_args, flag
    from rf8hw.sim import CosimOptions
    from rf8hw.sim.build import require_simulator

    for name in ("tiles", "m_rows"):
        if getattr(args, name) is not None:
            raise ValueError(f"{flag(name)} is for random tiles; --model without --layer runs the "
                             f"whole model's GEMMs, not {flag(name)} {getattr(args, name)}")
    out_bits = 8 if args.out_bits is None else args.out_bits
    options = config_from_args(CosimOptions, args, rtl=rtl)
    require_simulator(options.simulator)                   # before the model is loaded

    def progress(line):
        print(line, flush=True)

    try:
        result = cosim_model(args.model, cfg, options, checkpoint=args.checkpoint,
                             batch=args.batch, out_bits=out_bits, progress=progress)
    except RuntimeError as exc:
        print(f"rf8hw cosim: {exc}", file=sys.stderr, flush=True)
        return 1
    except KeyboardInterrupt as exc:
        signum = getattr(exc, "signum", signal.SIGINT)
        print(f"rf8hw cosim: interrupted (signal {signum}); finished GEMMs are stored and a "
              f"rerun reuses them", file=sys.stderr, flush=True)
        return 128 + signum
    return _report_model(result, time.perf_counter() - t0)


def _report_model(run, total_s: float) -> int:
    """Print a whole-model run (per GEMM, what ran in PyTorch, totals; the summary line last);
    its exit status."""
    acfg = run.acfg
    print(f"run directory: {run.run_dir}")
    print(f"result: {run.result_json}")
    print(f"{run.model}: every RF8 GEMM through {acfg.module_name} (max_m {acfg.max_m}, max_k "
          f"{acfg.max_k}, INT{run.out_bits} out; one activation scale per call, the "
          f"post-processing rule; docs/accelerator.md); load 0: the input of the call before, "
          f"reused from the activation buffer in the same simulation")
    print(f"{'#':>4} {'layer':<44} {'call':>4} {'M x K x N':>17} {'load':>4} {'MACs':>12} "
          f"{'cycles':>10} {'model':>10} {'off':>4} {'golden':>6} {'bitexact':>8} {'wall s':>8}")
    for g in run.gemms:
        M, K, N = g.shape
        off = "-" if g.beats_off_model is None else str(g.beats_off_model)
        wall = "stored" if g.reused else f"{g.wall_s:.2f}"
        print(f"{g.index:>4} {g.layer[-44:]:<44} {g.call:>4} {f'{M} x {K} x {N}':>17} "
              f"{g.load:>4} {g.macs:>12,} {g.cycles:>10,} {g.model_cycles:>10,} {off:>4} "
              f"{g.golden_mismatches:>6} {g.bitexact_mismatches:>8} {wall:>8}")
    t = run.totals
    print(f"in PyTorch (not through the RTL): {t['pytorch_macs']:,} MACs of matrix products")
    for g in run.pytorch_gemms:
        print(f"  {g['name']} ({g['op']}): {g['count']} x {g['M']} x {g['K']} x {g['N']} = "
              f"{g['macs']:,} MACs")
    if run.pytorch_ops:
        print("  other torch functions (calls): " + ", ".join(
            f"{k} {v}" for k, v in run.pytorch_ops.items()))
    print(f"totals: {t['gemms']} GEMMs ({t['simulated']} simulated, {t['reused']} from the "
          f"store), {t['macs']:,} MACs, {t['outputs_checked']:,} outputs: {t['golden_mismatches']} "
          f"differ from the golden rule, {t['bitexact_mismatches']} from the bit-exact layer; "
          f"cycles {t['cycles']:,} (cycle model {t['model_cycles']:,}"
          + ("" if t["beats_off_model"] is None else f", {t['beats_off_model']} beats off it")
          + ")")
    print(f"final output: {run.output_values:,} values, equal to the bit-exact PyTorch path: "
          f"{run.outputs_equal}")
    build = ("none (reused from the cache)" if run.build_s is None
             else f"{run.build_s:.1f} s (reused from the cache next time)")
    print(f"time: {total_s:.1f} s in all; simulator build {build}; RTL pass "
          f"{t['rtl_pass_wall_s']:.1f} s, of which simulation {t['sim_wall_s']:.1f} s, stream "
          f"beats and golden results {t['stimulus_s']:.1f} s, bit-exact layers "
          f"{t['bitexact_s']:.1f} s, cycle model {t['schedule_s']:.1f} s")
    print(run.summary_line(), flush=True)
    return 0 if run.ok else 1


def _report(result, cfg, total_s: float) -> int:
    """Print a run's result (a ``CosimResult`` or a ``LayerResult``; the summary line last); its
    exit status."""
    from rf8hw.accel.cosim_layer import LayerResult

    layer = result if isinstance(result, LayerResult) else None
    if layer is not None and layer.accel is not None:
        return _report_accel(layer, cfg, total_s)
    cosim = result.cosim if layer else result
    print(f"verilog: {cosim.build.verilog}")
    print(f"run directory: {cosim.out_dir}")
    print(f"cycle accounting: {cosim.cycles_json}")
    print(f"simulator log: {cosim.log}")
    if cosim.waves:
        print(f"waveform: {cosim.waves}")
    if layer:
        M, K, N = layer.gemm_shape
        print(f"layer {layer.layer}: GEMM {M} x {K} x {N} in {len(cosim.gemms[0].blocks)} tiles of "
              f"{cfg.rows}x{cfg.cols}; golden model: {cosim.rows_checked} result rows "
              f"checked, {cosim.mismatches} mismatches")
        print(f"bit-exact layer: its replay from the captured integers equals its output: "
              f"{layer.replay_matches_layer}; the RTL's GEMM equals its integers: "
              f"{layer.equals_bitexact} ({layer.bitexact_mismatches} entries differ)")
    if cosim.first_mismatch is not None:
        print(f"FIRST MISMATCH: {cosim.first_mismatch}", file=sys.stderr, flush=True)
    built = cosim.build.build_s
    build = ("reused from the cache" if built is None
             else f"{built:.1f} s (reused from the cache next time)")
    print(f"time: {total_s:.1f} s in all; simulator build {build}; simulation loop "
          f"{cosim.wall_s:.2f} s (cycles/s below: the cycles it simulated per second)")
    print(cosim.summary_line(), flush=True)
    return 0 if result.ok else 1


def _report_accel(layer, cfg, total_s: float) -> int:
    """Print an accelerator layer run (``--accel``; the summary line last); its exit status."""
    run = layer.accel
    M, K, N = layer.gemm_shape
    print(f"run directory: {run.out_dir}")
    print(f"result: {run.result_json}")
    print(f"simulator log: {run.log}")
    print(f"layer {layer.layer}: GEMM {M} x {K} x {N} through the accelerator "
          f"{run.acfg.module_name} ({run.commands} command(s), {run.tiles} tiles of "
          f"{cfg.rows}x{cfg.cols}, INT{layer.out_bits} out); golden rule: {run.mismatches} of "
          f"{M * N} outputs differ" + ("" if run.cycle_mismatches is None else
                                       f"; {run.cycle_mismatches} result beats off the cycle model"))
    print(f"bit-exact layer with the accelerator's post-processing: its replay from its integers "
          f"equals its output: {layer.replay_matches_layer}; the accelerator's output equals its "
          f"integers: {layer.equals_bitexact} ({layer.bitexact_mismatches} entries differ)")
    if run.err_cmd or run.err_w_tlast:
        print(f"accelerator error flags: err_cmd={run.err_cmd} err_w_tlast={run.err_w_tlast}",
              file=sys.stderr, flush=True)
    build = ("reused from the cache" if run.build_s is None
             else f"{run.build_s:.1f} s (reused from the cache next time)")
    print(f"time: {total_s:.1f} s in all; simulator build {build}; simulation "
          f"{run.wall_s:.2f} s (cycles/s below: the cycles it simulated per second)")
    print(run.summary_line(), flush=True)
    return 0 if layer.ok else 1
