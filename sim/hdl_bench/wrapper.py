"""HDL-side stimulus and checking for the co-simulation (``--bench hdl``): the testbench wrapper.

The per-cycle Python testbench (:mod:`rf8hw.sim.python_bench`, ``--bench python``) wakes Python once
per clock.  Here the AXI4-Stream sources, the result sink, the random gaps and backpressure and the
cycle stamps are plain Verilog around the generated top, in a wrapper module
:data:`BENCH_MODULE` that this module emits from the manifest's ``interface`` section (port names,
reset polarity, ``tdata`` widths; testbench code only, never part of the generated RTL).
Python (:mod:`rf8hw.sim.hdl_bench.cocotb_test`) hands it stimulus in batches and reads results
back in batches through files (``$readmemh`` / ``$writememh`` on ring memories), one
simulator-to-Python switch per batch.

Rings (depths in :data:`RING_BITS`, :data:`TILE_RING_BITS`), each used in aligned halves:

``w_mem``, ``a_mem``
    Weight and activation beats, ``{tlast nibble, tdata}`` per entry.  Python loads the whole ring
    before the run, then one half whenever the source has used up the other half; the wrapper
    loads a chunk (``$readmemh`` of ``w.hex``/``a.hex``) at the rising edge after Python raised
    ``tb_w_avail``/``tb_a_avail`` (the total number of beats handed over so far).
``r_mem``
    One entry per result handshake: ``{cycle[32], cumulative out_stall[32], tlast nibble,
    tdata}``.  Written out (``r.hex``) whenever a half is full, and the rest at the end or at a
    reset.
``tw_mem``, ``ta_mem``
    One entry per input tile (ended by the stream's ``tlast``): ``{first, last, not_ready,
    idle}`` (32 bits each, definitions as ``docs/cosim.md``, "Cycle accounting"); written out like
    ``r_mem`` (``tw.hex``, ``ta.hex``).

Every such event bumps ``tb_seq`` (with the reasons in ``tb_why``, :data:`WHY`) at a rising edge;
Python awaits a change of ``tb_seq``, acts in the same time step and returns, so the streams never
starve and the cycle accounting is that of one continuous run.

Random gaps and backpressure (:func:`lfsr_threshold`): each stream has its own xorshift32
generator (``x ^= x << 13; x ^= x >> 17; x ^= x << 5`` on 32 bits, a linear-feedback shift
register of period ``2**32 - 1``), seeded by :func:`stream_seed` and stepped once per rising edge
outside reset.  At a rising edge with state ``x`` and threshold ``T = floor(p * 2**32)`` the
stream stalls iff ``x < T``: a source with no beat pending offers none for the next edge (a gap
of geometric length), the sink drives ``tready`` low for the next edge.  ``x`` runs over
``1 .. 2**32 - 1``, so the stall probability is ``max(T - 1, 0) / (2**32 - 1)`` (:func:`
stall_probability`): 0 for ``p = 0``, within ``2**-32`` of ``p`` otherwise, and below 1 for every
``p < 1`` (a stream never stalls forever).
"""

from __future__ import annotations

import hashlib
import math
from pathlib import Path

import numpy as np

from rf8hw.hdl.ippackage import tb_module
from rf8hw.hdl.manifest import BUSES, Manifest

from ..options import check_probability

__all__ = ["BENCH_MODULE", "RING_BITS", "TILE_RING_BITS", "WHY", "CHUNK_FILES", "TILE_FIELDS",
           "wrapper_verilog", "chunk_plusargs", "lfsr_threshold", "stall_probability",
           "xorshift32", "stream_seed", "encode_beats", "decode_words", "digits_to_uint",
           "tile_words", "EXPORT_IDLE_LIMIT", "EXPORT_TAIL", "vector_lines",
           "export_bench_verilog"]

#: Name of the wrapper module (the simulator's top level in ``--bench hdl``).
BENCH_MODULE = "rf8hw_hdlbench"

#: log2 of the beat and result rings' depth (4,096 entries; Python moves 2,048 at a time).
RING_BITS = 12

#: log2 of the per-tile record rings' depth.
TILE_RING_BITS = 10

#: Reason bits of ``tb_why``.
WHY = {"w_low": 1, "a_low": 2, "r_dump": 4, "tw_dump": 8, "ta_dump": 16, "done": 32,
       "reset": 64, "hang": 128}

_MASK32 = (1 << 32) - 1

#: Words of a per-tile record in ``tw_mem``/``ta_mem`` (high to low).
TILE_FIELDS = ("first", "last", "not_ready", "idle")

#: The chunk files in the run directory, one per ring (``<name>.hex``; plusarg ``+rf8hw_<name>``).
CHUNK_FILES = ("w", "a", "r", "tw", "ta")


def chunk_plusargs(run_dir: Path) -> list[str]:
    """The plusargs naming the chunk files of a run in ``run_dir`` (:data:`CHUNK_FILES`)."""
    return [f"+rf8hw_{name}={run_dir / (name + '.hex')}" for name in CHUNK_FILES]


def lfsr_threshold(p, name: str = "stall_prob") -> int:
    """``floor(p * 2**32)``: the threshold of a stream with stall probability ``p`` in ``[0, 1)``."""
    return min(math.floor(check_probability(name, p) * 2**32), _MASK32)


def stall_probability(threshold: int) -> float:
    """The exact stall probability per edge of a stream with ``threshold`` (state uniform on
    ``1 .. 2**32 - 1`` over the period): ``max(threshold - 1, 0) / (2**32 - 1)``."""
    return max(threshold - 1, 0) / _MASK32


def xorshift32(x: int) -> int:
    """One step of the streams' generator (reference for the Verilog ``rf8hw_xs`` function)."""
    x ^= (x << 13) & _MASK32
    x ^= x >> 17
    x ^= (x << 5) & _MASK32
    return x


def stream_seed(seed: int, stream: str) -> int:
    """Non-zero 32-bit state of ``stream`` (``"w"``, ``"a"``, ``"r"``) for run seed ``seed``: the
    first four bytes (big-endian) of SHA-256 of ``"<seed>:<stream>"``, 1 if they are 0."""
    h = hashlib.sha256(f"{seed}:{stream}".encode()).digest()
    return int.from_bytes(h[:4], "big") or 1


# --- bus words as hex text ----------------------------------------------------------------------

_HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
_BYTE_HEX = np.stack([_HEX[np.arange(256) >> 4], _HEX[np.arange(256) & 15]], axis=1)   # [256, 2]
_NIBBLE = np.full(256, 255, dtype=np.uint8)
_NIBBLE[np.frombuffer(b"0123456789abcdef", dtype=np.uint8)] = np.arange(16)
_NIBBLE[np.frombuffer(b"ABCDEF", dtype=np.uint8)] = np.arange(10, 16)


def _lane_bytes(values: np.ndarray, lane_bits: int) -> np.ndarray:
    """uint8 ``[n, lanes * lane_bits/8]``: each lane's two's complement, least significant first."""
    lb = lane_bits // 8
    v = np.ascontiguousarray(values, dtype=np.int64).astype("<i8")
    return v.view(np.uint8).reshape(v.shape[0], v.shape[1], 8)[:, :, :lb].reshape(v.shape[0], -1)


def encode_beats(values: np.ndarray, lane_bits: int, last: np.ndarray) -> bytes:
    """``$readmemh`` lines of the beats ``values[n, lanes]`` (signed or unsigned lane values, lane
    ``i`` in ``tdata[lane_bits*i +: lane_bits]``): ``<tlast digit><tdata in hex>`` per line."""
    data = _lane_bytes(values, lane_bits)[:, ::-1]                   # most significant byte first
    n = data.shape[0]
    digits = _BYTE_HEX[data].reshape(n, -1)
    lines = np.empty((n, digits.shape[1] + 2), dtype=np.uint8)
    lines[:, 0] = _HEX[np.asarray(last, dtype=np.uint8)]
    lines[:, 1:-1] = digits
    lines[:, -1] = ord("\n")
    return lines.tobytes()


def decode_words(text: bytes, n: int, what: str) -> np.ndarray:
    """The hex digits of ``n`` ``$writememh`` lines as uint8 ``[n, digits]`` (values 0..15).

    Raises ``RuntimeError`` naming ``what`` for a line count or width that does not add up, or
    for a digit that is not hex (``x``/``z`` from an undriven DUT output).
    """
    lines = [ln for ln in text.split(b"\n") if ln and not ln.startswith(b"//")]
    if len(lines) != n:
        raise RuntimeError(f"{what}: expected {n} lines, found {len(lines)}")
    if n == 0:
        return np.zeros((0, 0), dtype=np.uint8)
    width = len(lines[0])
    if any(len(ln) != width for ln in lines):
        raise RuntimeError(f"{what}: lines of different widths")
    digits = _NIBBLE[np.frombuffer(b"".join(lines), dtype=np.uint8).reshape(n, width)]
    if (digits == 255).any():
        bad = int(np.flatnonzero((digits == 255).any(axis=1))[0])
        raise RuntimeError(f"{what}: line {bad} is {lines[bad].decode(errors='replace')!r} "
                           "(X or Z on a DUT output)")
    return digits


def digits_to_uint(digits: np.ndarray) -> np.ndarray:
    """uint64 ``[n]`` from hex digit columns ``[n, k]`` (``k <= 16``, most significant first)."""
    out = np.zeros(digits.shape[0], dtype=np.uint64)
    for j in range(digits.shape[1]):
        out = (out << np.uint64(4)) | digits[:, j].astype(np.uint64)
    return out


def tile_words(digits: np.ndarray, lane_bits: int, lanes: int) -> np.ndarray:
    """Signed lane values int64 ``[n, lanes]`` from the ``tdata`` hex digits (most significant
    first), each lane a two's complement ``lane_bits``-bit field."""
    per = lane_bits // 4
    n = digits.shape[0]
    fields = digits.reshape(n, lanes, per)[:, ::-1, :]               # lane 0 is the lowest
    out = np.zeros((n, lanes), dtype=np.uint64)
    for j in range(per):
        out = (out << np.uint64(4)) | fields[:, :, j].astype(np.uint64)
    vals = out.astype(np.int64)
    if lane_bits < 64:
        half, full = np.int64(1 << (lane_bits - 1)), np.int64(1 << lane_bits)
        vals = np.where(vals >= half, vals - full, vals)
    return vals


# --- the wrapper --------------------------------------------------------------------------------

#: The streams' generator in Verilog (:func:`xorshift32`), in the wrapper and the exported bench.
_XS_FUNCTION = """  function [31:0] rf8hw_xs(input [31:0] x);
    reg [31:0] y;
    begin
      y = x ^ (x << 13);
      y = y ^ (y >> 17);
      rf8hw_xs = y ^ (y << 5);
    end
  endfunction
"""

_WRAPPER = r"""// rf8hw co-simulation testbench wrapper (sim/hdl_bench/wrapper.py; docs/cosim.md,
// "HDL bench").  Testbench code, not part of the generated RTL.  Plain Verilog-2005.
module {bench} (
  // Every port is marked public for Verilator (VPI access from cocotb); the build passes
  // --no-public-flat-rw so that the DUT's internals stay private and optimisable.
  input  wire        tb_rst        /*verilator public_flat_rw*/,  // 1: bench and DUT in reset
  input  wire [31:0] tb_w_avail    /*verilator public_flat_rw*/,  // weight beats handed over
  input  wire [31:0] tb_a_avail    /*verilator public_flat_rw*/,  // activation beats handed over
  input  wire        tb_w_more     /*verilator public_flat_rw*/,  // Python holds more weight beats
  input  wire        tb_a_more     /*verilator public_flat_rw*/,
  input  wire [31:0] tb_r_expect   /*verilator public_flat_rw*/,  // result rows expected
  input  wire [31:0] tb_tail       /*verilator public_flat_rw*/,  // tready-high edges at the end
  input  wire [31:0] tb_max_idle   /*verilator public_flat_rw*/,  // watchdog (edges)
  input  wire [31:0] tb_reset_at   /*verilator public_flat_rw*/,  // DUT reset after this cycle
  input  wire [31:0] tb_w_thr      /*verilator public_flat_rw*/,  // floor(p * 2**32)
  input  wire [31:0] tb_a_thr      /*verilator public_flat_rw*/,
  input  wire [31:0] tb_r_thr      /*verilator public_flat_rw*/,
  input  wire [31:0] tb_w_seed     /*verilator public_flat_rw*/,  // xorshift32 states at tb_rst
  input  wire [31:0] tb_a_seed     /*verilator public_flat_rw*/,
  input  wire [31:0] tb_r_seed     /*verilator public_flat_rw*/,
  output reg  [31:0] tb_seq        /*verilator public_flat_rw*/,  // bumped at every event
  output reg  [7:0]  tb_why        /*verilator public_flat_rw*/,  // reasons (WHY, wrapper.py)
  output reg  [31:0] tb_cycle      /*verilator public_flat_rw*/,  // cycle of the last event
  output reg  [31:0] tb_r_n        /*verilator public_flat_rw*/,  // lines written out by it
  output reg  [31:0] tb_tw_n       /*verilator public_flat_rw*/,
  output reg  [31:0] tb_ta_n       /*verilator public_flat_rw*/,
  output wire        tb_err_w_tlast /*verilator public_flat_rw*/
);
  // The clock: 10 time units per period (the build's timescale makes that 10 ns), rising edges
  // at 5, 15, 25, ...  Generated here, so no simulator-to-Python call is made per edge.
  reg clk /*verilator public_flat_rw*/;
  initial begin
    clk = 0;
    tb_seq = 0; tb_why = 0; tb_cycle = 0; tb_r_n = 0; tb_tw_n = 0; tb_ta_n = 0;
  end
  always #5 clk = ~clk;

  localparam W = {w_bits}, A = {a_bits}, R = {r_bits};
  localparam LD = {ring_bits}, D = 1 << LD, H = D / 2;
  localparam LT = {tile_ring_bits}, DT = 1 << LT, HT = DT / 2;

{xs_function}
  reg [W+3:0] w_mem [0:D-1];
  reg [A+3:0] a_mem [0:D-1];
  reg [R+67:0] r_mem [0:D-1];
  reg [127:0] tw_mem [0:DT-1];
  reg [127:0] ta_mem [0:DT-1];
  reg [8*4096-1:0] w_path, a_path, r_path, tw_path, ta_path;
  initial begin
    if (!$value$plusargs("rf8hw_w=%s", w_path)) $display("rf8hw_hdlbench: no +rf8hw_w");
    if (!$value$plusargs("rf8hw_a=%s", a_path)) $display("rf8hw_hdlbench: no +rf8hw_a");
    if (!$value$plusargs("rf8hw_r=%s", r_path)) $display("rf8hw_hdlbench: no +rf8hw_r");
    if (!$value$plusargs("rf8hw_tw=%s", tw_path)) $display("rf8hw_hdlbench: no +rf8hw_tw");
    if (!$value$plusargs("rf8hw_ta=%s", ta_path)) $display("rf8hw_hdlbench: no +rf8hw_ta");
  end

`ifndef VERILATOR
  // Icarus waveform on request (+rf8hw_dumpfile=PATH); Verilator traces through cocotb's --trace.
  reg [8*4096-1:0] dump_path;
  initial if ($value$plusargs("rf8hw_dumpfile=%s", dump_path)) begin
    $dumpfile(dump_path);
    $dumpvars(0, {bench});
  end
`endif

  // The DUT and the signals the bench drives (all changed just after a rising edge).
  reg          int_rst;               // mid-run reset (tb_reset_at), 2 edges
  reg  [1:0]   int_rst_left;
  wire         dut_rst = tb_rst | int_rst;
  reg  [W-1:0] w_tdata;  reg w_tvalid, w_tlast;
  reg  [A-1:0] a_tdata;  reg a_tvalid, a_tlast;
  reg          r_tready;
  wire [R-1:0] r_tdata;  wire r_tvalid, r_tlast, w_tready, a_tready;
  {module} dut (
    .{clock}(clk), .{reset}({reset_expr}),
    .s_axis_w_tdata(w_tdata), .s_axis_w_tvalid(w_tvalid), .s_axis_w_tready(w_tready),
    .s_axis_w_tlast(w_tlast),
    .s_axis_a_tdata(a_tdata), .s_axis_a_tvalid(a_tvalid), .s_axis_a_tready(a_tready),
    .s_axis_a_tlast(a_tlast),
    .m_axis_acc_tdata(r_tdata), .m_axis_acc_tvalid(r_tvalid), .m_axis_acc_tready(r_tready),
    .m_axis_acc_tlast(r_tlast), .err_w_tlast(tb_err_w_tlast));

  // Bench state: read and written only in the block below (blocking assignments).
  reg [31:0] cyc, w_x, a_x, r_x, w_draw, a_draw, r_draw;
  reg [31:0] w_seen, a_seen, w_ptr, a_ptr, r_count, r_dumped, tw_count, tw_dumped, ta_count,
             ta_dumped, r_stall, w_nr, w_idle, a_nr, a_idle, idle_cnt, tail_cnt;
  reg [31:0] w_first, w_nr0, w_idle0, a_first, a_nr0, a_idle0;
  reg        w_new, a_new, finished, hung, run;
  reg [7:0]  why;
  reg [31:0] n_r, n_tw, n_ta;

  always @(posedge clk) begin
    why = 0; n_r = 0; n_tw = 0; n_ta = 0;
    if (tb_rst) begin
      w_x = tb_w_seed; a_x = tb_a_seed; r_x = tb_r_seed;
      w_seen = 0; a_seen = 0; finished = 0; hung = 0;
      int_rst <= 0; int_rst_left = 0;
    end
    // chunks Python handed over since the last edge
    if (tb_w_avail != w_seen) begin
      $readmemh(w_path, w_mem, w_seen % D, (tb_w_avail - 1) % D);
      w_seen = tb_w_avail;
    end
    if (tb_a_avail != a_seen) begin
      $readmemh(a_path, a_mem, a_seen % D, (tb_a_avail - 1) % D);
      a_seen = tb_a_avail;
    end
    run = !dut_rst;
    if (!run) begin
      // the DUT is in reset at this edge: no handshake, nothing offered for the next one
      cyc = 0; w_ptr = 0; a_ptr = 0; r_count = 0; r_dumped = 0; tw_count = 0; tw_dumped = 0;
      ta_count = 0; ta_dumped = 0; r_stall = 0; w_nr = 0; w_idle = 0; a_nr = 0; a_idle = 0;
      idle_cnt = 0; tail_cnt = 0; w_new = 1; a_new = 1;
      w_tvalid <= 0; a_tvalid <= 0; w_tlast <= 0; a_tlast <= 0; r_tready <= 1;
      if (int_rst_left != 0) begin
        int_rst_left = int_rst_left - 1;
        if (int_rst_left == 0) int_rst <= 0;
      end
    end else if (!finished && !hung) begin
      w_draw = w_x; a_draw = a_x; r_draw = r_x;
      w_x = rf8hw_xs(w_x); a_x = rf8hw_xs(a_x); r_x = rf8hw_xs(r_x);
{sources}      // result sink
      if (r_tvalid && r_tready) begin
        r_mem[r_count % D] = {{cyc, r_stall, 3'b0, r_tlast, r_tdata}};
        r_count = r_count + 1;
        idle_cnt = 0;
      end else begin
        if (r_tvalid) r_stall = r_stall + 1;
        if (r_count < tb_r_expect) idle_cnt = idle_cnt + 1;
      end
      if (r_count >= tb_r_expect) r_tready <= 1;
      else r_tready <= r_draw >= tb_r_thr;
      // end of the run, watchdog, mid-run reset
      if (r_count >= tb_r_expect && w_ptr == w_seen && !w_tvalid && !tb_w_more
          && a_ptr == a_seen && !a_tvalid && !tb_a_more) begin
        tail_cnt = tail_cnt + 1;
        if (tail_cnt > tb_tail) begin finished = 1; why = why | 32; end
      end
      if (idle_cnt > tb_max_idle) begin hung = 1; why = why | 128; end
      if (cyc == tb_reset_at) begin
        int_rst <= 1; int_rst_left = 2; why = why | 64;
        w_tvalid <= 0; a_tvalid <= 0;
      end
      // refills and write-outs
      if (tb_w_more && tb_w_avail - w_ptr <= H) why = why | 1;
      if (tb_a_more && tb_a_avail - a_ptr <= H) why = why | 2;
      if (r_count - r_dumped == H || (why & 8'he0) != 0 && r_count != r_dumped) begin
        n_r = r_count - r_dumped;
        $writememh(r_path, r_mem, r_dumped % D, (r_count - 1) % D);
        r_dumped = r_count; why = why | 4;
      end
      if (tw_count - tw_dumped == HT || (why & 8'he0) != 0 && tw_count != tw_dumped) begin
        n_tw = tw_count - tw_dumped;
        $writememh(tw_path, tw_mem, tw_dumped % DT, (tw_count - 1) % DT);
        tw_dumped = tw_count; why = why | 8;
      end
      if (ta_count - ta_dumped == HT || (why & 8'he0) != 0 && ta_count != ta_dumped) begin
        n_ta = ta_count - ta_dumped;
        $writememh(ta_path, ta_mem, ta_dumped % DT, (ta_count - 1) % DT);
        ta_dumped = ta_count; why = why | 16;
      end
      if (why & 64) begin w_seen = 0; a_seen = 0; end   // Python restarts both streams
      if (why != 0) begin
        tb_why <= why; tb_cycle <= cyc; tb_r_n <= n_r; tb_tw_n <= n_tw; tb_ta_n <= n_ta;
      end
      cyc = cyc + 1;
    end
    // tb_seq is updated last: its value-change callback then sees the other outputs updated
    // (nonblocking assignments take effect in the order they were executed)
    if (tb_rst) tb_seq <= 0;
    else if (why != 0) tb_seq <= tb_seq + 1;
  end
endmodule
"""


#: One AXI4-Stream source of the wrapper (``s``: ``w`` weights, ``a`` activations; ``S``: the
#: localparam of its tdata width): offers the next beat when Python has handed one over and the
#: stream's xorshift draw clears its stall threshold, counts not-ready and idle cycles, records
#: each tile's first/last handshake into ``t<s>_mem``.
_SOURCE = """      // {what} source
      if ({s}_tvalid && {s}_tready) begin
        if ({s}_new) begin {s}_first = cyc; {s}_nr0 = {s}_nr; {s}_idle0 = {s}_idle; end
        {s}_new = {s}_tlast;
        if ({s}_tlast) begin
          t{s}_mem[t{s}_count % DT] = {{{s}_first, cyc, {s}_nr - {s}_nr0, {s}_idle - {s}_idle0}};
          t{s}_count = t{s}_count + 1;
        end
      end else if ({s}_tvalid || {s}_ptr != {s}_seen) begin
        if (!{s}_tready) {s}_nr = {s}_nr + 1; else {s}_idle = {s}_idle + 1;
      end
      if (!{s}_tvalid || {s}_tready) begin
        if ({s}_ptr != {s}_seen && {s}_draw >= tb_{s}_thr) begin
          {s}_tvalid <= 1; {{{s}_tlast, {s}_tdata}} <= {s}_mem[{s}_ptr % D][{S}:0]; {s}_ptr = {s}_ptr + 1;
        end else {s}_tvalid <= 0;
      end
"""


def wrapper_verilog(manifest: Manifest) -> str:
    """The wrapper module around the generated top that ``manifest`` describes (its ``module``
    and ``interface``): Verilog-2005 text."""
    iface = manifest.interface
    for name, bus in iface.buses.items():
        expected = {s: f"{name}_{s}" for s in ("tdata", "tvalid", "tready", "tlast")}
        if bus.signals != expected:
            raise ValueError(f"the manifest's bus {name} has signals {bus.signals}; the HDL "
                             f"bench connects {expected}")
    w_bits, a_bits, r_bits = (iface.buses[k].tdata_bits for k in BUSES)
    return _WRAPPER.format(
        bench=BENCH_MODULE, module=manifest.module, clock=iface.clock.name,
        reset=iface.reset.name, reset_expr="~dut_rst" if iface.reset.active_low else "dut_rst",
        w_bits=w_bits, a_bits=a_bits, r_bits=r_bits,
        ring_bits=RING_BITS, tile_ring_bits=TILE_RING_BITS, xs_function=_XS_FUNCTION,
        sources="".join(_SOURCE.format(what=what, s=s, S=s.upper())
                        for what, s in (("weight", "w"), ("activation", "a"))))


# --- the exported, self-checking testbench (rf8hw export-tb) -------------------------------------

#: Cycles without any handshake after which the exported testbench gives up (FAIL, a hang).
EXPORT_IDLE_LIMIT = 20_000
#: Cycles the exported testbench keeps every ready high after the last expected beat, to catch
#: extra beats.
EXPORT_TAIL = 32


def vector_lines(words, lasts, width: int) -> str:
    """``$readmemh`` lines of bus words (Python ints ``< 2**width``) for the exported testbench:
    ``<tlast digit><tdata in ceil(width/4) hex digits>`` per line, as :func:`encode_beats`."""
    digits = -(-width // 4)
    return "".join(f"{int(last):x}{int(w):0{digits}x}\n" for w, last in zip(words, lasts))


def _entry_bits(width: int) -> int:
    return 4 + 4 * -(-width // 4)


def export_bench_verilog(itf, counts: dict, *, seed: int, stall_prob: float, vectors: dict,
                         header: str) -> str:
    """The self-checking testbench ``tb_<module>`` of the top ``itf``
    (:class:`rf8hw.hdl.ippackage.Interfaces`): plain Verilog-2005 (``docs/ip.md``).

    ``counts``: beats per AXI4-Stream bus (stimulus of a slave, expected beats of a master);
    ``vectors``: bus -> default vector file name (a plusarg ``+<bus>=PATH`` overrides it).
    Sources offer their beats in order and sinks drive ``tready``, each stalling at an edge with
    probability ``stall_prob`` (one xorshift32 per bus, seeded by :func:`stream_seed`); every
    master beat is compared with its expected ``{tlast, tdata}`` (``!==``: X or Z is a
    mismatch), and every ``err_*`` output must be 0 at the end."""
    module = itf.module
    thr = lfsr_threshold(stall_prob)
    axis = {n: b for n, b in itf.buses.items() if b.kind == "axis"}
    if set(axis) != set(itf.buses):
        raise ValueError(f"{module}: the exported testbench drives AXI4-Stream buses only; "
                         f"{', '.join(sorted(set(itf.buses) - set(axis)))} is memory-mapped")
    inputs = [n for n in itf.other + itf.interrupts
              if dict((p[0], p[1]) for p in itf.ports)[n] == "input"]
    if inputs:
        raise ValueError(f"{module}: the exported testbench cannot drive input(s) {inputs}")
    decl, init, conns, src, snk, reset_src, drained, got, flags = [], [], [], [], [], [], [], [], []
    active = "1'b0" if itf.reset_active_low else "1'b1"
    conns += [f".{itf.clock}(clk)", f".{itf.reset}(rst)"]
    for i, (name, bus) in enumerate(axis.items()):
        w = bus.width("tdata")
        d = _entry_bits(w)
        n = counts[name]
        has_last = "tlast" in bus.signals
        p = f"b{i}"
        out = bus.mode == "slave"            # the bench drives a slave bus of the DUT
        decl += [f"  // {name}: {n} beats ({'stimulus' if out else 'expected'}), "
                 f"{vectors[name]}",
                 f"  localparam {p.upper()}_N = {n};",
                 f"  reg [{d - 1}:0] {p}_mem [0:{max(n - 1, 0)}];",
                 f"  reg [8*4096-1:0] {p}_path;",
                 f"  reg [31:0] {p}_ptr, {p}_x, {p}_draw;"]
        if out:
            decl += [f"  reg [{w - 1}:0] {p}_tdata;", f"  reg {p}_tvalid, {p}_tlast;",
                     f"  wire {p}_tready;"]
        else:
            decl += [f"  wire [{w - 1}:0] {p}_tdata;", f"  wire {p}_tvalid, {p}_tlast;",
                     f"  reg {p}_tready;"]
        init += [f'    {p}_path = "{vectors[name]}";',
                 f'    if ($value$plusargs("{name}=%s", {p}_path)) $display("tb: {name} '
                 f'vectors from %0s", {p}_path);']
        if n:
            init.append(f"    $readmemh({p}_path, {p}_mem);")
        for sig, (port, _, _) in bus.signals.items():
            if sig in ("tdata", "tvalid", "tready", "tlast"):
                conns.append(f".{port}({p}_{sig})")
            elif out:
                raise ValueError(f"{module}: the exported testbench does not drive {port}")
        reset_src.append(f"      {p}_ptr = 0; {p}_x = 32'd{stream_seed(seed, name)};")
        if out:
            reset_src.append(f"      {p}_tvalid <= 1'b0; {p}_tlast <= 1'b0;")
            last = f"{p}_mem[{p}_ptr][{d - 4}]" if has_last else "1'b0"
            src += [f"      // {name} source",
                    f"      {p}_draw = {p}_x; {p}_x = rf8hw_xs({p}_x);",
                    f"      if ({p}_tvalid && {p}_tready) progress = 1;",
                    f"      if (!{p}_tvalid || {p}_tready) begin",
                    f"        if ({p}_ptr < {p.upper()}_N && {p}_draw >= 32'd{thr}) begin",
                    f"          {p}_tvalid <= 1'b1; {p}_tlast <= {last};",
                    f"          {p}_tdata <= {p}_mem[{p}_ptr][{w - 1}:0]; {p}_ptr = {p}_ptr + 1;",
                    "        end else", f"          {p}_tvalid <= 1'b0;", "      end"]
            drained.append(f"{p}_ptr == {p.upper()}_N && !{p}_tvalid")
        else:
            reset_src.append(f"      {p}_tready <= 1'b0;")
            got_expr = f"{{{p}_tlast, {p}_tdata}}" if has_last else f"{p}_tdata"
            exp_expr = (f"{{{p}_mem[{p}_ptr][{d - 4}], {p}_mem[{p}_ptr][{w - 1}:0]}}" if has_last
                        else f"{p}_mem[{p}_ptr][{w - 1}:0]")
            snk += [f"      // {name} sink: every beat against the expected one",
                    f"      {p}_draw = {p}_x; {p}_x = rf8hw_xs({p}_x);",
                    f"      if ({p}_tvalid && {p}_tready) begin",
                    "        progress = 1;",
                    f"        if ({p}_ptr >= {p.upper()}_N) begin",
                    "          errors = errors + 1;",
                    f'          if (errors <= 10) $display("MISMATCH {name} beat %0d: an extra '
                    f'beat (tlast %b, tdata %h); {n} were expected", {p}_ptr, {p}_tlast, '
                    f"{p}_tdata);",
                    f"        end else if ({got_expr} !== {exp_expr}) begin",
                    "          errors = errors + 1;",
                    f'          if (errors <= 10) $display("MISMATCH {name} beat %0d: got tlast %b '
                    f'tdata %h, expected tlast %b tdata %h", {p}_ptr, {p}_tlast, {p}_tdata, '
                    f"{p}_mem[{p}_ptr][{d - 4}], {p}_mem[{p}_ptr][{w - 1}:0]);",
                    "        end",
                    "        checked = checked + 1;",
                    f"        {p}_ptr = {p}_ptr + 1;",
                    "      end",
                    f"      {p}_tready <= {p}_ptr >= {p.upper()}_N || {p}_draw >= 32'd{thr};"]
            drained.append(f"{p}_ptr >= {p.upper()}_N")
            got.append(f"({p}_ptr < {p.upper()}_N ? {p.upper()}_N - {p}_ptr : 0)")
    for name, _, width in itf.ports:
        if name in itf.other + itf.interrupts:
            decl.append(f"  wire [{width - 1}:0] out_{name};" if width > 1
                        else f"  wire out_{name};")
            conns.append(f".{name}(out_{name})")
            if name.startswith("err_"):
                flags.append(name)
    check_flags = "".join(
        f"        if (out_{f} !== 1'b0) begin\n          errors = errors + 1;\n"
        f'          $display("MISMATCH {f} is %b at the end, expected 0", out_{f});\n'
        "        end\n"
        for f in flags)
    body = f"""{header}module {tb_module(module)};
  localparam IDLE_LIMIT = {EXPORT_IDLE_LIMIT};   // cycles without a handshake: FAIL (a hang)
  localparam TAIL = {EXPORT_TAIL};          // cycles every ready stays high after the last beat
  reg clk;
  reg rst;                      // drives {itf.reset} (active {'low' if itf.reset_active_low else 'high'})
  integer errors, checked, idle, tail, cycle, reset_left;
  reg progress, done;
  initial clk = 1'b0;
  always #5 clk = ~clk;

{_XS_FUNCTION}
{chr(10).join(x for x in decl if x)}

  {module} dut (
    {(',' + chr(10) + '    ').join(conns)});

  initial begin
{chr(10).join(init)}
    errors = 0; checked = 0; idle = 0; tail = 0; cycle = 0; done = 1'b0; reset_left = 4;
    rst = {active};
  end

  always @(posedge clk) begin
    progress = 0;
    if (reset_left != 0) begin          // the reset is asserted at the first 4 rising edges
      reset_left = reset_left - 1;
      if (reset_left == 0) rst <= ~{active};
    end
    if (rst == {active}) begin
{chr(10).join(reset_src)}
    end else if (!done) begin
      cycle = cycle + 1;
{chr(10).join(src)}
{chr(10).join(snk)}
      idle = progress ? 0 : idle + 1;
      if ({' && '.join(drained) or '1'}) tail = tail + 1;
      if (tail > TAIL || idle > IDLE_LIMIT) begin
        done = 1'b1;
        if (idle > IDLE_LIMIT) begin
          errors = errors + {' + '.join(got) or '0'};
          $display("MISMATCH no handshake for %0d cycles (a hang) at cycle %0d", IDLE_LIMIT, cycle);
        end
{check_flags}        if (errors == 0) begin
          $display("PASS: %0d beats equal the golden model ({module}, seed {seed}, %0d cycles)",
                   checked, cycle);
          $finish;
        end else begin
          $display("FAIL %0d mismatches (%0d beats checked, {module}, seed {seed})", errors, checked);
`ifdef __ICARUS__
          $finish_and_return(1);
`elsif VERILATOR
          $fatal(1, "FAIL");
`elsif RF8HW_TB_SV
          $fatal(1, "FAIL");
`else
          $finish;
`endif
        end
      end
    end
  end
endmodule
"""
    return body
