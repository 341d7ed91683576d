"""Memory images of the shell (``docs/shell.md``, "Memory images"): what memory holds for one
descriptor, and how results come back.  Standard library only (the driver imports it).

Each image is the stream's beats of ``docs/accelerator.md`` ("Command and streams") back to back
from the image's base address, each beat stored as ``words = ceil(beat_bits / data_bits)`` data
beats of ``data_bits / 8`` bytes, little-endian: byte ``i`` of a beat's image is bits
``8i .. 8i + 7`` of the beat, the bits above ``beat_bits`` zero.  The weight image holds the
weight rows (``tlast`` is not stored: the shell makes it by counting rows), the activation image
the activation rows (read only for ``load = 1``), the parameter image the parameter beats, and
the shell writes the result rows the same way into the result image.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["STREAMS", "ShellLayout", "pack_image", "unpack_image", "image_bytes"]

#: The streams read from memory, in the read engine's order (its stream numbers 0, 1, 2).
STREAMS = ("w", "a", "p")


@dataclass(frozen=True)
class ShellLayout:
    """Beat widths (``bits``) and data beats per stream beat (``words``) of ``w``, ``a``, ``p``
    and ``o`` (the results) for an AXI data width of ``data_bits``."""

    data_bits: int
    bits: dict
    words: dict

    @classmethod
    def from_bits(cls, bits: dict, data_bits: int) -> ShellLayout:
        return cls(data_bits, dict(bits), {s: -(-b // data_bits) for s, b in bits.items()})

    @classmethod
    def of(cls, accel_top, data_bits: int) -> ShellLayout:
        """The layout of an :class:`rf8hw.hdl.accel_axi.RF8AccelAxiTop` (its port widths)."""
        members = accel_top.signature.members
        names = {"w": "s_axis_w_tdata", "a": "s_axis_a_tdata", "p": "s_axis_p_tdata",
                 "o": "m_axis_out_tdata"}
        from amaranth.hdl import Shape

        return cls.from_bits({s: Shape.cast(members[n].shape).width for s, n in names.items()},
                             data_bits)

    def beat_bytes(self, stream: str) -> int:
        return self.words[stream] * self.data_bits // 8


def pack_image(beats, words: int, data_bits: int) -> bytes:
    """The image of the integer ``beats`` (each ``words`` data beats of ``data_bits``)."""
    size = words * data_bits // 8
    out = bytearray()
    for i, beat in enumerate(beats):
        beat = int(beat)
        if beat < 0 or beat.bit_length() > size * 8:
            raise ValueError(f"beat {i} ({beat:#x}) does not fit {size} bytes")
        out += beat.to_bytes(size, "little")
    return bytes(out)


def unpack_image(data: bytes, n_beats: int, words: int, data_bits: int) -> list[int]:
    """The first ``n_beats`` beats of an image (inverse of :func:`pack_image`)."""
    size = words * data_bits // 8
    if len(data) < n_beats * size:
        raise ValueError(f"an image of {n_beats} beats needs {n_beats * size} bytes, got {len(data)}")
    return [int.from_bytes(data[i * size:(i + 1) * size], "little") for i in range(n_beats)]


def image_bytes(n_beats: int, words: int, data_bits: int) -> int:
    """Bytes of an image of ``n_beats`` stream beats."""
    return n_beats * words * data_bits // 8
