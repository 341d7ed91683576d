"""The held-out evaluation texts (models/data/heldout, HELDOUT.md): present as recorded, long
enough, and never calibration data."""

import hashlib
import re

import pytest

from rf8hw.zoo import loading, minilm, smollm2

DOC = (loading.DATA / "HELDOUT.md").read_text()


def _recorded() -> dict:
    """``{file: (bytes, tokens, sha256)}`` from HELDOUT.md's table."""
    rows = re.findall(r"^\| `(\w+\.txt)` \|.*\| ([\d,]+) \| ([\d,]+) \| `([0-9a-f]{64})` \|$", DOC, re.M)
    return {f: (int(b.replace(",", "")), int(t.replace(",", "")), h) for f, b, t, h in rows}


def test_every_heldout_text_is_recorded_with_its_size_and_checksum():
    rec = _recorded()
    assert set(rec) == {p.name for p in smollm2.HELDOUT.values()} and len(rec) >= 3
    for path in smollm2.HELDOUT.values():
        data = path.read_bytes()
        n_bytes, n_tokens, sha = rec[path.name]
        assert (len(data), hashlib.sha256(data).hexdigest()) == (n_bytes, sha)
        assert n_tokens >= 2000


def test_no_heldout_line_occurs_in_any_calibration_text():
    calib = smollm2.calibration_text("shakespeare") + "\n" + "\n".join(minilm.calibration_sentences())
    for path in smollm2.HELDOUT.values():
        lines = [ln.strip() for ln in path.read_text().splitlines() if len(ln.strip()) >= 30]
        assert len(lines) > 100
        assert [ln for ln in lines if ln in calib] == []


@pytest.mark.parametrize("name", [*smollm2.HELDOUT, "modern"])
def test_calibration_refuses_heldout_and_evaluation_texts(name):
    with pytest.raises(ValueError, match=rf"text '{name}' is not calibration data \(calibration texts: "
                                         r"shakespeare; legal, technical, governance are held out"):
        smollm2.calibration_text(name)


@pytest.mark.slow
def test_heldout_token_counts_are_the_recorded_ones():
    _, tok = smollm2.load()
    rec = _recorded()
    for path in smollm2.HELDOUT.values():
        assert len(tok(path.read_text())["input_ids"]) == rec[path.name][1]
