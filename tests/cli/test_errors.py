"""The CLI's one error path: user errors are one line on stderr and exit status 2; internal errors
keep their traceback."""

import errno

import pytest

from rf8hw import cli


def test_output_folder_below_a_file_is_one_line(tmp_path, capsys):
    afile = tmp_path / "afile"
    afile.write_text("")
    assert cli.main(["generate", "--rows", "2", "--cols", "2", "-o", str(afile / "sub")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith("rf8hw generate: error: ") and str(afile) in err


@pytest.mark.parametrize("exc, expected", [
    (ValueError("rows must be an integer in 1..64, not 0"), "rows must be an integer in 1..64, not 0"),
    (FileNotFoundError("no such checkpoint: x.safetensors"), "no such checkpoint: x.safetensors"),
    (PermissionError(errno.EACCES, "Permission denied", "/out"), "Permission denied: /out"),
    (OSError(errno.EROFS, "Read-only file system", "/ro/x"), "Read-only file system: /ro/x"),
    (IsADirectoryError(errno.EISDIR, "Is a directory", "d"), "Is a directory: d"),
])
def test_user_errors_are_worded_once(exc, expected):
    assert cli.user_error(exc) == expected


def test_internal_errors_keep_their_traceback(monkeypatch):
    import rf8hw.commands.generate as command

    def broken(args):
        raise OSError(errno.EIO, "I/O error")          # no path: not the user's input

    monkeypatch.setattr(command, "run", broken)
    with pytest.raises(OSError, match="I/O error"):
        cli.main(["generate", "--rows", "2", "--cols", "2", "-o", "x"])


@pytest.mark.parametrize("option, value, message", [
    ("--seed", "-1", "seed must be an integer in 0..9223372036854775807, not -1"),
    ("--tiles", str(10**12), "tiles must be an integer in 1..1000000 (one run's stimulus is held "
                             "in memory; split larger runs), not 1000000000000"),
    ("--tiles", "0", "tiles must be an integer in 1..1000000"),
])
def test_cosim_counts_are_bounded_before_any_work(option, value, message, tmp_path, capsys):
    args = {"--seed": "1", "--tiles": "1", option: value}
    argv = ["cosim", "--rows", "2", "--cols", "2", "--cache-dir", str(tmp_path / "cache"),
            "--out-dir", str(tmp_path / "run")] + [x for kv in args.items() for x in kv]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"rf8hw cosim: error: {message}") and err.count("\n") == 1
    assert not (tmp_path / "cache").exists()            # refused before anything was generated


def test_fit_prints_the_plot_path_it_wrote(tmp_path, capsys):
    import torch
    from safetensors.torch import save_file

    ckpt = tmp_path / "m.safetensors"
    save_file({"w": torch.randn(64, 64, generator=torch.Generator().manual_seed(0))}, str(ckpt))
    assert cli.main(["fit", str(ckpt), "--plot", str(tmp_path / "x"),
                     "--json", str(tmp_path / "f.json")]) == 0
    out = capsys.readouterr().out
    assert f"plot: {tmp_path / 'x.png'}\n" in out and (tmp_path / "x.png").read_bytes()[:4] == b"\x89PNG"
    assert (not (tmp_path / "x").exists()
            and sorted(p.name for p in tmp_path.iterdir()) == ["f.json", "m.safetensors", "x.png"])


def test_argparse_usage_errors_are_one_line(capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(["train", "--model", "resnet", "--out", "x"])
    assert info.value.code == 2
    assert capsys.readouterr().err == ("rf8hw train: error: argument --model: invalid choice: 'resnet' "
                                       "(choose from 'tinygpt', 'mlp_digits')\n")


def test_negative_numbers_reach_their_option_as_values(tmp_path, capsys):
    """``--lr -1e-3`` is a bad learning rate (one line, exit 2), not argparse's "expected one
    argument": every command sees a negative number after an option as its value."""
    from rf8hw.cli import attach_negative_numbers

    assert attach_negative_numbers(["train", "--lr", "-1e-3", "--seed", "-1", "--quiet"]) == [
        "train", "--lr=-1e-3", "--seed=-1", "--quiet"]
    assert attach_negative_numbers(["x", "--a=-1", "--b", "-inf", "--", "-2"]) == [
        "x", "--a=-1", "--b=-inf", "--", "-2"]
    rc = cli.main(["train", "--model", "mlp_digits", "--lr", "-1e-3", "--out", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert rc == 2 and "lr must be a finite number >= 0, not -0.001" in err and "Traceback" not in err
