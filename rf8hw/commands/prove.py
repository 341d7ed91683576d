"""``rf8hw prove``: the formal proofs (SymbiYosys, k-induction) of the PEs and the AXI4-Stream
top; a thin layer over :mod:`rf8hw.formal.suite`."""


def register(subparsers, name: str, help_text: str) -> None:
    from rf8hw.commands.options import add_config_args
    from rf8hw.formal.suite import ProveConfig

    parser = subparsers.add_parser(name, help=help_text, description=help_text)
    add_config_args(parser, ProveConfig)
    parser.add_argument("--mutants", action="store_true",
                        help="also run every mutant (each must fail with a counterexample trace)")
    parser.add_argument("--list", action="store_true", help="list the tasks and run nothing")
    parser.add_argument("--json", action="store_true", help="print one JSON object per task")
    parser.set_defaults(func=run)


def _line(r) -> str:
    where = f"  trace {r.trace}" if r.trace else ""
    how = "cached" if r.cached else f"{r.seconds:.1f} s"
    mode = r.task.mode if r.task.mode == "structure" else f"{r.task.mode} depth {r.task.depth}"
    return f"{r.status:<5} {r.task.name:<48} {mode}  {how}{where}"


def run(args) -> int:
    import json
    import signal
    import sys
    import threading

    from rf8hw.commands.options import config_from_args
    from rf8hw.formal import sby, suite

    config = config_from_args(suite.ProveConfig, args)
    tasks = suite.properties(config)
    mutants = suite.mutant_tasks(config, select=True) if args.mutants else []
    if not tasks and not mutants:
        print("rf8hw prove: error: --only names mutants only; add --mutants to run them",
              file=sys.stderr)
        return 2
    if args.list:
        for t in tasks:
            print(t.name)
        for t, what in mutants:
            print(f"{t.name} (must fail: {what})")
        return 0

    def show(r):
        print(json.dumps({"name": r.task.name, "status": r.status, "seconds": r.seconds,
                          "trace": r.trace, "cached": r.cached, "workdir": r.workdir})
              if args.json else _line(r), flush=True)

    def on_term(signum, frame):
        raise sby.Interrupted(signum)

    main = threading.current_thread() is threading.main_thread()
    saved = signal.signal(signal.SIGTERM, on_term) if main else None
    try:
        results = suite.run_all(tasks, config.cache, config.jobs, show)
        mutant_results = suite.run_all([t for t, _ in mutants], config.cache, config.jobs, show)
    except sby.SbyError as exc:
        print(f"rf8hw prove: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as exc:      # Ctrl-C or SIGTERM: run_all has ended every tool
        signum = getattr(exc, "signum", signal.SIGINT)
        print(f"rf8hw prove: interrupted (signal {signum}); the SymbiYosys runs were stopped",
              file=sys.stderr, flush=True)
        return 128 + signum
    finally:
        if main:
            signal.signal(signal.SIGTERM, saved)
    bad = [r.task.name for r in results if r.status != "PASS"]
    bad += [r.task.name for r in mutant_results if not suite.mutant_failed(r)]
    if not args.json:
        print(f"{len(results) - sum(r.status != 'PASS' for r in results)} of {len(results)} "
              f"proved" + (f"; {len(mutant_results)} mutants run" if mutants else ""))
    if bad:
        print(f"rf8hw prove: not as expected: {', '.join(bad)}", file=sys.stderr)
        return 1
    return 0
