"""The synthesis result cache (rf8hw.accel.synth_cache): entries are checked before they are trusted,
written atomically, and one key is synthesized once even by concurrent callers.  Synthesis itself
is replaced by a stub here (tests/accel/test_estimate.py runs a real one)."""

import json
import math
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


def _entry(tmp_path, cfg=None, seed=1):
    params = dict(**(cfg or ArrayConfig(1, 1)).as_dict(), device="ecp5-25k", seed=seed)
    return tmp_path / f"{synth_cache.synth_cache_key(params)}.json"


BAD_ENTRIES = [
    ("{}", "no 'device'"),
    ("[]", "must be a JSON object, not list"),
    ("{not json", "Expecting property name"),
    (json.dumps({**GOOD, "fmax_mhz": None}), "'fmax_mhz' is None"),
    (json.dumps({**GOOD, "lut4": -1}), "'lut4' is -1, a count must be >= 0"),
    (json.dumps({**GOOD, "lut4": "100"}), "'lut4' is '100', not a int"),
    (json.dumps({**GOOD, "dsp": True}), "'dsp' is True"),
    (json.dumps({**GOOD, "fmax_mhz": 0}), "not a finite positive MHz figure"),
    ('{"device": "ecp5-25k", "part": "p", "seed": 1, "tools": {}, "lut4": 1, "ff": 1, "carry": 1, '
     '"dsp": 0, "bram": 0, "fmax_mhz": NaN}', "not a finite positive MHz figure"),
    (json.dumps({k: v for k, v in GOOD.items() if k != "tools"}), "no 'tools'"),
]


@pytest.mark.parametrize("text, why", BAD_ENTRIES)
def test_an_unusable_cache_entry_is_reported_removed_and_redone(stub, tmp_path, capsys, text, why):
    hit = _entry(tmp_path)
    hit.write_text(text)
    res, cached = synth_cache.cached_synthesis(ArrayConfig(1, 1), "ecp5-25k", cache_dir=tmp_path, quiet=True)
    assert not cached and res == GOOD and len(stub) == 1
    err = capsys.readouterr().err
    assert "unusable synthesis cache entry removed" in err and why in err and str(hit) in err
    assert json.loads(hit.read_text()) == GOOD                    # the fresh result replaced it
    again, cached = synth_cache.cached_synthesis(ArrayConfig(1, 1), "ecp5-25k", cache_dir=tmp_path,
                                                 quiet=True)
    assert cached and again == GOOD and len(stub) == 1


def test_a_bad_fresh_result_is_not_cached(monkeypatch, tmp_path):
    monkeypatch.setattr(synth, "synthesize", lambda *a, **k: dict(GOOD, fmax_mhz=math.nan))
    with pytest.raises(ValueError, match=r"synthesis of rf8\w*_array_1x1\w* on ecp5-25k: 'fmax_mhz' is nan"):
        synth_cache.cached_synthesis(ArrayConfig(1, 1), "ecp5-25k", cache_dir=tmp_path, quiet=True)
    assert not _entry(tmp_path).exists()
    assert not list(tmp_path.glob("*.tmp")) and not list(tmp_path.glob(".*.tmp"))


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
