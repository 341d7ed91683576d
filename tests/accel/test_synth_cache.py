"""The synthesis result cache (rf8hw.accel.synth_cache): entries are sealed (key, the request's
parameters, a content digest) and checked before they are trusted, written atomically, and one key
is synthesized once even by concurrent callers.  Synthesis itself is replaced by a stub here
(tests/accel/test_estimate.py runs a real one)."""

import json
import math
import sys
import threading
import time

import pytest

from rf8hw.accel import synth, synth_cache
from rf8hw.arch import ArrayConfig

GOOD = {"device": "ecp5-25k", "part": "LFE5U-25F-6BG256C", "seed": 1, "tools": {"yosys": "x"},
        "lut4": 100, "ff": 50, "carry": 3, "dsp": 0, "bram": 0, "fmax_mhz": 123.4}


@pytest.fixture
def stub(monkeypatch):
    calls = []

    def fake(array, device, seed, workdir, **_):
        calls.append((array, device, seed))
        time.sleep(0.2)
        return dict(GOOD, seed=seed)

    monkeypatch.setattr(synth, "synthesize", fake)
    return calls


def _params(cfg=None, seed=1):
    return dict(**(cfg or ArrayConfig(1, 1)).as_dict(), device="ecp5-25k", seed=seed)


def _entry(tmp_path, cfg=None, seed=1):
    return tmp_path / f"{synth_cache.synth_cache_key(_params(cfg, seed))}.json"


def _sealed(result, params=None, key=None):
    """An entry as the cache writes it (for the default 1x1 request unless told otherwise)."""
    params = params or _params()
    return json.dumps(synth_cache.seal_entry(key or synth_cache.synth_cache_key(_params()), params, result))


def _edited(**changes):
    """A good sealed entry whose result was then edited by hand (the digest no longer matches)."""
    entry = json.loads(_sealed(GOOD))
    entry["value"].update(changes)
    return json.dumps(entry)


BAD_ENTRIES = [
    ("{}", "not a sealed rf8hw cache entry"),
    ("[]", "not a sealed rf8hw cache entry"),
    ("{not json", "Expecting property name"),
    (json.dumps(GOOD), "not a sealed rf8hw cache entry"),          # an older rf8hw's: no digest
    # item 8: a hand-edited Fmax is not trusted
    (_edited(fmax_mhz=9999), "its content does not match its SHA-256 (edited by hand?)"),
    (_edited(lut4=1), "its content does not match its SHA-256"),
    # item 9: an entry whose recorded parameters are not the request's
    (_sealed(GOOD, params=_params(ArrayConfig(8, 8, pe="rf8"))),
     "it records cols 8 (requested 1), pe 'rf8' (requested 'rf8_pipe'), rows 8 (requested 1)"),
    (_sealed(GOOD, key="0" * 20), "it was stored under key '00000000000000000000'"),
    (_sealed({**GOOD, "rows": 8, "pe": "rf8"}), "the result is for rows 8 (requested 1), pe 'rf8'"),
    (_sealed({**GOOD, "device": "ecp5-85k"}), "the result is for device 'ecp5-85k' (requested 'ecp5-25k')"),
    (_sealed({**GOOD, "fmax_mhz": None}), "'fmax_mhz' is None"),
    (_sealed({**GOOD, "lut4": -1}), "'lut4' is -1, a count must be >= 0"),
    (_sealed({**GOOD, "lut4": "100"}), "'lut4' is '100', not a int"),
    (_sealed({**GOOD, "dsp": True}), "'dsp' is True"),
    (_sealed({**GOOD, "fmax_mhz": 0}), "not a finite positive MHz figure"),
    (_sealed({k: v for k, v in GOOD.items() if k != "tools"}), "no 'tools'"),
    (_sealed(GOOD).replace('"fmax_mhz": 123.4', '"fmax_mhz": NaN'), "content does not match its SHA-256"),
]


@pytest.mark.parametrize("text, why", BAD_ENTRIES)
def test_an_unusable_cache_entry_is_reported_removed_and_redone(stub, tmp_path, capsys, text, why):
    hit = _entry(tmp_path)
    hit.write_text(text)
    res, cached = synth_cache.cached_synthesis(ArrayConfig(1, 1), "ecp5-25k", cache_dir=tmp_path, quiet=True)
    assert not cached and res == GOOD and len(stub) == 1
    err = capsys.readouterr().err
    assert "unusable synthesis cache entry removed" in err and why in err and str(hit) in err
    assert err.count("\n") == 1
    stored = json.loads(hit.read_text())                          # the fresh result replaced it, sealed
    assert synth_cache.open_entry(stored, hit.stem, _params(), "x") == GOOD
    again, cached = synth_cache.cached_synthesis(ArrayConfig(1, 1), "ecp5-25k", cache_dir=tmp_path,
                                                 quiet=True)
    assert cached and again == GOOD and len(stub) == 1


def test_a_hand_edited_fmax_never_reaches_an_estimate(stub, tmp_path, capsys):
    """Issue item 8 end to end: the estimate's throughput comes from a fresh synthesis, not from
    the edited entry's 9999 MHz."""
    import torch

    from rf8hw.accel import estimate
    from rf8hw.accel.source import from_adapter

    synth_cache.cached_synthesis(ArrayConfig(1, 1), "ecp5-25k", cache_dir=tmp_path, quiet=True)
    hit = _entry(tmp_path)
    hit.write_text(hit.read_text().replace('"fmax_mhz": 123.4', '"fmax_mhz": 9999'))
    model = torch.nn.Linear(4, 4)
    src = from_adapter((model, lambda m: m(torch.ones(1, 4)), lambda m: {"score": 1.0}))
    cfg = estimate.EstimateConfig(array=ArrayConfig(1, 1), synth_cache=str(tmp_path), paths=("fp32",))
    rep = estimate.estimate(cfg, progress=False, source=src)
    assert rep["fmax_mhz"] == 123.4 and rep["synth"]["cached"] is False and len(stub) == 2
    assert "its content does not match its SHA-256" in capsys.readouterr().err


def test_a_bad_fresh_result_is_not_cached(monkeypatch, tmp_path):
    monkeypatch.setattr(synth, "synthesize", lambda *a, **k: dict(GOOD, fmax_mhz=math.nan))
    with pytest.raises(ValueError, match=r"synthesis of rf8\w*_array_1x1\w* on ecp5-25k: 'fmax_mhz' is nan"):
        synth_cache.cached_synthesis(ArrayConfig(1, 1), "ecp5-25k", cache_dir=tmp_path, quiet=True)
    assert not _entry(tmp_path).exists()
    assert not list(tmp_path.glob("*.tmp")) and not list(tmp_path.glob(".*.tmp"))


FAKE_YOSYS = """\
import json, sys
log = sys.argv[sys.argv.index("-l") + 1]
# what YoWASP's Yosys was seen to leave behind: a log that stops inside ABC, exit status 0 --
# with well-formed outputs, so that only the missing closing line can give it away
open(log, "w").write("7.39.14.5. Executing ABC9.\\nRunning ABC command\\n")
stat = {"design": {"num_cells_by_type": {"LUT4": 1, "TRELLIS_FF": 1}}}
open("stat.json", "w").write(json.dumps(stat))
open("netlist.json", "w").write("{}")
"""


def test_a_tool_run_that_exits_0_without_completing_is_refused_and_not_cached(monkeypatch, tmp_path):
    """Item 4 of the hardware-truth issue: a Yosys run counts only when its log ends as a completed
    run; an exit status of 0 with a log cut short (outputs present or not) is a ToolError with the
    log tail, and nothing reaches the cache."""
    fake = tmp_path / "fake-yosys"
    fake.write_text(f"#!{sys.executable}\n{FAKE_YOSYS}")
    fake.chmod(0o755)
    monkeypatch.setattr(synth, "yowasp_tool", lambda name: str(fake))
    cache_dir = tmp_path / "cache"
    with pytest.raises(synth.ToolError, match=r"(?s)^yosys did not complete \(exit 0 but no "
                                              r"'End of script\.' in its log\).*Running ABC command"):
        synth_cache.cached_synthesis(ArrayConfig(1, 1), "ecp5-25k", cache_dir=cache_dir, quiet=True)
    assert not _entry(cache_dir).exists()
    assert not list(cache_dir.glob("*.json"))


def test_concurrent_callers_synthesize_one_key_once(stub, tmp_path):
    results = []

    def run():
        results.append(synth_cache.cached_synthesis(ArrayConfig(1, 1), "ecp5-25k", cache_dir=tmp_path,
                                                 quiet=True))

    threads = [threading.Thread(target=run) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(stub) == 1
    assert sorted(c for _, c in results) == [False, True, True]
    assert all(r == GOOD for r, _ in results)


def test_check_synthesis_result_accepts_a_real_shape():
    assert synth_cache.check_synthesis_result(dict(GOOD, extra=1), "x")["lut4"] == 100


def test_reading_the_cache_never_synthesizes(stub, tmp_path, capsys):
    """The sweep's driver reads hits with read_cached_synthesis: an unusable entry (e.g. an older
    rf8hw's) is reported and removed, and its synthesis is left to the sweep's Ray tasks, not run
    in the driver one after the other."""
    read = synth_cache.read_cached_synthesis
    assert read(ArrayConfig(1, 1), "ecp5-25k", cache_dir=tmp_path) is None
    hit = _entry(tmp_path)
    hit.write_text(json.dumps(GOOD))                               # unsealed: an older rf8hw's
    assert read(ArrayConfig(1, 1), "ecp5-25k", cache_dir=tmp_path) is None
    assert "not a sealed rf8hw cache entry" in capsys.readouterr().err and not hit.exists()
    hit.write_text(_sealed(GOOD))
    assert read(ArrayConfig(1, 1), "ecp5-25k", cache_dir=tmp_path) == GOOD
    assert stub == []
