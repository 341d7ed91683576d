"""The generated Verilog behaves the same under Verilog-2005 and SystemVerilog rules (docs/cosim.md).

A plain Verilog testbench (no cocotb) holds reset (``aresetn`` low, or ``rst`` high for the
active-high variant) for two cycles, releases it and prints the
weight-stream ``tready``: the array is in its weight phase and not stalled, so ``tready`` must be
1 under both ``iverilog -g2005`` and ``-g2012``.  Before the generator ran a full Yosys ``proc``,
Yosys woke its ``always @*`` blocks with a declaration initializer (``reg \\$auto$verilog_backend
...$1 = 0;``), which raises no event under IEEE 1800, and ``tready`` stayed X under ``-g2012``;
``test_generated_verilog_has_no_initializer_triggered_process`` pins the cause away.  The cocotb
co-simulation itself runs under ``-g2012`` (cocotb's runner default; ``tests/sim/test_cosim.py``).
"""

import re
import subprocess
from pathlib import Path

import pytest

from rf8hw.arch import ArrayConfig
from rf8hw.hdl.generate import generate
from rf8hw.toolchain.tools import iverilog_executable

pytestmark = pytest.mark.slow            # every test runs Icarus (or generates Verilog)

ROOT = Path(__file__).resolve().parents[2]
RTL_4X4 = ROOT / "rtl" / f"{ArrayConfig(4, 4).module_name}.v"


def tb_source(cfg: ArrayConfig) -> str:
    on = int(not cfg.reset_active_low)          # the level that resets
    return f"""module tb;
  reg clk = 0, rst = {on};
  wire w_ready, a_ready, acc_valid, acc_last, err;
  wire [{-(-cfg.acc_bits // 8) * 8 * cfg.cols - 1}:0] acc_data;
  {cfg.module_name} dut(.{cfg.clock_port}(clk), .{cfg.reset}(rst), .s_axis_w_tdata({8 * cfg.cols}'d0),
    .s_axis_w_tvalid(1'b0), .s_axis_w_tlast(1'b0), .s_axis_w_tready(w_ready),
    .s_axis_a_tdata({-(-cfg.act_bits // 8) * 8 * cfg.rows}'d0), .s_axis_a_tvalid(1'b0), .s_axis_a_tlast(1'b0),
    .s_axis_a_tready(a_ready), .m_axis_acc_tdata(acc_data), .m_axis_acc_tvalid(acc_valid),
    .m_axis_acc_tready(1'b1), .m_axis_acc_tlast(acc_last), .err_w_tlast(err));
  always #5 clk = ~clk;
  initial begin
    #22 rst = {1 - on};
    #30 $display("w_tready=%b a_tready=%b acc_tvalid=%b", w_ready, a_ready, acc_valid);
    $finish;
  end
endmodule
"""


def ready_after_reset(tmp_path, verilog: Path, cfg: ArrayConfig, generation: str) -> str:
    (tmp_path / "tb.v").write_text(tb_source(cfg))
    vvp = tmp_path / f"tb{generation}.vvp"
    subprocess.run([str(iverilog_executable()), generation, "-s", "tb", "-o", str(vvp),
                    str(verilog), str(tmp_path / "tb.v")],
                   check=True, capture_output=True, text=True)
    out = subprocess.run(["vvp", "-n", str(vvp)], check=True, capture_output=True, text=True).stdout
    return out[out.index("w_tready="):].split("\n")[0]


@pytest.mark.parametrize("generation", ["-g2005", "-g2012"])
def test_checked_in_rtl_drives_tready_after_reset_under_both_rule_sets(tmp_path, generation):
    assert (ready_after_reset(tmp_path, RTL_4X4, ArrayConfig(4, 4), generation)
            == "w_tready=1 a_tready=0 acc_tvalid=0")


@pytest.mark.parametrize("shape, reset", [((1, 1), "aresetn"), ((1, 2), "aresetn"),
                                          ((2, 1), "rst"), ((7, 1), "aresetn")],
                         ids=lambda v: f"{v[0]}x{v[1]}" if isinstance(v, tuple) else v)
def test_edge_shapes_drive_tready_after_reset_under_systemverilog_rules(tmp_path, shape, reset):
    cfg = ArrayConfig(*shape, reset=reset)
    v, _ = generate(cfg, tmp_path / "rtl")
    assert ready_after_reset(tmp_path, v, cfg, "-g2012") == "w_tready=1 a_tready=0 acc_tvalid=0"


def test_generated_verilog_has_no_initializer_triggered_process():
    code = [line for line in RTL_4X4.read_text().splitlines() if not line.startswith("//")]
    assert code and not any(re.match(r"\s*always\s*@\s*\*", line) for line in code)
    assert not any("$auto$verilog_backend" in line for line in code)
    # the top's clock port aclk drives the array's local "array" domain (rf8hw.hdl.axi)
    assert sum(bool(re.match(r"\s*always @\(posedge array_clk\)", line)) for line in code) > 10
