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
