"""Full Hugging Face round trips of the real models (issue 27, item 4; ``docs/quantization.md``,
"Hugging Face checkpoints"):

* SmolLM2-135M-Instruct, every Linear in RF8 nearest including the tied ``lm_head`` (its config
  carries the GGUF loader's ``quantization_config``: saved as it was, ``from_pretrained`` loaded
  garbage without an error), ``save_pretrained`` -> ``AutoModelForCausalLM.from_pretrained``;
  logits on two 128-token windows of ``modern_english.txt`` compared with the quantized model's.
* all-MiniLM-L6-v2 in RF8 nearest as a ``SentenceTransformer``: ``save`` ->
  ``SentenceTransformer(dir)``; embeddings of the 70 shipped sentences compared.
* For each, the bfloat16 export (:func:`rf8hw.nn.quant.hf.export_float`) loaded by stock
  transformers in a child process that never imports rf8hw, its outputs compared with the
  fake-quant model's.

Writes ``docs/results/hf_roundtrip.json`` (``--json``).  Run:
``nice .venv/bin/python benchmarks/bench_hf_roundtrip.py``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import torch

import rf8hw
from rf8hw.files import write_files
from rf8hw.nn import quant
from rf8hw.zoo import minilm, smollm2

STOCK_SMOLLM2 = """
import sys, torch, transformers
x = torch.load(sys.argv[2], weights_only=True)
m = transformers.AutoModelForCausalLM.from_pretrained(sys.argv[1])
with torch.no_grad():
    torch.save(m(input_ids=x).logits, sys.argv[3])
assert 'rf8hw' not in sys.modules
"""


def _diff(a, b) -> dict:
    return {"identical": bool(torch.equal(a, b)), "max_abs_diff": float((a - b).abs().max())}


def smollm2_part(work: Path) -> dict:
    from transformers import AutoModelForCausalLM

    from rf8hw.nn.quant.hf import export_float

    t0 = time.perf_counter()
    m, tok = smollm2.load()
    before = dict(m.config.quantization_config)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rf8hw.quantize_(m, rf8hw.QuantConfig(fmt="rf8"), quantize_tied_lm_head=True)
    x = smollm2.windows(tok, 2, 128, texts=("modern",))
    with torch.no_grad():
        ref = m(input_ids=x).logits
    m.save_pretrained(work / "smollm2")
    back = AutoModelForCausalLM.from_pretrained(work / "smollm2")
    with torch.no_grad():
        out = back(input_ids=x).logits
    export_float(m, work / "smollm2_bf16")
    torch.save(x, work / "x.pt")
    subprocess.run([sys.executable, "-c", STOCK_SMOLLM2, str(work / "smollm2_bf16"), str(work / "x.pt"),
                    str(work / "y.pt")], check=True, capture_output=True)
    stock = torch.load(work / "y.pt", weights_only=True)
    return {"layers": len(quant.quant_layers(m)), "config_before": before,
            "from_pretrained": _diff(out, ref), "bf16_export_stock_transformers": _diff(stock, ref),
            "seconds": round(time.perf_counter() - t0, 1)}


def minilm_part(work: Path) -> dict:
    from sentence_transformers import SentenceTransformer

    t0 = time.perf_counter()
    st = minilm.load_model()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rf8hw.quantize_(st)
    texts = minilm.sentences()
    ref = minilm.embed(st, texts)
    st.save(str(work / "minilm"))
    back = SentenceTransformer(str(work / "minilm"), device="cpu")
    return {"layers": len(quant.quant_layers(st)), "sentences": len(texts),
            "sentence_transformer_dir": _diff(minilm.embed(back, texts), ref),
            "seconds": round(time.perf_counter() - t0, 1)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--json", default="docs/results/hf_roundtrip.json")
    args = ap.parse_args(argv)
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as d:
        res = {"smollm2": smollm2_part(Path(d)), "minilm": minilm_part(Path(d))}
    print(json.dumps(res, indent=2))
    write_files({Path(args.json): json.dumps(res, indent=2) + "\n"})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
