"""``rf8hw train`` under torchrun with 2 processes (DDP, gloo, CPU): ranks stay in lock-step."""

import json
import os
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file


def _lines(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.slow
def test_two_rank_ddp_keeps_parameters_and_backslash_nu_identical(tmp_path):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "-m", "rf8hw", "train", "--model", "mlp_digits", "--epochs", "1", "--seed", "5",
           "--backslash", "20", "--backslash-form", "loss", "--out", str(tmp_path), "--quiet"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]

    rank0, rank1 = _lines(tmp_path / "metrics.jsonl"), _lines(tmp_path / "metrics.rank1.jsonl")
    steps0 = [r for r in rank0 if r["kind"] == "step"]
    steps1 = [r for r in rank1 if r["kind"] == "step"]
    assert len(steps0) == len(steps1) == 22
    # each rank trains on its own batches (losses differ) ...
    assert sum(a["loss"] != b["loss"] for a, b in zip(steps0, steps1)) > 15
    # ... yet BackSlash sees the same weights on both ranks at every step
    assert [r["nu"] for r in steps0] == [r["nu"] for r in steps1]
    assert len({r["nu"] for r in steps0}) > 1                      # nu is re-estimated, not constant

    p0 = load_file(str(tmp_path / "model.safetensors"))
    p1 = load_file(str(tmp_path / "model.rank1.safetensors"))
    assert p0.keys() == p1.keys()
    for k in p0:
        assert torch.equal(p0[k], p1[k]), k
    meta = json.loads((tmp_path / "model.json").read_text())
    assert meta["world_size"] == 2
    # the weights moved away from the common seeded init
    torch.manual_seed(5)
    from rf8hw.zoo import mlp_digits

    assert not torch.equal(mlp_digits.build().fc2.weight, p0["fc2.weight"])
