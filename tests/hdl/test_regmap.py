"""The shell's register map (``rf8hw/hdl/shell.rdl``): the compiled model against the two PeakRDL
exporters' output (independent readers of the same SystemRDL), the AXI4-Lite register block
(Amaranth simulation, driven through the Python driver), the driver's address and field math,
the memory images, the generated files and ``docs/shell.md``'s drift."""

from __future__ import annotations

import asyncio
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from rf8hw.hdl.regmap import ACCESS_KINDS, c_header, markdown, regmap
from rf8hw.hdl.shell_driver import MAGIC, ShellDriver, ShellError
from rf8hw.hdl.shell_images import ShellLayout, image_bytes, pack_image, unpack_image

ROOT = Path(__file__).resolve().parents[2]


# ---- the compiled model --------------------------------------------------------------------------

def _header_model(text: str) -> tuple[dict, dict]:
    """Offsets (from the packed struct's member order and reserved gaps) and fields
    (``REG -> {field: (lsb, width)}``) as the C header states them."""
    body = text[text.index("typedef struct"):text.index("} rf8_accel_shell_t;")]
    offsets, pos = {}, 0
    for kind, name, count in re.findall(r"uint(32|8)_t (\w+)(?:\[(0x[0-9a-f]+)\])?;", body):
        if kind == "32":
            offsets[name] = pos
            pos += 4
        else:
            pos += int(count, 16)
    fields = {}
    for reg, field, what, value in re.findall(
            r"#define RF8_ACCEL_SHELL__(\w+?)__(\w+)_(bp|bw) (\w+)", text):
        fields.setdefault(reg, {}).setdefault(field.lower(), {})[what] = int(value, 0)
    return offsets, {r: {f: (v["bp"], v["bw"]) for f, v in fs.items()} for r, fs in fields.items()}


def test_compiled_model_matches_c_header_and_markdown():
    rmap = regmap()
    offsets, fields = _header_model(c_header())
    assert {r.name: r.offset for r in rmap.registers} == offsets
    assert {r.name: {f.name: (f.lsb, f.width) for f in r.fields} for r in rmap.registers} == fields
    md = markdown()
    table = dict(re.findall(r"\|\s*0x([0-9A-F]+)\s*\|\s*(\w+)\s*\|", md))
    assert {r.name: r.offset for r in rmap.registers} == {v: int(k, 16) for k, v in table.items()}
    assert rmap.size == 0x70 and rmap.addr_bits == 7


def test_fields_are_legal():
    rmap = regmap()
    seen = set()
    for r in rmap.registers:
        assert r.offset % 4 == 0 and r.offset not in seen
        seen.add(r.offset)
        used = 0
        for f in r.fields:
            assert f.access in ACCESS_KINDS
            assert f.lsb + f.width <= 32 and not used & f.mask, (r.name, f.name)
            used |= f.mask
            assert f.desc, f"{r.name}.{f.name} has no description"
    kinds = {f.access for r in rmap.registers for f in r.fields}
    assert kinds == set(ACCESS_KINDS)
    assert rmap.reg("ID").field("magic").reset == MAGIC


@pytest.mark.skipif(shutil.which("gcc") is None, reason="no C compiler")
def test_c_header_compiles(tmp_path):
    (tmp_path / "regs.h").write_text(c_header())
    (tmp_path / "t.c").write_text('#include "regs.h"\nint main(void) { return '
                                  'RF8_ACCEL_SHELL__STATUS__DONE_bp; }\n')
    done = subprocess.run(["gcc", "-std=c11", "-fsyntax-only", "-Wall", "-Werror", "t.c"],
                          cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


# ---- the driver against a fake transport ---------------------------------------------------------

class FakeRegs:
    """32-bit words at byte offsets; records every write."""

    def __init__(self, values=None):
        self.mem = dict(values or {})
        self.writes = []

    async def read32(self, offset):
        return self.mem.get(offset, 0)

    async def write32(self, offset, value):
        self.writes.append((offset, value))
        self.mem[offset] = value


def test_driver_address_and_field_math():
    offsets, fields = _header_model(c_header())
    fake = FakeRegs()
    drv = ShellDriver(fake.read32, fake.write32)
    asyncio.run(drv.program(7, 300, 19, act_base=5, load=0, w_base=0x1_2345_6780,
                            a_base=0x40, p_base=0x80, o_base=0xFFFF_FFFF_0000_0000))
    m = fake.mem
    bp = {f: v[0] for f, v in fields["GEMM_ACT"].items()}
    assert m[offsets["GEMM_M"]] == 7 and m[offsets["GEMM_K"]] == 300 and m[offsets["GEMM_N"]] == 19
    assert m[offsets["GEMM_ACT"]] == 5 << bp["act_base"] | 0 << bp["load"]
    assert (m[offsets["W_BASE_LO"]], m[offsets["W_BASE_HI"]]) == (0x2345_6780, 1)
    assert (m[offsets["O_BASE_LO"]], m[offsets["O_BASE_HI"]]) == (0, 0xFFFF_FFFF)
    assert drv.decode("ERROR", 0b10100) == {"cmd": 0, "w_tlast": 0, "rresp": 1, "bresp": 0,
                                            "desc": 1}
    with pytest.raises(ValueError, match="GEMM_M.m is 16 bits wide: 65536 does not fit"):
        drv.encode("GEMM_M", m=65536)
    with pytest.raises(KeyError, match="no field 'x'"):
        drv.encode("GEMM_M", x=1)


def test_driver_refuses_other_hardware():
    from rf8hw.arch import AccelConfig, ArrayConfig

    rmap = regmap()

    def word(reg, **v):
        return ShellDriver(None, None).encode(reg, **v)

    values = {rmap.reg("ID").offset: MAGIC, rmap.reg("VERSION").offset: word("VERSION", major=1),
              rmap.reg("CONFIG0").offset: word("CONFIG0", rows=8, cols=8, act_bits=8, acc_bits=40),
              rmap.reg("CONFIG1").offset: word("CONFIG1", max_m=128, max_k=1536),
              rmap.reg("CONFIG2").offset: word("CONFIG2", act_depth=24576, max_burst=16),
              rmap.reg("CONFIG3").offset: word("CONFIG3", out_bits=8, addr_bits=32, data_bits=64)}
    fake = FakeRegs(values)
    drv = ShellDriver(fake.read32, fake.write32)
    conf = asyncio.run(drv.identify(expect=AccelConfig(ArrayConfig(8, 8)), data_bits=64))
    assert conf["rows"] == 8 and conf["act_depth"] == 24576
    with pytest.raises(ShellError, match="rows = 8 \\(expected 4\\)"):
        asyncio.run(drv.identify(expect=AccelConfig(ArrayConfig(4, 8))))
    with pytest.raises(ShellError, match="data_bits = 64 \\(expected 128\\)"):
        asyncio.run(drv.identify(data_bits=128))
    fake.mem[rmap.reg("VERSION").offset] = word("VERSION", major=2)
    with pytest.raises(ShellError, match="version 2.0"):
        asyncio.run(drv.identify())
    fake.mem[rmap.reg("ID").offset] = 0
    with pytest.raises(ShellError, match="ID reads 0x00000000"):
        asyncio.run(drv.identify())


# ---- the register block in simulation, through the driver ----------------------------------------

def test_register_block_through_the_driver():
    from amaranth.hdl import Module
    from amaranth.sim import Simulator

    from rf8hw.hdl.regmap_rtl import AxiLiteRegs

    rmap = regmap()
    dut = AxiLiteRegs(rmap)
    m = Module()
    m.submodules.dut = dut
    hw = dut.hw
    seen = {}

    async def bench(ctx):
        async def write32(offset, value, strb=0xF):
            ctx.set(dut.awaddr, offset)
            ctx.set(dut.wdata, value)
            ctx.set(dut.wstrb, strb)
            ctx.set(dut.awvalid, 1)
            ctx.set(dut.wvalid, 1)
            ctx.set(dut.bready, 1)
            while not ctx.get(dut.awready):
                await ctx.tick()
            await ctx.tick()
            ctx.set(dut.awvalid, 0)
            ctx.set(dut.wvalid, 0)
            # the pulse field is high in the cycle after the handshake
            seen["start"] = ctx.get(hw["CTRL"]["start"].q)
            while not ctx.get(dut.bvalid):
                await ctx.tick()
            assert ctx.get(dut.bresp) == 0
            await ctx.tick()

        async def read32(offset):
            ctx.set(dut.araddr, offset)
            ctx.set(dut.arvalid, 1)
            ctx.set(dut.rready, 1)
            while not ctx.get(dut.arready):
                await ctx.tick()
            await ctx.tick()
            ctx.set(dut.arvalid, 0)
            while not ctx.get(dut.rvalid):
                await ctx.tick()
            value = ctx.get(dut.rdata)
            await ctx.tick()
            return value

        drv = ShellDriver(read32, write32)
        ctx.set(hw["CONFIG0"]["rows"].d, 8)
        ctx.set(hw["CONFIG0"]["acc_bits"].d, 40)
        ctx.set(hw["STATUS"]["busy"].d, 1)
        assert (await drv.read("ID"))["magic"] == MAGIC
        assert await drv.read("VERSION") == {"minor": 0, "major": 1}
        assert (await drv.read("CONFIG0"))["rows"] == 8
        assert (await drv.read("CONFIG0"))["acc_bits"] == 40
        assert (await drv.read("GEMM_ACT")) == {"act_base": 0, "load": 1}     # reset values
        await drv.program(9, 20, 13, act_base=3, load=0, w_base=0x1234_5678_9ABC_DEF0, p_base=8,
                          o_base=16)
        assert ctx.get(hw["GEMM_N"]["n"].q) == 13 and ctx.get(hw["GEMM_ACT"]["load"].q) == 0
        assert (await drv.read("W_BASE_HI"))["addr"] == 0x1234_5678
        # byte strobes: only byte 1 of W_BASE_LO written
        await write32(rmap.reg("W_BASE_LO").offset, 0x1111_1111, strb=0b0010)
        assert (await drv.read("W_BASE_LO"))["addr"] == 0x9ABC_11F0
        # pulse: one cycle, reads 0
        await drv.start()
        assert seen["start"] == 1 and ctx.get(hw["CTRL"]["start"].q) == 0
        assert await drv.read("CTRL") == {"start": 0, "irq_en": 0}
        # w1c: hardware sets, software clears by writing 1, reads have no side effect
        ctx.set(hw["ERROR"]["rresp"].set, 1)
        ctx.set(hw["STATUS"]["done"].set, 1)
        await ctx.tick()
        ctx.set(hw["ERROR"]["rresp"].set, 0)
        ctx.set(hw["STATUS"]["done"].set, 0)
        assert (await drv.read("ERROR"))["rresp"] == 1
        assert (await drv.read("ERROR"))["rresp"] == 1
        assert await drv.read("STATUS") == {"busy": 1, "done": 1}
        await drv.write("ERROR", cmd=1)                  # another flag: rresp stays
        assert (await drv.read("ERROR"))["rresp"] == 1
        await drv.clear()
        assert await drv.read("ERROR") == dict.fromkeys(("cmd", "w_tlast", "rresp", "bresp",
                                                         "desc"), 0)
        assert (await drv.read("STATUS"))["done"] == 0
        # read-only and constant fields ignore writes; unmapped addresses read 0
        await write32(rmap.reg("ID").offset, 0)
        assert (await drv.read("ID"))["magic"] == MAGIC
        assert await read32(0x1C) == 0
        seen["ok"] = True

    sim = Simulator(m)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert seen.get("ok")


# ---- memory images ----------------------------------------------------------------------------

def test_image_packing_by_hand():
    # a 72-bit beat in 64-bit data beats: two data beats, low bits first, little-endian bytes
    image = pack_image([0x99_0807060504030201, 0xAB], 2, 64)
    assert image == bytes([1, 2, 3, 4, 5, 6, 7, 8, 0x99] + [0] * 7 + [0xAB] + [0] * 15)
    assert unpack_image(image, 2, 2, 64) == [0x99_0807060504030201, 0xAB]
    assert image_bytes(2, 2, 64) == len(image)
    with pytest.raises(ValueError, match="beat 0 .* does not fit 4 bytes"):
        pack_image([1 << 32], 1, 32)
    with pytest.raises(ValueError, match="needs 16 bytes, got 8"):
        unpack_image(bytes(8), 2, 1, 64)


def test_layout_of_the_default_accelerator():
    from rf8hw.arch import AccelConfig, ArrayConfig
    from rf8hw.sim.shell_stimulus import shell_layout

    lay = shell_layout(AccelConfig(ArrayConfig(8, 8)))
    assert lay.bits == {"w": 64, "a": 64, "p": (40 + 24) * 8, "o": 64}
    assert lay.words == {"w": 1, "a": 1, "p": 8, "o": 1}
    lay32 = shell_layout(AccelConfig(ArrayConfig(3, 4), max_m=9, max_k=20, out_bits=32), 128)
    assert lay32.words == {"w": 1, "a": 1, "p": 2, "o": 1} and lay32.bits["o"] == 128
    from rf8hw.hdl.shell import RF8AccelShell

    for acfg in (AccelConfig(ArrayConfig(8, 8)), AccelConfig(ArrayConfig(3, 4, pe="int8"), max_m=9,
                                                             max_k=20, out_bits=32)):
        for db in (32, 64, 256):
            assert RF8AccelShell(acfg, data_bits=db).layout == shell_layout(acfg, db)
    assert ShellLayout.from_bits({"w": 65}, 64).words == {"w": 2}


def test_descriptor_images_hold_the_jobs_beats():
    from rf8hw.arch import AccelConfig, ArrayConfig
    from rf8hw.sim.shell_stimulus import random_descriptors, shell_layout

    acfg = AccelConfig(ArrayConfig(3, 4), max_m=9, max_k=20)
    lay = shell_layout(acfg, 32)
    ds = random_descriptors(np.random.default_rng(5), acfg, lay, 6)
    for d in ds:
        kt, nt = -(-d.K // 3), -(-d.N // 4)
        assert len(d.images["w"]) == kt * nt * 3 * lay.beat_bytes("w")
        assert len(d.images["a"]) == (d.M * kt * lay.beat_bytes("a") if d.load else 0)
        assert len(d.images["p"]) == nt * lay.beat_bytes("p")
        assert d.n_out == d.M * nt
        for s, base in d.bases.items():
            assert base % 4 == 0
            size = len(d.images[s]) if s != "o" else d.n_out * lay.beat_bytes("o")
            if size >= 8:           # two or more data beats: the image crosses a 4 KB page end
                assert base // 4096 != (base + size - 1) // 4096
        assert np.array_equal(d.expected[:d.M, :min(d.N, 4)], d.golden[:, :min(d.N, 4)])
    assert any(d.load == 0 for d in ds)


# ---- generated files, docs ----------------------------------------------------------------------

def test_generate_shell_files(tmp_path):
    import json

    from rf8hw.arch import AccelConfig, ArrayConfig
    from rf8hw.hdl.accel_generate import generate_accel

    acfg = AccelConfig(ArrayConfig(2, 2), max_m=4, max_k=8)
    v, j = generate_accel(acfg, tmp_path, shell={"data_bits": 32})
    assert v.name == "rf8_pipe_accel_2x2_a8_acc40_m4_k8_o8_shell_d32_a32_b16.v"
    man = json.loads(j.read_text())
    assert man["kind"] == "rf8hw-accelerator-shell"
    ports = {p["name"]: (p["direction"], p["width"]) for p in man["ports"]}
    for name, want in {"aclk": ("input", 1), "aresetn": ("input", 1), "irq": ("output", 1),
                       "m_axi_mem_awaddr": ("output", 32), "m_axi_mem_arlen": ("output", 8),
                       "m_axi_mem_wdata": ("output", 32), "m_axi_mem_wstrb": ("output", 4),
                       "m_axi_mem_rdata": ("input", 32), "m_axi_mem_bresp": ("input", 2),
                       "s_axi_ctrl_awaddr": ("input", 7), "s_axi_ctrl_rdata": ("output", 32),
                       "s_axi_ctrl_bready": ("input", 1)}.items():
        assert ports[name] == want, name
    assert "--shell --data-bits 32" in man["generator"]["command"]
    assert [r["name"] for r in man["shell"]["register_map"]["registers"]] == \
        [r.name for r in regmap().registers]
    md = (tmp_path / f"{v.stem}_regs.md").read_text()
    h = (tmp_path / f"{v.stem}_regs.h").read_text()
    assert md.startswith("<!-- GENERATED") and markdown() in md
    assert h.startswith("// GENERATED") and c_header() in h
    assert "Regenerate: rf8hw generate --accel --shell" in v.read_text().splitlines()[3]
    # the IP package of the shell: the FuseSoC core and a schema-valid IP-XACT component whose
    # bus interfaces are the AXI4 master, the AXI4-Lite slave, the clock, the reset and irq
    from xml.etree import ElementTree as ET

    from rf8hw.hdl.ippackage import SPIRIT_NS, validate_component

    assert (tmp_path / f"{v.stem}.core").is_file()
    comp = tmp_path / f"{v.stem}_ip" / "component.xml"
    validate_component(comp)
    ns = {"spirit": SPIRIT_NS}
    buses = {b.findtext("spirit:name", namespaces=ns): b
             for b in ET.parse(comp).getroot().iter(f"{{{SPIRIT_NS}}}busInterface")}
    assert {"m_axi_mem", "s_axi_ctrl", "irq"} <= set(buses), sorted(buses)
    assert buses["m_axi_mem"].find("spirit:master", ns) is not None
    assert buses["s_axi_ctrl"].find("spirit:slave", ns) is not None


def test_generate_cli(tmp_path, capsys):
    from rf8hw.cli import main

    assert main(["generate", "--rows", "2", "--cols", "2", "--max-burst", "8",
                 "-o", str(tmp_path)]) == 2
    assert "--max-burst sets a parameter of the shell: add --shell" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())
    assert main(["generate", "--shell", "--rows", "2", "--cols", "2", "--max-m", "4", "--max-k",
                 "8", "--max-burst", "8", "-o", str(tmp_path)]) == 0
    stem = "rf8_pipe_accel_2x2_a8_acc40_m4_k8_o8_shell_d64_a32_b8"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        f"{stem}{x}" for x in (".v", ".json", ".core", "_ip", "_regs.md", "_regs.h"))
    printed = capsys.readouterr().out.split()
    assert [str(Path(p).relative_to(tmp_path)) for p in printed] == [f"{stem}{x}" for x in (
        ".v", ".json", ".core", "_ip/component.xml", "_regs.md", "_regs.h")]
    with pytest.raises(ValueError, match="data_bits must be one of 32, 64, 128, 256, 512, not 48"):
        from rf8hw.arch import AccelConfig, ArrayConfig
        from rf8hw.hdl.shell import RF8AccelShell

        RF8AccelShell(AccelConfig(ArrayConfig(2, 2), max_m=4, max_k=8), data_bits=48)


def test_docs_register_map_is_the_generated_one():
    """``docs/shell.md`` holds the generated Markdown between its markers (regenerate with
    ``python -c "from rf8hw.hdl.regmap import markdown; print(markdown())"``)."""
    text = (ROOT / "docs" / "shell.md").read_text()
    begin, end = "<!-- BEGIN GENERATED REGISTER MAP -->\n", "<!-- END GENERATED REGISTER MAP -->"
    assert begin in text and end in text
    assert text[text.index(begin) + len(begin):text.index(end)] == markdown()


@pytest.mark.slow
def test_shell_verilog_lints_and_reads_as_verilog_2005(tmp_path):
    """``verilator --lint-only -Wall`` (with the generated file's waivers) and ``iverilog -g2005``
    accept the shell's Verilog."""
    from rf8hw.arch import AccelConfig, ArrayConfig
    from rf8hw.hdl.accel_generate import generate_accel
    from rf8hw.toolchain.tools import lint_verilator

    v, j = generate_accel(AccelConfig(ArrayConfig(2, 3), max_m=3, max_k=5), tmp_path,
                          shell={"data_bits": 32, "max_burst": 4})
    result = lint_verilator(v, v.stem)
    assert result.returncode == 0, result.stdout + result.stderr
    if shutil.which("iverilog"):
        done = subprocess.run(["iverilog", "-g2005", "-o", str(tmp_path / "a.out"), str(v)],
                              capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
