"""Synthesis results, cached by content: :func:`cached_synthesis` runs
:func:`rf8hw.accel.synth.synthesize` once per key and checks every result before it is stored or
reused (``rf8hw estimate``, ``rf8hw sweep``, ``benchmarks/hardware_table.py``).

The key (:func:`synth_cache_key`) covers every source of the RTL (``rf8hw/format/``,
``rf8hw/hdl/``, ``rf8hw/arch.py``), the synthesis flow module ``rf8hw/accel/synth.py``, the
parameters (array, device, seed) and the versions of rf8hw, Amaranth, Yosys and nextpnr.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

from rf8hw.accel import synth
from rf8hw.accel.synth import check_device, check_seed
from rf8hw.arch import ArrayConfig
from rf8hw.files import write_atomic
from rf8hw.toolchain import cache

__all__ = ["SYNTH_FLOW_FILES", "RESULT_FIELDS", "default_synth_cache", "synth_cache_key",
           "check_synthesis_result", "cached_synthesis"]


#: Files besides the RTL sources (:data:`rf8hw.toolchain.cache.RTL_SOURCES`) whose text shapes a
#: synthesis result.
SYNTH_FLOW_FILES = ("accel/synth.py",)


def default_synth_cache() -> Path:
    """``$XDG_CACHE_HOME/rf8hw/synth`` (``~/.cache/rf8hw/synth`` when the variable is unset)."""
    return cache.cache_root("synth")


def synth_cache_key(params: dict) -> str:
    """:func:`rf8hw.toolchain.cache.synthesis_key` of the synthesis parameters: every RTL source
    (the measurement wrapper included), the flow module ``rf8hw/accel/synth.py``, and the versions
    of rf8hw, Amaranth, Yosys and nextpnr."""
    return cache.synthesis_key(params, SYNTH_FLOW_FILES)


#: What a synthesis result must hold to be reported (key -> accepted types).  A cache entry that
#: lacks one, or whose counts are negative or Fmax not a finite positive number, is not trusted.
RESULT_FIELDS = {"device": str, "part": str, "seed": int, "tools": dict, "lut4": int, "ff": int,
                 "carry": int, "dsp": int, "bram": int, "fmax_mhz": (int, float)}


def check_synthesis_result(res, where: str) -> dict:
    """``res`` if it is a usable synthesis result (:data:`RESULT_FIELDS`); else ValueError naming
    ``where`` and the first problem."""
    if not isinstance(res, dict):
        raise ValueError(f"{where}: a synthesis result must be a JSON object, not {type(res).__name__}")
    for k, types in RESULT_FIELDS.items():
        if k not in res:
            raise ValueError(f"{where}: no {k!r}")
        v = res[k]
        if isinstance(v, bool) or not isinstance(v, types):
            raise ValueError(f"{where}: {k!r} is {v!r}, not a {getattr(types, '__name__', 'number')}")
        if types is int and v < 0:
            raise ValueError(f"{where}: {k!r} is {v}, a count must be >= 0")
    if not (math.isfinite(res["fmax_mhz"]) and res["fmax_mhz"] > 0):
        raise ValueError(f"{where}: 'fmax_mhz' is {res['fmax_mhz']!r}, not a finite positive MHz figure")
    return res


def cached_synthesis(array: ArrayConfig, device: str, seed: int = 1, cache_dir=None,
                     quiet: bool = False) -> tuple[dict, bool]:
    """:func:`rf8hw.accel.synth.synthesize`, reusing an earlier result with the same :func:`synth_cache_key`.

    ``quiet`` silences synthesis' progress lines on stderr.  Concurrent calls with one key are
    serialised (the second finds the first one's entry).  An entry that is not valid JSON or not
    a usable result (:func:`check_synthesis_result`) is reported on stderr, removed and
    synthesized again; a fresh result is checked the same way before it is cached.

    Returns
    -------
    result : dict
        The synthesis result (see :func:`rf8hw.accel.synth.synthesize`).
    cached : bool
        Whether it came from the cache (``cache_dir/<key>.json``).
    """
    check_device(device)
    check_seed(seed)
    params = dict(**array.as_dict(), device=device, seed=seed)
    root = Path(cache_dir) if cache_dir is not None else default_synth_cache()
    key = synth_cache_key(params)
    hit = root / f"{key}.json"
    with cache.locked(root / "locks" / key):
        if hit.is_file():
            where = f"cache entry {hit}"
            try:
                return check_synthesis_result(json.loads(hit.read_text()), where), True
            except (UnicodeDecodeError, ValueError) as exc:      # JSONDecodeError is a ValueError
                why = str(exc) if str(exc).startswith(where) else f"{where}: {exc}"
                print(f"rf8hw: unusable synthesis cache entry removed ({why}); synthesizing again",
                      file=sys.stderr)
                hit.unlink()
        kwargs = {"progress": None} if quiet else {}
        result = synth.synthesize(array, device=device, seed=seed, workdir=root / "work" / key, **kwargs)
        check_synthesis_result(result, f"synthesis of {array.module_name} on {device}")
        write_atomic(hit, json.dumps(result, indent=2, allow_nan=False) + "\n")
    return result, False
