"""``rf8hw cosim --model M`` without ``--layer`` (rf8hw/accel/cosim_model.py): the orchestration of
a whole forward pass through the accelerator, checked with a stand-in simulator that answers with
the golden rule's beats at the cycle model's cycles (the real simulator: tests/sim/
test_cosim_model_rtl.py, slow).  What is checked here is the plumbing around it: the RTL's
integers replace each layer's output (a corrupted beat reaches the final output), the per-GEMM
store and its keys (an interrupted run resumes without simulating anything finished), the report
and the refusals."""

import json
import textwrap

import numpy as np
import pytest
import torch

from rf8hw import cli
from rf8hw.accel import cosim_model as cm
from rf8hw.accel.accel_cycles import accel_schedule
from rf8hw.arch import ArrayConfig
from rf8hw.sim import CosimOptions

ADAPTER = '''
import torch
import torch.nn as nn


class Block(nn.Module):
    """Attention (scores and mix by torch.matmul), LayerNorm, GELU: what stays in PyTorch."""

    def __init__(self, d=12):
        super().__init__()
        self.q, self.k, self.v = nn.Linear(d, d), nn.Linear(d, d), nn.Linear(d, d)
        self.o = nn.Linear(d, d)
        self.up, self.down = nn.Linear(d, 20), nn.Linear(20, d)
        self.ln = nn.LayerNorm(d)

    def forward(self, x):
        att = torch.softmax(self.q(x) @ self.k(x).transpose(-2, -1) / 3.0, dim=-1)
        x = self.ln(x + self.o(att @ self.v(x)))
        return x + self.down(torch.nn.functional.gelu(self.up(x)))


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.b1, self.b2 = Block(), Block()
        self.head = nn.Linear(12, 5)

    def forward(self, x):
        return self.head(self.b2(self.b1(x)))


def adapter():
    torch.manual_seed(0)
    model = Tiny().eval()
    x = torch.randn(2, 7, 12, generator=torch.Generator().manual_seed(1))
    return model, (lambda m: m(x)), (lambda m: {"score": 0.0}), {"name": "tiny", "batch": 2}
'''

LAYERS = [f"b{i}.{n}" for i in (1, 2) for n in ("q", "k", "v", "o", "up", "down")] + ["head"]


@pytest.fixture
def tiny(tmp_path, monkeypatch):
    (tmp_path / "cosim_model_tiny_adapter.py").write_text(textwrap.dedent(ADAPTER))
    monkeypatch.syspath_prepend(str(tmp_path))
    return "cosim_model_tiny_adapter:adapter"


class FakeSim:
    """The golden rule's beats (each job's ``expected``, from rf8hw.format.postproc.gemm) at the
    cycle model's result cycles; ``fail_at``: raise KeyboardInterrupt on that call; ``corrupt``:
    add 1 to one result of that call."""

    def __init__(self, fail_at=None, corrupt=None):
        self.calls, self.fail_at, self.corrupt = 0, fail_at, corrupt

    def __call__(self, acfg, jobs, work_dir, options, max_cycles, engine):
        if self.calls == self.fail_at:
            raise KeyboardInterrupt
        sched = accel_schedule([(j.M, j.K, j.N, j.load) for j in jobs], acfg)
        results = np.concatenate([j.expected for j in jobs]).copy()
        if self.calls == self.corrupt:
            results[0, 0] += 1
        self.calls += 1
        out = [c for s in sched for c in s["out"]]
        return {"results": results, "out_cycles": out, "cmd_cycles": [s["cmd"] for s in sched],
                "a_cycles": [], "cycles": out[-1] + 20, "err_cmd": 0, "err_w_tlast": 0}


def _run(model, tmp_path, sim, out_bits=8, seed=0, **kw):
    options = CosimOptions(stall_prob=0.0, seed=seed, out_dir=str(tmp_path / f"run{seed}"),
                           cache_root=str(tmp_path / "cache"))
    return cm.cosim_model(model, ArrayConfig(4, 4), options, out_bits=out_bits, bar=False,
                          simulate=sim, rtl_key="test", **kw)


@pytest.mark.parametrize("out_bits", [8, 32])
def test_whole_model_report(tiny, tmp_path, out_bits):
    sim = FakeSim()
    run = _run(tiny, tmp_path, sim, out_bits)
    assert run.ok and run.outputs_equal and run.output_values == 2 * 7 * 5
    assert [g.layer for g in run.gemms] == LAYERS
    # Q, K and V share their input: one simulation each block, K and V reuse it (load = 0)
    assert sim.calls == len(LAYERS) - 4
    assert [(g.load, g.shared_with) for g in run.gemms[:5]] == [(1, 3), (0, 3), (0, 3), (1, 1),
                                                                (1, 1)]
    assert run.gemms[0].key == run.gemms[2].key != run.gemms[3].key
    assert all(g.shape == (14, 12 if g.layer[-2:] != "wn" else 20, 20 if g.layer.endswith("up")
                           else 5 if g.layer == "head" else 12) for g in run.gemms)
    assert run.acfg.max_m == 14 and run.acfg.max_k == 20 and run.acfg.out_bits == out_bits
    assert all(g.cycles == g.model_cycles and g.beats_off_model == 0 for g in run.gemms)
    assert run.totals["macs"] == sum(g.macs for g in run.gemms) == 14 * (2 * (4 * 144 + 2 * 240) + 60)
    # what ran in PyTorch: the attention products (2 per block), softmax, LayerNorm, GELU
    assert sorted((g["op"], g["M"], g["K"], g["N"], g["count"]) for g in run.pytorch_gemms) == \
        sorted([("matmul", 7, 12, 7, 2), ("matmul", 7, 7, 12, 2)] * 2)
    assert run.totals["pytorch_macs"] == 2 * 2 * (7 * 12 * 7 + 7 * 7 * 12)
    assert {"softmax", "layer_norm", "gelu"} <= set(run.pytorch_ops)
    saved = json.loads(run.result_json.read_text())
    assert saved["ok"] and saved["totals"]["gemms"] == 13 and saved["summary"] == run.summary_line()
    assert len(saved["gemms"]) == 13 and saved["gemms"][0]["layer"] == "b1.q"


def test_the_rtl_output_feeds_the_next_layers(tiny, tmp_path):
    """One result off by one in the first GEMM: counted there against both references, and the
    final output (which consumed it) differs from the bit-exact path."""
    run = _run(tiny, tmp_path, FakeSim(corrupt=0))
    first = run.gemms[0]
    assert (first.golden_mismatches, first.bitexact_mismatches) == (1, 1)
    assert all(g.golden_mismatches == 0 for g in run.gemms[1:])
    # q's output reaches o through the attention: from there on the inputs differ from the
    # reference pass's, and so do the bit-exact layer's outputs on them
    assert [g.replay_matches_layer for g in run.gemms[:4]] == [True, True, True, False]
    assert not run.outputs_equal and not run.ok
    assert "outputs_equal=False" in run.summary_line()


def test_an_interrupted_run_resumes_without_simulating_finished_gemms(tiny, tmp_path):
    """Simulations: b1's Q/K/V (one), o, up, down, b2's Q/K/V, then interrupted at b2.o: five
    stored, covering nine calls; the rerun simulates the other four."""
    with pytest.raises(KeyboardInterrupt):
        _run(tiny, tmp_path, FakeSim(fail_at=5))
    stored = sorted((tmp_path / "cache" / "model-gemms").glob("*.json"))
    assert len(stored) == 5
    sim = FakeSim()
    run = _run(tiny, tmp_path, sim)
    assert run.ok and sim.calls == 4
    assert [g.reused for g in run.gemms] == [True] * 9 + [False] * (len(LAYERS) - 9)
    assert run.totals["reused"] == 9 and run.totals["simulated"] == len(LAYERS) - 9
    again = FakeSim()
    assert _run(tiny, tmp_path, again).ok and again.calls == 0          # all stored now
    other = FakeSim()                                                    # another seed: new keys
    assert _run(tiny, tmp_path, other, seed=3).ok and other.calls == 9
    # without sharing, Q, K and V are simulations of their own (new keys); the other calls are
    # the same simulations as before, from the store
    alone = FakeSim()
    run = _run(tiny, tmp_path, alone, share_inputs=False)
    assert run.ok and alone.calls == 6 and {g.load for g in run.gemms} == {1}


def test_store_keys_and_records(tmp_path):
    a = np.arange(12, dtype=np.int8).reshape(3, 4)
    head = {"model": "m", "rtl": "r"}
    k = cm.gemm_key(head, a)
    assert k == cm.gemm_key(dict(reversed(head.items())), a.copy())
    b = a.copy()
    b[2, 3] += 1
    assert len({k, cm.gemm_key(head, b), cm.gemm_key({**head, "rtl": "s"}, a),
                cm.gemm_key(head, a.astype(np.int16)), cm.gemm_key(head, a.reshape(4, 3))}) == 5
    store = cm.GemmStore(tmp_path / "s")
    assert store.get(k) is None
    rec = {"results": np.array([[1, -2], [3, 4]]), "out_cycles": [5, 6], "cmd_cycles": [0],
           "a_cycles": [], "cycles": 30, "err_cmd": 0, "err_w_tlast": 0, "wall_s": 0.5}
    store.put(k, rec, {"layer": "x"})
    got = store.get(k)
    assert np.array_equal(got["results"], rec["results"]) and list(got["out_cycles"]) == [5, 6]
    assert got["cycles"] == 30 and got["layer"] == "x"
    (tmp_path / "s" / f"{k}.json").unlink()          # the marker is the .json, renamed last
    assert store.get(k) is None


def test_model_outputs_flattens_nested_outputs():
    t = [torch.zeros(1), torch.ones(2), torch.full((3,), 2.0)]
    assert cm.model_outputs({"a": t[0], "b": (t[1], [t[2]]), "c": 3}) == t


def test_whole_model_refusals(tiny, tmp_path, capsys):
    base = ["cosim", "--model", tiny, "--rows", "4", "--cols", "4", "--seed", "0",
            "--cache-dir", str(tmp_path / "c"), "--out-dir", str(tmp_path / "o")]
    for extra, words in [(["--tiles", "3"], "--tiles is for random tiles"),
                         (["--overflow", "saturate"], "overflow 'wrap'"),
                         (["--waves"], "waves: the accelerator's co-simulation"),
                         (["--acc-bits", "48"], "acc_bits")]:
        assert cli.main(base + extra) == 2, extra
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and words in err[0], (extra, err)


def test_a_zoo_transformer(tmp_path):
    """tinygpt (untrained, seed 0; one 64-character window): its 17 RF8 layers (per block the
    fused QKV, the attention projection and the MLP's two; the head) go through the stand-in
    simulator in execution order, the attention products stay in PyTorch, outputs equal."""
    from dataclasses import asdict

    from rf8hw.nn.checkpoint import save_checkpoint
    from rf8hw.zoo import tinygpt

    torch.manual_seed(0)
    model = tinygpt.build()
    path = tmp_path / "model.safetensors"
    save_checkpoint(model, path, {"model": "tinygpt", "model_config": asdict(model.config)})
    sim = FakeSim()
    run = _run("tinygpt", tmp_path, sim, checkpoint=path, batch=1)
    assert run.ok and run.outputs_equal and sim.calls == 17 == len(run.gemms)
    assert [g.shape for g in run.gemms[:4]] == [(64, 128, 384), (64, 128, 128), (64, 128, 512),
                                                 (64, 512, 128)]
    assert run.gemms[-1].shape == (64, 128, 76)
    assert run.totals["pytorch_macs"] == 4 * 2 * 4 * 64 * 64 * 32     # Q K^T and P V, 4 heads
