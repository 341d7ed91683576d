"""save_quantized / load_quantized: the pair of files is tied (SHA-256, header metadata), the layout
and values are checked, malformed sidecars and tampered tensors are one ValueError naming the file
and the layer; Hugging Face GPT-2 (Conv1D, tied head) round-trips; foreign loaders fail loudly."""

import json
import warnings

import pytest
import torch
import torch.nn as nn
from safetensors import safe_open
from safetensors.torch import load_file, save_file

import rf8hw
from rf8hw.files import sha256_file
from rf8hw.format import spec
from rf8hw.nn import quant
from rf8hw.zoo import mlp_digits

ZOO = {"name": "mlp_digits", "config": {"n_hidden": 16}}


def _saved(tmp_path, fmt="rf8", **kw):
    torch.manual_seed(0)
    q = rf8hw.quantize(mlp_digits.build(mlp_digits.MLPConfig(n_hidden=16)), fmt=fmt, **kw)
    path = tmp_path / "q.safetensors"
    quant.save_quantized(q, path, model_info=ZOO)
    return q, path


def _rewrite(path, state_fn=None, sidecar_fn=None, rehash=True):
    """Tamper with a saved pair: change the tensors (keeping the header metadata) and/or the
    sidecar, then (``rehash``) make the sidecar's hash match again, so the deeper checks run."""
    sidecar = path.with_suffix(".json")
    meta = json.loads(sidecar.read_text())
    if state_fn is not None:
        with safe_open(str(path), "pt") as f:
            header = f.metadata()
        state = load_file(str(path))
        state_fn(state)
        save_file(state, str(path), metadata=header)
    if sidecar_fn is not None:
        meta = sidecar_fn(meta) or meta
    if rehash:
        meta["tensors_sha256"] = sha256_file(path)
    sidecar.write_text(json.dumps(meta))


def test_round_trip_with_hash_and_header_metadata(tmp_path):
    q, path = _saved(tmp_path)
    meta = json.loads(path.with_suffix(".json").read_text())
    import hashlib

    assert meta["tensors_sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    with safe_open(str(path), "pt") as f:
        assert json.loads(f.metadata()["layers"]) == meta["layers"]
    back = quant.load_quantized(path)
    x = torch.rand(3, 64)
    assert torch.equal(back(x)[0], q(x)[0])
    assert not list(tmp_path.glob(".*.tmp"))                       # temporaries renamed away


def test_a_json_path_is_refused_not_overwritten(tmp_path):
    q, _ = _saved(tmp_path)
    with pytest.raises(ValueError, match=r"^save_quantized path '.*model\.json' ends in \.json, "
                                         r"the suffix of its sidecar "
                                         r"\(the sidecar would overwrite the tensors\)"):
        quant.save_quantized(q, tmp_path / "model.json")
    assert not (tmp_path / "model.json").exists()
    with pytest.raises(ValueError, match=r"is a directory"):
        quant.save_quantized(q, tmp_path)
    with pytest.raises(ValueError, match=r"is not a directory"):
        quant.save_quantized(q, tmp_path / "q.safetensors" / "x.safetensors")
    with pytest.raises(ValueError, match=r"is the sidecar; give the \.safetensors file"):
        quant.load_quantized(tmp_path / "q.json")


def test_relabelled_format_and_changed_tensors_are_refused(tmp_path):
    _, path = _saved(tmp_path, fmt="int8")

    def relabel(meta):
        meta["layers"]["fc1"]["fmt"] = "apot"              # same buffers, other decoding (issue: off by 0.34)
    _rewrite(path, sidecar_fn=relabel)
    with pytest.raises(ValueError, match=r"^quantized model sidecar .*q\.json: its layers \(or aliases\) "
                                         r"disagree with those recorded in .*q\.safetensors$"):
        quant.load_quantized(path)

    _, path = _saved(tmp_path, fmt="int8")
    _rewrite(path, state_fn=lambda s: s["fc2.scale"].mul_(2), rehash=False)
    with pytest.raises(ValueError, match=r"^quantized model file .*q\.safetensors: its SHA-256 "
                                         r"[0-9a-f]{16}\.\.\. is not the sidecar's tensors_sha256"):
        quant.load_quantized(path)


def _set(key, fn):
    def f(state):
        state[key] = fn(state[key])
    return f


def _poke(key, index, value):
    def f(state):
        state[key][index] = value
    return f


@pytest.mark.parametrize("fmt, state_fn, message", [
    ("rf8", _poke("fc1.exponent", 3, spec.X_MAX + 1),
     rf"layer 'fc1': exponent\[3\] must be an integer in {spec.X_MIN}\.\.{spec.X_MAX}, "
     rf"not {spec.X_MAX + 1}$"),
    ("rf8", _poke("fc2.exponent", 0, spec.X_MIN - 1), r"layer 'fc2': exponent\[0\] must be an integer in"),
    ("int8", _poke("fc1.scale", 2, float("nan")),
     r"layer 'fc1': scale\[2\] must be a finite number > 0, not nan$"),
    ("int8", _poke("fc1.scale", 0, -1.0), r"layer 'fc1': scale\[0\] must be a finite number > 0, not -1\.0$"),
    ("apot", _poke("fc2.scale", 1, 0.0), r"layer 'fc2': scale\[1\] must be a finite number > 0, not 0\.0$"),
    ("fp8_e4m3", _poke("fc1.scale", 0, float("inf")),
     r"layer 'fc1': scale\[0\] must be a finite number > 0, not inf$"),
    ("int8", _poke("fc2.codes", (1, 2), 0x80),
     r"layer 'fc2': code 0x80 \(-128\) at \[1, 2\] is not an INT8 weight code "
     r"\(the symmetric format uses -127\.\.127\)$"),
    ("fp8_e4m3", _poke("fc1.codes", (0, 5), 0x7F), r"layer 'fc1': code 0x7f at \[0, 5\] is an FP8-E4M3 NaN"),
    ("fp8_e4m3", _poke("fc1.codes", (4, 0), 0xFF), r"layer 'fc1': code 0xff at \[4, 0\] is an FP8-E4M3 NaN"),
    ("rf8", _set("fc1.codes", lambda t: t.float()),
     r"tensor 'fc1\.codes' is torch\.float32 \[64, 16\], the model needs torch\.uint8 \[64, 16\]$"),
    ("rf8", _set("fc1.exponent", lambda t: t[:1].clone()),
     r"tensor 'fc1\.exponent' is torch\.int32 \[1\], the model needs torch\.int32 \[16\]$"),
    ("int8", _set("fc1.scale", lambda t: t.double()), r"tensor 'fc1\.scale' is torch\.float64 \[16\]"),
    ("rf8", _set("fc1.codes", lambda t: t.T.contiguous()), r"tensor 'fc1\.codes' is torch\.uint8 \[16, 64\]"),
    ("rf8", lambda s: s.pop("fc2.exponent"), r"does not match the model: missing fc2\.exponent$"),
    ("rf8", lambda s: s.update({"fc2.scale": torch.ones(16)}),
     r"does not match the model: unexpected fc2\.scale$"),
    ("rf8", lambda s: s.update({"fc1.weight": torch.ones(16, 64)}), r"unexpected fc1\.weight$"),
    ("rf8", _set("fc3.weight", lambda t: t[:, :8].contiguous()),
     r"tensor 'fc3\.weight' is torch\.float32 \[10, 8\]"),
])
def test_tampered_tensors_name_the_file_the_layer_and_what_is_allowed(tmp_path, fmt, state_fn, message):
    _, path = _saved(tmp_path, fmt=fmt, skip=["fc3"])
    _rewrite(path, state_fn=state_fn)
    with pytest.raises(ValueError, match=message) as info:
        quant.load_quantized(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def _layer(key, value):
    def f(meta):
        meta["layers"]["fc1"][key] = value
    return f


@pytest.mark.parametrize("sidecar_fn, message", [
    (lambda m: [m], r"^malformed quantized model sidecar .*: a JSON object is needed, not a list$"),
    (lambda m: {**m, "version": 1},
     r"is not an rf8hw-quantized-model v3 sidecar \(format='rf8hw-quantized-model', version=1\)$"),
    (lambda m: {k: v for k, v in m.items() if k != "tensors_sha256"},
     r"'tensors_sha256' must be a JSON string, not None$"),
    (lambda m: {**m, "layers": ["fc1"]}, r"'layers' must be a JSON object, not \['fc1'\]$"),
    (lambda m: {**m, "layers": {}}, r": no layers$"),
    (lambda m: {**m, "aliases": 3}, r"'aliases' must be a JSON object, not 3$"),
    (lambda m: {**m, "model": "mlp"}, r"'model' must be a JSON object, not 'mlp'$"),
    (_layer("bias", "no"), r"layer 'fc1': bias must be true or false, not 'no'$"),
    (_layer("smooth", 1), r"layer 'fc1': smooth must be true or false, not 1$"),
    (_layer("fmt", "int4"),
     r"layer 'fc1': fmt must be one of 'rf8', 'int8', 'fp8_e4m3', 'apot', not 'int4'$"),
    (_layer("granularity", ["channel"]), r"layer 'fc1': granularity must be one of 'tensor', 'channel'"),
    (_layer("rounding", None), r"layer 'fc1': rounding must be one of 'paper', 'nearest', not None$"),
    (_layer("mode", "exact"), r"layer 'fc1': mode must be one of 'fake', 'bitexact', not 'exact'$"),
    (_layer("in_features", "64"), r"layer 'fc1': in_features must be an integer >= 1, not '64'$"),
    (_layer("out_features", 0), r"layer 'fc1': out_features must be an integer >= 1, not 0$"),
    (_layer("out_features", 10**7), r"q\.json: its layers \(or aliases\) disagree with those recorded in "),
    (_layer("in_features", True), r"layer 'fc1': in_features must be an integer >= 1, not True$"),
    (lambda m: m["layers"]["fc1"].pop("rounding") and None,
     r"layer 'fc1': missing rounding \(a layer has in_features"),
    (_layer("extra", 1), r"layer 'fc1': unknown extra \(a layer has"),
    (lambda m: {**m, "layers": {**m["layers"], "fc1": "rf8"}},
     r"layer 'fc1' must be a JSON object, not str$"),
    (lambda m: {**m, "model": {"name": "resnet"}},
     r"model must be one of 'tinygpt', 'mlp_digits', not 'resnet'$"),
    (lambda m: {**m, "model": {"config": {}}}, r"names no zoo model; pass the float model as model=$"),
    (lambda m: {**m, "model": {"name": "mlp_digits", "config": {"n_hidden": 10**7}}},
     r"q\.json: layer 'fc1' is 64x16 \(in x out\), the model's is 64x10000000$"),   # on the meta device
    (lambda m: {**m, "model": {"name": "mlp_digits", "config": {"n_hidden": "16"}}},
     r"model_config n_hidden must be int, not '16'$"),
    (lambda m: {**m, "model": {"name": "mlp_digits", "config": {"width": 16}}},
     r"unknown model_config key\(s\) width for 'mlp_digits'; known: n_in, n_hidden, n_out$"),
    (lambda m: {**m, "model": {"name": "mlp_digits", "config": [16]}},
     r"model_config must be a JSON object, not list$"),
])
def test_malformed_sidecars_are_one_value_error_naming_the_file(tmp_path, sidecar_fn, message):
    _, path = _saved(tmp_path)
    _rewrite(path, sidecar_fn=sidecar_fn, rehash=False)
    with pytest.raises(ValueError, match=message) as info:
        quant.load_quantized(path)
    assert "q.json" in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize("content", [b"", b"{not json", b"\xff\xfe", b"[]", b"null"])
def test_unreadable_sidecars(tmp_path, content):
    _, path = _saved(tmp_path)
    path.with_suffix(".json").write_bytes(content)
    with pytest.raises(ValueError, match=r"^malformed quantized model sidecar .*q\.json: "):
        quant.load_quantized(path)


@pytest.mark.parametrize("content", [b"", b"hello, world", b"\x80\x04\x95\x00", None])
def test_unreadable_tensor_files(tmp_path, content):
    _, path = _saved(tmp_path)
    path.write_bytes(path.read_bytes()[:100] if content is None else content)
    with pytest.raises(ValueError,
                       match=r"^quantized model file .*q\.safetensors is not a readable safetensors file"):
        quant.load_quantized(path)


def test_missing_files(tmp_path):
    _, path = _saved(tmp_path)
    with pytest.raises(FileNotFoundError, match=r"^no such quantized model sidecar: .*nope\.json$"):
        quant.load_quantized(tmp_path / "nope.safetensors")
    path.unlink()
    with pytest.raises(FileNotFoundError, match=r"^no such quantized model file: .*q\.safetensors$"):
        quant.load_quantized(path)


def test_wrong_model_passed_in(tmp_path):
    _, path = _saved(tmp_path)
    with pytest.raises(ValueError, match=r"layer 'fc1' is 64x16 \(in x out\), the model's is 64x128$"):
        quant.load_quantized(path, model=mlp_digits.build())
    with pytest.raises(ValueError, match=r"layer 'fc1' is not in the model$"):
        quant.load_quantized(path, model=nn.Sequential(nn.Linear(64, 16)))
    with pytest.raises(ValueError, match=r"model must be a torch\.nn\.Module or None, not dict$"):
        quant.load_quantized(path, model={})


def test_hugging_face_gpt2_conv1d_and_tied_head_round_trip(tmp_path):
    transformers = pytest.importorskip("transformers")
    cfg = transformers.GPT2Config(n_layer=1, n_embd=32, n_head=2, vocab_size=64, n_positions=16)
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")                         # the tied lm_head stays float
        q = rf8hw.quantize_(transformers.GPT2LMHeadModel(cfg).eval())
    conv = [n for n, m in q.named_modules() if isinstance(m, quant.QuantLinear)]
    assert "transformer.h.0.attn.c_attn" in conv and len(conv) == 4
    path = tmp_path / "gpt2.safetensors"
    quant.save_quantized(q, path)
    meta = json.loads(path.with_suffix(".json").read_text())
    assert meta["aliases"] == {"lm_head.weight": "transformer.wte.weight"}
    back = quant.load_quantized(path, model=transformers.GPT2LMHeadModel(cfg).eval())
    assert back.lm_head.weight is back.transformer.wte.weight        # still tied
    ids = torch.tensor([[1, 5, 7, 2]])
    with torch.no_grad():
        assert torch.equal(back(ids).logits, q(ids).logits)


def test_a_float_state_dict_into_a_quantlinear_fails_loudly_even_when_not_strict():
    lin = nn.Linear(8, 4)
    q = quant.QuantLinear.from_linear(lin)
    for strict in (True, False):
        with pytest.raises(RuntimeError, match=r"QuantLinear '\(top level\)': the state dict has a float "
                                               r"weight and no codes: it is a float model's"):
            q.load_state_dict(lin.state_dict(), strict=strict)
    m = rf8hw.quantize(nn.Sequential(nn.Linear(8, 4)))
    with pytest.raises(RuntimeError, match=r"QuantLinear '0': the state dict has no 0\.codes, 0\.exponent "
                                           r"\(loading it would leave the layer's weights all zero\)"):
        m.load_state_dict({"0.bias": torch.zeros(4)}, strict=False)


def test_a_quantized_state_dict_into_a_float_model_is_refused_by_strict_loading(tmp_path):
    """What a foreign saver writes (torch.save(q.state_dict()), save_pretrained): codes, no weight."""
    float_model = mlp_digits.build()
    q = rf8hw.quantize(float_model)
    with pytest.raises(RuntimeError, match=r"Missing key\(s\) in state_dict: \"fc1\.weight\""):
        mlp_digits.build().load_state_dict(q.state_dict())


def test_save_pretrained_of_a_quantized_hf_model_carries_the_rf8_quantization_config(tmp_path):
    """quantize_ and load_quantized give a Hugging Face model the RF8 quantization config, so that
    save_pretrained writes a checkpoint from_pretrained loads (tests/nn/test_hf.py); the float
    model it came from is not marked."""
    transformers = pytest.importorskip("transformers")
    def gpt2():          # each model its own config object (quantize_ marks the model's config in place)
        return transformers.GPT2LMHeadModel(transformers.GPT2Config(n_layer=1, n_embd=32, n_head=2,
                                                                    vocab_size=64, n_positions=16))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        q = rf8hw.quantize_(gpt2())
    assert q.config.quantization_config.quant_method == "rf8hw"
    assert set(q.config.quantization_config.layers) == set(quant.quant_layers(q))
    q.save_pretrained(tmp_path / "hf")
    assert json.loads((tmp_path / "hf" / "config.json").read_text())["quantization_config"]["quant_method"] \
        == "rf8hw"
    quant.save_quantized(q, tmp_path / "q.safetensors")
    float_model = gpt2()
    back = quant.load_quantized(tmp_path / "q.safetensors", model=float_model)
    assert getattr(float_model.config, "quantization_config", None) is None
    assert back.config.quantization_config.layers == q.config.quantization_config.layers


def _full_disk(monkeypatch, when):
    """Writes of a file for which ``when(name)`` holds fail as on a full disk, after half the data:
    ``OSError(ENOSPC)`` naming no file, as a real ``write`` raises it."""
    import errno
    from pathlib import Path

    real_bytes, real_text = Path.write_bytes, Path.write_text

    def fail(self, data, real, *args, **kwargs):
        if when(self.name):
            real(self, data[: len(data) // 2])
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(self, data, *args, **kwargs)
    monkeypatch.setattr(Path, "write_bytes", lambda self, data: fail(self, data, real_bytes))
    monkeypatch.setattr(Path, "write_text", lambda self, data, *a, **k: fail(self, data, real_text, *a, **k))


@pytest.mark.parametrize("full", ["q.safetensors", "q.json"])
def test_a_full_disk_names_the_file_and_leaves_the_old_pair(tmp_path, monkeypatch, full):
    q, path = _saved(tmp_path)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    torch.manual_seed(1)
    other = rf8hw.quantize(mlp_digits.build(mlp_digits.MLPConfig(n_hidden=16)))
    _full_disk(monkeypatch, lambda name: full in name)
    with pytest.raises(OSError) as info:
        quant.save_quantized(other, path, model_info=ZOO)
    assert (info.value.errno, info.value.filename) == (28, str(tmp_path / full))
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before      # no temporary, old pair
    monkeypatch.undo()
    x = torch.rand(3, 64)
    assert torch.equal(quant.load_quantized(path)(x)[0], q(x)[0])


def test_the_tensor_file_has_the_mode_of_its_sidecar(tmp_path):
    """Both ``0o666`` less the umask (safetensors' own writer makes its files 0600)."""
    import os

    umask = os.umask(0o022)
    try:
        _, path = _saved(tmp_path)
        modes = {p.name: p.stat().st_mode & 0o777 for p in tmp_path.iterdir()}
        os.umask(0o002)
        _, path = _saved(tmp_path)
        group = {p.name: p.stat().st_mode & 0o777 for p in tmp_path.iterdir()}
    finally:
        os.umask(umask)
    assert modes == {"q.safetensors": 0o644, "q.json": 0o644}
    assert group == {"q.safetensors": 0o664, "q.json": 0o664}


@pytest.mark.parametrize("info, message", [
    ("mlp_digits", r"^save_quantized model_info must be a dict or None, not str$"),
    ({"name": "mlp_digits", "acc": float("nan")}, r"^save_quantized model_info must hold JSON values only "
                                                   r"\(no NaN or Infinity\): Out of range float values"),
    ({"name": "mlp_digits", "when": object()}, r"^save_quantized model_info must hold JSON values only .*"
                                               r"Object of type object is not JSON serializable$"),
])
def test_a_model_info_load_quantized_would_refuse_is_refused_before_writing(tmp_path, info, message):
    q, _ = _saved(tmp_path)
    with pytest.raises(ValueError, match=message):
        quant.save_quantized(q, tmp_path / "r.safetensors", model_info=info)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["q.json", "q.safetensors"]


def test_api_misuse_is_one_value_error_not_an_attribute_error(tmp_path):
    q, path = _saved(tmp_path)
    cases = [
        (lambda: rf8hw.quantize("abc"), r"^model must be a torch\.nn\.Module, not str$"),
        (lambda: rf8hw.quantize_(None), r"^model must be a torch\.nn\.Module, not NoneType$"),
        (lambda: rf8hw.quantize(q), r"^model is already quantized \(3 QuantLinear layers, first 'fc1'\); "
                                    r"re-quantizing is not supported: quantize the float model$"),
        (lambda: rf8hw.quantize(nn.Sequential(nn.ReLU())),
         r"^nothing to quantize in Sequential: no nn\.Linear layer "
         r"\(module types present: ReLU, Sequential\)$"),
        (lambda: quant.save_quantized("abc", tmp_path / "s.safetensors"),
         r"^save_quantized needs a quantized torch\.nn\.Module, not str$"),
        (lambda: quant.save_quantized(q, None),
         r"^save_quantized path must be a file name \(str or pathlib\.Path\), not NoneType$"),
        (lambda: quant.load_quantized(None),
         r"^quantized model file must be a file name \(str or pathlib\.Path\), not NoneType$"),
    ]
    for call, message in cases:
        with pytest.raises(ValueError, match=message):
            call()
    (tmp_path / "d.json").mkdir()
    with pytest.raises(ValueError, match=r"^save_quantized path '.*d\.safetensors': its sidecar '.*d\.json' "
                                         r"is a directory$"):
        quant.save_quantized(q, tmp_path / "d.safetensors", model_info=ZOO)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.json", "q.json", "q.safetensors"]
