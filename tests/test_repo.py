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
