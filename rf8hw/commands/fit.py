"""``rf8hw fit CHECKPOINT``: GG parameters per layer of a safetensors checkpoint, and the plot.

Thin over :func:`rf8hw.nn.gg.fit_model` and :func:`rf8hw.nn.gg.plot_fits`.  For each group it prints the
fitted shape, scale, mean, the number of values and the GG-minus-Gaussian log-likelihood per value
(nats; > 0 means the GG fits better).  Groups no GG fits are listed with the reason.  Non-float
tensors (e.g. the int64 ``position_ids`` buffer of a Hugging Face checkpoint) are skipped with a
note.  The default plot goes into the current directory (``<checkpoint stem>.gg.png``), never next
to the checkpoint (which may sit inside site-packages for a packaged model).  The plot and the
``--json`` file are written as one unit (:func:`rf8hw.files.write_files`), and must be two files.
"""

from __future__ import annotations

import json
from pathlib import Path

from rf8hw.files import write_files


def register(subparsers, name: str, help_text: str) -> None:
    p = subparsers.add_parser(name, help=help_text, description=help_text)
    p.add_argument("checkpoint", help="a .safetensors file (a state dict)")
    p.add_argument("--by", default="tensor", choices=("tensor", "type", "model"),
                   help="one fit per tensor, per layer type (numeric name parts pooled), or pooled")
    p.add_argument("--which", default="matrices", choices=("matrices", "all"),
                   help="tensors with ndim >= 2 (default), or every tensor")
    p.add_argument("--method", default="moment", choices=("moment", "ml"),
                   help="moment-ratio estimate, or maximum-likelihood refinement")
    p.add_argument("--plot", metavar="PNG", default=None,
                   help="histogram + fitted GG + best Gaussian per group "
                        "(default: ./<checkpoint stem>.gg.png in the current directory; .png is "
                        "appended to a name that does not end in it)")
    p.add_argument("--json", metavar="FILE", default=None, help="also write the fits as JSON")
    p.set_defaults(func=run)


def _output_file(path: Path, option: str) -> Path:
    """``path`` if a file can be written there; checked before any fitting."""
    if path.is_dir():
        raise ValueError(f"{option} {path} is a directory; give a file name")
    if not path.parent.is_dir():
        raise ValueError(f"{option} {path}: {path.parent} is not a directory")
    return path


def run(args) -> int:
    import sys

    written = []
    try:
        return _run(args, written)
    except KeyboardInterrupt:                  # Ctrl-C: write_files has removed its temporaries
        print(f"rf8hw fit: interrupted; {', '.join(written) or 'no plot or JSON file'} "
              f"{'was' if len(written) < 2 else 'were'} written", file=sys.stderr, flush=True)
        return 130


def _run(args, written: list) -> int:
    import sys

    from rf8hw.nn import gg
    from rf8hw.nn.checkpoint import json_safe, read_safetensors

    path = Path(args.checkpoint)
    png = _output_file(Path(args.plot) if args.plot is not None else Path.cwd() / f"{path.stem}.gg.png",
                       "--plot")
    if png.suffix.lower() != ".png":
        png = _output_file(png.with_name(png.name + ".png"), "--plot")   # what is written, and printed
    out_json = None if args.json is None else _output_file(Path(args.json), "--json")
    if out_json is not None and out_json.resolve() == png.resolve():
        raise ValueError(f"--json {out_json} is the plot's file too (--plot {png}); give two files")
    state = read_safetensors(path)
    skipped = sorted(k for k, v in state.items() if not v.dtype.is_floating_point)
    if len(skipped) == len(state):
        raise ValueError(f"{path} holds no floating-point tensor to fit"
                         + (f" (only {', '.join(skipped)})" if skipped else ""))
    if skipped:
        print(f"rf8hw fit: skipped {len(skipped)} non-float tensor(s): {', '.join(skipped)}", file=sys.stderr)
        state = {k: v for k, v in state.items() if v.dtype.is_floating_point}
    if args.which == "matrices" and not any(v.ndim >= 2 for v in state.values()):
        raise ValueError(f"{path} holds no floating-point matrix (ndim >= 2) to fit, only "
                         f"{len(state)} smaller tensor(s) ({', '.join(sorted(state)[:3])}"
                         f"{', ...' if len(state) > 3 else ''}); --which all fits them")
    groups = gg.group_params(state, by=args.by, which=args.which)
    fits = gg.fit_model(groups, by="tensor", which="all", method=args.method, on_error="record")
    good = {k: groups[k] for k, v in fits.items() if isinstance(v, gg.GGParams)}
    results, rows = {}, {}

    def table() -> None:
        """The fitted groups (``results``, filled by the plot) as ``rows``."""
        for key, data in groups.items():
            if key not in results:
                rows[key] = {"n": int(data.size), "error": fits[key]}
                continue
            r = results[key]
            p = r["gg"]
            rows[key] = {"n": int(data.size), "shape": p.shape, "scale": p.scale, "mean": p.mean,
                         "loglik_gg": r["loglik_gg"], "loglik_gauss": r["loglik_gauss"]}

    def plot(tmp: Path) -> None:
        results.update(gg.plot_fits(good, tmp, method=args.method))
        table()

    def text() -> str:
        return json.dumps(json_safe({"checkpoint": str(path), "by": args.by, "method": args.method,
                                     "groups": rows}), indent=1, allow_nan=False)

    if not good:
        table()
    files = {png: plot} if good else {}
    if out_json is not None:                   # after the plot, whose fits fill the rows
        files[out_json] = lambda tmp: tmp.write_text(text())
    written.extend(map(str, write_files(files)))   # the plot and the JSON as one unit
    width = max(len(k) for k in groups)
    print(f"{'group':<{width}} {'n':>9} {'shape':>7} {'scale':>10} {'mean':>10} {'llr/value':>9}")
    for key, row in rows.items():
        if "error" in row:
            print(f"{key:<{width}} {row['n']:>9} not GG-like: {row['error']}")
            continue
        llr = (row["loglik_gg"] - row["loglik_gauss"]) / row["n"]
        print(f"{key:<{width}} {row['n']:>9} {row['shape']:>7.3f} {row['scale']:>10.4g} {row['mean']:>10.3g} "
              f"{llr:>9.4f}")
    print(f"plot: {png}" if results else "plot: none (no group fits a GG)")
    return 0
