"""The shell's generated Verilog on cocotbext-axi's AXI4 memory (``AxiRam``) and AXI4-Lite master,
the Python driver programming each descriptor: random ragged GEMMs (activation reuse included)
equal to the post-processing rule, an AXI protocol checker on every transaction, refused
descriptors, a reset in the middle of a read burst, memory stalls (``docs/shell.md``)."""

from __future__ import annotations

import numpy as np
import pytest

from rf8hw.arch import AccelConfig, ArrayConfig
from rf8hw.sim.build import require_simulator
from rf8hw.sim.shell_cosim import run_shell_cosim
from rf8hw.sim.shell_stimulus import random_descriptors, shell_layout

CASES = {   # id -> simulator, out_bits, data_bits, max_burst, memory stall probability, seed,
            # the accelerator's own reset port (the shell always has aresetn)
    "icarus-int8-d64-b16": ("icarus", 8, 64, 16, 0.3, 11, "aresetn"),
    "icarus-int32-d32-b4-core_rst": ("icarus", 32, 32, 4, 0.2, 12, "rst"),
    "verilator-int32-d64-b16": ("verilator", 32, 64, 16, 0.25, 13, "aresetn"),
}


@pytest.mark.slow
@pytest.mark.parametrize("case", CASES)
def test_shell_cosim(case, cosim_cache):
    simulator, out_bits, data_bits, max_burst, p_stall, seed, core_reset = CASES[case]
    require_simulator(simulator)
    acfg = AccelConfig(ArrayConfig(3, 4, reset=core_reset), max_m=9, max_k=20, out_bits=out_bits)
    lay = shell_layout(acfg, data_bits)
    nb = data_bits // 8
    ds = random_descriptors(np.random.default_rng(seed), acfg, lay, 7)
    assert any(d.load == 0 for d in ds) and any(d.N % 4 for d in ds) and any(d.K % 3 for d in ds)
    d0 = ds[0].bases
    bad = [{"M": 0}, {"K": acfg.max_k + 1}, {"act_base": acfg.act_depth},
           {"bases": {**d0, "p": d0["p"] + 1}}, {"bases": {**d0, "o": d0["o"] + (1 << 32)}}]
    rec = run_shell_cosim(acfg, ds, simulator=simulator, work_dir=cosim_cache, seed=seed,
                          p_stall=p_stall, data_bits=data_bits, max_burst=max_burst,
                          reset_after=12, bad=bad, faults=("r", "w"), irq_at=2)
    # the hardware is the one asked for
    ident = rec["identify"]
    assert (ident["rows"], ident["cols"], ident["out_bits"], ident["data_bits"],
            ident["max_burst"]) == (3, 4, out_bits, data_bits, max_burst)
    # every result equal to the golden rule, nothing written outside the result images
    for d, got, res in zip(ds, rec["results"], rec["descriptors"]):
        assert int((got != d.expected).sum()) == 0, (d.M, d.K, d.N, d.load)
        nt = -(-d.N // 4)
        y = np.concatenate([got[j * d.M:(j + 1) * d.M] for j in range(nt)], axis=1)[:, :d.N]
        assert np.array_equal(y, d.golden)
        assert res["errors"] == []
        reads = sum(len(v) for v in d.images.values()) // nb
        assert res["perf"]["rbeats"] == reads
        assert res["perf"]["wbeats"] == d.n_out * lay.words["o"]
        assert res["perf"]["busy"] >= reads and res["perf"]["wait"] <= res["perf"]["busy"]
    assert all(rec["tail_intact"])
    # irq follows done while enabled
    assert rec["descriptors"][2]["irq"] == 1 and rec["descriptors"][2]["irq_after_clear"] == 0
    assert rec["descriptors"][1]["irq"] == 0
    # refused descriptors: ERROR.desc, nothing read or written
    assert [b["errors"] for b in rec["bad"]] == [["desc"]] * len(bad)
    assert all(b["untouched"] and b["perf"]["rbeats"] == 0 for b in rec["bad"])
    # a read or write answered with SLVERR sets its flag; the descriptor still ends (done)
    assert [f["errors"] for f in rec["faults"]] == [["rresp"], ["bresp"]]
    assert all(f["perf"]["wbeats"] == ds[0].n_out * lay.words["o"] for f in rec["faults"])
    # the reset hit a read burst in flight; afterwards the block is idle, registers at reset values
    r = rec["reset"]
    assert r["r_burst_beat"] > 0 and r["reads_outstanding"] >= 1
    assert r["status_after_reset"] == {"busy": 0, "done": 0} and r["gemm_m_after_reset"] == 1
    # every AXI transaction legal, bursts cut at page ends
    assert rec["protocol_errors"] == []
    assert rec["protocol_counts"]["page_end_bursts"] > 0
    assert rec["protocol_counts"]["r"] > 0 and rec["protocol_counts"]["w"] > 0
