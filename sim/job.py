"""The files one co-simulation run exchanges between the host (:mod:`rf8hw.sim.run`) and the cocotb
test module in the simulator (:mod:`rf8hw.sim.hdl_bench.cocotb_test`,
:mod:`rf8hw.sim.python_bench.cocotb_test`): ``job.json`` (:class:`Job`), ``tiles.npz``
(stimulus), ``result.json`` (:class:`rf8hw.sim.records.BenchReport`, or one error line),
``results.npz`` (observed rows, when kept) and the progress lines of the simulator log.  Neither
side imports the other; both import this module.  Every file is written atomically
(:func:`rf8hw.files.write_atomic`).
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rf8hw.files import write_atomic, write_files
from rf8hw.hdl.manifest import Manifest

from .records import BenchReport

__all__ = ["PROGRESS_PREFIX", "JOB_FILE", "TILES_FILE", "RESULT_FILE", "RESULTS_FILE", "Job",
           "write_json", "write_job", "read_job", "write_report", "write_error", "read_report",
           "write_results", "read_results"]

#: Prefix of the log lines :func:`rf8hw.sim.run.run_tiles` relays to its ``progress`` callback.
PROGRESS_PREFIX = "rf8hw-progress:"

JOB_FILE, TILES_FILE, RESULT_FILE, RESULTS_FILE = "job.json", "tiles.npz", "result.json", "results.npz"


@dataclass(frozen=True)
class Job:
    """What the simulator side runs: the design (its manifest), the stall probabilities of the
    input streams and of the result stream, the seed, and the run's special requests
    (:func:`rf8hw.sim.run.run_tiles`)."""

    manifest: Manifest
    stall_prob: float
    backpressure_prob: float
    seed: int
    reset_at_cycle: int | None = None
    tiles_after_reset: int = 0
    corrupt: tuple[int, int, int] | None = None
    keep_results: bool = False
    groups: tuple[int, ...] | None = None

    def as_dict(self) -> dict:
        return {"manifest": self.manifest.as_dict(), "stall_prob": self.stall_prob,
                "backpressure_prob": self.backpressure_prob, "seed": self.seed,
                "reset_at_cycle": self.reset_at_cycle, "tiles_after_reset": self.tiles_after_reset,
                "corrupt": None if self.corrupt is None else list(self.corrupt),
                "keep_results": self.keep_results,
                "groups": None if self.groups is None else list(self.groups)}

    @classmethod
    def from_dict(cls, d: dict, where: str = JOB_FILE) -> Job:
        def tuple_or_none(value):
            return None if value is None else tuple(value)
        return cls(Manifest.from_dict(d["manifest"], where=f"{where}: manifest"), d["stall_prob"],
                   d["backpressure_prob"], d["seed"], d["reset_at_cycle"], d["tiles_after_reset"],
                   tuple_or_none(d["corrupt"]), d["keep_results"], tuple_or_none(d["groups"]))


def write_json(path, obj) -> None:
    """``obj`` as indented JSON at ``path``, written atomically."""
    write_atomic(path, json.dumps(obj, indent=1) + "\n")


def _write_npz(path, arrays: dict) -> None:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    write_atomic(path, buf.getvalue())


def write_job(out_dir: Path, job: Job, tiles) -> None:
    """``job.json`` and ``tiles.npz`` (``codes[T, rows, cols]``, ``a[sum M, rows]``, ``m_rows[T]``)
    of a run in ``out_dir``, written as one unit (:func:`rf8hw.files.write_files`: a failure, such
    as a full disk, leaves neither)."""
    buf = io.BytesIO()
    np.savez(buf, codes=np.stack([np.asarray(c, dtype=np.uint8) for c, _ in tiles]),
             a=np.concatenate([np.asarray(a, dtype=np.int64) for _, a in tiles]),
             m_rows=np.array([len(a) for _, a in tiles]))
    write_files({out_dir / JOB_FILE: json.dumps(job.as_dict(), indent=1) + "\n",
                 out_dir / TILES_FILE: buf.getvalue()})


def read_job(job_dir: Path) -> tuple[Job, list[tuple[np.ndarray, np.ndarray]]]:
    """The :class:`Job` and the tiles that :func:`write_job` wrote into ``job_dir``."""
    job = Job.from_dict(json.loads((job_dir / JOB_FILE).read_text()), str(job_dir / JOB_FILE))
    with np.load(job_dir / TILES_FILE) as z:
        codes, a, m_rows = z["codes"], z["a"], z["m_rows"]
    bounds = np.concatenate([[0], np.cumsum(m_rows)])
    return job, [(codes[t], a[bounds[t]:bounds[t + 1]]) for t in range(len(codes))]


def write_report(job_dir: Path, report: BenchReport) -> None:
    """``result.json`` of a run that completed."""
    write_json(job_dir / RESULT_FILE, report.as_dict())


def write_error(job_dir: Path, message: str) -> None:
    """``result.json`` of a run that failed (a hang, X or Z on an output): one line."""
    write_json(job_dir / RESULT_FILE, {"error": message})


def read_report(job_dir: Path) -> BenchReport | str | None:
    """The run's :class:`~rf8hw.sim.records.BenchReport`, its error line, or None without a
    ``result.json``."""
    path = job_dir / RESULT_FILE
    if not path.is_file():
        return None
    d = json.loads(path.read_text())
    return d["error"] if d.get("error") else BenchReport.from_dict(d)


def write_results(job_dir: Path, results: dict) -> None:
    """``results.npz``: the observed rows (int64 ``[M, cols]``) of each tile, by tile number."""
    _write_npz(job_dir / RESULTS_FILE, {f"tile_{t}": v for t, v in sorted(results.items())})


def read_results(job_dir: Path) -> dict:
    """The tile results :func:`write_results` wrote."""
    with np.load(job_dir / RESULTS_FILE) as z:
        return {int(k.split("_")[1]): z[k] for k in z.files}
