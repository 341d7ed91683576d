"""``rf8hw export-tb``: the self-checking plain-Verilog testbench passes on the generated array and
accelerator under Icarus -g2005, Icarus -g2012 and Verilator (--binary --timing), with random
stalls, and reports FAIL (exit status 1) when an expected vector is corrupted; its vectors are
the golden model's."""

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from rf8hw.arch import AccelConfig, ArrayConfig
from rf8hw.cli import main
from rf8hw.format import golden
from rf8hw.hdl.ippackage import tb_module

ARRAY = ArrayConfig(2, 3)
ACCEL = AccelConfig(ArrayConfig(2, 3), max_m=4, max_k=6)


@pytest.fixture(scope="module")
def designs(tmp_path_factory):
    from rf8hw.hdl.accel_generate import generate_accel
    from rf8hw.hdl.generate import generate

    out = tmp_path_factory.mktemp("designs")
    return {"array": generate(ARRAY, out)[0], "accel": generate_accel(ACCEL, out)[0]}


def _lines(path: Path) -> list[str]:
    return path.read_text().split()


def _fields(line: str, lane_bits: int, lanes: int) -> tuple[int, list[int]]:
    """tlast and the signed lanes of one vector line (decoded here, not by the writer's code)."""
    word = int(line[1:], 16)
    vals = [(word >> (lane_bits * i)) & ((1 << lane_bits) - 1) for i in range(lanes)]
    return int(line[0], 16), [v - (1 << lane_bits) if v >> (lane_bits - 1) else v for v in vals]


def test_array_vectors_are_the_golden_models_results(designs, tmp_path):
    """Decode the written stimulus into tiles (by tlast) and recompute each tile's product."""
    out = tmp_path / "o"
    assert main(["export-tb", "--rtl", str(designs["array"]), "-o", str(out), "--seed", "5",
                 "--tiles", "6", "--m-rows", "3"]) == 0
    d = out / f"tb_{ARRAY.module_name}"
    name = tb_module(ARRAY.module_name)
    w = [_fields(x, 8, ARRAY.cols) for x in _lines(d / f"{name}_s_axis_w.hex")]
    a = [_fields(x, 8, ARRAY.rows) for x in _lines(d / f"{name}_s_axis_a.hex")]
    r = [_fields(x, 40, ARRAY.cols) for x in _lines(d / f"{name}_m_axis_acc.hex")]
    assert (len(w), len(a), len(r)) == (6 * ARRAY.rows, 6 * 3, 6 * 3)
    assert [x[0] for x in w] == [0, 1] * 6 and [x[0] for x in a] == [0, 0, 1] * 6
    assert [x[0] for x in r] == [0, 0, 1] * 6
    for t in range(6):
        codes = np.array([x[1] for x in w[2 * t:2 * t + 2]]) & 0xFF
        acts = np.array([x[1] for x in a[3 * t:3 * t + 3]])
        want = golden.matmul(acts, codes.astype(np.uint8), acc_bits=40, overflow="wrap",
                             impl="loop")
        assert np.array_equal(np.array([x[1] for x in r[3 * t:3 * t + 3]]), want)
    # the same seed writes the same bytes; another seed other stimulus
    again = tmp_path / "again"
    assert main(["export-tb", "--rtl", str(designs["array"]), "-o", str(again), "--seed", "5",
                 "--tiles", "6", "--m-rows", "3"]) == 0
    for f in d.iterdir():
        assert (again / d.name / f.name).read_bytes() == f.read_bytes()
    assert main(["export-tb", "--rtl", str(designs["array"]), "-o", str(again), "--seed", "6",
                 "--tiles", "6", "--m-rows", "3"]) == 0
    assert (again / d.name / f"{name}_s_axis_a.hex").read_bytes() != (
        d / f"{name}_s_axis_a.hex").read_bytes()


@pytest.mark.parametrize("argv, needle", [
    (["--cmds", "2"], "--cmds sets the accelerator's stimulus"),
    (["--tiles", "0"], "tiles must be"),
    (["--stall-prob", "1.5"], "stall_prob must be a number in [0, 0.99999]"),
    (["--seed", "-1"], "seed must be"),
])
def test_bad_input_is_one_line_exit_2(designs, argv, needle, tmp_path, capsys):
    assert main(["export-tb", "--rtl", str(designs["array"]), "-o", str(tmp_path), *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("rf8hw export-tb: error: ") and err.count("\n") == 1 and needle in err
    assert not any(tmp_path.iterdir())


def test_accelerator_refuses_array_options(designs, tmp_path, capsys):
    assert main(["export-tb", "--rtl", str(designs["accel"]), "--tiles", "2",
                 "-o", str(tmp_path)]) == 2
    assert "is an accelerator: give --cmds" in capsys.readouterr().err


def _build(sim: str, tb: Path, rtl: Path, work: Path) -> list[str]:
    """Compile ``tb`` + ``rtl`` with ``sim``; the command that runs the result."""
    from rf8hw.toolchain.tools import iverilog_executable, verilator_env, verilator_executable

    work.mkdir(parents=True, exist_ok=True)
    if sim.startswith("icarus"):
        exe = work / "sim.vvp"
        subprocess.run([str(iverilog_executable()), f"-g{sim.removeprefix('icarus')}", "-o",
                        str(exe), str(tb), str(rtl)], check=True, capture_output=True, text=True)
        return [str(Path(iverilog_executable()).with_name("vvp")), "-n", str(exe)]
    subprocess.run([str(verilator_executable()), "--binary", "--timing", "-CFLAGS", "-fcoroutines",
                    "-Mdir", str(work / "obj"), "--top-module", tb.stem, "-o", "tb", str(tb),
                    str(rtl)], check=True, capture_output=True, text=True, env=verilator_env())
    return [str(work / "obj" / "tb")]


@pytest.mark.slow
@pytest.mark.parametrize("design", ["array", "accel"])
@pytest.mark.parametrize("sim", ["icarus2005", "icarus2012", "verilator"])
def test_exported_testbench_passes_and_a_corrupted_vector_fails(designs, design, sim, tmp_path):
    if sim == "verilator" and shutil.which("c++") is None:
        pytest.skip("no C++ compiler for Verilator --binary")
    rtl = designs[design]
    out = tmp_path / "tb"
    extra = ["--tiles", "5", "--m-rows", "3"] if design == "array" else ["--cmds", "3"]
    assert main(["export-tb", "--rtl", str(rtl), "-o", str(out), "--seed", "3",
                 "--stall-prob", "0.3", *extra]) == 0
    d = out / f"tb_{rtl.stem}"
    run = _build(sim, d / f"{tb_module(rtl.stem)}.v", rtl, tmp_path / "work")
    ok = subprocess.run(run, cwd=d, capture_output=True, text=True, timeout=300, check=False)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    beats = len(_lines(next(d.glob("*_m_axis_*.hex"))))
    assert f"PASS: {beats} beats equal the golden model ({rtl.stem}, seed 3," in ok.stdout
    assert "FAIL" not in ok.stdout and "MISMATCH" not in ok.stdout
    # corrupt one digit of one expected beat: the same build reports it and fails
    exp = next(d.glob("*_m_axis_*.hex"))
    lines = _lines(exp)
    k = len(lines) // 2
    lines[k] = lines[k][:-1] + ("1" if lines[k][-1] == "0" else "0")
    exp.write_text("\n".join(lines) + "\n")
    bad = subprocess.run(run, cwd=d, capture_output=True, text=True, timeout=300, check=False)
    assert bad.returncode != 0, bad.stdout
    bus = "m_axis_acc" if design == "array" else "m_axis_out"
    assert f"MISMATCH {bus} beat {k}: got " in bad.stdout
    assert f"FAIL 1 mismatches ({beats} beats checked" in bad.stdout
