"""Repository hygiene: the README's commands are the ones CI runs."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _commands(text: str) -> list[str]:
    return [ln.strip() for ln in text.splitlines()
            if ln.strip() and not ln.strip().startswith("#") and not ln.startswith(("set ", "cd "))]


def test_ci_runs_the_readme_commands():
    readme = (ROOT / "README.md").read_text()
    block = readme.split("```sh", 1)[1].split("```", 1)[0]
    readme_cmds = _commands(block)
    ci_cmds = _commands((ROOT / ".ci" / "run").read_text())
    assert readme_cmds[:2] == ci_cmds[:2], (readme_cmds, ci_cmds)
    assert any("pytest" in c for c in ci_cmds)


def test_no_file_cites_the_private_background_notes():
    """The team's background notes live outside the repository; code and docs say what they need
    themselves (names assembled here so this file does not match itself)."""
    names = ["../" + "shared/", "RF8-" + "NOTES", "TOOL" + "CHAIN.md", "STY" + "LE.md"]
    suffixes = {".py", ".md", ".toml", ".v", ".json", ".cfg", ".txt", ".sh", ""}
    hits = []
    for top in ("rf8hw", "sim", "rtl", "models", "tests", "docs", "benchmarks", ".ci"):
        for path in (ROOT / top).rglob("*"):
            if not path.is_file() or path.suffix not in suffixes or "__pycache__" in path.parts:
                continue
            text = path.read_text(errors="replace")
            hits += [f"{path.relative_to(ROOT)}: {n}" for n in names if n in text]
    for path in (ROOT / "README.md", ROOT / "pyproject.toml"):
        hits += [f"{path.name}: {n}" for n in names if n in path.read_text()]
    assert not hits, hits


def test_pyproject_installs_every_package_folder_inside_rf8hw():
    """The explicit package list of pyproject.toml names every folder with an __init__.py under
    rf8hw/ and the folders mapped into it (sim/ -> rf8hw.sim, models/ -> rf8hw.zoo)."""
    import tomllib

    tool = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    roots = {"rf8hw": ROOT / "rf8hw", **{k: ROOT / v for k, v in tool["package-dir"].items()}}
    found = set()
    for name, folder in roots.items():
        for init in folder.rglob("__init__.py"):
            rel = init.parent.relative_to(folder).parts
            found.add(".".join((name, *rel)))
    assert sorted(tool["packages"]) == sorted(found)
    assert all(p == "rf8hw" or p.startswith("rf8hw.") for p in tool["packages"])


def test_no_top_level_sim_or_models_package_outside_the_checkout(tmp_path):
    """After pip install, only rf8hw is importable: a user's own `sim` or `models` package never
    collides with ours (run from a folder that is not the checkout)."""
    import subprocess
    import sys

    for name in ("sim", "models"):
        res = subprocess.run([sys.executable, "-c", f"import {name}"], cwd=tmp_path,
                             capture_output=True, text=True, timeout=60)
        assert res.returncode != 0 and "No module named" in res.stderr, (name, res.stderr)
    res = subprocess.run([sys.executable, "-c", "import rf8hw.sim, rf8hw.zoo.mlp_digits"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr


def test_configuration_and_cycle_model_load_no_amaranth():
    """ArrayConfig and the PE facts live in rf8hw.arch: the PyTorch front end and the cycle model
    never load Amaranth, and the cycle model never loads torch (fresh interpreter)."""
    import subprocess
    import sys

    script = ("import sys, rf8hw.accel.cycles; assert 'torch' not in sys.modules, 'torch'; "
              "import rf8hw.nn.quant; assert 'amaranth' not in sys.modules, 'amaranth'")
    res = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True,
                         timeout=120)
    assert res.returncode == 0, res.stderr


def test_ruff_check_is_clean():
    """The lint configuration of pyproject.toml ([tool.ruff]) holds on the whole checkout."""
    import subprocess
    import sys

    ruff = Path(sys.executable).parent / "ruff"
    res = subprocess.run([str(ruff), "check", "--no-cache", "--output-format", "concise", str(ROOT)],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-2000:]
