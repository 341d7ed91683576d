"""The content-addressed cache key (rf8hw.toolchain.cache): every source that feeds the RTL counts.

The key is computed over a copy of rf8hw/format, rf8hw/hdl and rf8hw/arch.py in tmp_path
(``package_root``), so the tests edit the copy, never the package.
"""

import shutil
from pathlib import Path

import pytest

from rf8hw.arch import ArrayConfig
from rf8hw.toolchain import cache

PACKAGE = Path(cache.package_root())
PARAMS = ArrayConfig(rows=3, cols=3).as_dict()


@pytest.fixture
def copy(tmp_path):
    """A copy of the sources the RTL is generated from."""
    for sub in cache.RTL_SOURCES:
        if sub.endswith(".py"):
            shutil.copy(PACKAGE / sub, tmp_path / sub)
        else:
            shutil.copytree(PACKAGE / sub, tmp_path / sub, ignore=shutil.ignore_patterns("__pycache__"))
    return tmp_path


def test_unchanged_copy_gives_the_same_key(copy):
    key = cache.source_key(PARAMS, package_root=copy)
    assert key == cache.source_key(PARAMS, package_root=copy)
    # files are hashed under their path relative to the root: a byte-identical copy elsewhere
    # is the same source
    assert key == cache.source_key(PARAMS, package_root=PACKAGE)
    assert len(key) == cache.KEY_LENGTH and int(key, 16) >= 0


def test_an_edited_spec_constant_changes_the_key(copy):
    """The RTL is generated from format/spec.py's constants: editing one must not reuse old RTL
    (hashing only hdl/*.py did)."""
    before = cache.source_key(PARAMS, package_root=copy)
    spec = copy / "format" / "spec.py"
    text = spec.read_text()
    assert text.count("EXP_BIAS = 15") == 1
    spec.write_text(text.replace("EXP_BIAS = 15", "EXP_BIAS = 14"))
    assert cache.source_key(PARAMS, package_root=copy) != before
    spec.write_text(text)                                         # undone: the key comes back
    assert cache.source_key(PARAMS, package_root=copy) == before


def test_an_edited_pe_kind_changes_the_key(copy):
    """A PE kind's product latency sizes the array's pipeline: rf8hw/arch.py feeds the RTL."""
    before = cache.source_key(PARAMS, package_root=copy)
    arch = copy / "arch.py"
    text = arch.read_text()
    assert text.count('PEKind("rf8_pipe", "rf8", 2, dsp=False)') == 1
    arch.write_text(text.replace('PEKind("rf8_pipe", "rf8", 2, dsp=False)',
                                 'PEKind("rf8_pipe", "rf8", 1, dsp=False)'))
    assert cache.source_key(PARAMS, package_root=copy) != before


@pytest.mark.parametrize("sub", [s for s in cache.RTL_SOURCES if not s.endswith(".py")])
def test_any_source_file_counts_new_ones_too(copy, sub):
    before = cache.source_key(PARAMS, package_root=copy)
    (copy / sub / "new_module.py").write_text("X = 1\n")
    assert cache.source_key(PARAMS, package_root=copy) != before


def test_parameters_change_the_key_not_their_order(copy):
    key = cache.source_key(PARAMS, package_root=copy)
    assert cache.source_key(ArrayConfig(rows=3, cols=4).as_dict(), package_root=copy) != key
    assert cache.source_key({**PARAMS, "overflow": "saturate"}, package_root=copy) != key
    assert cache.source_key(dict(reversed(list(PARAMS.items()))), package_root=copy) == key


def test_extra_files_and_package_versions_count(copy):
    flow = copy / "flow.py"
    flow.write_text("SCRIPT = 'synth_ecp5'\n")
    key = cache.synthesis_key(PARAMS, ["flow.py"], package_root=copy)   # relative to the root
    assert key == cache.synthesis_key(PARAMS, [flow], package_root=copy)
    assert key != cache.source_key(PARAMS, package_root=copy)
    flow.write_text("SCRIPT = 'synth_ice40'\n")
    assert cache.synthesis_key(PARAMS, [flow], package_root=copy) != key
    # synthesis keys also cover the yowasp versions, RTL keys do not: different keys
    assert (cache.source_key(PARAMS, [flow], package_root=copy)
            != cache.synthesis_key(PARAMS, [flow], package_root=copy))
    with pytest.raises(FileNotFoundError, match="missing.py"):
        cache.synthesis_key(PARAMS, ["missing.py"], package_root=copy)


def test_dropping_the_booth_pre_pass_changes_the_synthesis_key(copy):
    """The synthesis cache keys on the flow module itself: a result mapped without the Booth
    pre-pass is never reused for a flow with it (or the other way round)."""
    from rf8hw.accel.synth_cache import SYNTH_FLOW_FILES

    (copy / "accel").mkdir()
    for name in SYNTH_FLOW_FILES:
        shutil.copy(PACKAGE / name, copy / name)
    key = cache.synthesis_key(PARAMS, SYNTH_FLOW_FILES, package_root=copy)
    flow = copy / "accel" / "synth.py"
    text = flow.read_text()
    assert 'BOOTH_FORMATS = {"ecp5": ("int8",)' in text
    flow.write_text(text.replace('BOOTH_FORMATS = {"ecp5": ("int8",)', 'BOOTH_FORMATS = {"ecp5": ()'))
    assert cache.synthesis_key(PARAMS, SYNTH_FLOW_FILES, package_root=copy) != key


def test_versions_enter_the_key(copy, monkeypatch):
    key = cache.source_key(PARAMS, package_root=copy)
    real = cache.package_versions
    monkeypatch.setattr(cache, "package_versions",
                        lambda names: {**real(names), "amaranth": "0.0.0"})
    assert cache.source_key(PARAMS, package_root=copy) != key


def test_cache_root_follows_xdg_cache_home(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert cache.cache_root("cosim") == tmp_path / "rf8hw" / "cosim"
    monkeypatch.setenv("XDG_CACHE_HOME", "")
    assert cache.cache_root("synth") == Path.home() / ".cache" / "rf8hw" / "synth"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert cache.cache_root("synth") == Path.home() / ".cache" / "rf8hw" / "synth"
    with pytest.raises(ValueError, match="plain directory name"):
        cache.cache_root("../x")


def test_a_root_without_the_sources_is_refused(tmp_path):
    with pytest.raises(FileNotFoundError, match="not an rf8hw package root"):
        cache.source_key(PARAMS, package_root=tmp_path)


def test_sim_cache_root_is_the_shared_one(monkeypatch, tmp_path):
    from rf8hw import sim

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert sim.default_cache_root() == cache.cache_root("cosim")
