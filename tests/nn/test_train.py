"""rf8hw.nn.train and ``rf8hw train``: loss goes down, files and checkpoints round-trip, options are
checked."""

import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import special

from rf8hw import cli
from rf8hw.nn.checkpoint import load_checkpoint
from rf8hw.nn.train import TrainConfig, config_from_dict, train


def _records(out, kind):
    return [r for r in map(json.loads, (out / "metrics.jsonl").read_text().splitlines()) if r["kind"] == kind]


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """One torch thread: on a shared 2-core CI box, 2 spinning threads per process are much slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def mlp_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("mlp")
    final = train(TrainConfig(model="mlp_digits", epochs=3, seed=1), out, progress=False)
    return out, final


def test_training_reduces_loss_and_logs_every_step(mlp_run):
    out, final = mlp_run
    steps = _records(out, "step")
    assert len(steps) == 3 * 22 and [r["step"] for r in steps] == list(range(66))
    assert np.mean([r["loss"] for r in steps[-10:]]) < 0.5 * np.mean([r["loss"] for r in steps[:5]])
    evals = _records(out, "eval")
    assert [r["epoch"] for r in evals] == [0, 1, 2]
    assert final["test_acc"] > 0.8 and final == _records(out, "final")[0]


def test_tinygpt_few_steps_reduce_loss(tmp_path):
    train(TrainConfig(model="tinygpt", epochs=1, steps_per_epoch=25, batch_size=8, eval_batches=2), tmp_path,
          progress=False)
    losses = [r["loss"] for r in _records(tmp_path, "step")]
    assert np.mean(losses[-5:]) < np.mean(losses[:3]) - 0.5        # from ~4.3 (uniform) towards 3


def test_checkpoint_round_trip_gives_identical_outputs(mlp_run):
    out, final = mlp_run
    net, meta = load_checkpoint(out / "model.safetensors")
    assert meta["seed"] == 1 and meta["train_config"]["epochs"] == 3 and meta["model"] == "mlp_digits"
    assert meta["metrics"]["test_acc"] == final["test_acc"]
    from rf8hw.zoo import mlp_digits

    data = mlp_digits.Data()
    assert data.evaluate(net)["test_acc"] == final["test_acc"]      # same weights, same predictions
    assert (out / "model.safetensors").read_bytes()[:8] != b"\x80\x02\x8a\x0a"[:8]   # not a pickle


def test_same_seed_same_run(tmp_path):
    cfg = TrainConfig(model="mlp_digits", epochs=1, seed=7)
    a = train(cfg, tmp_path / "a", progress=False)
    b = train(cfg, tmp_path / "b", progress=False)
    assert a == b


def test_backslash_forms_log_nu_and_shrink_the_code(tmp_path, mlp_run):
    base = mlp_run[1]
    step = train(TrainConfig(model="mlp_digits", epochs=3, seed=1, backslash=20), tmp_path / "s",
                 progress=False)
    loss = train(TrainConfig(model="mlp_digits", epochs=3, seed=1, backslash=20, backslash_form="loss",
                             backslash_epochs=2), tmp_path / "l", progress=False)
    s_steps, l_steps = _records(tmp_path / "s", "step"), _records(tmp_path / "l", "step")
    assert all(0.05 < r["nu"] < 20 for r in s_steps)
    assert all("penalty" in r for r in l_steps if r["epoch"] < 2)
    assert not any("penalty" in r or "nu" in r for r in l_steps if r["epoch"] == 2)   # BackSlash off
    assert all(r["rate_term"] >= 1 for r in _records(tmp_path / "s", "eval"))   # mean (|w|+1)^nu >= 1
    for run in (step, loss):
        assert run["bits_per_param"] < base["bits_per_param"] - 0.5
        assert run["zero_fraction"] > base["zero_fraction"]


def test_gg_init_draws_the_requested_shape(tmp_path):
    """The moment ratio E[w^2]/E|w|^2 of an untrained fc2 matches Gamma(1/nu)Gamma(3/nu)/Gamma(2/nu)^2."""
    train(TrainConfig(model="mlp_digits", epochs=0, init="gg", gg_shape=0.7), tmp_path, progress=False)
    net, _ = load_checkpoint(tmp_path / "model.safetensors")
    w = net.fc2.weight.detach().double().numpy().ravel()
    rho = np.mean(w ** 2) / np.mean(np.abs(w)) ** 2
    nu = 0.7
    expect = special.gamma(1 / nu) * special.gamma(3 / nu) / special.gamma(2 / nu) ** 2
    assert rho == pytest.approx(expect, rel=0.05)
    assert np.var(w) == pytest.approx(2.0 / 128, rel=0.1)          # xi / fan_in, xi = 2 for ReLU
    assert torch.all(net.fc2.bias == 0)


def test_deepshape_records_before_and_after(tmp_path, mlp_run):
    out = mlp_run[0]
    final = train(TrainConfig(model="mlp_digits", epochs=0, init_from=str(out / "model.safetensors"),
                              deepshape=True, deepshape_epochs=1, deepshape_grid=2.0 ** -9,
                              deepshape_min_count=5), tmp_path, progress=False)
    before, after = final["before_deepshape"], final["after_deepshape"]
    assert before["test_acc"] == mlp_run[1]["test_acc"]            # started from the checkpoint
    assert after["bits_per_param"] < before["bits_per_param"]
    assert [r["phase"] for r in _records(tmp_path, "eval")] == ["deepshape_finetune"]


def test_cli_train_writes_metrics_and_checkpoint(tmp_path, capsys):
    rc = cli.main(["train", "--model", "mlp_digits", "--epochs", "1", "--seed", "3", "--out", str(tmp_path),
                   "--quiet"])
    assert rc == 0
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert printed["kind"] == "final" and 0 <= printed["test_acc"] <= 1
    assert (tmp_path / "model.safetensors").exists() and (tmp_path / "model.json").exists()


def _train_parser():
    import argparse

    parser = cli.build_parser("train")
    return next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices["train"]


def test_cli_options_are_the_train_config_fields():
    """One option per TrainConfig field (its name, default and choices); --model required on the
    command line; --out, --overwrite and --quiet belong to the command."""
    from dataclasses import fields

    from rf8hw import zoo
    from rf8hw.commands.options import config_from_args
    from rf8hw.nn.train import BACKSLASH_FORMS, GG_FANS, INITS

    p = _train_parser()
    opts = {a.dest: a for a in p._actions if a.option_strings and a.dest != "help"}
    assert set(opts) == {f.name for f in fields(TrainConfig)} | {"out", "overwrite", "quiet"}
    for f in fields(TrainConfig):
        action = opts[f.name]
        assert action.option_strings[0] == "--" + f.name.replace("_", "-")
        assert action.required == (f.name == "model"), f.name
        if f.name != "model":
            assert action.default == f.default, f.name
    assert (tuple(opts["model"].choices), tuple(opts["init"].choices), tuple(opts["gg_fan"].choices),
            tuple(opts["backslash_form"].choices)) == (zoo.MODELS, INITS, GG_FANS, BACKSLASH_FORMS)
    args = p.parse_args(["--model", "tinygpt", "--out", "x"])
    assert config_from_args(TrainConfig, args) == TrainConfig(model="tinygpt")
    args = p.parse_args(["--model", "mlp_digits", "--out", "x", "--deepshape", "--init-from", "c.safetensors",
                         "--lr", "0.5", "--backslash", "3", "--backslash-epochs", "2"])
    got = config_from_args(TrainConfig, args)
    assert (got.deepshape, got.init_from, got.lr, got.backslash, got.backslash_epochs) == (
        True, "c.safetensors", 0.5, 3.0, 2)
    assert p.parse_args(["--model", "mlp_digits", "--out", "x", "--no-deepshape"]).deepshape is False


def test_train_command_registers_without_torch():
    """``rf8hw train --help`` stays cheap: registering the command imports no torch."""
    import subprocess
    import sys

    script = ("import argparse, sys; from rf8hw.commands import train; "
              "train.register(argparse.ArgumentParser().add_subparsers(), 'train', 'x'); "
              "assert 'torch' not in sys.modules, sorted(m for m in sys.modules if m.startswith('torch'))")
    res = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr


@pytest.mark.parametrize("argv, message", [
    (["--backslash", "-1"], r"^rf8hw train: error: backslash must be a finite number >= 0, not -1.0$"),
    (["--epochs", "-2"], r"^rf8hw train: error: epochs must be an integer >= 0, not -2$"),
    (["--rate-step", "nan"], r"^rf8hw train: error: rate_step must be a finite number > 0, not nan$"),
    (["--rate-step", "0"], r"^rf8hw train: error: rate_step must be a finite number > 0, not 0.0$"),
    (["--init-from", "/nonexistent/model.safetensors"],
     r"^rf8hw train: error: no such checkpoint: /nonexistent/model.safetensors$"),
    (["--seed", str(2**70)], r"^rf8hw train: error: seed must be an integer in 0\.\.9223372036854774 "
                             r"\(each rank's batch generator is seeded with seed \* 1000 \+ rank"),
    (["--seed", "-1"], r"^rf8hw train: error: seed must be an integer in 0\.\."),
])
def test_cli_bad_values_are_one_clear_line(tmp_path, capsys, argv, message):
    rc = cli.main(["train", "--model", "mlp_digits", "--out", str(tmp_path), "--quiet", *argv])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1, err
    assert re.match(message, err[0]), err[0]


@pytest.mark.parametrize("d, message", [
    ({"model": "resnet"}, r"^model must be one of 'tinygpt', 'mlp_digits', not 'resnet'$"),
    ({"init": "xavier"}, r"^init must be one of 'default', 'gg', not 'xavier'$"),
    ({"backslash_form": "both"}, r"^backslash_form must be one of 'loss', 'step', not 'both'$"),
    ({"gg_fan": "avg"}, r"^gg_fan must be one of 'in', 'out', not 'avg'$"),
    ({"lr": math.inf}, r"^lr must be a finite number >= 0, not inf$"),
    ({"deepshape_min_count": 0}, r"^deepshape_min_count must be an integer >= 1, not 0$"),
    ({"epochs": True}, r"^epochs must be an integer >= 0, not True$"),
    ({"backslash_epochs": -1}, r"^backslash_epochs must be an integer >= 0, not -1$"),
    ({"batch_size": 0}, r"^batch_size must be an integer >= 1, not 0$"),
    ({"gg_shape": 0.0}, r"^gg_shape must be a finite number > 0, not 0\.0$"),
    ({"backslash_eps": -1.0}, r"^backslash_eps must be a finite number > 0, not -1\.0$"),
    ({"epoch": 3}, r"^unknown training option\(s\) epoch; known: "),
    ({"init": "gg", "init_from": "run/model.safetensors"},
     r"^init 'gg' initialises fresh weights and init_from starts from the checkpoint's "
     r"\('run/model\.safetensors'\): give one of them$"),
])
def test_bad_training_options_are_rejected_by_name(d, message):
    with pytest.raises(ValueError, match=message):
        config_from_dict(d)


def test_corrupt_checkpoint_sidecar_is_a_clear_error(tmp_path, mlp_run):
    out = mlp_run[0]
    (tmp_path / "model.safetensors").write_bytes((out / "model.safetensors").read_bytes())
    (tmp_path / "model.json").write_text('{"model": "mlp_digits"}')
    with pytest.raises(ValueError,
                       match=r"^malformed checkpoint sidecar .*model\.json: no 'model_config' entry$"):
        load_checkpoint(tmp_path / "model.safetensors")


# -- divergence, JSON without NaN, atomic run directories ----------------------------------------------

def _quick(**kw):
    return TrainConfig(model="mlp_digits", epochs=1, steps_per_epoch=2, eval_batches=1, **kw)


def _snapshot(d):
    return {p.name: p.read_bytes() for p in sorted(d.iterdir())}


def _leftovers(parent):
    return sorted(p.name for p in parent.iterdir() if p.name.startswith("."))


def test_a_diverging_run_stops_with_one_line_and_writes_nothing(tmp_path, capsys):
    out = tmp_path / "run"
    with pytest.raises(ValueError, match=r"^training diverged in epoch 0 at step \d+ \(train\): "
                                         r"loss (nan|inf); lower the learning rate \(lr=1e\+30\)"):
        train(TrainConfig(model="mlp_digits", epochs=3, lr=1e30), out, progress=False)
    assert not out.exists() and _leftovers(tmp_path) == []
    rc = cli.main(["train", "--model", "mlp_digits", "--lr", "1e30", "--out", str(out), "--quiet"])
    err = capsys.readouterr().err
    assert (rc == 2 and err.count("\n") == 1
            and err.startswith("rf8hw train: error: training diverged in epoch 0"))


def test_metrics_never_hold_bare_nan(tmp_path, monkeypatch):
    import rf8hw.nn.train as train_mod

    real = train_mod.coded_size
    monkeypatch.setattr(train_mod, "coded_size", lambda w, step: {**real(w, step), "entropy_bpp": math.nan,
                                                                   "zigzag_bpp": -math.inf})
    train(_quick(), tmp_path, progress=False)

    def refuse(token):
        raise AssertionError(f"bare {token} in metrics.jsonl")
    records = [json.loads(line, parse_constant=refuse)
               for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    evals = [r for r in records if r["kind"] in ("eval", "final")]
    assert evals and all(r["entropy_bpp"] is None and r["zigzag_bpp"] is None for r in evals)
    assert json.loads((tmp_path / "model.json").read_text(),
                      parse_constant=refuse)["metrics"]["entropy_bpp"] is None


def test_an_existing_run_is_refused_unless_overwrite_replaces_it(tmp_path, capsys):
    out = tmp_path / "run"
    train(_quick(seed=1), out, progress=False)
    old = _snapshot(out)
    rc = cli.main(["train", "--model", "mlp_digits", "--epochs", "1", "--out", str(out), "--quiet"])
    err = capsys.readouterr().err
    assert rc == 2 and err == (f"rf8hw train: error: output directory {out} already holds a training run "
                               "(metrics.jsonl, model.json, model.safetensors); pass --overwrite "
                               "(overwrite=True) to replace it, or give another directory\n")
    assert _snapshot(out) == old
    train(_quick(seed=2), out, progress=False, overwrite=True)
    new = _snapshot(out)
    assert set(new) == set(old) and new["model.safetensors"] != old["model.safetensors"]
    assert json.loads(new["model.json"])["seed"] == 2 and _leftovers(tmp_path) == []
    assert oct(out.stat().st_mode & 0o777) != oct(0o700)            # not mkdtemp's private mode


@pytest.mark.parametrize("make, message", [
    (lambda p: p.write_text("x"), r"output directory '.*run' exists and is not a directory$"),
    (lambda p: (p.mkdir(), (p / "notes.txt").write_text("x")),
     r"output directory .*run is not empty and holds no training run \(notes\.txt\); "
     r"give a new or empty directory$"),
    (lambda p: p.with_name("file").write_text("x"), None),
])
def test_unusable_output_directories_are_refused_before_any_work(tmp_path, make, message):
    out = tmp_path / "run"
    make(out)
    if message is None:                       # a path below a regular file
        out, message = (tmp_path / "file" / "sub",
                        r"output directory '.*file/sub': '.*file' is not a directory$")
    with pytest.raises(ValueError, match=message):
        train(_quick(), out, progress=False, overwrite=True)
    assert _leftovers(tmp_path) == []


def test_a_run_failing_midway_leaves_the_old_run_intact(tmp_path, monkeypatch):
    import rf8hw.nn.train as train_mod

    out = tmp_path / "run"
    train(_quick(seed=1), out, progress=False)
    old = _snapshot(out)

    def broken(*args):
        raise RuntimeError("simulated crash in the middle of the run")
    monkeypatch.setattr(train_mod, "coded_size", broken)
    with pytest.raises(RuntimeError, match="simulated crash"):
        train(_quick(seed=2), out, progress=False, overwrite=True)
    assert _snapshot(out) == old and _leftovers(tmp_path) == []
    load_checkpoint(out / "model.safetensors")


def test_a_concurrent_run_that_finished_first_is_not_overwritten(tmp_path, monkeypatch):
    import rf8hw.nn.train as train_mod

    out = tmp_path / "run"
    real = train_mod.coded_size
    other = tmp_path / "other"
    train(_quick(seed=5), other, progress=False)

    def meanwhile(w, step):                  # another run publishes into out while this one trains
        if not out.exists():
            other.rename(out)
        return real(w, step)
    monkeypatch.setattr(train_mod, "coded_size", meanwhile)
    theirs = None
    with pytest.raises(ValueError, match=r"^output directory .*run was filled by another run while this one "
                                         r"trained; this run's results are in (.*\.partial)$") as info:
        theirs = _snapshot(other) if other.exists() else None
        train(_quick(seed=6), out, progress=False)
    assert theirs is not None and _snapshot(out) == theirs            # the other run, untouched
    kept = Path(re.search(r"results are in (.*)$", str(info.value)).group(1))
    assert json.loads((kept / "model.json").read_text())["seed"] == 6  # ours, complete, not lost


def test_a_killed_run_leaves_the_old_run_intact(tmp_path):
    """SIGKILL in the middle of the epochs: the old run is untouched, the partial one is aside."""
    import os
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path / "run"
    train(_quick(seed=1), out, progress=False)
    old = _snapshot(out)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "rf8hw", "train", "--model", "mlp_digits",
                             "--epochs", "100000", "--out", str(out), "--overwrite", "--quiet"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 600          # a deadline, not a measurement
        while time.monotonic() < deadline:
            partial = [p for p in tmp_path.glob(".run.*.partial") if (p / "metrics.jsonl").exists()
                       and (p / "metrics.jsonl").read_text().count("\n") >= 30]
            if partial or proc.poll() is not None:
                break
            time.sleep(0.2)
        assert partial, proc.stderr.read().decode() if proc.poll() is not None else "no progress in 600 s"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert _snapshot(out) == old
    assert not (partial[0] / "model.safetensors").exists()           # the killed run's half is aside
    net, meta = load_checkpoint(out / "model.safetensors")
    assert meta["seed"] == 1


# -- data sizes, progress on a non-terminal, full disks, file modes ------------------------------------

def test_the_zoo_knows_its_data_sizes_without_loading_the_data():
    from rf8hw.zoo import mlp_digits, tinygpt

    assert mlp_digits.train_examples() == len(mlp_digits.Data().x_train) == 1347
    assert mlp_digits.eval_examples() == len(mlp_digits.Data().x_test) == 450
    data = tinygpt.Data(tinygpt.GPTConfig())
    block = tinygpt.GPTConfig().block_size
    assert tinygpt.train_examples() == len(data.train_ids) - block - 1 == 846143
    assert tinygpt.eval_examples() == len(data.val_ids) - block - 1 == 93958


@pytest.mark.parametrize("d, message", [
    ({"model": "mlp_digits", "batch_size": 10**9},
     r"^batch_size must be an integer in 1\.\.1347 \(mlp_digits draws each batch from its 1347 training "
     r"examples\), not 1000000000$"),
    ({"model": "mlp_digits", "batch_size": 1348}, r"^batch_size must be an integer in 1\.\.1347 "),
    ({"model": "tinygpt", "batch_size": 846144},
     r"^batch_size must be an integer in 1\.\.846143 \(tinygpt draws each batch from its 846143 training "
     r"examples\), not 846144$"),
    ({"model": "tinygpt", "eval_batches": 10**9},
     r"^eval_batches x batch_size must be at most 93958 \(tinygpt's evaluation examples\), not "
     r"1000000000 x 32 = 32000000000; with batch_size 32 the largest eval_batches is 2936$"),
    ({"model": "mlp_digits", "eval_batches": 8},
     r"^eval_batches x batch_size must be at most 450 \(mlp_digits's evaluation examples\), not "
     r"8 x 64 = 512; with batch_size 64 the largest eval_batches is 7$"),
    ({"model": "tinygpt", "batch_size": 100000},
     r"^eval_batches x batch_size must be at most 93958 .* not 20 x 100000 = 2000000; no eval_batches "
     r"fits a batch_size over 93958$"),
])
def test_a_batch_larger_than_the_data_is_refused_not_clamped(d, message):
    with pytest.raises(ValueError, match=message):
        config_from_dict(d)


def test_mlp_digits_evaluates_the_batches_asked():
    """eval_batches x batch_size test images (it once evaluated the whole set whatever was asked)."""
    import torch

    from rf8hw.zoo import mlp_digits

    data = mlp_digits.Data()
    seen = []

    class Count(torch.nn.Module):
        def forward(self, x, y):
            seen.append(len(x))
            return torch.zeros(len(x), 10), torch.tensor(0.0)

    data.evaluate(Count(), 2, 10)
    data.evaluate(Count())
    assert seen == [20, mlp_digits.eval_examples()] and mlp_digits.eval_examples() == 450
    with pytest.raises(ValueError, match=r"^evaluation takes 1 to 450 test images, not 8 x 64 = 512$"):
        data.evaluate(Count(), 8, 64)


def test_the_largest_batch_is_accepted_and_trains_over_the_whole_set(tmp_path):
    config_from_dict({"model": "tinygpt", "batch_size": 2936, "eval_batches": 32})
    train(TrainConfig(model="mlp_digits", epochs=1, batch_size=1347), tmp_path, progress=False)
    steps = _records(tmp_path, "step")
    assert len(steps) == 1
    assert json.loads((tmp_path / "model.json").read_text())["recipe"]["batch_size"] == 1347


def test_cli_refuses_a_huge_batch_before_any_work(tmp_path, capsys):
    out = tmp_path / "run"
    rc = cli.main(["train", "--model", "mlp_digits", "--batch-size", "1000000000", "--out", str(out)])
    err = capsys.readouterr().err
    assert rc == 2 and err == ("rf8hw train: error: batch_size must be an integer in 1..1347 (mlp_digits "
                               "draws each batch from its 1347 training examples), not 1000000000\n")
    assert not out.exists() and _leftovers(tmp_path) == []


def test_progress_on_a_non_terminal_is_a_few_plain_lines(tmp_path, capsys):
    """stderr is not a terminal under pytest (as in a CI log): no tqdm carriage returns, at most
    ten lines per phase, the last one at 100 %."""
    train(TrainConfig(model="mlp_digits", epochs=3, seed=1, deepshape=True, deepshape_grid=2.0 ** -9,
                      deepshape_min_count=5, deepshape_epochs=1), tmp_path, progress=True)
    captured = capsys.readouterr()
    err = captured.err
    assert "\r" not in err and "it/s" not in err
    lines = err.splitlines()
    train_lines = [ln for ln in lines if ln.startswith("mlp_digits train: ")]
    tune_lines = [ln for ln in lines if ln.startswith("mlp_digits deepshape_finetune: ")]
    assert len(lines) == len(train_lines) + len(tune_lines), lines
    assert 1 <= len(train_lines) <= 10 and 1 <= len(tune_lines) <= 10
    assert re.match(r"^mlp_digits train: step 66/66 \(100%\), \d+\.\d s, loss=\d+\.\d{3}$", train_lines[-1])
    assert tune_lines[-1].startswith("mlp_digits deepshape_finetune: step 22/22 (100%), ")
    assert captured.out.startswith("mlp_digits: 26,122 parameters, 22 steps/epoch x 3 epochs")


def test_progress_on_a_terminal_is_a_tqdm_bar_and_quiet_shows_nothing(tmp_path):
    import io

    from rf8hw.nn.train import Progress

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    tty, log = Terminal(), io.StringIO()
    for stream in (tty, log):
        bar = Progress(30, "demo", stream=stream)
        for _ in range(30):
            bar.update(loss="0.100")
        bar.close()
    assert "\r" in tty.getvalue() and "30/30" in tty.getvalue()
    lines = log.getvalue().splitlines()
    assert len(lines) == 10 and all(re.match(r"^demo: step \d+/30 \(\d+%\), \d+\.\d s, loss=0\.100$", ln)
                                    for ln in lines)
    assert [ln.split(",")[0] for ln in lines[::9]] == ["demo: step 3/30 (10%)", "demo: step 30/30 (100%)"]
    quiet = Terminal()
    bar = Progress(30, "demo", enabled=False, stream=quiet)
    bar.update()
    bar.close()
    assert quiet.getvalue() == ""


def _full_disk(monkeypatch, when):
    """Writes of a file for which ``when(name)`` holds fail as on a full disk: ``OSError(ENOSPC)``
    naming no file, after part of the data is written."""
    import errno

    real = Path.write_bytes

    def write_bytes(self, data):
        if when(self.name):
            real(self, data[: len(data) // 2])
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(self, data)
    monkeypatch.setattr(Path, "write_bytes", write_bytes)


def test_a_full_disk_while_saving_the_checkpoint_names_it_and_leaves_the_old_run(tmp_path, monkeypatch,
                                                                                    capsys):
    out = tmp_path / "run"
    train(_quick(seed=1), out, progress=False)
    old = _snapshot(out)
    _full_disk(monkeypatch, lambda name: "model.safetensors" in name)
    with pytest.raises(OSError) as info:
        train(_quick(seed=2), out, progress=False, overwrite=True)
    assert info.value.filename == str(out / "model.safetensors") and info.value.errno == 28
    assert _snapshot(out) == old and _leftovers(tmp_path) == []
    rc = cli.main(["train", "--model", "mlp_digits", "--epochs", "1", "--steps-per-epoch", "2",
                   "--quiet", "--out", str(tmp_path / "new")])
    assert rc == 2 and capsys.readouterr().err == (
        f"rf8hw train: error: No space left on device: {tmp_path / 'new' / 'model.safetensors'}\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


def test_a_full_disk_while_logging_names_the_metrics_file(tmp_path, monkeypatch):
    import errno

    import rf8hw.nn.train as train_mod

    real, calls = train_mod.json_safe, []

    def failing(record):
        calls.append(record)
        if len(calls) == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(record)
    monkeypatch.setattr(train_mod, "json_safe", failing)
    with pytest.raises(OSError) as info:
        train(_quick(), tmp_path / "run", progress=False)
    assert info.value.filename == str(tmp_path / "run" / "metrics.jsonl") and info.value.errno == 28
    assert list(tmp_path.iterdir()) == []


def test_a_parent_where_the_partial_cannot_be_made_is_named(tmp_path, monkeypatch):
    """A read-only (or full) parent: ``mkdtemp`` names the temporary it tried; the error names the
    directory asked for (simulated: root may write into read-only directories)."""
    import errno
    import tempfile

    def refused(prefix, suffix, dir):
        raise PermissionError(errno.EACCES, "Permission denied", f"{dir}/{prefix}abc{suffix}")
    monkeypatch.setattr(tempfile, "mkdtemp", refused)
    with pytest.raises(PermissionError) as info:
        train(_quick(), tmp_path / "ro" / "run", progress=False)
    assert info.value.filename == str(tmp_path / "ro")


def test_checkpoint_files_have_the_mode_of_their_sidecar(tmp_path):
    """Both ``0o666`` less the umask (safetensors' own writer would make the tensors 0600)."""
    import os

    umask = os.umask(0o022)
    try:
        train(_quick(), tmp_path / "a", progress=False)
        os.umask(0o027)
        train(_quick(), tmp_path / "b", progress=False)
    finally:
        os.umask(umask)
    modes = {run: {p.name: p.stat().st_mode & 0o777 for p in (tmp_path / run).iterdir()} for run in "ab"}
    assert modes == {"a": dict.fromkeys(["metrics.jsonl", "model.json", "model.safetensors"], 0o644),
                     "b": dict.fromkeys(["metrics.jsonl", "model.json", "model.safetensors"], 0o640)}
    assert (tmp_path / "a").stat().st_mode & 0o777 == 0o755


# -- options a switch that is off would ignore; DeepShape that reshapes nothing; Ctrl-C ----------------

@pytest.mark.parametrize("d, message", [
    ({"gg_shape": 0.5}, r"^gg_shape 0\.5 is used only with init 'gg' \(init is 'default'\): give gg_shape "
                        r"with it, or leave gg_shape out$"),
    ({"gg_fan": "out"}, r"^gg_fan 'out' is used only with init 'gg'"),
    ({"backslash_epochs": 3},
     r"^backslash_epochs 3 is used only with a BackSlash weight > 0 \(backslash is 0: off\)"),
    ({"backslash_form": "loss"}, r"^backslash_form 'loss' is used only with a BackSlash weight > 0"),
    ({"backslash_eps": 0.5}, r"^backslash_eps 0\.5 is used only with a BackSlash weight > 0"),
    ({"deepshape_epochs": 3}, r"^deepshape_epochs 3 is used only with deepshape on \(it is off\)"),
    ({"deepshape_grid": 0.01}, r"^deepshape_grid 0\.01 is used only with deepshape on"),
    ({"deepshape_min_count": 5}, r"^deepshape_min_count 5 is used only with deepshape on"),
    ({"init": "gg", "gg_shape": 1e-10}, r"^gg_shape must be a finite number >= 0\.05 \(the smallest GG shape "
                                        r"rf8hw fits; below it GG-init's scale underflows\), not 1e-10$"),
])
def test_options_a_switched_off_feature_would_ignore_are_refused(d, message):
    with pytest.raises(ValueError, match=message):
        config_from_dict({"model": "mlp_digits", **d})


def test_options_with_their_switch_and_defaults_given_again_are_accepted():
    config_from_dict({"model": "mlp_digits", "init": "gg", "gg_shape": 0.5, "gg_fan": "out",
                      "backslash": 1.0, "backslash_form": "loss", "backslash_epochs": 1,
                      "backslash_eps": 0.5, "deepshape": True, "deepshape_epochs": 2,
                      "deepshape_grid": 0.01, "deepshape_min_count": 5})
    config_from_dict({"model": "mlp_digits", "gg_shape": 2.0, "backslash_form": "step",
                      "deepshape_epochs": 1})


def test_gg_init_refuses_a_shape_whose_scale_underflows():
    from rf8hw.nn import gg

    with pytest.raises(ValueError, match=r"^GG-init shape must be a finite number >= 0\.05 .*not 0\.007$"):
        gg.gg_init_(torch.nn.Linear(4, 4), shape=0.007)


@pytest.mark.parametrize("kw, message", [
    ({"deepshape_min_count": 10**12},
     r"^DeepShape reshaped no weight matrix \(deepshape_grid=0\.0001220703125, deepshape_min_count="
     r"1000000000000\): fc1\.weight: no level holds min_count=1000000000000 weights \(largest: \d+\); "
     r"fc2\.weight: "),
    ({"deepshape_grid": 1e30}, r"^DeepShape reshaped no weight matrix .* fc1\.weight: window is a single "
                               r"level \(0\); nothing to reshape; "),
    ({"deepshape_grid": 1e-30}, r"^DeepShape: fc1\.weight: grid 1e-30 is too small for these weights: "
                                r"level \S+ is beyond the 2\*\*52 levels DeepShape supports$"),
])
def test_deepshape_that_reshapes_nothing_fails_the_run(tmp_path, mlp_run, kw, message):
    """Not exit 0 with nothing done: every matrix skipped (or a grid that overflows the levels) is
    a one-line error naming each matrix and why, and the run directory is not written."""
    cfg = TrainConfig(model="mlp_digits", epochs=0, init_from=str(mlp_run[0] / "model.safetensors"),
                      deepshape=True, deepshape_epochs=1, **kw)
    with pytest.raises(ValueError, match=message):
        train(cfg, tmp_path / "run", progress=False)
    assert list(tmp_path.iterdir()) == []


def test_deepshape_that_skips_some_matrices_records_them(tmp_path, mlp_run, capsys):
    # fc3 (128 x 10 = 1,280 weights) has no level of 20 weights at this grid; fc1 and fc2 have
    final = train(TrainConfig(model="mlp_digits", epochs=0, init_from=str(mlp_run[0] / "model.safetensors"),
                              deepshape=True, deepshape_epochs=1, deepshape_grid=2.0 ** -9,
                              deepshape_min_count=20), tmp_path / "run", progress=True)
    assert list(final["deepshape_skipped"]) == ["fc3.weight"]
    assert final["deepshape_skipped"]["fc3.weight"].startswith("no level holds min_count=20 weights")
    assert ("DeepShape left 1 of 3 weight matrices as they were: fc3.weight: no level holds"
            in capsys.readouterr().err)
    assert _records(tmp_path / "run", "final")[0]["deepshape_skipped"] == final["deepshape_skipped"]


def test_the_current_directory_is_not_an_output_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for out in ("", ".", str(tmp_path)):
        with pytest.raises(ValueError, match=r"^output directory .* is the current directory; give a "
                                             r"directory for the run \(it is replaced as a whole\)$"):
            train(_quick(), out, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_ctrl_c_is_one_line_and_leaves_out_as_it_was(tmp_path, monkeypatch, capsys):
    import rf8hw.nn.train as train_mod

    out = tmp_path / "run"
    train(_quick(seed=1), out, progress=False)
    old = _snapshot(out)

    def interrupted(*args):
        raise KeyboardInterrupt
    monkeypatch.setattr(train_mod, "coded_size", interrupted)
    rc = cli.main(["train", "--model", "mlp_digits", "--epochs", "1", "--quiet", "--overwrite",
                   "--out", str(out)])
    assert rc == 130 and capsys.readouterr().err == f"rf8hw train: interrupted; {out} was left as it was\n"
    assert _snapshot(out) == old and _leftovers(tmp_path) == []


def test_a_quantized_file_or_a_device_given_as_checkpoint_is_one_clear_line(tmp_path):
    import rf8hw
    from rf8hw.nn import quant
    from rf8hw.zoo import mlp_digits

    quant.save_quantized(rf8hw.quantize(mlp_digits.build()), tmp_path / "q.safetensors",
                         model_info={"name": "mlp_digits", "config": {}})
    with pytest.raises(ValueError, match=r"q\.safetensors is a quantized model \(its sidecar's format is "
                                         r"'rf8hw-quantized-model'\), not a training checkpoint; read it "
                                         r"with rf8hw\.nn\.quant\.load_quantized$"):
        load_checkpoint(tmp_path / "q.safetensors")
    with pytest.raises(ValueError, match=r"^checkpoint /dev/null is not a regular file \(a device, a pipe "
                                         r"or a socket\); give a \.safetensors file$"):
        load_checkpoint("/dev/null")


def test_a_symbolic_link_as_output_directory_is_the_directory_it_names(tmp_path):
    """The run replaces the directory the link names (the link stays), with nothing left beside it;
    before, the rename onto the link failed after training and left .partial/.old directories."""
    (tmp_path / "target").mkdir()
    (tmp_path / "link").symlink_to("target")
    train(_quick(seed=1), tmp_path / "link", progress=False)
    first = _snapshot(tmp_path / "target")
    train(_quick(seed=2), tmp_path / "link", progress=False, overwrite=True)
    assert (tmp_path / "link").is_symlink()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link", "target"]
    assert _snapshot(tmp_path / "target") != first
    assert json.loads((tmp_path / "link" / "model.json").read_text())["seed"] == 2
