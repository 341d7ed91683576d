"""Hugging Face integration (rf8hw.nn.quant.hf): save_pretrained / from_pretrained of rf8hw-quantized
models, outputs identical after the round trip; the stock loader (no rf8hw import) refuses loudly;
the checkpoint checks; the lazy registration of ``import rf8hw``.

Fast lane: tiny models built offline from transformers configs.  The real models (slices of
SmolLM2-135M and all-MiniLM-L6-v2) are marked slow; the full round trips are in
``benchmarks/bench_hf_roundtrip.py``."""

import json
import subprocess
import sys
import warnings

import pytest
import torch

import rf8hw
from rf8hw.nn import quant
from rf8hw.nn.quant import QuantConfig, QuantLinear

transformers = pytest.importorskip("transformers")


def _quantize(model, config=None, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return rf8hw.quantize_(model, config, **kw)


def _llama(tied=True):
    torch.manual_seed(0)
    cfg = transformers.LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                   num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=tied)
    return transformers.LlamaForCausalLM(cfg).eval()


def _gpt2():
    torch.manual_seed(0)
    return transformers.GPT2LMHeadModel(transformers.GPT2Config(n_layer=1, n_embd=32, n_head=2, vocab_size=64,
                                                                n_positions=16)).eval()


def _logits(m, x):
    with torch.no_grad():
        return m(input_ids=x).logits


X = torch.randint(0, 64, (2, 10), generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize("config, kw", [
    (QuantConfig(), {}),
    (QuantConfig(scale_search=True), {"quantize_tied_lm_head": True}),
    (QuantConfig(fmt="int8"), {}),
    (QuantConfig(fmt="fp8_e4m3"), {"quantize_tied_lm_head": True}),
], ids=["rf8", "rf8-scale-search-lm-head", "int8", "fp8-lm-head"])
def test_llama_round_trip_is_identical(tmp_path, config, kw):
    q = _quantize(_llama(), config, **kw)
    ref = _logits(q, X)
    q.save_pretrained(tmp_path)
    qc = json.loads((tmp_path / "config.json").read_text())["quantization_config"]
    assert qc["quant_method"] == "rf8hw" and qc["format"] == "rf8hw-hf-checkpoint" and qc["version"] == 1
    assert set(qc["layers"]) == set(quant.quant_layers(q))
    back = transformers.AutoModelForCausalLM.from_pretrained(tmp_path)
    assert set(quant.quant_layers(back)) == set(quant.quant_layers(q))
    for name, layer in quant.quant_layers(back).items():
        orig = q.get_submodule(name)
        assert torch.equal(layer.codes, orig.codes)
        assert layer.layer_meta() == orig.layer_meta()
    assert torch.equal(_logits(back, X), ref)
    # and once more: a loaded model saves and loads the same
    back.save_pretrained(tmp_path / "again")
    again = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "again")
    assert torch.equal(_logits(again, X), ref)


def test_gpt2_conv1d_and_automodel_round_trip(tmp_path):
    q = _quantize(_gpt2(), QuantConfig(), quantize_tied_lm_head=True)
    ref = _logits(q, X)
    q.save_pretrained(tmp_path)
    back = transformers.AutoModelForCausalLM.from_pretrained(tmp_path)
    assert isinstance(back.transformer.h[0].attn.c_attn, QuantLinear)
    assert torch.equal(_logits(back, X), ref)
    base = transformers.AutoModel.from_pretrained(tmp_path)          # the headless model of the same files
    with torch.no_grad():
        assert torch.equal(base(input_ids=X).last_hidden_state, q.transformer(input_ids=X).last_hidden_state)


def test_a_foreign_quantization_config_is_replaced(tmp_path):
    """SmolLM2's case: its config carries the GGUF loader's quantization_config, which described the
    file it was read from; saved as is, from_pretrained loaded garbage without an error."""
    m = _llama()
    m.config.quantization_config = {"dequantize": False, "gguf_file": "x.gguf", "quant_method": "gguf"}
    q = _quantize(m)
    ref = _logits(q, X)
    q.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["quantization_config"]["quant_method"] == "rf8hw"
    assert torch.equal(_logits(transformers.AutoModelForCausalLM.from_pretrained(tmp_path), X), ref)


def test_load_quantized_marks_the_model_for_save_pretrained(tmp_path):
    q = _quantize(_llama())
    quant.save_quantized(q, tmp_path / "q.safetensors")
    float_model = _llama()
    back = quant.load_quantized(tmp_path / "q.safetensors", model=float_model)
    assert getattr(float_model.config, "quantization_config", None) is None
    back.save_pretrained(tmp_path / "hf")
    assert torch.equal(_logits(transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "hf"), X),
                       _logits(q, X))


def test_stock_transformers_refuses_the_checkpoint(tmp_path):
    """A process that does not import rf8hw: unknown quant_method (warned), then the guard tensors'
    size mismatch is a RuntimeError, never random weights."""
    _quantize(_llama()).save_pretrained(tmp_path)
    code = ("import sys, transformers\n"
            f"transformers.AutoModelForCausalLM.from_pretrained({str(tmp_path)!r})\n"
            "assert 'rf8hw' not in sys.modules\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode != 0
    assert "RuntimeError: You set `ignore_mismatched_sizes` to `False`" in r.stderr
    assert "Unknown quantization type, got rf8hw" in r.stderr


def _saved(tmp_path):
    q = _quantize(_llama())
    q.save_pretrained(tmp_path)
    return q


def _rewrite(path, edit):
    from safetensors.torch import load_file, save_file

    state = load_file(str(path))
    edit(state)
    save_file(state, str(path), metadata={"format": "pt"})


@pytest.mark.parametrize("edit, message", [
    (lambda s: s.pop("model.layers.0.mlp.up_proj.codes"),
     r"model\.layers\.0\.mlp\.up_proj\.codes \(U8 \[32, 64\]\) is not in .*model\.safetensors; layer "
     r"'model\.layers\.0\.mlp\.up_proj' would be left without its codes"),
    (lambda s: s.update({"model.layers.0.mlp.up_proj.exponent": torch.zeros(64, dtype=torch.int64)}),
     r"model\.layers\.0\.mlp\.up_proj\.exponent is I64 \[64\], layer 'model\.layers\.0\.mlp\.up_proj' "
     r"needs I32 \[64\]"),
    (lambda s: s["model.layers.1.self_attn.o_proj.exponent"].fill_(500),
     r"layer 'model\.layers\.1\.self_attn\.o_proj': exponent\[0\] must be an integer in -110\.\.127, "
     r"not 500"),
])
def test_a_tampered_checkpoint_is_refused(tmp_path, edit, message):
    _saved(tmp_path)
    _rewrite(tmp_path / "model.safetensors", edit)
    with pytest.raises(ValueError, match=message):
        transformers.AutoModelForCausalLM.from_pretrained(tmp_path)


@pytest.mark.parametrize("edit, message", [
    (lambda qc: qc.update(version=7),
     r"is not an rf8hw-hf-checkpoint v1 config \(format='rf8hw-hf-checkpoint', version=7\)"),
    (lambda qc: qc.update(extra=1), r"unknown keys extra \(it has quant_method, format, version, layers\)"),
    (lambda qc: qc["layers"]["lm_head" if "lm_head" in qc["layers"] else "model.layers.0.mlp.up_proj"]
     .update(fmt="int4"), r"fmt must be one of"),
    (lambda qc: qc["layers"].update({"model.norm": qc["layers"]["model.layers.0.mlp.up_proj"]}),
     r"layer 'model\.norm' is a 32x64 QuantLinear; the model's 'model\.norm' is a LlamaRMSNorm, "
     r"not linear-like"),
])
def test_a_bad_quantization_config_is_refused(tmp_path, edit, message):
    _saved(tmp_path)
    cfg = json.loads((tmp_path / "config.json").read_text())
    edit(cfg["quantization_config"])
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match=message):
        transformers.AutoModelForCausalLM.from_pretrained(tmp_path)


def test_a_dtype_other_than_float32_is_refused(tmp_path):
    _saved(tmp_path)
    with pytest.raises(ValueError, match=r"loads in float32 .* not dtype torch\.bfloat16"):
        transformers.AutoModelForCausalLM.from_pretrained(tmp_path, dtype=torch.bfloat16)


def test_registration_is_lazy_and_works_in_either_import_order():
    """import rf8hw imports neither torch nor transformers; the config is registered whether
    transformers' quantizer dispatch is imported after rf8hw or before it."""
    check = ("from transformers.quantizers.auto import AUTO_QUANTIZER_MAPPING as M\n"
             "assert M['rf8hw'].__name__ == 'RF8HfQuantizer', M.get('rf8hw')\n")
    light = "import sys, rf8hw\nassert 'torch' not in sys.modules and 'transformers' not in sys.modules\n"
    for code in (light + check, "import transformers.quantizers.auto\nimport rf8hw\n" + check,
                 "import rf8hw\nfrom transformers import AutoModelForCausalLM\n"
                 "AutoModelForCausalLM.from_pretrained\n" + check):
        r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stderr[-2000:]


# ------------------------------------------------------------------------------ bfloat16 export

STOCK = ("import sys, torch, transformers\n"
         "m = transformers.AutoModelForCausalLM.from_pretrained(sys.argv[1])\n"
         "assert 'rf8hw' not in sys.modules\n"
         "assert m.config.dtype == torch.float32 and not hasattr(m.config, 'quantization_config')\n"
         "x = torch.load(sys.argv[2], weights_only=True)\n"
         "with torch.no_grad():\n"
         "    torch.save(m(input_ids=x).logits, sys.argv[3])\n")


def _stock_logits(tmp_path, export_dir):
    torch.save(X, tmp_path / "x.pt")
    r = subprocess.run([sys.executable, "-c", STOCK, str(export_dir), str(tmp_path / "x.pt"),
                        str(tmp_path / "y.pt")], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    return torch.load(tmp_path / "y.pt", weights_only=True)


@pytest.mark.parametrize("make, kw", [(_llama, {"quantize_tied_lm_head": True}), (_llama, {}),
                                      (_gpt2, {"quantize_tied_lm_head": True})],
                         ids=["llama-lm-head", "llama-tied-float-head", "gpt2-conv1d"])
def test_bf16_export_is_exact_and_loads_with_stock_transformers(tmp_path, make, kw):
    from safetensors import safe_open

    from rf8hw.nn.quant.hf import dequantized_weight, export_float

    q = _quantize(make(), **kw)
    res = export_float(q, tmp_path / "bf16")
    assert res["dtype"] == "bfloat16" and res["layers"] == len(quant.quant_layers(q))
    with safe_open(str(tmp_path / "bf16" / "model.safetensors"), "pt") as f:
        for name, layer in quant.quant_layers(q).items():
            w = f.get_tensor(f"{name}.weight")
            assert w.dtype == torch.bfloat16
            conv = type(make().get_submodule(name)).__name__ == "Conv1D"
            w32 = (w.T if conv else w).float()
            # value by value: the bf16 value is the RF8 value, decoded independently by the codec
            from rf8hw.format import codec
            ref = codec.decode(layer.codes.numpy(), layer.exponent.numpy().astype("int64")).T
            assert torch.equal(w32, torch.from_numpy(ref).float())
            assert torch.equal(w32, dequantized_weight(layer))
    assert torch.equal(_stock_logits(tmp_path, tmp_path / "bf16"), _logits(q, X))


def test_bf16_export_of_smoothed_layers_matches_fake_quant(tmp_path):
    from rf8hw.nn.quant.hf import export_float

    q = _quantize(_llama(), QuantConfig(), smooth=lambda m: m(input_ids=X))
    assert any(layer.smooth is not None for layer in quant.quant_layers(q).values())
    export_float(q, tmp_path / "bf16")
    assert torch.equal(_stock_logits(tmp_path, tmp_path / "bf16"), _logits(q, X))


@pytest.mark.parametrize("config, reason", [
    (QuantConfig(scale_search=True), "its per-column scale \\(scale search\\) is not a power of two"),
    (QuantConfig(fmt="int8"), "its int8 scale is not a power of two"),
])
def test_bf16_export_refuses_inexact_weights_and_float32_is_exact(tmp_path, config, reason):
    from rf8hw.nn.quant.hf import export_float

    q = _quantize(_llama(), config)
    with pytest.raises(ValueError, match=r"layer '[\w.]+': \d+ of \d+ dequantized weights are not exact in "
                                         r"bfloat16 \(first \[\d+, \d+\] = .*\): " + reason
                                         + r"; export in float32"):
        export_float(q, tmp_path / "bf16")
    assert not (tmp_path / "bf16" / "model.safetensors").exists()
    export_float(q, tmp_path / "f32", dtype="float32")
    assert torch.equal(_stock_logits(tmp_path, tmp_path / "f32"), _logits(q, X))


def test_cli_export(tmp_path):
    from rf8hw.cli import main

    q = _quantize(_llama(), quantize_tied_lm_head=True)
    q.save_pretrained(tmp_path / "q")
    (tmp_path / "q" / "tokenizer.json").write_text("{}")
    assert main(["export", str(tmp_path / "q"), "--out", str(tmp_path / "bf16")]) == 0
    assert (tmp_path / "bf16" / "tokenizer.json").read_text() == "{}"
    assert torch.equal(_stock_logits(tmp_path, tmp_path / "bf16"), _logits(q, X))


@pytest.mark.parametrize("argv, message", [
    (["{tmp}/nowhere", "--out", "{tmp}/o"], "source '{tmp}/nowhere' is not a directory"),
    (["{tmp}", "--out", "{tmp}/o"], "source '{tmp}' has no config.json"),
    (["{tmp}/float", "--out", "{tmp}/o"], "source '{tmp}/float' is not an rf8hw checkpoint"),
    (["{tmp}/q", "--out", "{tmp}/q"], "out '{tmp}/q' is the source directory"),
    (["{tmp}/q", "--out", "{tmp}/q/config.json"], "out '{tmp}/q/config.json' exists and is not a directory"),
    (["{tmp}/q", "--out", "{tmp}/o", "--dtype", "float16"], "argument --dtype: invalid choice: 'float16'"),
])
def test_cli_export_bad_input_is_one_line(tmp_path, capsys, argv, message):
    from rf8hw.cli import main

    _llama().save_pretrained(tmp_path / "float")
    (tmp_path / "q").mkdir()
    qc = {"quantization_config": {"quant_method": "rf8hw"}}
    (tmp_path / "q" / "config.json").write_text(json.dumps(qc))
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    capsys.readouterr()
    if "--dtype" in argv:                        # argparse's usage error: exit status 2 too
        with pytest.raises(SystemExit) as info:
            main(["export", *argv])
        assert info.value.code == 2
    else:
        assert main(["export", *argv]) == 2
    err = capsys.readouterr().err
    assert message.replace("{tmp}", str(tmp_path)) in err and len(err.strip().splitlines()) == 1


# ----------------------------------------------------------------------------------- real models

@pytest.mark.slow
def test_smollm2_slice_round_trip_is_identical(tmp_path):
    """The first two decoder layers of SmolLM2-135M (its config carries the GGUF loader's
    quantization_config: the case that loaded garbage silently), every Linear in RF8 including the
    tied lm_head, per-column scale search."""
    from rf8hw.zoo import smollm2

    m, tok = smollm2.load()
    qc = m.config.quantization_config      # a dict, or transformers' GgufConfig once registered
    assert (qc["quant_method"] if isinstance(qc, dict) else str(qc.quant_method)).lower().endswith("gguf")
    m.model.layers = m.model.layers[:2]
    m.config.num_hidden_layers = 2
    m.config.layer_types = m.config.layer_types[:2] if getattr(m.config, "layer_types", None) else None
    q = _quantize(m, QuantConfig(scale_search=True), quantize_tied_lm_head=True)
    x = smollm2.windows(tok, 2, 32, texts=("modern",))
    ref = _logits(q, x)
    q.save_pretrained(tmp_path)
    back = transformers.AutoModelForCausalLM.from_pretrained(tmp_path)
    assert len(quant.quant_layers(back)) == 2 * 7 + 1
    assert torch.equal(_logits(back, x), ref)


@pytest.mark.slow
def test_minilm_sentence_transformer_directory_round_trip_is_identical(tmp_path):
    from sentence_transformers import SentenceTransformer

    from rf8hw.zoo import minilm

    st = _quantize(minilm.load_model())
    texts = minilm.sentences(8)
    ref = minilm.embed(st, texts)
    st.save(str(tmp_path))
    back = SentenceTransformer(str(tmp_path), device="cpu")
    assert len(quant.quant_layers(back)) == 37
    assert torch.equal(minilm.embed(back, texts), ref)
