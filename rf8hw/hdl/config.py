"""The configuration of one MAC array: :class:`ArrayConfig`, validated once.

Every consumer of an array's parameters takes an :class:`ArrayConfig`: Verilog generation
(:func:`rf8hw.hdl.generate.generate`), the RTL (:class:`rf8hw.hdl.array.RF8Array`), the
co-simulation (:mod:`sim`), synthesis and the cycle model (:mod:`rf8hw.accel`) and the bit-exact
layers (:mod:`rf8hw.nn`).  The CLI builds its options from the fields below
(:func:`rf8hw.commands.options.add_config_args`): names, defaults, choices and help live here only.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields

from rf8hw import checks
from rf8hw.format import spec
from rf8hw.hdl.registry import PE_KINDS, PEKind

__all__ = ["MAX_DIM", "RESETS", "DEFAULT_RESET", "DEFAULT_PE", "ArrayConfig"]

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
        "help": "PE kind (rf8hw.hdl.registry; the default is the RF8 kind with the most GMAC/s "
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
        """The :class:`~rf8hw.hdl.registry.PEKind` of :attr:`pe`."""
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
    def from_dict(cls, d: dict, where: str = "array parameters") -> "ArrayConfig":
        """Rebuild from :meth:`as_dict` output (a manifest's ``parameters``; extra keys ignored,
        missing ones are an error naming ``where``)."""
        if not isinstance(d, dict):
            raise ValueError(f"{where} must be a JSON object, not {type(d).__name__}")
        missing = [f.name for f in fields(cls) if f.name not in d]
        if missing:
            raise ValueError(f"{where} lack {', '.join(missing)}")
        return cls(**{f.name: d[f.name] for f in fields(cls)})
