"""Cycle model of GEMMs on the weight-stationary RF8 array, and of whole models of the zoo.

A GEMM ``[M, K] x [K, N]`` runs on a ``rows x cols`` array (``R x C``) as ``ceil(K/R) * ceil(N/C)``
weight tiles.  Ragged edges are zero-padded to full ``R x C`` tiles (zero weight codes, zero
activation columns), so every tile takes the same time.  Each tile streams all ``M`` activation
rows; the host adds the k-tiles' partial results.  The timing rules are those of the RTL
(``rf8hw.hdl.array``, ``docs/architecture.md``) with tiles sent back to back and no backpressure
(the result consumer is always ready).  The PEs hold two weight registers (double buffering):

* weight load: ``R`` cycles (one weight row per cycle); only the first tile's is exposed, every
  later tile's weights stream in from the cycle after the previous tile's first activation;
* activations: ``M`` cycles per tile (one activation row per cycle); a tile's activations start
  one cycle after its last weight beat at the earliest, so tile ``t+1`` starts
  ``P = max(M, R + 1)`` cycles after tile ``t`` (tile switch: ``P - M`` = 0 cycles for ``M > R``,
  1 for ``M = R``);
* fill/drain: result row ``m`` is offered ``R + C + product_latency`` cycles after activation row
  ``m`` is accepted (``R + C + 1`` for the PE kinds with a one-cycle product).

The constants are read from the RTL's :class:`rf8hw.arch.Timing` (``weight_load``,
``switch``, ``latency``, ``tile_period``), so a timing change there reaches this model (and its
tests).

Counting cycles from the first weight beat (cycle 0) to the cycle in which the last result row is
taken, inclusive, with ``T`` tiles and latency ``L``::

    cycles = R + (T - 1) * max(M, R + 1) + M + L

This equals the Amaranth simulation of the RTL and the cocotb co-simulation of the generated
Verilog exactly (``tests/accel/test_cycles.py``, ``benchmarks/bench_cycles.py``).

Utilisation is the fraction of the array's peak ``R * C`` MACs per cycle spent on useful MACs:
``M * K * N / (R * C * cycles)``.

Model level (:func:`model_cycles`): the GEMMs of one forward pass (:func:`rf8hw.accel.gemms.capture`);
each on-array GEMM has ``M`` = the number of rows its weight is applied to.  Layers run one after
the other, each from an empty array (the next layer's activations need this layer's results, which
pass through bias and non-linear parts on the host first).  Attention score matmuls ``q @ k^T`` and
``att @ v`` multiply two activations: they do not map onto a weight-stationary RF8 array (neither
operand is an RF8-coded weight), so they are listed as *off-array* GEMMs with their MAC counts and
contribute no array cycles.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass

from rf8hw import checks
from rf8hw.arch import ArrayConfig, Timing

__all__ = ["GemmCycles", "gemm_cycles", "tile_schedule", "Gemm", "model_cycles", "plot_model_cycles"]


def _check_dim(name: str, value) -> int:
    return checks.integer(name, value, 1)


@dataclass(frozen=True)
class GemmCycles:
    """Cycle breakdown of one GEMM ``[M, K] x [K, N]`` on a ``rows x cols`` array.

    ``weight_load + act + switch + fill_drain == cycles``.
    """

    M: int
    K: int
    N: int
    rows: int
    cols: int
    k_tiles: int        #: ceil(K / rows)
    n_tiles: int        #: ceil(N / cols)
    tiles: int          #: k_tiles * n_tiles
    weight_load: int    #: rows (the first tile's; the others overlap the previous tile)
    act: int            #: tiles * M
    switch: int         #: (tiles - 1) * (max(M, rows + 1) - M): waits for the next weights
    fill_drain: int     #: rows + cols + product_latency (the last tile's tail)
    cycles: int
    macs: int           #: M * K * N useful multiply-accumulates
    utilisation: float  #: macs / (rows * cols * cycles)

    def as_dict(self) -> dict:
        return asdict(self)


def gemm_cycles(M: int, K: int, N: int, cfg: ArrayConfig) -> GemmCycles:
    """Cycles of ``[M, K] x [K, N]`` on the array ``cfg`` (formula in the module docstring).

    Parameters
    ----------
    M, K, N : int
        GEMM shape, each >= 1.
    cfg : ArrayConfig
        Array shape and PE kind; the kind's ``product_latency`` (1 for ``rf8``, 2 for the
        pipelined ``rf8_pipe``) delays every result by ``product_latency - 1`` cycles; nothing else
        changes.

    Returns
    -------
    GemmCycles
    """
    for name, v in (("M", M), ("K", K), ("N", N)):
        _check_dim(name, v)
    t = Timing(cfg)   # the RTL's constants: rows, rows + cols + product_latency, max(M, rows + 1)
    rows, cols = cfg.rows, cfg.cols
    k_tiles, n_tiles = -(-K // rows), -(-N // cols)
    tiles = k_tiles * n_tiles
    parts = dict(weight_load=t.weight_load, act=tiles * M,
                 switch=(tiles - 1) * (t.tile_period(M) - M), fill_drain=t.latency)
    cycles = sum(parts.values())
    macs = M * K * N
    return GemmCycles(M=M, K=K, N=N, rows=rows, cols=cols, k_tiles=k_tiles, n_tiles=n_tiles,
                      tiles=tiles, cycles=cycles, macs=macs,
                      utilisation=macs / (rows * cols * cycles), **parts)


def tile_schedule(m_rows, cfg: ArrayConfig) -> list[dict]:
    """Handshake cycles of tiles streamed back to back, the first weight beat at cycle 0.

    Parameters
    ----------
    m_rows : sequence of int
        Activation rows ``M_t`` of each tile, in streaming order.
    cfg : ArrayConfig
        Array shape and PE kind (as :func:`gemm_cycles`).

    Returns
    -------
    list of dict
        Per tile: ``w_first``/``w_last`` (first/last weight beat), ``a_first``/``a_last``
        (activation rows), ``r_first``/``r_last`` (result rows taken), all cycle numbers.  Tile 0's
        weights take cycles ``0..rows-1`` and its activations start at ``rows``; tile ``t+1``'s
        weights take the ``rows`` cycles after tile ``t``'s first activation and its activations
        start at ``max(a_last[t] + 1, w_last[t+1] + 1)``; result row ``m`` follows activation row
        ``m`` by the latency ``rows + cols + product_latency``.  The last ``r_last + 1`` equals
        :func:`gemm_cycles` for the tiles of one GEMM.
    """
    t = Timing(cfg)
    out, w_first = [], 0
    a_next = t.weight_load                      # earliest first activation of the next tile
    for i, m in enumerate(m_rows):
        _check_dim(f"m_rows[{i}]", m)
        w_last = w_first + t.weight_load - 1
        a_first = max(a_next, w_last + t.switch)
        out.append({"w_first": w_first, "w_last": w_last, "a_first": a_first,
                    "a_last": a_first + m - 1, "r_first": a_first + t.latency,
                    "r_last": a_first + m - 1 + t.latency})
        w_first, a_next = a_first + 1, a_first + m
    return out


@dataclass(frozen=True)
class Gemm:
    """One matrix product of a forward pass.

    ``on_array``: a weight GEMM (``x @ W``) that runs on the RF8 array; False for activation x
    activation products (attention scores) and convolutions kept in float, which are only
    counted in MACs.  ``op``: the operation captured (``linear``, ``matmul``, ``mm``, ``bmm``,
    ``sdpa``, ``conv``, or ``gemm`` when not known).
    """

    name: str
    M: int
    K: int
    N: int
    on_array: bool = True
    count: int = 1      #: identical products (e.g. one per attention head and batch element)
    op: str = "gemm"

    @property
    def macs(self) -> int:
        return self.M * self.K * self.N * self.count


def model_cycles(gemms: list[Gemm], cfg: ArrayConfig, batch: int = 1) -> dict:
    """Per-layer and whole-model cycles of ``gemms`` (:func:`rf8hw.accel.gemms.capture`) on the array ``cfg``.

    Parameters
    ----------
    gemms : list of Gemm
    cfg : ArrayConfig
    batch : int
        Inferences the GEMMs cover (``M`` includes the batch); per-inference numbers divide by it.

    Returns
    -------
    dict
        ``layers``: one dict per GEMM (name, shape, on_array, and for on-array GEMMs the
        :class:`GemmCycles` fields); ``cycles`` (sum over on-array GEMMs), ``cycles_per_inference``,
        ``macs_on_array``, ``macs_off_array``, ``utilisation`` (on-array MACs over
        ``rows * cols * cycles``).
    """
    _check_dim("batch", batch)
    t = Timing(cfg)                            # checks the argument
    rows, cols = cfg.rows, cfg.cols
    layers, total, on, off = [], 0, 0, 0
    for g in gemms:
        row = {"name": g.name, "M": g.M, "K": g.K, "N": g.N, "count": g.count, "on_array": g.on_array,
               "op": g.op, "macs": g.macs}
        if g.on_array:
            c = gemm_cycles(g.M, g.K, g.N, cfg)
            row.update({k: v for k, v in c.as_dict().items() if k not in row})
            row["cycles"] = c.cycles * g.count
            total += row["cycles"]
            on += g.macs
        else:
            off += g.macs
        layers.append(row)
    return {"rows": rows, "cols": cols, "pe": cfg.pe, "batch": batch,
            "product_latency": t.product_latency, "layers": layers, "cycles": total,
            "cycles_per_inference": total / batch, "macs_on_array": on, "macs_off_array": off,
            "utilisation": on / (rows * cols * total) if total else 0.0}


def plot_model_cycles(report: dict, path, title: str = "") -> None:
    """Bar chart of the on-array layers' cycles split into weight load / activations / tile switch /
    fill-drain, with utilisation per layer on a second axis; written to ``path`` (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in report["layers"] if r["on_array"]]
    full = [r["name"] for r in rows]
    # the module path every layer shares (e.g. "0.model.encoder.") goes into the axis label
    prefix = os.path.commonprefix(full) if len(full) > 1 else ""
    prefix = prefix[:prefix.rfind(".") + 1]
    names = [n[len(prefix):] for n in full]
    parts = {"weight_load": "weight load", "act": "activation rows", "switch": "tile switch",
             "fill_drain": "fill/drain"}
    longest = max((len(n) for n in names), default=0)
    fig, ax = plt.subplots(figsize=(max(7.0, 0.45 * len(rows) + 2), 3.6 + 0.065 * longest))
    bottom = [0] * len(rows)
    for part, label in parts.items():
        vals = [r[part] * r["count"] for r in rows]
        ax.bar(names, vals, bottom=bottom, label=label)
        bottom = [b + v for b, v in zip(bottom, vals)]
    from matplotlib.ticker import FuncFormatter

    batch = report.get("batch", 1)
    ax.set_ylabel("cycles per inference" if batch == 1 else f"cycles per batch of {batch} inferences")
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))
    ax.tick_params(axis="x", rotation=70, labelsize=7)
    ax.set_xlabel(f"layer (names after {prefix!r})" if prefix else "layer", fontsize=8)
    ax.set_ylim(0, 1.08 * max(bottom, default=1) or 1)     # headroom over the tallest bar
    ax2 = ax.twinx()
    ax2.plot(names, [100 * r["utilisation"] for r in rows], "k.-", label="utilisation (right axis)")
    ax2.set_ylabel("utilisation (%)")
    ax2.set_ylim(0, 105)
    ax2.set_yticks(range(0, 101, 20))
    handles, labels = ax.get_legend_handles_labels()
    more, more_labels = ax2.get_legend_handles_labels()
    # below the axes: neither the bars nor the utilisation line (up to 100 %) run under it
    fig.legend(handles + more, labels + more_labels, loc="lower center", ncol=3, fontsize=7, frameon=False)
    ax.set_title(title or f"{report['rows']}x{report['cols']} array: {report['cycles']} cycles, "
                          f"utilisation {100 * report['utilisation']:.1f} %", fontsize=9)
    fig.tight_layout(rect=(0, 0.09, 1, 1))
    fig.savefig(path, dpi=110, bbox_inches="tight")       # never clips a label
    plt.close(fig)
