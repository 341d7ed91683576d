"""The files one co-simulation run exchanges between the host (:mod:`rf8hw.sim.run`) and the cocotb
test module in the simulator (:mod:`rf8hw.sim.cosim_test` for the Python bench, :mod:`rf8hw.sim.batch_test`
for the HDL bench): ``job.json`` (options), ``tiles.npz`` (stimulus) and the progress lines of the
simulator log.  Neither side imports the other; both import this module.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np

from rf8hw.files import write_atomic

__all__ = ["PROGRESS_PREFIX", "write_job", "load_tiles", "write_json"]

#: Prefix of the log lines :func:`rf8hw.sim.run.run_tiles` relays to its ``progress`` callback.
PROGRESS_PREFIX = "rf8hw-progress:"


def write_json(path, obj) -> None:
    """``obj`` as indented JSON at ``path``, written atomically (:func:`rf8hw.files.write_atomic`)."""
    write_atomic(path, json.dumps(obj, indent=1) + "\n")


def write_job(out_dir: Path, job: dict, tiles) -> None:
    """``job.json`` and ``tiles.npz`` (``codes[T, rows, cols]``, ``a[sum M, rows]``, ``m_rows[T]``)
    of a run in ``out_dir``."""
    write_json(out_dir / "job.json", job)
    buf = io.BytesIO()
    np.savez(buf, codes=np.stack([np.asarray(c, dtype=np.uint8) for c, _ in tiles]),
             a=np.concatenate([np.asarray(a, dtype=np.int64) for _, a in tiles]),
             m_rows=np.array([len(a) for _, a in tiles]))
    write_atomic(out_dir / "tiles.npz", buf.getvalue())


def load_tiles(path: Path) -> list[tuple[np.ndarray, np.ndarray]]:
    """Tiles from ``tiles.npz`` (:func:`write_job`)."""
    with np.load(path) as z:
        codes, a, m_rows = z["codes"], z["a"], z["m_rows"]
    bounds = np.concatenate([[0], np.cumsum(m_rows)])
    return [(codes[t], a[bounds[t]:bounds[t + 1]]) for t in range(len(codes))]
