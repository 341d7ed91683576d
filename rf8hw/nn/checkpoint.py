"""Checkpoint files of the model zoo and the readers shared by every file the package loads: one set
of messages for a missing, unreadable or mismatched file.  Never unpickles.

* :func:`save_checkpoint` / :func:`load_checkpoint`: ``model.safetensors`` (the state dict) and its
  ``model.json`` sidecar (``model``: a zoo name, ``model_config``: its ``CONFIG`` fields, plus what
  training recorded), written by ``rf8hw train``;
* :func:`read_safetensors`, :func:`read_json`, :func:`check_tensors`, :func:`build_model`: what
  :func:`load_checkpoint`, ``rf8hw fit`` and :func:`rf8hw.nn.quant.load_quantized` share;
* :func:`json_safe`: JSON has no NaN or Infinity; a non-finite float becomes ``null``.

Imports torch and safetensors inside the functions that need them, so reading a sidecar
(:func:`read_json`) stays cheap.
"""

from __future__ import annotations

import contextlib
import json
import math
from dataclasses import MISSING, fields
from pathlib import Path

from rf8hw import checks

__all__ = ["save_checkpoint", "load_checkpoint", "json_safe", "existing_file", "read_safetensors",
           "read_json", "check_tensors", "build_model"]


def save_checkpoint(model, path, meta: dict) -> None:
    """Write ``path`` (``.safetensors``, the state dict) and ``path`` with ``.json`` (``meta``).

    The pair is written as one unit (:func:`rf8hw.files.write_files`): a failure (a full disk)
    leaves any old pair as it was, no temporary file, and is an :class:`OSError` naming the file
    that could not be written.  Both files get the mode of any new file (``0o666`` less the
    umask, usually ``0o644``)."""
    from safetensors.torch import save

    from rf8hw.files import write_files

    path = Path(path)
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    sidecar = json.dumps(json_safe(meta), indent=2, allow_nan=False) + "\n"   # refused before any file
    write_files({path: save(state, metadata={"format": "rf8hw-checkpoint"}),
                 path.with_suffix(".json"): sidecar})


def json_safe(value):
    """``value`` with every non-finite float (NaN, +-Infinity) replaced by None: JSON has neither."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def existing_file(path, what: str, kind: str) -> Path:
    """``path`` as a :class:`~pathlib.Path` if it names an existing regular file: a directory (or
    a device, a pipe) is a :class:`ValueError` (``<what> <path> is a directory, not a <kind>``), a
    missing path a :class:`FileNotFoundError` (``no such <what>: <path>``)."""
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{what} {path} is a directory, not a {kind}")
    if not path.exists():
        raise FileNotFoundError(f"no such {what}: {path}")
    if not path.is_file():
        raise ValueError(f"{what} {path} is not a regular file (a device, a pipe or a socket); give a {kind}")
    return path


def read_safetensors(path, what: str = "checkpoint") -> dict:
    """The tensors of the safetensors file ``path`` (name -> tensor). Never unpickles.

    A missing file is a :class:`FileNotFoundError` (``no such <what>: <path>``); a directory or a
    file that is not safetensors (empty, truncated, text, a pickle) is a :class:`ValueError`
    naming ``path``.  Memory is bounded by the file's size (safetensors checks its header
    against it).
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = existing_file(path, what, ".safetensors file")
    try:
        return load_file(path)
    except SafetensorError as exc:
        raise ValueError(f"{what} {path} is not a readable safetensors file ({exc})") from None
    except OSError as exc:                       # safetensors' own I/O errors name no file
        raise OSError(exc.errno, exc.strerror or str(exc), str(path)) from exc


def read_json(path, what: str) -> dict:
    """The JSON object in ``path``; a :class:`ValueError` naming ``path`` if it is not one
    (missing: :class:`FileNotFoundError` ``no such <what>: <path>``)."""
    path = existing_file(path, what, "JSON file")
    try:
        meta = json.loads(path.read_bytes())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"malformed {what} {path}: not JSON ({exc})") from None
    if not isinstance(meta, dict):
        raise ValueError(f"malformed {what} {path}: a JSON object is needed, not a {type(meta).__name__}")
    return meta


def check_tensors(expected: dict, found: dict, path, what: str = "checkpoint") -> None:
    """Refuse the tensors ``found`` (read from ``path``) unless they have exactly the names, dtypes
    and shapes of ``expected`` (a model's state dict, possibly on the ``meta`` device)."""
    missing = [k for k in expected if k not in found]
    unexpected = [k for k in found if k not in expected]
    if missing or unexpected:
        parts = ([f"missing {checks.listing(missing)}"] if missing else []) + (
            [f"unexpected {checks.listing(unexpected)}"] if unexpected else [])
        raise ValueError(f"{what} {path} does not match the model: {'; '.join(parts)}")
    for name, want in expected.items():
        got = found[name]
        if got.dtype != want.dtype or tuple(got.shape) != tuple(want.shape):
            raise ValueError(f"{what} {path}: tensor {name!r} is {got.dtype} {list(got.shape)}, the "
                             f"model needs {want.dtype} {list(want.shape)}")


def build_model(name, config, source: str, meta: bool = False):
    """The zoo model ``name`` built from ``config`` (a dict of its ``CONFIG`` fields, as stored in
    a sidecar ``source``); ``meta=True`` builds it on the ``meta`` device (shapes only, nothing
    allocated), so that sizes read from a file can be checked against its tensors first."""
    import torch

    from rf8hw import zoo

    mod = zoo.get(checks.choice(f"{source}: model", name, zoo.MODELS))
    if not isinstance(config, dict):
        raise ValueError(f"{source}: model_config must be a JSON object, not {type(config).__name__}")
    known = {f.name: f for f in fields(mod.CONFIG)}
    unknown = sorted(set(config) - set(known))
    if unknown:
        raise ValueError(f"{source}: unknown model_config key(s) {', '.join(unknown)} for {name!r}; "
                         f"known: {', '.join(known)}")
    for key, value in config.items():
        default = known[key].default
        kind = type(default) if default is not MISSING else None
        if kind is not None and (type(value) is not kind and not (kind is float and type(value) is int)):
            raise ValueError(f"{source}: model_config {key} must be {kind.__name__}, not {value!r}")
    try:
        with torch.device("meta") if meta else contextlib.nullcontext():
            return mod.build(mod.CONFIG(**config))
    except (TypeError, ValueError, RuntimeError, AssertionError) as exc:
        raise ValueError(f"{source}: cannot build a {name!r} model from model_config {config}: "
                         f"{exc}") from None


def load_checkpoint(path):
    """Rebuild the model saved by :func:`save_checkpoint`; returns ``(model, meta)``. Never unpickles.

    Every way the pair of files can be wrong is a :class:`ValueError` naming the file and what is
    wrong (a missing file: :class:`FileNotFoundError`): not safetensors (empty, truncated, text,
    pickle), a malformed sidecar (not a JSON object, no ``model`` / ``model_config``, an unknown
    model or config key, a value of the wrong type), tensors of another model or other shapes.  The
    sizes in the sidecar are checked against the tensor file on the ``meta`` device before the model
    is allocated (``n_hidden: 10**7`` is refused, not attempted).
    """
    path = Path(path)
    state = read_safetensors(path)
    sidecar = path.with_suffix(".json")
    if sidecar == path:
        raise ValueError(f"checkpoint {path} is the sidecar; give the .safetensors file next to it")
    meta = read_json(sidecar, "checkpoint sidecar")
    where = f"checkpoint sidecar {sidecar}"
    if meta.get("format") == "rf8hw-quantized-model":
        raise ValueError(f"{path} is a quantized model (its sidecar's format is 'rf8hw-quantized-model'), "
                         "not a training checkpoint; read it with rf8hw.nn.quant.load_quantized")
    for key in ("model", "model_config"):
        if key not in meta:
            raise ValueError(f"malformed {where}: no {key!r} entry")
    shapes = build_model(meta["model"], meta["model_config"], where, meta=True)
    check_tensors(shapes.state_dict(), state, path)
    model = build_model(meta["model"], meta["model_config"], where)
    model.load_state_dict(state)
    return model, meta
