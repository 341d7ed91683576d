"""The real pretrained models that ship offline (all-MiniLM-L6-v2, SmolLM2-135M-Instruct) on small
samples: offline loading, quantize_, and the consistency of the bit-exact path on a real layer of
each (exactly the float64 product of its RF8 weights and its INT8 activations with the same scales).

SmolLM2's weights are a dequantized 4-bit (Q4_1) model, lm_head tied to the embedding."""

import copy
import os
import warnings

import numpy as np
import pytest
import torch

import rf8hw
from rf8hw.format import codec, golden
from rf8hw.nn import quant
from rf8hw.nn.quant import QuantConfig, QuantLinear

pytest.importorskip("transformers")
from rf8hw.zoo import minilm, smollm2

pytestmark = pytest.mark.slow          # loads the real pretrained models


@pytest.fixture(scope="module")
def mini():
    return minilm.load_model()


@pytest.fixture(scope="module")
def smol():
    return smollm2.load()


def _layer_inputs(model, layer, run):
    seen = []
    h = layer.register_forward_pre_hook(lambda m, a: seen.append(a[0].detach().clone()))
    try:
        run(model)
    finally:
        h.remove()
    return seen[0]


def _check_layer_consistency(q: QuantLinear, x: torch.Tensor):
    """q(x) in bit-exact per-token mode == float32((a @ W_hat) * s) + bias, W_hat the decoded RF8
    weights (float64), a / s an independent per-token INT8 quantization of x; no overflow."""
    q.mode, q.act_granularity = "bitexact", "token"
    q.overflow_stats = type(q.overflow_stats)()
    x2 = x.reshape(-1, x.shape[-1]).double().numpy()
    s = np.array([[float(np.float32(np.abs(r).max() / 127))] for r in x2])
    a = np.clip(np.rint(x2 / s), -127, 127)
    w_hat = codec.decode(q.codes.numpy(), q.exponent.numpy().astype(np.int64)).astype(np.float64)
    ref = ((a @ w_hat) * s).astype(np.float32)
    if q.bias is not None:
        ref = ref + q.bias.detach().numpy()
    y = q(x).reshape(-1, q.out_features)
    assert os.environ.get("HF_HUB_OFFLINE") == "1"
    assert q.overflow_stats.events == 0 and q.overflow_stats.calls == 1
    assert torch.equal(y, torch.from_numpy(ref))
    # and the accumulator is what the array's golden model returns
    acc = golden.matmul(a.astype(np.int64), q.codes.numpy(), acc_bits=40)
    assert np.array_equal(acc.astype(np.float64),
                          a @ codec.decode(q.codes.numpy(),
                                           18 * np.ones(q.out_features, np.int64)).astype(np.float64))


def test_minilm_offline_quantize_and_a_real_layer_is_exact(mini):
    texts = minilm.sentences(4)
    assert len(minilm.sentences()) >= 64
    q = copy.deepcopy(mini)
    with warnings.catch_warnings():
        warnings.simplefilter("error")                    # every Linear is taken: no warning
        rf8hw.quantize_(q, QuantConfig())
    layers = quant.quant_layers(q)
    assert len(layers) == 37
    name = next(n for n in layers if n.endswith("encoder.layer.0.output.dense"))   # the 175-sigma outlier
    x = _layer_inputs(q, layers[name], lambda m: minilm.embed(m, texts))
    _check_layer_consistency(layers[name], x)
    metric = minilm.Metric(mini, texts)
    assert metric(mini)["min_cosine"] > 0.99999
    assert metric(q)["mean_cosine"] > 0.99                 # RF8 weight-only
    quant.set_mode(q, "bitexact")
    r = metric(q)
    assert r["mean_cosine"] > 0.98 and quant.overflow_report(q)["total"]["events"] == 0


def test_smollm2_offline_tied_head_and_a_real_layer_is_exact(smol):
    model, tok = smol
    assert model.lm_head.weight is model.model.embed_tokens.weight
    wins = smollm2.windows(tok, 1, 32, texts=("modern",))
    q = copy.deepcopy(model)
    with pytest.warns(UserWarning, match=r"lm_head \(weight tied to an nn.Embedding"):
        rf8hw.quantize_(q, QuantConfig())
    assert type(q.lm_head) is torch.nn.Linear and len(quant.quant_layers(q)) == 210
    layer = q.model.layers[3].mlp.down_proj
    x = _layer_inputs(q, layer, lambda m: m(input_ids=wins))
    _check_layer_consistency(layer, x)
    ppl = smollm2.Perplexity(wins)
    p32, prf8 = ppl(model)["perplexity"], ppl(q)["perplexity"]
    assert 1 < p32 < 200 and abs(prf8 / p32 - 1) < 0.1
    with pytest.raises(ValueError, match="already quantized"):
        rf8hw.quantize_(q)


def test_smollm2_gemm_capture_counts_attention_products(smol):
    """At 64 tokens: 30 layers x 9 heads x (QK^T + PV) = 141.6 M off-array MACs; 210 + lm_head on-array."""
    from rf8hw.accel import gemms

    model, tok = smol
    ids = smollm2.windows(tok, 1, 64, texts=("modern",))
    got = gemms.capture(model, lambda m: m(input_ids=ids))
    s = gemms.summarize(got)
    assert s["macs_off_array"] == 30 * 9 * 2 * 64 ** 3 == 141_557_760
    assert s["gemms_on_array"] == 211
    assert sum(g.macs for g in got if g.on_array) == 64 * sum(
        mod.in_features * mod.out_features for mod in model.modules() if isinstance(mod, torch.nn.Linear))
