"""``rf8hw cosim --layer`` (rf8hw/accel/cosim_layer.py): a real layer's GEMM of a small zoo model
through the RTL, equal to the golden model and to the bit-exact PyTorch layer's integers."""

import re

import numpy as np
import pytest

from rf8hw import cli
from rf8hw.accel.cosim_layer import capture_layer
from rf8hw.arch import ArrayConfig
from rf8hw.format import golden

SUMMARY = re.compile(r"^tiles=(\d+) macs=\d+ mismatches=(\d+) cycles=\d+ cycles/s=\d+$")


@pytest.fixture(scope="module")
def checkpoint(train_mlp_digits):
    """mlp_digits after 30 AdamW steps (well under a second)."""
    return train_mlp_digits(30)


def test_capture_is_the_layers_own_integer_gemm(checkpoint):
    """The captured activations are INT8 of a real (non-zero) input, and the bit-exact path's
    accumulator is golden.matmul of them (an independent oracle)."""
    cfg = ArrayConfig(4, 4, acc_bits=27)
    got = capture_layer("mlp_digits", "fc2", cfg, checkpoint=checkpoint, batch=6)
    assert got["shape"] == (6, 128, 128) and got["replay_matches_layer"]
    a = got["a"]
    assert np.abs(a).max() == 127 and (a != 0).mean() > 0.3      # per-token scales, real input
    assert np.array_equal(got["acc"], golden.matmul(a, got["codes"], 27, "wrap", impl="loop"))


@pytest.mark.parametrize("out_bits", [8, 32])
def test_capture_with_postprocessing_is_the_rule_on_its_integers(checkpoint, out_bits):
    """With out_bits, the post-processed layer's integers are postproc.gemm of its per-tensor
    INT8 input with the parameters it derived, and its forward equals the replay of them."""
    from rf8hw.format import postproc

    got = capture_layer("mlp_digits", "fc2", ArrayConfig(4, 4), checkpoint=checkpoint, batch=5,
                        out_bits=out_bits)
    post = got["post"]
    assert post["replay_matches_layer"] and got["replay_matches_layer"]
    a = post["a"]
    assert a.shape == (5, 128) and np.abs(a).max() == 127
    want = postproc.gemm(a, got["codes"], post["bias"], post["mult"], post["shift"],
                         out_bits=out_bits)
    assert np.array_equal(post["y_int"], want)
    if out_bits == 8:
        assert (np.abs(want) == 127).any() and post["out_absmax"] > 0
    else:
        assert (post["mult"] == 1).all() and (post["shift"] == 0).all()


@pytest.mark.slow
def test_layer_through_the_rtl_equals_golden_and_bitexact(checkpoint, cosim_cache, tmp_path,
                                                          capsys):
    """fc3 (K=128, N=10: ragged against 4 columns) of a batch of 4 digits on a 4x4 array."""
    status = cli.main(["cosim", "--model", "mlp_digits", "--checkpoint", str(checkpoint),
                       "--layer", "fc3", "--batch", "4", "--rows", "4", "--cols", "4",
                       "--acc-bits", "27", "--seed", "1", "--stall-prob", "0.1",
                       "--cache-dir", str(cosim_cache), "--out-dir", str(tmp_path / "run")])
    out, err = capsys.readouterr()
    assert status == 0, err
    lines = out.strip().splitlines()
    assert SUMMARY.match(lines[-1]).groups() == (str(32 * 3), "0"), lines[-1]
    assert "layer fc3: GEMM 4 x 128 x 10 in 96 tiles of 4x4" in out
    assert ("bit-exact layer: its replay from the captured integers equals its output: True; "
            "the RTL's GEMM equals its integers: True (0 entries differ)") in out


def test_a_wrong_layer_name_lists_the_layers(checkpoint, tmp_path, capsys):
    status = cli.main(["cosim", "--model", "mlp_digits", "--checkpoint", str(checkpoint),
                       "--layer", "fc9", "--rows", "2", "--cols", "2", "--seed", "1",
                       "--cache-dir", str(tmp_path / "c"), "--out-dir", str(tmp_path / "run")])
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and len(err) == 1, err
    assert "'fc9'" in err[0] and "fc1, fc2, fc3" in err[0]
    assert not (tmp_path / "c").exists()              # refused before anything was generated


@pytest.mark.slow
@pytest.mark.parametrize("simulator,out_bits,stall", [("icarus", 8, 0.0), ("verilator", 32, 0.2)])
def test_layer_through_the_accelerator_equals_the_postprocessed_bitexact_layer(
        checkpoint, cosim_cache, tmp_path, capsys, simulator, out_bits, stall):
    """fc2 (K=128, N=128; M=3, below the 4 array rows) of 3 digits on a 4x4 accelerator, INT8 at
    full rate (every result beat at the cycle model's cycle too) and INT32 with stalls: every
    output equals the golden rule and the bit-exact layer's post-processed integers."""
    argv = ["cosim", "--model", "mlp_digits", "--checkpoint", str(checkpoint), "--layer", "fc2",
            "--batch", "3", "--rows", "4", "--cols", "4", "--seed", "2",
            "--sim", simulator, "--stall-prob", str(stall), "--accel", "--out-bits", str(out_bits),
            "--cache-dir", str(cosim_cache), "--out-dir", str(tmp_path / "run")]
    status = cli.main(argv)
    out, err = capsys.readouterr()
    assert status == 0, out + err
    lines = out.strip().splitlines()
    assert SUMMARY.match(lines[-1]).groups() == (str(32 * 32), "0"), lines[-1]
    assert (f"layer fc2: GEMM 3 x 128 x 128 through the accelerator rf8_pipe_accel_4x4_a8_acc40_"
            f"m3_k128_o{out_bits} (1 command(s), 1024 tiles of 4x4, INT{out_bits} out); golden "
            f"rule: 0 of 384 outputs differ") in out
    assert ("; 0 result beats off the cycle model" in out) == (stall == 0)
    assert ("bit-exact layer with the accelerator's post-processing: its replay from its "
            "integers equals its output: True; the accelerator's output equals its integers: "
            "True (0 entries differ)") in out
    assert (tmp_path / "run" / "result.json").is_file()


def test_accel_options_are_refused_in_one_line(checkpoint, tmp_path, capsys):
    base = ["cosim", "--rows", "2", "--cols", "2", "--seed", "1",
            "--cache-dir", str(tmp_path / "c"), "--out-dir", str(tmp_path / "run")]
    layer = ["--model", "mlp_digits", "--checkpoint", str(checkpoint), "--layer", "fc3"]
    for argv, words in [(["--tiles", "3", "--accel"], "accel runs a model layer's GEMM"),
                        (layer + ["--out-bits", "8"], "out_bits is the accelerator's output width"),
                        (layer + ["--accel", "--out-bits", "16"], "out_bits must be 8 or 32, not 16"),
                        (layer + ["--accel", "--waves"], "waves: the accelerator's co-simulation"),
                        (layer + ["--accel", "--acc-bits", "48"], "acc_bits"),
                        (layer + ["--accel", "--overflow", "saturate"], "overflow 'wrap'")]:
        status = cli.main(base + argv)
        err = capsys.readouterr().err.strip().splitlines()
        assert status == 2 and len(err) == 1 and words in err[0], (argv, err)
    assert not (tmp_path / "c").exists()
