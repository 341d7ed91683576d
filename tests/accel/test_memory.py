"""Memory profiles (rf8hw.accel.memory) and the accelerator's schedule under a throttled memory
(rf8hw.accel.accel_cycles, rate=): validation, the byte sequence, the full-rate limit, the
per-layer and per-model figures; the estimate's options.  The co-simulation throttled to the same
pattern is tests/sim/test_accel_memory_cosim.py (slow)."""

import json
from fractions import Fraction

import numpy as np
import pytest

from rf8hw import cli
from rf8hw.accel import memory
from rf8hw.accel.accel_cycles import accel_schedule, beat_bytes, stream_arrivals
from rf8hw.accel.cycles import Gemm
from rf8hw.accel.memory import MemoryProfile, StreamRate
from rf8hw.arch import AccelConfig, ArrayConfig
from rf8hw.sim.accel_stimulus import random_program

ACFG = AccelConfig(ArrayConfig(3, 4), max_m=9, max_k=20)


def test_builtin_profiles_have_sources_and_rates():
    assert set(memory.PROFILES) == {"ecp5-ddr3-1600-x16", "arty-a7-ddr3l", "ulx3s-sdram"}
    for p in memory.PROFILES.values():
        assert len(p.source) > 40 and "assumed" in p.source and p.buffer_bytes > 0
        assert 0 < p.efficiency <= 1
    p = memory.PROFILES["ulx3s-sdram"]
    r = p.rate(47.5)
    # 0.2 GB/s x 0.6 = 0.12 GB/s at 47.5 MHz = 2.5263... bytes per cycle, rounded down to 1/1000
    assert r.bytes_per_cycle == Fraction(2526, 1000) and r.latency == 3      # ceil(60 ns * 47.5 MHz)
    assert memory.PROFILES["ecp5-ddr3-1600-x16"].rate(100).bytes_per_cycle == Fraction(224, 10)


def test_profile_validation_is_one_line():
    with pytest.raises(ValueError, match=r"^peak_gbps must be a number in \(0, 10000\] GB/s \(memory "
                                         r"profile 'x'\), not 0$"):
        MemoryProfile("x", 0)
    with pytest.raises(ValueError, match=r"^efficiency must be a number in \(0, 1\]"):
        MemoryProfile("x", 1.0, efficiency=1.5)
    with pytest.raises(ValueError, match=r"^buffer_bytes must be an integer"):
        MemoryProfile("x", 1.0, buffer_bytes=-1)
    with pytest.raises(ValueError, match=r"^memory must be one of 'ecp5-ddr3-1600-x16', 'arty-a7-ddr3l', "
                                         r"'ulx3s-sdram' or a JSON profile file, not 'hbm'$"):
        memory.resolve("hbm")
    with pytest.raises(ValueError, match=r"^memory_bandwidth must be a number in \(0, 10000\] GB/s, not -1"):
        memory.resolve(None, -1.0)
    with pytest.raises(ValueError, match="below 1/1000 byte per cycle"):
        MemoryProfile("x", 1e-4).rate(1000)
    with pytest.raises(ValueError, match=r"^bytes_per_cycle must be a positive Fraction"):
        StreamRate(Fraction(0))


def test_user_profiles(tmp_path):
    assert memory.resolve(None) is None
    p = memory.resolve(None, 0.5)
    assert p.sustained_gbps == 0.5 and p.latency_ns == 0 and p.buffer_bytes == 0
    p = memory.resolve("arty-a7-ddr3l", 0.25)
    assert p.sustained_gbps == 0.25 and p.latency_ns == 100 and "set to 0.25 GB/s" in p.source
    f = tmp_path / "board.json"
    f.write_text(json.dumps({"peak_gbps": 1.6, "efficiency": 0.5, "latency_ns": 80, "buffer_bytes": 4096}))
    p = memory.resolve(str(f))
    assert (p.name, p.sustained_gbps, p.buffer_bytes) == ("board", 0.8, 4096) and "board.json" in p.source
    f.write_text(json.dumps({"peak_gbps": 1.6, "burst": 8}))
    with pytest.raises(ValueError, match=r"unknown field\(s\) burst; allowed: name, peak_gbps"):
        memory.resolve(str(f))
    f.write_text("{")
    with pytest.raises(ValueError, match="is not JSON"):
        memory.resolve(str(f))
    with pytest.raises(ValueError, match="cannot be read"):
        memory.resolve(str(tmp_path / "none.json"))


def test_arrivals_follow_one_byte_sequence():
    rng = np.random.default_rng(3)
    _, cmds = random_program(rng, ACFG, 3)
    rate = StreamRate(Fraction(7, 3), 4)
    arr = stream_arrivals(cmds, ACFG, rate)
    size = beat_bytes(ACFG)
    total = sum(len(arr[s]) * size[s] for s in ("cmd", "w", "a", "p", "out"))
    assert arr["end"] == 4 + -(-total * 3 // 7) - 1
    for s in ("cmd", "w", "a", "p", "out"):
        assert arr[s] == sorted(arr[s]) and min(arr[s]) >= 4
    # at a very high rate everything is there at the latency: the full-rate schedule, shifted
    fast = stream_arrivals(cmds, ACFG, StreamRate(Fraction(10 ** 6), 0))
    assert {x for s in ("cmd", "w", "a", "p") for x in fast[s]} == {0}
    full, thr = accel_schedule(cmds, ACFG), accel_schedule(cmds, ACFG, StreamRate(Fraction(10 ** 6)))
    assert [s["out"] for s in thr] == [s["out"] for s in full]
    assert [s["cmd"] for s in thr] == [s["cmd"] for s in full]
    # a slower memory never makes anything earlier, and a throttled run is never faster than the
    # memory alone
    slow = accel_schedule(cmds, ACFG, rate)
    assert all(a >= b for s, f in zip(slow, full) for a, b in zip(s["out"], f["out"]))
    assert slow[-1]["out_last"] > max(arr["w"])


@pytest.mark.parametrize("b", [Fraction(1, 7), Fraction(1), Fraction(9, 2)])
def test_gemm_memory_bound_and_cycles(b):
    array = ArrayConfig(4, 4)
    rate = StreamRate(b, 2)
    r = memory.gemm_memory(12, 20, 18, array, rate, buffer_bytes=100)
    assert r["bytes"]["total"] == sum(v for k, v in r["bytes"].items() if k != "total")
    assert r["bytes"]["w"] == 5 * 5 * 4 * 4 and r["bytes"]["a"] == 12 * 5 * 4
    assert r["bytes"]["out"] == 12 * 5 * 4
    assert r["memory_cycles"] == 2 + -(-r["bytes"]["total"] * b.denominator // b.numerator)
    assert r["cycles"] >= max(r["compute_cycles"], r["memory_cycles"])
    assert r["bound"] == ("memory" if r["memory_cycles"] > r["compute_cycles"] else "compute")
    assert r["fits"] is False and r["buffer_bytes"] == 12 * 5 * 4 + 12 * 4 * 5
    if b == Fraction(1, 7):
        assert r["bound"] == "memory" and r["cycles"] <= r["memory_cycles"] + 40


def test_model_memory_and_a_long_m_split():
    array = ArrayConfig(4, 4)
    gemms = [Gemm("a", 8, 16, 16), Gemm("s", 8, 4, 8, on_array=False), Gemm("b", 8, 16, 16, count=2),
             Gemm("c", 1, 16, 4)]
    prof = MemoryProfile("m", 0.05)
    m = memory.model_memory(gemms, array, prof, 100.0, batch=2)
    assert [r["name"] for r in m["layers"]] == ["a", "b", "c"]
    a, b = m["layers"][0], m["layers"][1]
    assert b["cycles"] == 2 * a["cycles"] and b["macs"] == 2 * a["macs"]
    assert m["cycles"] == sum(r["cycles"] for r in m["layers"])
    assert m["inferences_per_s"] == pytest.approx(100e6 * 2 / m["cycles"])
    assert m["gmac_per_s"] == pytest.approx(m["macs"] * 100e6 / m["cycles"] / 1e9)
    assert m["peak_gmac_per_s"] == pytest.approx(1.6)
    assert m["bytes_per_cycle"] == 0.5 and m["memory_bound_layers"] == 3
    # M above what one command takes: split into commands of at most 65536 // ceil(K/rows) rows
    acfg, cmds = memory.gemm_commands(70000, 16, 4, array)
    assert acfg.max_m == 16384 and [c[0] for c in cmds] == [16384] * 4 + [70000 - 4 * 16384]


def test_estimate_memory_options_are_checked(tmp_path, capsys):
    from rf8hw.accel.estimate import EstimateConfig

    with pytest.raises(ValueError, match=r"^a memory profile needs the accelerator clock: give clock_mhz"):
        EstimateConfig(memory="ulx3s-sdram", synth=False)
    with pytest.raises(ValueError, match=r"^clock_mhz must be a number in \[0\.001, 100000\.0\] \(MHz\), "
                                         r"not -5"):
        EstimateConfig(memory="ulx3s-sdram", clock_mhz=-5)
    cfg = EstimateConfig(memory_bandwidth=0.1, clock_mhz=50.0, synth=False)
    assert cfg.memory_profile.sustained_gbps == 0.1
    for argv, needle in ((["--memory", "hbm", "--clock-mhz", "50"],
                          "memory must be one of 'ecp5-ddr3-1600-x16'"),
                         (["--memory-bandwidth", "0", "--clock-mhz", "50"],
                          "memory_bandwidth must be a number in (0, 10000] GB/s, not 0.0"),
                         (["--memory", "ulx3s-sdram"], "a memory profile needs the accelerator clock")):
        rc = cli.main(["estimate", "--model", "mlp_digits", "--checkpoint", "x", "--rows", "2", "--cols", "2",
                       "--no-synth", "--out", str(tmp_path), *argv])
        err = capsys.readouterr().err
        assert rc == 2 and needle in err and len(err.strip().splitlines()) == 1, err
