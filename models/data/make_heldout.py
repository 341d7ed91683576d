"""Rebuild the held-out evaluation texts ``heldout/*.txt`` from files that Debian 12 installs (how they
were cut).  Run once, by hand; nothing in rf8hw calls this::

    python models/data/make_heldout.py

Sources (``/usr/share/common-licenses`` from ``base-files``, ``/usr/share/doc/nodejs`` from the
Debian ``nodejs`` package); licences and checksums in ``HELDOUT.md``.

* ``legal.txt``: the GNU GPL version 3 text, verbatim (its notice permits verbatim copies only).
* ``technical.txt``: Node.js API documentation ``api/events.md`` (MIT), prose only: fenced code
  blocks, HTML comments, YAML-ish ``<!-- -->`` metadata and reference-style link definitions removed,
  ``[text](url)`` and ``[text][ref]`` reduced to ``text``, runs of blank lines collapsed.
* ``governance.txt``: Node.js ``GOVERNANCE.md`` then ``onboarding.md`` (MIT), the same treatment.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

OUT = Path(__file__).with_name("heldout")
SOURCES = {
    "legal.txt": ["/usr/share/common-licenses/GPL-3"],
    "technical.txt": ["/usr/share/doc/nodejs/api/events.md"],
    "governance.txt": ["/usr/share/doc/nodejs/GOVERNANCE.md", "/usr/share/doc/nodejs/onboarding.md"],
}


def prose(md: str) -> str:
    """Markdown -> prose by the rules in the module docstring."""
    md = re.sub(r"```.*?```", "", md, flags=re.S)
    md = re.sub(r"<!--.*?-->", "", md, flags=re.S)
    md = re.sub(r"^\[[^\]]+\]:\s*\S+.*$", "", md, flags=re.M)
    md = re.sub(r"\[([^\]]+)\]\([^)]*\)", r"\1", md)
    md = re.sub(r"\[([^\]]+)\]\[[^\]]*\]", r"\1", md)
    md = re.sub(r"\n{3,}", "\n\n", md)
    return md.strip() + "\n"


def main() -> None:
    OUT.mkdir(exist_ok=True)
    for name, paths in SOURCES.items():
        texts = [Path(p).read_text(encoding="utf-8") for p in paths]
        text = texts[0] if name == "legal.txt" else "\n".join(prose(t) for t in texts)
        (OUT / name).write_text(text, encoding="utf-8")
        data = (OUT / name).read_bytes()
        srcs = ", ".join(f"{p} sha256 {hashlib.sha256(Path(p).read_bytes()).hexdigest()}" for p in paths)
        print(f"{name}: {len(data)} bytes, sha256 {hashlib.sha256(data).hexdigest()} <- {srcs}")


if __name__ == "__main__":
    main()
