"""What a co-simulation observes, as types shared by the host and the cocotb test modules
(standard library only): :class:`Mismatch`, :class:`TileCycles` and :class:`BenchReport`, the
content of ``result.json``.  JSON only at the edge: ``as_dict`` where a file is written,
``from_dict`` where one is read.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

__all__ = ["Mismatch", "TileCycles", "BenchReport"]


@dataclass(frozen=True)
class Mismatch:
    """First wrong result: tile, row ``m`` in the tile, column ``n``, expected and observed value,
    and the cycle of the row's handshake.

    ``column`` is -1 and ``expected`` None for a row that arrived when none was expected;
    ``column`` is -1 for a ``tlast`` error (values then are the expected and observed ``tlast``).
    """

    tile: int
    row: int
    column: int
    expected: int | None
    got: int
    cycle: int

    def __str__(self) -> str:
        return (f"tile={self.tile} row={self.row} column={self.column} expected={self.expected} "
                f"got={self.got} cycle={self.cycle}")

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> Mismatch:
        return cls(**{f.name: d[f.name] for f in fields(cls)})


@dataclass(frozen=True)
class TileCycles:
    """Handshake cycles and stall counters of one tile (definitions: ``docs/cosim.md``, "Cycle
    accounting"); the derived spans are properties, written to JSON after the counters."""

    tile: int
    m_rows: int
    w_first: int
    w_last: int
    a_first: int
    a_last: int
    r_first: int
    r_last: int
    w_not_ready: int
    w_idle: int
    a_not_ready: int
    a_idle: int
    out_stall: int

    @property
    def weight_load(self) -> int:
        return self.w_last - self.w_first + 1

    @property
    def compute(self) -> int:
        return self.a_last - self.a_first + 1

    @property
    def drain(self) -> int:
        return self.r_last - self.a_last

    @property
    def total(self) -> int:
        return self.r_last - self.w_first + 1

    def as_dict(self) -> dict:
        return {**asdict(self), "weight_load": self.weight_load, "compute": self.compute,
                "drain": self.drain, "total": self.total}

    @classmethod
    def from_dict(cls, d: dict) -> TileCycles:
        return cls(**{f.name: d[f.name] for f in fields(cls)})


@dataclass(frozen=True)
class BenchReport:
    """What the cocotb test module reports (``result.json``) after a run that completed.

    ``cycles``: rising edges from reset release to the last result handshake (plus those before
    a mid-run reset); ``loop_cycles``/``wall_s``: cycles and wall time of the simulator's loop
    (the rate's terms); ``cpu_s`` and ``python_s`` (the HDL bench's time in Python) may be None.
    """

    mismatches: int
    first_mismatch: Mismatch | None
    rows_checked: int
    values_checked: int
    err_w_tlast: int
    dropped_tiles: tuple[int, ...]
    tiles: tuple[TileCycles, ...]
    tiles_last_result_cycle: int
    cycles: int
    loop_cycles: int
    wall_s: float
    cpu_s: float | None = None
    python_s: float | None = None

    def as_dict(self) -> dict:
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        d.update(first_mismatch=self.first_mismatch.as_dict() if self.first_mismatch else None,
                 dropped_tiles=list(self.dropped_tiles), tiles=[t.as_dict() for t in self.tiles])
        return {k: v for k, v in d.items() if v is not None or k == "first_mismatch"}

    @classmethod
    def from_dict(cls, d: dict) -> BenchReport:
        values = {f.name: d.get(f.name) for f in fields(cls)}
        first = d["first_mismatch"]
        values.update(first_mismatch=Mismatch.from_dict(first) if first else None,
                      dropped_tiles=tuple(d["dropped_tiles"]),
                      tiles=tuple(TileCycles.from_dict(t) for t in d["tiles"]))
        return cls(**values)
