"""A driver for the accelerator shell (``docs/shell.md``): programs a GEMM descriptor as a CPU
does, through any 32-bit register transport.

Every address and field comes from the compiled register map (:func:`rf8hw.hdl.regmap.regmap`,
``shell.rdl``).  The transport is two async callables, ``read32(offset) -> int`` and
``write32(offset, value)``, byte offsets from the register block's base: the cocotb test passes
cocotbext-axi's ``AxiLiteMaster``; on a board, wrap an ``mmap`` of ``/dev/mem`` (or a UIO
device) in two ``async def`` functions.  Standard library only (plus ``systemrdl-compiler``
through the register map): no Amaranth, no simulator::

    drv = ShellDriver(read32, write32)
    hw = await drv.identify(expect=acfg)           # refuses other hardware
    res = await drv.run_gemm(M, K, N, w_base=..., a_base=..., p_base=..., o_base=...)
    res["errors"], res["perf"]                       # flags that were set, performance counters
"""

from __future__ import annotations

import asyncio

from rf8hw.hdl.regmap import RegMap, regmap

__all__ = ["MAGIC", "MAJOR", "ShellDriver", "ShellError"]

MAGIC = 0x52463841      # "RF8A"
MAJOR = 1


class ShellError(RuntimeError):
    """The hardware is not the expected one, refused a descriptor or did not finish."""


class ShellDriver:
    def __init__(self, read32, write32, *, rmap: RegMap | None = None):
        self.read32, self.write32 = read32, write32
        self.rmap = rmap or regmap()

    # ---- register and field access ------------------------------------------------------------
    def offset(self, reg: str) -> int:
        return self.rmap.reg(reg).offset

    def encode(self, reg: str, **values) -> int:
        """The 32-bit word of ``reg`` with its fields set to ``values`` (others at 0)."""
        r = self.rmap.reg(reg)
        word = 0
        for name, value in values.items():
            f = r.field(name)
            value = int(value)
            if not 0 <= value < 1 << f.width:
                raise ValueError(f"{reg}.{name} is {f.width} bits wide: {value} does not fit")
            word |= value << f.lsb
        return word

    def decode(self, reg: str, word: int) -> dict:
        """The fields of ``reg`` in ``word``."""
        return {f.name: (word & f.mask) >> f.lsb for f in self.rmap.reg(reg).fields}

    async def read(self, reg: str) -> dict:
        return self.decode(reg, await self.read32(self.offset(reg)))

    async def write(self, reg: str, **values) -> None:
        await self.write32(self.offset(reg), self.encode(reg, **values))

    # ---- the hardware -------------------------------------------------------------------------
    async def identify(self, expect=None, data_bits: int | None = None) -> dict:
        """The hardware's configuration (the CONFIG registers' fields); ``ShellError`` if the
        block is not a shell of major version :data:`MAJOR`, or (with ``expect``, an
        :class:`rf8hw.arch.AccelConfig`, and/or ``data_bits``) if it was built for another
        accelerator or memory width."""
        magic = (await self.read("ID"))["magic"]
        if magic != MAGIC:
            raise ShellError(f"ID reads {magic:#010x}, not the shell's {MAGIC:#010x}")
        version = await self.read("VERSION")
        if version["major"] != MAJOR:
            raise ShellError(f"register map version {version['major']}.{version['minor']}; "
                             f"this driver speaks {MAJOR}.x")
        conf = {}
        for reg in ("CONFIG0", "CONFIG1", "CONFIG2", "CONFIG3", "CONFIG4"):
            conf.update(await self.read(reg))
        want = {}
        if expect is not None:
            a = expect.array
            want.update(rows=a.rows, cols=a.cols, act_bits=a.act_bits, acc_bits=a.acc_bits,
                        max_m=expect.max_m, max_k=expect.max_k, act_depth=expect.act_depth,
                        out_bits=expect.out_bits)
        if data_bits is not None:
            want["data_bits"] = data_bits
        wrong = [f"{k} = {conf[k]} (expected {v})" for k, v in want.items() if conf[k] != v]
        if wrong:
            raise ShellError("the hardware is another configuration: " + ", ".join(wrong))
        return conf

    async def program(self, M: int, K: int, N: int, *, act_base: int = 0, load: int = 1,
                      w_base: int, a_base: int = 0, p_base: int, o_base: int) -> None:
        """Write the descriptor registers (nothing starts)."""
        await self.write("GEMM_M", m=M)
        await self.write("GEMM_K", k=K)
        await self.write("GEMM_N", n=N)
        await self.write("GEMM_ACT", act_base=act_base, load=load)
        for name, addr in (("W", w_base), ("A", a_base), ("P", p_base), ("O", o_base)):
            addr = int(addr)
            if not 0 <= addr < 1 << 64:
                raise ValueError(f"{name.lower()}_base must be a 64-bit byte address, not {addr}")
            await self.write(f"{name}_BASE_LO", addr=addr & 0xFFFFFFFF)
            await self.write(f"{name}_BASE_HI", addr=addr >> 32)

    async def clear(self) -> None:
        """Clear STATUS.done and every ERROR flag (write 1 to clear)."""
        await self.write("STATUS", done=1)
        r = self.rmap.reg("ERROR")
        await self.write("ERROR", **{f.name: 1 for f in r.fields})

    async def start(self, irq: bool = False) -> None:
        await self.write("CTRL", start=1, irq_en=int(irq))

    async def wait(self, max_polls: int = 1_000_000, poll_delay=None) -> int:
        """Poll STATUS until ``done``; returns the number of polls.  ``poll_delay``: an async
        callable awaited between polls (e.g. a few clock cycles in simulation)."""
        for polls in range(1, max_polls + 1):
            status = await self.read("STATUS")
            if status["done"] and not status["busy"]:
                return polls
            if poll_delay is not None:
                await poll_delay()
            else:
                await asyncio.sleep(0)
        raise ShellError(f"the descriptor did not finish within {max_polls} polls of STATUS")

    async def results(self) -> dict:
        """``errors`` (names of the ERROR flags that are set) and ``perf`` (the counters)."""
        errors = [k for k, v in (await self.read("ERROR")).items() if v]
        perf = {}
        for reg in ("PERF_BUSY", "PERF_RBEATS", "PERF_WBEATS", "PERF_WAIT"):
            perf[reg[5:].lower()] = (await self.read(reg))["count"]
        return {"errors": errors, "perf": perf}

    async def run_gemm(self, M, K, N, *, act_base=0, load=1, w_base, a_base=0, p_base, o_base,
                       max_polls=1_000_000, poll_delay=None, irq=False) -> dict:
        """Program, clear, start, wait; returns :meth:`results` plus ``polls``."""
        await self.program(M, K, N, act_base=act_base, load=load, w_base=w_base, a_base=a_base,
                           p_base=p_base, o_base=o_base)
        await self.clear()
        await self.start(irq=irq)
        polls = await self.wait(max_polls, poll_delay)
        res = await self.results()
        res["polls"] = polls
        return res
