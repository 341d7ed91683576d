"""The accelerator's architecture as data: PE kinds, :class:`ArrayConfig` and the :class:`Timing`
formulas.  Standard library and :mod:`rf8hw.format` only (no Amaranth, no torch), so every layer
can describe an array without loading the RTL.

Every consumer of an array's parameters takes an :class:`ArrayConfig`: Verilog generation
(:func:`rf8hw.hdl.generate.generate`), the RTL (:class:`rf8hw.hdl.array.RF8Array`, which maps the
kind name to its class through :mod:`rf8hw.hdl.registry`), the co-simulation (:mod:`rf8hw.sim`),
synthesis and the cycle model (:mod:`rf8hw.accel`) and the bit-exact layers (:mod:`rf8hw.nn`).
The CLI builds its options from the fields below (:func:`rf8hw.commands.options.add_config_args`):
names, defaults, choices and help live here only.

PE kinds
--------
=================  ========  =======  ===  ===========================================================
kind               weights   latency  DSP  what it is (class in :mod:`rf8hw.hdl.registry`)
=================  ========  =======  ===  ===========================================================
``rf8``            rf8       1        off  shift-add reference PE (``RF8PE``)
``int8``           int8      1        off  INT8 weight, ``a * w`` from LUTs (``Int8PE``)
``int8_dsp``       int8      1        on   the same RTL, multiplier in a DSP block (``Int8PE``)
``fp8_e4m3``       fp8_e4m3  1        off  FP8-E4M3 weight, 4-bit multiplier + shift (``FP8E4M3PE``)
``rf8_signlate``   rf8       1        off  one residual adder, sign in the accumulator
``rf8_lean``       rf8       1        off  sign in the x*M adder, sign-filling shift
``rf8_pipe``       rf8       2        off  ``rf8_lean`` with a product register (the default)
``int8_pipe``      int8      2        off  ``int8`` with a product register
``int8_dsp_pipe``  int8      2        on   ``int8_dsp`` with a product register
=================  ========  =======  ===  ===========================================================

*latency* is ``product_latency``: cycles from an activation entering a PE to its product entering
the accumulator (2 for the kinds that register the product; the array delays its valid/last
pipeline to match).  "DSP on" lets Yosys infer DSP multipliers (``synth_ecp5`` default,
``synth_ice40 -dsp``); "off" builds every multiplier from LUTs.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields

from rf8hw import checks
from rf8hw.format import spec

__all__ = ["WEIGHT_FORMATS", "PEKind", "PE_KINDS", "pe_kind", "rf8_kinds", "MAX_DIM", "RESETS",
           "DEFAULT_RESET", "DEFAULT_PE", "ArrayConfig", "Timing"]

#: Weight formats a PE kind can multiply by (golden products: :func:`rf8hw.format.golden.product`
#: for RF8, :func:`rf8hw.format.baselines.product` for the others).
WEIGHT_FORMATS = ("rf8", "int8", "fp8_e4m3")


@dataclass(frozen=True)
class PEKind:
    """What the rest of the package needs to know about one PE kind (its RTL class is
    :func:`rf8hw.hdl.registry.pe_class`)."""

    name: str
    weight_format: str   #: ``"rf8"``, ``"int8"`` or ``"fp8_e4m3"``
    product_latency: int  #: 1, or 2 for the kinds with a product register
    dsp: bool            #: synthesis may map its multiplier onto DSP blocks

    def __post_init__(self):
        checks.choice("weight_format", self.weight_format, WEIGHT_FORMATS)
        checks.integer("product_latency", self.product_latency, 1, 2)

    @property
    def is_rf8(self) -> bool:
        """Whether the kind computes RF8 products (bit-exact to :func:`rf8hw.format.golden.product`)."""
        return self.weight_format == "rf8"


#: Kind name -> :class:`PEKind`, in the order reports list them.
PE_KINDS: dict[str, PEKind] = {k.name: k for k in (
    PEKind("rf8", "rf8", 1, dsp=False),
    PEKind("int8", "int8", 1, dsp=False),
    PEKind("int8_dsp", "int8", 1, dsp=True),
    PEKind("fp8_e4m3", "fp8_e4m3", 1, dsp=False),
    PEKind("rf8_signlate", "rf8", 1, dsp=False),
    PEKind("rf8_lean", "rf8", 1, dsp=False),
    PEKind("rf8_pipe", "rf8", 2, dsp=False),
    PEKind("int8_pipe", "int8", 2, dsp=False),
    PEKind("int8_dsp_pipe", "int8", 2, dsp=True),
)}


def pe_kind(name) -> PEKind:
    """The :class:`PEKind` called ``name``; ``ValueError`` naming the kinds for any other value."""
    return PE_KINDS[checks.choice("pe", name, tuple(PE_KINDS))]


def rf8_kinds() -> tuple[str, ...]:
    """Names of the kinds that compute RF8 products (the ones an RF8 estimate can use)."""
    return tuple(k for k, v in PE_KINDS.items() if v.is_rf8)


#: Reset conventions of the generated module (:attr:`ArrayConfig.reset`): reset port name ->
#: (clock port name, reset active low).  Both resets are synchronous.  ``aresetn`` is the AXI
#: convention (``aclk`` + active-low ``aresetn``: the names Vivado's IP packager associates with
#: AXI4-Stream buses); ``rst`` is the plain ``clk`` + active-high ``rst`` pair.
RESETS = {"aresetn": ("aclk", True), "rst": ("clk", False)}

#: The reset convention when none is named; its module names carry no suffix.
DEFAULT_RESET = "aresetn"

#: The PE kind of an array when none is named: the RF8 kind with the most GMAC/s per LUT4 site
#: at 8 x 8 on the LFE5U-25F (median of 3 nextpnr seeds), as measured by
#: ``benchmarks/hardware_table.py`` into ``docs/hardware_table.json`` (table: ``docs/hardware.md``).
#: ``rf8_pipe`` leads ``rf8_lean`` and the reference ``rf8`` there: its product register lifts
#: Fmax by more than it costs in LUTs.  Re-measure and update this when the PEs change.
DEFAULT_PE = "rf8_pipe"

#: Largest ``rows``/``cols`` accepted.  Bigger GEMMs are tiled; a 64 x 64 array (4,096 PEs)
#: already takes minutes to convert to Verilog and is far beyond any FPGA this project targets.
MAX_DIM = 64


@dataclass(frozen=True)
class ArrayConfig:
    """A ``rows x cols`` weight-stationary MAC array of one PE kind.

    Raises :class:`ValueError` on construction for any bad field, naming it and what is allowed.
    """

    rows: int = field(default=8, metadata={
        "help": f"PE rows = reduction depth K of a weight tile, 1..{MAX_DIM}", "cli_required": True})
    cols: int = field(default=8, metadata={
        "help": f"PE columns = outputs per result row, 1..{MAX_DIM}", "cli_required": True})
    act_bits: int = field(default=8, metadata={
        "help": f"signed activation width, {spec.ACT_BITS_MIN}..{spec.ACT_BITS_MAX}"})
    acc_bits: int = field(default=40, metadata={
        "help": f"accumulator width, min_acc_bits(act_bits)..{spec.ACC_BITS_MAX} "
                f"({spec.min_acc_bits(8)}.. for 8-bit activations)"})
    overflow: str = field(default="wrap", metadata={
        "help": "accumulator overflow rule", "choices": spec.OVERFLOW_MODES})
    pe: str = field(default=DEFAULT_PE, metadata={
        "help": "PE kind (rf8hw.arch.PE_KINDS; the default is the RF8 kind with the most GMAC/s "
                "per LUT, docs/hardware.md)", "choices": tuple(PE_KINDS)})
    reset: str = field(default=DEFAULT_RESET, metadata={
        "help": "clock and reset ports, both synchronous: aresetn = AXI names (clock aclk, "
                "active-low aresetn), rst = clock clk, active-high rst (module name gets _rst)",
        "choices": tuple(RESETS)})

    def __post_init__(self):
        # frozen: normalise numpy integers to int through object.__setattr__
        for name in ("rows", "cols"):
            object.__setattr__(self, name, checks.integer(name, getattr(self, name), 1, MAX_DIM))
        act_bits, acc_bits, _ = spec.check_mac(self.act_bits, self.acc_bits, self.overflow)
        object.__setattr__(self, "act_bits", act_bits)
        object.__setattr__(self, "acc_bits", acc_bits)
        checks.choice("pe", self.pe, tuple(PE_KINDS))
        checks.choice("reset", self.reset, tuple(RESETS))

    @property
    def pe_kind(self) -> PEKind:
        """The :class:`PEKind` of :attr:`pe`."""
        return PE_KINDS[self.pe]

    @property
    def clock_port(self) -> str:
        """Name of the clock input: ``aclk`` with ``reset="aresetn"``, ``clk`` with ``"rst"``."""
        return RESETS[self.reset][0]

    @property
    def reset_active_low(self) -> bool:
        """Whether the reset input (named :attr:`reset`) resets while low."""
        return RESETS[self.reset][1]

    @property
    def module_name(self) -> str:
        """Verilog module name, e.g. ``rf8_pipe_array_8x8_a8_acc40_wrap``
        (``<pe>_array_<rows>x<cols>_a<act_bits>_acc<acc_bits>_<overflow>``); a reset other than
        the default ``aresetn`` appends ``_<reset>`` (``..._wrap_rst``), so both variants can
        live in one project."""
        name = (f"{self.pe}_array_{self.rows}x{self.cols}_a{self.act_bits}_acc{self.acc_bits}_"
                f"{self.overflow}")
        return name if self.reset == DEFAULT_RESET else f"{name}_{self.reset}"

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict, where: str = "array parameters") -> ArrayConfig:
        """Rebuild from :meth:`as_dict` output (a manifest's ``parameters``; extra keys ignored,
        missing ones are an error naming ``where``)."""
        if not isinstance(d, dict):
            raise ValueError(f"{where} must be a JSON object, not {type(d).__name__}")
        missing = [f.name for f in fields(cls) if f.name not in d]
        if missing:
            raise ValueError(f"{where} lack {', '.join(missing)}")
        return cls(**{f.name: d[f.name] for f in fields(cls)})


class Timing:
    """Cycle counts of an array with no stalls and no backpressure (``docs/architecture.md``).

    The RTL (:class:`rf8hw.hdl.array.RF8Array`) sizes its pipeline from these numbers and the
    cycle model (:mod:`rf8hw.accel.cycles`) builds on them; both are checked against simulation.

    Attributes
    ----------
    weight_load : int
        ``rows``: weight beats per tile (one per cycle at full rate).
    latency : int
        ``rows + cols + product_latency``: cycles from the handshake of activation row ``m`` to the
        cycle in which result row ``m`` is first offered (``acc.valid`` high); ``rows + cols + 1``
        for the PE kinds with a one-cycle product (one cycle of it is the activation input
        register).
    switch : int
        ``1``: cycles from a tile's last weight beat to the first cycle its activations are
        accepted (the shadow buffer's "full" flag is a register).
    """

    def __init__(self, cfg: ArrayConfig):
        if not isinstance(cfg, ArrayConfig):
            raise TypeError(f"cfg must be an ArrayConfig, not {cfg!r}")
        rows, cols = cfg.rows, cfg.cols
        self.rows, self.cols = rows, cols
        self.product_latency = cfg.pe_kind.product_latency
        self.weight_load = rows
        # PE kinds with a pipelined product delay every result by the extra stages; nothing else
        # changes.
        self.latency = rows + cols + self.product_latency
        self.switch = 1

    def result_cycle(self, m: int) -> int:
        """Cycle of result row ``m`` counted from the handshake of activation row 0 (rows sent
        back to back): ``m + latency``."""
        return m + self.latency

    def tile_period(self, m_rows: int) -> int:
        """Cycles between the first activations of back-to-back tiles of ``m_rows`` rows (the
        next tile's weights stream in from the cycle after the first activation):
        ``max(M, rows + 1)``; the first tile's activations start ``rows`` cycles after its first
        weight beat."""
        return max(m_rows, self.weight_load + self.switch)

    def as_dict(self) -> dict:
        return {
            "weight_load_cycles": self.weight_load,
            "latency_cycles": self.latency,
            "switch_cycles": self.switch,
            "formulas": {
                "weight_load_cycles": "rows",
                "latency_cycles": "rows + cols + product_latency (activation handshake of row m "
                                  "-> acc valid of row m)",
                "switch_cycles": "1 (last weight beat of a tile -> its first activation accepted, "
                                 "when the weights arrive after the previous tile's activations)",
                "first_activation_cycle": "rows (first tile, counted from its first weight beat)",
                "tile_period_cycles": "max(M, rows + 1) (first activation of tile t -> first "
                                      "activation of tile t+1, back to back, M activation rows "
                                      "per tile; the weights of tile t+1 stream in from the "
                                      "cycle after tile t's first activation)",
                "gemm_cycles": "rows + (T - 1) * max(M, rows + 1) + M + latency_cycles "
                               "(T tiles, first weight beat -> last result taken, inclusive)",
                "steady_state": "1 activation row in and 1 result row out per cycle; tile "
                                "switch 0 cycles for M > rows, 1 cycle for M = rows",
            },
        }


# ---------------------------------------------------------------------------------------------------
# The accelerator around the array (docs/accelerator.md)
# ---------------------------------------------------------------------------------------------------

#: Fields of one accelerator command beat, low bits first: (name, width).  ``load = 1`` streams
#: the activations in (and keeps them in the activation buffer from ``act_base`` on), ``load =
#: 0`` reuses what the buffer holds there.
CMD_FIELDS = (("M", 16), ("K", 16), ("N", 16), ("act_base", 16), ("load", 1))
#: Largest value a command's M, K, N or act_base field can carry.
CMD_FIELD_MAX = (1 << 16) - 1


@dataclass(frozen=True)
class AccelConfig:
    """The accelerator: an :class:`ArrayConfig` array plus its buffers and post-processing.

    ``max_m`` is the depth of the accumulator buffer (activation rows per GEMM), ``max_k`` the
    largest reduction length a command may give (at most :func:`rf8hw.format.postproc.max_k` of
    the array's ``act_bits``/``acc_bits``: every sum is then exact), ``act_depth`` the activation
    buffer's depth in rows of ``rows`` activations (by default ``max_m * ceil(max_k / rows)``,
    one largest GEMM; at least that), ``out_bits`` the result width (8: INT8, 32: INT32).

    Raises :class:`ValueError` on construction for any bad field, naming it and what is allowed.
    """

    array: ArrayConfig = field(default_factory=ArrayConfig, metadata={"cli": False})
    max_m: int = field(default=128, metadata={
        "help": "accelerator: accumulator buffer depth = largest M of a command, 1..65535"})
    max_k: int = field(default=1536, metadata={
        "help": "accelerator: largest K of a command (at most the exact-sum bound of act_bits "
                "and acc_bits)"})
    act_depth: int | None = field(default=None, metadata={
        "help": "accelerator: activation buffer rows (default max_m * ceil(max_k / rows))"})
    out_bits: int = field(default=8, metadata={
        "help": "accelerator: result width, 8 (INT8) or 32 (INT32)", "choices": (8, 32)})
    post_lanes: int = field(default=1, metadata={
        "help": "accelerator: post-processing lanes, 1..cols (each takes one column value per "
                "cycle; a result row takes ceil(cols / post_lanes) cycles)"})

    def __post_init__(self):
        from rf8hw.format import postproc

        if not isinstance(self.array, ArrayConfig):
            raise ValueError(f"array must be an ArrayConfig, not {self.array!r}")
        a = self.array
        checks.integer("acc_bits", a.acc_bits, None, postproc.ACC_BITS_MAX,
                       " for the accelerator (its post-processing keeps (acc + bias) * mult "
                       "inside 62 bits)")
        object.__setattr__(self, "max_m", checks.integer("max_m", self.max_m, 1, CMD_FIELD_MAX))
        bound = min(CMD_FIELD_MAX, postproc.max_k(a.act_bits, a.acc_bits))
        object.__setattr__(self, "max_k", checks.integer(
            "max_k", self.max_k, 1, bound,
            f" for act_bits={a.act_bits}, acc_bits={a.acc_bits} (sums of more products may "
            "overflow the accumulator)"))
        need = self.max_m * -(-self.max_k // a.rows)
        depth = need if self.act_depth is None else self.act_depth
        object.__setattr__(self, "act_depth", checks.integer(
            "act_depth", depth, need, CMD_FIELD_MAX + 1,
            f" (max_m * ceil(max_k / rows) = {need} rows hold one largest GEMM)"))
        if self.out_bits not in postproc.OUT_BITS or isinstance(self.out_bits, bool):
            raise ValueError(f"out_bits must be one of 8, 32, not {self.out_bits!r}")
        object.__setattr__(self, "post_lanes", checks.integer(
            "post_lanes", self.post_lanes, 1, a.cols, f" (the array has {a.cols} columns)"))

    @property
    def module_name(self) -> str:
        """Verilog module name, e.g. ``rf8_pipe_accel_8x8_a8_acc40_m128_k1536_o8``."""
        a = self.array
        name = (f"{a.pe}_accel_{a.rows}x{a.cols}_a{a.act_bits}_acc{a.acc_bits}_m{self.max_m}_"
                f"k{self.max_k}_o{self.out_bits}")
        if self.post_lanes != 1:
            name += f"_l{self.post_lanes}"
        return name if a.overflow == "wrap" and a.reset == DEFAULT_RESET else (
            f"{name}_{a.overflow}_{a.reset}")

    def command_error(self, M, K, N, act_base=0, load=1) -> str | None:
        """Why the accelerator refuses the command ``(M, K, N, act_base, load)`` (one line), or
        None: ``1 <= M <= max_m``, ``1 <= K <= max_k``, ``1 <= N <= 65535`` and the activation
        rows ``act_base .. act_base + M * ceil(K / rows) - 1`` inside the buffer.  The hardware
        applies the same rule (its ``err_cmd`` flag)."""
        try:
            checks.integer("M", M, 1, self.max_m)
            checks.integer("K", K, 1, self.max_k)
            checks.integer("N", N, 1, CMD_FIELD_MAX)
            checks.integer("act_base", act_base, 0, CMD_FIELD_MAX)
            checks.integer("load", load, 0, 1)
        except ValueError as e:
            return str(e)
        end = act_base + M * -(-K // self.array.rows)
        if end > self.act_depth:
            return (f"act_base + M * ceil(K / rows) must be <= act_depth = {self.act_depth}, "
                    f"not {end} (act_base={act_base}, M={M}, K={K})")
        return None

    def pack_command(self, M, K, N, act_base=0, load=1) -> int:
        """The command beat as an integer (fields of :data:`CMD_FIELDS`); ``ValueError`` with
        :meth:`command_error`'s line for a command the hardware would refuse."""
        err = self.command_error(M, K, N, act_base, load)
        if err:
            raise ValueError(err)
        word, pos = 0, 0
        for (_, width), value in zip(CMD_FIELDS, (M, K, N, act_base, load)):
            word |= int(value) << pos
            pos += width
        return word

    def as_dict(self) -> dict:
        d = asdict(self)
        d["array"] = self.array.as_dict()
        return d


#: Width of the limbs the post-processing splits ``acc + bias`` into for the product by ``mult``:
#: each limb (17 bits unsigned, the top one signed) times the 16-bit ``mult`` fits an 18 x 18
#: multiplier (ECP5's MULT18X18D), and the limbs' products are added in one pipeline stage each.
POST_LIMB_BITS = 17


def post_stages(acc_bits: int) -> int:
    """Registers of one post-processing lane (:func:`rf8hw.hdl.accelerator.post_lane`) for an
    ``acc_bits`` accumulator: the inputs, ``acc + bias``, the limbs' products, one stage per
    further limb, two for the rounding shift, the increment, the saturation: ``6 + ceil((acc_bits
    + 1) / POST_LIMB_BITS)`` (9 for 40 bits)."""
    return 6 + -(-(acc_bits + 1) // POST_LIMB_BITS)


class AccelTiming:
    """Cycle constants of the accelerator around :class:`Timing` (``docs/accelerator.md``,
    "Timing"); :mod:`rf8hw.accel.accel_cycles` builds the exact GEMM schedule on them and the
    tests check it against the Amaranth simulation of :class:`rf8hw.hdl.accelerator.RF8Accelerator`.

    Attributes
    ----------
    array : Timing
    post_stages : int
        :func:`post_stages` of the accumulator width (9 for 40 bits).
    passes : int
        ``ceil(cols / post_lanes)``: cycles the post-processing lanes spend on one result row.
    post_latency : int
        ``passes + post_stages + 1``: cycles from the lanes taking a result row out of the total
        FIFO to its beat being offered on ``out`` (the row's passes, the lane's registers, the
        result FIFO).
    total_fifo_depth : int
        ``max_m + latency + 2`` rows: the FIFO (block RAM) between the accumulator stage and the
        lanes that holds finished rows.  The array takes a last-K activation row only while the
        last-K rows it has taken and the lanes have not yet read number fewer than this, so the
        FIFO never overflows; with ``kt >= passes`` the lanes drain one N tile's rows before the
        next N tile's fill it and the array never waits.
    out_fifo_depth : int
        ``post_stages + 3``: the result FIFO's depth.  The lanes never stall once they took a row;
        they take one only while the rows taken and not yet written into the result FIFO, plus
        the FIFO's level, number fewer than this (so an always-ready consumer never slows them).
    stream_to_buffer : int
        1: the bubble when a ``load = 1`` command's activations switch from the input stream
        (N tile 0) to the buffer (N tile 1; the buffer's read takes a cycle).
    """

    def __init__(self, acfg: AccelConfig):
        if not isinstance(acfg, AccelConfig):
            raise TypeError(f"acfg must be an AccelConfig, not {acfg!r}")
        self.array = Timing(acfg.array)
        self.post_stages = post_stages(acfg.array.acc_bits)
        self.passes = -(-acfg.array.cols // acfg.post_lanes)
        self.post_latency = self.passes + self.post_stages + 1
        self.total_fifo_depth = acfg.max_m + self.array.latency + 2
        self.out_fifo_depth = self.post_stages + 3
        self.stream_to_buffer = 1

    def check_cycles(self, K: int) -> int:
        """Cycles from a command's handshake to the first cycle its activations are offered:
        ``1 + ceil(K / rows)`` (the buffer-range check adds ``M`` once per K tile)."""
        return 1 + -(-K // self.array.rows)
