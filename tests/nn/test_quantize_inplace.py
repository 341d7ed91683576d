"""rf8hw.quantize_ (in place, filter_fn, warnings, tied weights, dtypes) and the weight caches."""

import copy
import warnings

import pytest
import torch
import torch.nn as nn

import rf8hw
from rf8hw.nn import quant
from rf8hw.nn.quant import QuantConfig, QuantLinear


class Conv1D(nn.Module):
    """The Hugging Face GPT-2 layer, re-declared (rf8hw recognises it by name and shape)."""

    def __init__(self, nf, nx):
        super().__init__()
        self.nf = nf
        self.weight = nn.Parameter(torch.randn(nx, nf))
        self.bias = nn.Parameter(torch.randn(nf))

    def forward(self, x):
        return torch.addmm(self.bias, x.reshape(-1, x.shape[-1]), self.weight).reshape(*x.shape[:-1], self.nf)


class MyLinear(nn.Linear):
    pass


class LM(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(11, 8)
        self.fc = MyLinear(8, 8)
        self.c = Conv1D(8, 8)
        self.conv = nn.Conv2d(1, 1, 3)
        self.lm_head = nn.Linear(8, 11, bias=False)
        self.lm_head.weight = self.emb.weight            # tied

    def forward(self, ids):
        return self.lm_head(self.c(self.fc(self.emb(ids))))


def test_default_filter_takes_subclasses_and_conv1d_skips_tied_head_and_warns():
    torch.manual_seed(0)
    m = LM()
    ids = torch.tensor([[1, 2, 3]])
    with pytest.warns(UserWarning, match=r"left in float: lm_head \(weight tied to an nn.Embedding.*"
                                         r"modules of type Conv2d \(not linear-like\)"):
        assert rf8hw.quantize_(m) is m
    assert isinstance(m.fc, QuantLinear) and isinstance(m.c, QuantLinear) and type(m.lm_head) is nn.Linear
    # Conv1D's weight is already [K, N]: the decoded weight is the RF8 image of that matrix
    torch.manual_seed(0)
    ref = LM()
    codes, params = quant.encode_weight(ref.c.weight.detach().numpy(), "rf8", "channel")
    assert torch.equal(m.c.codes, torch.from_numpy(codes))
    codes, _ = quant.encode_weight(ref.fc.weight.detach().numpy().T, "rf8", "channel")
    assert torch.equal(m.fc.codes, torch.from_numpy(codes))
    assert m(ids).shape == (1, 3, 11)
    with pytest.raises(ValueError, match=r"^model is already quantized \(2 QuantLinear layers, first 'fc'\)"):
        rf8hw.quantize_(m)


def test_tied_head_on_switch_and_shared_weights_share_one_layer():
    m = LM()
    m.config = type("Cfg", (), {"tie_word_embeddings": True})()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rf8hw.quantize_(m, quantize_tied_lm_head=True)
    assert isinstance(m.lm_head, QuantLinear) and m.config.tie_word_embeddings is False
    assert isinstance(m.emb.weight, nn.Parameter)            # the embedding stays float
    seq = nn.Sequential(nn.Linear(4, 4, bias=False), nn.ReLU(), nn.Linear(4, 4, bias=False))
    seq[2].weight = seq[0].weight
    rf8hw.quantize_(seq)
    assert seq[0] is seq[2]


def test_nothing_matched_and_bad_filter_are_errors():
    with pytest.raises(ValueError, match=r"^nothing to quantize in Sequential: no selected nn.Linear / "
                                         r"Conv1D layer \(module types present: Conv2d, ReLU, Sequential\)$"):
        rf8hw.quantize_(nn.Sequential(nn.Conv2d(1, 1, 3), nn.ReLU()))
    with pytest.raises(ValueError, match=r"^filter_fn selected '1', a ReLU; only nn.Linear"):
        rf8hw.quantize_(nn.Sequential(nn.Linear(2, 2), nn.ReLU()), filter_fn=lambda m, n: True)
    m = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 2))
    with pytest.warns(UserWarning, match=r"left in float: 1 \(excluded by filter_fn\)"):
        rf8hw.quantize_(m, filter_fn=lambda mod, fqn: fqn == "0")
    assert isinstance(m[0], QuantLinear) and type(m[1]) is nn.Linear
    with pytest.raises(ValueError, match=r"^fmt must be one of 'rf8', 'int8', 'fp8_e4m3', 'apot', "
                                         r"not 'int4'$"):
        QuantConfig(fmt="int4")
    with pytest.raises(ValueError, match=r"^act_granularity must be one of 'token', 'tensor', not 'row'$"):
        QuantConfig(act_granularity="row")


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64])
def test_half_and_double_models_compute_in_float32_and_return_their_dtype(dtype):
    torch.manual_seed(0)
    f32 = nn.Sequential(nn.Linear(16, 8), nn.GELU(), nn.Linear(8, 4))
    m = rf8hw.quantize_(copy.deepcopy(f32).to(dtype))
    x = torch.randn(3, 16)
    for mode in ("fake", "bitexact"):
        quant.set_mode(m, mode)
        y = m(x.to(dtype))
        assert y.dtype == dtype and torch.isfinite(y).all()
    quant.set_mode(m, "fake")
    q = m[0]                  # one layer: float32 compute on the input's float32 values, cast back
    xd = x.to(dtype)
    expect = torch.nn.functional.linear(xd.float(), q.weight_kn().T.contiguous(), q.bias).to(dtype)
    assert torch.equal(q(xd), expect) and q.bias.dtype == torch.float32


def test_caches_are_built_once_and_invalidated_by_a_write():
    q = QuantLinear.from_linear(nn.Linear(8, 4), "rf8")
    w1 = q.weight_kn()
    assert q.weight_kn() is w1                               # cached
    x = torch.randn(2, 8)
    y1 = q(x)
    q.codes[0, 0] = 0x00                                     # in-place write: version bump
    assert q.weight_kn() is not w1 and q.weight_kn()[0, 0] == 0
    assert not torch.equal(q(x), y1) or w1[0, 0] == 0
    q.mode = "bitexact"
    w_int, _ = q._weight_int()
    q.load_state_dict(q.state_dict())                       # copy_ bumps the versions too
    assert q._weight_int()[0] is not w_int


def test_smoothing_is_an_exact_power_of_two_rescaling_and_survives_save_load(tmp_path):
    torch.manual_seed(0)
    m = nn.Sequential(nn.Linear(16, 8), nn.GELU(), nn.Linear(8, 4))
    x = torch.randn(20, 16)
    x[:, 3] *= 50                                          # an outlier channel
    q = rf8hw.quantize_(copy.deepcopy(m), smooth=lambda mm: mm(x))
    s0 = q[0].smooth
    assert torch.equal(s0, torch.exp2(torch.log2(s0).round())) and s0[3] == s0.max() > s0.min()
    # the codes are those of diag(s) W, and the layer computes (x / s) @ decode(codes) exactly
    codes, _ = quant.encode_weight((m[0].weight.detach().T * s0[:, None]).numpy(), "rf8", "channel")
    assert torch.equal(q[0].codes, torch.from_numpy(codes))
    expect = torch.nn.functional.linear(x / s0, q[0].weight_kn().T.contiguous(), q[0].bias)
    assert torch.equal(q[0](x), expect)
    quant.set_mode(q, "bitexact")
    y = q(x)
    quant.save_quantized(q, tmp_path / "q.safetensors")
    back = quant.set_mode(quant.load_quantized(tmp_path / "q.safetensors", model=m), "bitexact")
    assert torch.equal(back[0].smooth, s0) and torch.equal(back(x), y)
    with pytest.raises(ValueError, match=r"^smooth_alpha must be a finite number >= 0, not -1"):
        rf8hw.quantize_(copy.deepcopy(m), smooth=lambda mm: mm(x), smooth_alpha=-1)


def test_calibrate_takes_any_callable_running_the_model():
    m = rf8hw.quantize_(nn.Sequential(nn.Linear(4, 3)))
    batch = {"input": torch.tensor([[1.0, -5.0, 2.0, 0.5]])}
    levels = quant.calibrate(m, lambda model: model(batch["input"]))     # the user's own format
    assert levels == {"0": 5.0}
    assert quant.calibrate(m, [torch.full((1, 4), 2.0), torch.full((1, 4), -3.0)]) == {"0": 3.0}
