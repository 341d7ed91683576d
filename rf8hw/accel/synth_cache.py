"""Synthesis results, cached by content: :func:`cached_synthesis` runs
:func:`rf8hw.accel.synth.synthesize` once per key and checks every result before it is stored or
reused (``rf8hw estimate``, ``rf8hw sweep``, ``benchmarks/hardware_table.py``).

The key (:func:`synth_cache_key`) covers every source of the RTL (``rf8hw/format/``,
``rf8hw/hdl/``, ``rf8hw/arch.py``), the synthesis flow module ``rf8hw/accel/synth.py``, the
parameters (array, device, seed) and the versions of rf8hw, Amaranth, Yosys and nextpnr.

An entry is *sealed* (:func:`seal_entry`): it records its key, the request's parameters and the
SHA-256 of its result, and :func:`open_entry` checks all three against the file name and the
request before the result is trusted.  A hand-edited result (``fmax_mhz`` changed), an entry
copied under another key, or one whose parameters disagree with the request is reported, removed
and synthesized again -- never reported as the requested design.
"""

from __future__ import annotations

import hashlib
import json
import math
import sys
from pathlib import Path

from rf8hw.accel import synth
from rf8hw.accel.synth import check_device, check_seed
from rf8hw.arch import ArrayConfig
from rf8hw.files import write_atomic
from rf8hw.toolchain import cache

__all__ = ["SYNTH_FLOW_FILES", "RESULT_FIELDS", "ENTRY_FORMAT", "SynthesisCancelled", "default_synth_cache",
           "synth_cache_key", "check_synthesis_result", "seal_entry", "open_entry", "cached_synthesis",
           "read_cached_synthesis", "read_entry"]


class SynthesisCancelled(Exception):
    """Raised inside :func:`cached_synthesis` at the next step of the flow once its ``cancel``
    event is set (the run that wanted the result was interrupted or failed)."""

#: The ``format`` of a sealed cache entry (:func:`seal_entry`).
ENTRY_FORMAT = "rf8hw-cache-entry-1"


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


def _content_digest(value) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, separators=(",", ":"),
                                     allow_nan=False).encode()).hexdigest()


def seal_entry(key: str, params: dict, value: dict) -> dict:
    """A cache entry for ``value``: its ``key``, the request's ``params`` and the SHA-256 of the
    value's canonical JSON, checked by :func:`open_entry` on every read."""
    return {"format": ENTRY_FORMAT, "key": key, "params": params, "sha256": _content_digest(value),
            "value": value}


def open_entry(entry, key: str, params: dict, where: str) -> dict:
    """The value of a :func:`seal_entry` entry read for ``key`` and ``params``; ValueError naming
    ``where`` when it is not a sealed entry, was stored under another key, records other
    parameters than the request's, or its value no longer has the digest it was stored with
    (edited by hand)."""
    if not isinstance(entry, dict) or entry.get("format") != ENTRY_FORMAT or \
            not {"key", "params", "sha256", "value"} <= set(entry):
        raise ValueError(f"{where}: not a sealed rf8hw cache entry (an older rf8hw's, or edited)")
    if entry["key"] != key:
        raise ValueError(f"{where}: it was stored under key {entry['key']!r}, not {key!r}")
    if entry["params"] != params:
        stored = entry["params"] if isinstance(entry["params"], dict) else {}
        diff = [f"{k} {stored.get(k)!r} (requested {params.get(k)!r})"
                for k in sorted(set(stored) | set(params), key=str) if stored.get(k) != params.get(k)]
        raise ValueError(f"{where}: it records {', '.join(diff) or repr(entry['params'])}")
    try:
        same = _content_digest(entry["value"]) == entry["sha256"]
    except (TypeError, ValueError):                 # NaN, or not JSON-serialisable
        same = False
    if not same:
        raise ValueError(f"{where}: its content does not match its SHA-256 (edited by hand?)")
    return entry["value"]


def _check_request(res: dict, params: dict, where: str) -> dict:
    """``res`` if every parameter it reports (rows, cols, pe, ..., device, seed) is the request's."""
    diff = [f"{k} {res[k]!r} (requested {v!r})" for k, v in params.items() if k in res and res[k] != v]
    if diff:
        raise ValueError(f"{where}: the result is for {', '.join(diff)}")
    return res


def _request(array: ArrayConfig, device: str, seed, cache_dir) -> tuple[dict, Path, str]:
    """``(parameters, cache root, key)`` of one synthesis request."""
    check_device(device)
    check_seed(seed)
    params = dict(**array.as_dict(), device=device, seed=seed)
    root = Path(cache_dir) if cache_dir is not None else default_synth_cache()
    return params, root, synth_cache_key(params)


def read_entry(path: Path, key: str, params: dict, kind: str, check=None):
    """The value of the sealed entry ``path`` (:func:`open_entry`; then ``check(value, where)``,
    which returns it or raises ValueError), or None: no entry, or an unusable one, which is
    reported on stderr (``rf8hw: unusable <kind> cache entry removed (...)``) and removed, so
    that it is computed again."""
    if not path.is_file():
        return None
    where = f"cache entry {path}"
    try:
        value = open_entry(json.loads(path.read_text()), key, params, where)
        return value if check is None else check(value, where)
    except (OSError, UnicodeDecodeError, ValueError) as exc:      # JSONDecodeError is a ValueError
        why = str(exc) if str(exc).startswith(where) else f"{where}: {exc}"
        print(f"rf8hw: unusable {kind} cache entry removed ({why}); computing it again", file=sys.stderr)
        path.unlink(missing_ok=True)
        return None


def _read_hit(hit: Path, key: str, params: dict):
    """The checked synthesis result in ``hit`` (:func:`read_entry`), or None."""
    return read_entry(hit, key, params, "synthesis", lambda res, where: _check_request(
        check_synthesis_result(res, where), params, where))


def read_cached_synthesis(array: ArrayConfig, device: str, seed: int = 1, cache_dir=None):
    """The cached synthesis result of this request, checked as :func:`cached_synthesis` checks it,
    or None (nothing cached, or an unusable entry, which is reported and removed); never
    synthesizes."""
    params, root, key = _request(array, device, seed, cache_dir)
    with cache.locked(root / "locks" / key):
        return _read_hit(root / f"{key}.json", key, params)


def cached_synthesis(array: ArrayConfig, device: str, seed: int = 1, cache_dir=None,
                     quiet: bool = False, cancel=None) -> tuple[dict, bool]:
    """:func:`rf8hw.accel.synth.synthesize`, reusing an earlier result with the same :func:`synth_cache_key`.

    ``quiet`` silences synthesis' progress lines on stderr.  Concurrent calls with one key are
    serialised (the second finds the first one's entry).  An entry that is not valid JSON, not a
    sealed entry of this key and these parameters (:func:`open_entry`: key, parameters, content
    digest) or not a usable result of this request (:func:`check_synthesis_result`, and the
    array, device and seed it reports) is reported on stderr, removed and synthesized again; a
    fresh result is checked the same way before it is cached.

    ``cancel`` (a :class:`threading.Event`, for a synthesis run in a thread): once set, the flow
    stops at its next step (elaboration, Yosys, nextpnr) with :class:`SynthesisCancelled`;
    nothing is cached.

    Returns
    -------
    result : dict
        The synthesis result (see :func:`rf8hw.accel.synth.synthesize`).
    cached : bool
        Whether it came from the cache (``cache_dir/<key>.json``).
    """
    params, root, key = _request(array, device, seed, cache_dir)
    hit = root / f"{key}.json"
    with cache.locked(root / "locks" / key):
        found = _read_hit(hit, key, params)
        if found is not None:
            return found, True

        def progress(message: str) -> None:
            if cancel is not None and cancel.is_set():
                raise SynthesisCancelled(f"synthesis of {array.module_name} on {device} cancelled")
            if not quiet:
                print(f"[rf8hw synth] {message}", file=sys.stderr, flush=True)

        result = synth.synthesize(array, device=device, seed=seed, workdir=root / "work" / key,
                                  progress=progress)
        where = f"synthesis of {array.module_name} on {device}"
        _check_request(check_synthesis_result(result, where), params, where)
        text = json.dumps(seal_entry(key, params, result), indent=2, allow_nan=False) + "\n"
        write_atomic(hit, text)
    return result, False
