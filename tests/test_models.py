"""models/: the zoo's shapes, data splits and the vendored text's provenance."""

import hashlib
import math
import re

import pytest
import torch

from rf8hw import zoo
from rf8hw.zoo import mlp_digits, tinygpt


def test_vendored_text_matches_its_provenance_record():
    prov = (tinygpt.DATA_FILE.parent / "PROVENANCE.md").read_text()
    sha = re.search(r"result \| ([\d,]+) bytes, (\d+) distinct characters, sha256 `([0-9a-f]{64})`", prov)
    data = tinygpt.DATA_FILE.read_bytes()
    assert sha, "PROVENANCE.md lost its result line"
    assert len(data) == int(sha.group(1).replace(",", ""))
    assert len(set(data)) == int(sha.group(2)) == tinygpt.GPTConfig().vocab_size
    assert hashlib.sha256(data).hexdigest() == sha.group(3)


def test_tinygpt_size_shapes_and_initial_loss():
    torch.manual_seed(0)
    cfg = tinygpt.GPTConfig()
    net = tinygpt.build(cfg)
    n = sum(p.numel() for p in net.parameters())
    assert 0.5e6 < n < 10e6
    data = tinygpt.Data(cfg)
    x, y = data.batch(torch.Generator().manual_seed(0), 4)
    assert x.shape == y.shape == (4, cfg.block_size)
    assert torch.equal(x[:, 1:], y[:, :-1])                  # targets are the next character
    logits, loss = net(x, y)
    assert logits.shape == (4, cfg.block_size, cfg.vocab_size)
    assert abs(loss.item() - math.log(cfg.vocab_size)) < 0.5  # near-uniform prediction at init


def test_tinygpt_validation_split_is_the_held_out_tail():
    data = tinygpt.Data(tinygpt.GPTConfig())
    n = len(data.train_ids) + len(data.val_ids)
    assert len(data.val_ids) == int(n * tinygpt.VAL_FRACTION)
    text = tinygpt.DATA_FILE.read_text()
    itos = {i: c for c, i in data.stoi.items()}
    assert "".join(itos[int(i)] for i in data.val_ids[-40:]) == text[-40:]


def test_tinygpt_rejects_too_long_context():
    net = tinygpt.build(tinygpt.GPTConfig(block_size=8, n_layer=1, n_embd=16, n_head=2))
    with pytest.raises(ValueError, match=r"^cannot forward a sequence of length 9, block size is only 8$"):
        net(torch.zeros(1, 9, dtype=torch.long))


def test_mlp_digits_split_is_fixed_and_stratified():
    a, b = mlp_digits.Data(), mlp_digits.Data()
    assert len(a.x_test) == 450 and len(a.x_train) == 1347
    assert torch.equal(a.x_test, b.x_test)
    counts = torch.bincount(a.y_test, minlength=10)
    totals = counts + torch.bincount(a.y_train, minlength=10)
    assert torch.all((counts - totals * mlp_digits.TEST_FRACTION).abs() <= 1)   # stratified
    assert 0.0 <= a.x_train.min() and a.x_train.max() <= 1.0


def test_unknown_model_name_is_rejected():
    with pytest.raises(ValueError, match=r"^model must be one of 'tinygpt', 'mlp_digits', not 'resnet'$"):
        zoo.get("resnet")
