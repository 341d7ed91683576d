"""rf8hw.accel.cycles: the cycle model against the RTL's Amaranth simulation and a cocotb co-simulation
of the generated Verilog (every handshake cycle of every tile), and the model-zoo accounting."""

import numpy as np
import pytest
import torch

from rf8hw.accel import cycles, gemms
from rf8hw.accel.cycles import gemm_cycles, tile_schedule
from rf8hw.arch import ArrayConfig
from rf8hw.hdl.axi import RF8AxiTop
from rf8hw.sim.pysim import simulate_tiles
from rf8hw.sim.stimulus import gemm_tiles
from rf8hw.zoo import mlp_digits, tinygpt


def test_gemm_cycles_parts_and_the_architecture_doc_example():
    """8x8 array of the reference rf8 PE (product_latency 1), one 8x8x8 tile: last result at
    cycle 32 -> 33 cycles (docs/architecture.md's example is the default rf8_pipe: one more)."""
    c = gemm_cycles(8, 8, 8, ArrayConfig(8, 8, pe="rf8"))
    assert (c.tiles, c.weight_load, c.act, c.switch, c.fill_drain, c.cycles) == (1, 8, 8, 0, 17, 33)
    assert gemm_cycles(8, 8, 8, ArrayConfig(8, 8)).cycles == 34          # default rf8_pipe
    c = gemm_cycles(5, 9, 7, ArrayConfig(4, 3, pe="rf8"))  # ragged: 3 k-tiles x 3 n-tiles
    assert (c.k_tiles, c.n_tiles, c.tiles) == (3, 3, 9)
    # M = 5 > rows: the next tile's weights are in before the current tile ends, no switch cycle
    assert c.weight_load + c.act + c.switch + c.fill_drain == c.cycles == 4 + 9 * 5 + 4 + 3 + 1
    assert c.switch == 0
    # M = rows: one switch cycle per tile; M = 1: the weights bound the period (rows + 1)
    assert gemm_cycles(4, 8, 3, ArrayConfig(4, 3)).switch == 1
    assert gemm_cycles(1, 12, 3, ArrayConfig(4, 3, pe="rf8")).cycles == 4 + 2 * 5 + 1 + 8
    assert c.utilisation == pytest.approx(5 * 9 * 7 / (4 * 3 * c.cycles))
    sched = tile_schedule([5] * 9, ArrayConfig(4, 3, pe="rf8"))
    assert sched[-1]["r_last"] + 1 == c.cycles


def _gemm_stimulus(rng, shapes, rows, cols):
    tiles, per_gemm = [], []
    for M, K, N in shapes:
        a = rng.integers(-128, 128, size=(M, K))
        codes = rng.integers(0, 256, size=(K, N), dtype=np.uint8)
        t, _ = gemm_tiles(a, codes, rows, cols)
        tiles += t
        per_gemm.append(len(t))
    return tiles, per_gemm


def _spans(first_w, last_r, per_gemm):
    """First weight beat to last result row, inclusive, of each GEMM in a back-to-back stream."""
    out, t = [], 0
    for n in per_gemm:
        out.append(last_r[t + n - 1] - first_w[t] + 1)
        t += n
    return out


@pytest.mark.parametrize("rows, cols, shapes", [
    (4, 3, [(3, 5, 7), (1, 9, 4)]),      # ragged K and N, M = 1
    (2, 5, [(5, 9, 2)]),                 # K-heavy, N < cols
    (3, 1, [(2, 3, 3)]),                 # one column: no guard
    (1, 4, [(4, 2, 9)]),                 # one row
    (5, 5, [(6, 5, 5)]),                 # exactly one tile
    (2, 2, [(3, 4, 5), (2, 2, 2)]),      # cols <= 2, M > rows then M = rows
    (4, 4, [(4, 8, 8)]),                 # M = rows: one tile-switch cycle per tile
    (3, 4, [(1, 7, 9)]),                 # M < rows: the weight stream bounds the period
])
def test_model_equals_amaranth_simulation_cycle_for_cycle(rows, cols, shapes):
    """Every weight, activation and result handshake of the RTL (Amaranth simulator, full-rate
    producers, consumer always ready) happens at the cycle the model gives (11 GEMM shapes here,
    one more with the pipelined PE and three in the cocotb co-simulation below)."""
    tiles, per_gemm = _gemm_stimulus(np.random.default_rng(rows * 10 + cols), shapes, rows, cols)
    tr = simulate_tiles(RF8AxiTop(ArrayConfig(rows, cols)), tiles)
    sched = tile_schedule([len(a) for _, a in tiles], ArrayConfig(rows, cols))
    assert tr.weight_cycles == [w for s in sched for w in range(s["w_first"], s["w_last"] + 1)]
    assert tr.act_cycles == [c for s in sched for c in range(s["a_first"], s["a_last"] + 1)]
    assert tr.result_cycles == [c for s in sched for c in range(s["r_first"], s["r_last"] + 1)]
    if len(shapes) == 1:
        M, K, N = shapes[0]
        assert tr.result_cycles[-1] + 1 == gemm_cycles(M, K, N, ArrayConfig(rows, cols)).cycles


def test_pipelined_rf8_pe_adds_its_extra_product_stage_to_every_result():
    """RF8PipePE (product_latency 2) in the Amaranth simulation: weights and activations as for
    RF8PE, every result one cycle later; the model follows (pe="rf8_pipe", product_latency 2)."""
    rows, cols, shapes = 3, 4, [(4, 7, 6)]
    tiles, _ = _gemm_stimulus(np.random.default_rng(3), shapes, rows, cols)
    tr = simulate_tiles(RF8AxiTop(ArrayConfig(rows, cols, pe="rf8_pipe")), tiles)
    sched = tile_schedule([len(a) for _, a in tiles], ArrayConfig(rows, cols, pe="rf8_pipe"))
    assert ArrayConfig(rows, cols).pe == "rf8_pipe"       # the default kind
    assert tr.weight_cycles == [w for s in sched for w in range(s["w_first"], s["w_last"] + 1)]
    assert tr.result_cycles == [c for s in sched for c in range(s["r_first"], s["r_last"] + 1)]
    assert tr.result_cycles[-1] + 1 == gemm_cycles(4, 7, 6, ArrayConfig(rows, cols, pe="rf8_pipe")).cycles \
        == gemm_cycles(4, 7, 6, ArrayConfig(rows, cols, pe="rf8")).cycles + 1


@pytest.mark.slow
def test_model_equals_cocotb_cosimulation_of_the_verilog(tmp_path):
    """One Icarus co-simulation (rf8hw.sim.run_tiles, full rate) of three GEMMs (two ragged, one a
    single exact tile) streamed back to back on a 4x3 array:
    every tile's handshake stamps equal the model's schedule (shifted to the first weight beat);
    the first GEMM's span from first weight beat to last result equals gemm_cycles (the later
    GEMMs' weights stream in during the GEMM before them, so their spans overlap it), and
    gemm_cycles of each GEMM equals the schedule of its tiles alone."""
    from rf8hw.sim import CosimOptions, run_tiles

    rows, cols, shapes = 4, 3, [(3, 5, 7), (2, 9, 4), (1, 4, 3)]
    tiles, per_gemm = _gemm_stimulus(np.random.default_rng(1), shapes, rows, cols)
    res = run_tiles(tiles, ArrayConfig(rows, cols),
                    CosimOptions(simulator="icarus", stall_prob=0.0, out_dir=tmp_path / "run"))
    assert res.mismatches == 0 and res.tiles == len(tiles)
    recs = sorted(res.tile_cycles, key=lambda r: r.tile)
    t0 = recs[0].w_first
    keys = ("w_first", "w_last", "a_first", "a_last", "r_first", "r_last")
    measured = [{k: getattr(r, k) - t0 for k in keys} for r in recs]
    assert measured == tile_schedule([len(a) for _, a in tiles], ArrayConfig(rows, cols))
    spans = _spans([r.w_first for r in recs], [r.r_last for r in recs], per_gemm)
    assert spans[0] == gemm_cycles(*shapes[0], ArrayConfig(rows, cols)).cycles
    for (M, K, N), n in zip(shapes, per_gemm):
        alone = tile_schedule([M] * n, ArrayConfig(rows, cols))
        assert alone[-1]["r_last"] + 1 == gemm_cycles(M, K, N, ArrayConfig(rows, cols)).cycles
    assert res.cycles == recs[-1].r_last + 1      # the co-sim's count: edges up to the last result


def test_gemms_of_the_zoo_and_off_array_attention():
    mlp = mlp_digits.build()
    g = gemms.capture(mlp, mlp_digits.example(mlp.config, batch=3))
    assert [(x.name, x.M, x.K, x.N, x.on_array) for x in g] == [
        ("fc1", 3, 64, 128, True), ("fc2", 3, 128, 128, True), ("fc3", 3, 128, 10, True)]
    cfg = tinygpt.GPTConfig(n_layer=2, n_head=2, n_embd=16, block_size=8)
    gpt = tinygpt.build(cfg)
    g = gemms.capture(gpt, tinygpt.example(cfg, batch=2))
    on = [(x.name, x.M, x.K, x.N) for x in g if x.on_array]
    off = [(x.name, x.M, x.K, x.N, x.count) for x in g if not x.on_array]
    T, C = 8, 16
    assert on == [(f"blocks.{i}.{n}", 2 * T, k, o) for i in range(2) for n, k, o in (
        ("attn.c_attn", C, 3 * C), ("attn.c_proj", C, C), ("mlp.c_fc", C, 4 * C),
        ("mlp.c_proj", 4 * C, C))] + [("lm_head", 2 * T, C, cfg.vocab_size)]
    assert off == [(f"blocks.{i}.attn.sdpa.{n}", T, k, o, 2 * 2) for i in range(2) for n, k, o in (
        ("scores(q@kT)", 8, T), ("mix(att@v)", T, 8))]
    rep = cycles.model_cycles(g, ArrayConfig(4, 4), batch=2)
    assert rep["cycles"] == sum(gemm_cycles(x.M, x.K, x.N, ArrayConfig(4, 4)).cycles for x in g if x.on_array)
    assert rep["cycles_per_inference"] == rep["cycles"] / 2
    assert rep["macs_off_array"] == sum(x.macs for x in g if not x.on_array) == 2 * 2 * 2 * 2 * T * T * 8
    assert rep["utilisation"] == pytest.approx(rep["macs_on_array"] / (16 * rep["cycles"]))


def test_plot_is_written(tmp_path):
    mlp = mlp_digits.build()
    rep = cycles.model_cycles(gemms.capture(mlp, torch.zeros(1, 64)), ArrayConfig(8, 8))
    cycles.plot_model_cycles(rep, tmp_path / "c.png")
    assert (tmp_path / "c.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bad_inputs_are_named():
    with pytest.raises(ValueError, match=r"^K must be an integer >= 1, not 0$"):
        gemm_cycles(1, 0, 1, ArrayConfig(4, 4))
    with pytest.raises(ValueError, match=r"^rows must be an integer in 1\.\.64, not 65$"):
        gemm_cycles(1, 1, 1, ArrayConfig(65, 4))
    with pytest.raises(TypeError, match=r"^cfg must be an ArrayConfig, not 4$"):
        gemm_cycles(1, 1, 1, 4)
    with pytest.raises(ValueError, match=r"^m_rows\[1\] must be an integer >= 1, not 0$"):
        tile_schedule([2, 0], ArrayConfig(2, 2))
