"""The container: a versioned, self-describing file around entropy-coded sections.

Specification: ``codec/CONTAINER.md``.  ``pack(Container) -> bytes`` and
``unpack(bytes) -> Container`` are exact inverses; ``unpack`` checks every length
against the data it has before it allocates anything, and every CRC.
"""
from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field

from codec.errors import CodecError

MAGIC = b"\x89NMC"
VERSION = 1
MODALITIES = {"image": 0, "video": 1, "audio": 2}
COLOUR = {"rgb": 0, "gray": 1, "yuv420": 2, "yuv444": 3}
_MOD_NAMES = {v: k for k, v in MODALITIES.items()}
_COL_NAMES = {v: k for k, v in COLOUR.items()}

_FIXED = struct.Struct("<4sBBHB")  # magic, version, modality, flags, model-name length
_MEDIA = struct.Struct("<8sHIIIBBIIHI")
# weights id, quality, width, height, frames/chunks, colour, bit depth, rate numerator,
# rate denominator, channels, section count
_SECTION = struct.Struct("<BBHIII")  # kind, flags, reserved, index, length, crc32
MAX_SECTIONS = 1 << 20
MAX_SIDE = 1 << 16  # 65536 pixels per side

SECTION_KINDS = {1: "latent", 2: "hyper-latent", 3: "frame-index", 4: "metadata"}
FLAG_KEY = 1  # section starts a random-access point (key frame / first chunk)


class ContainerError(CodecError):
    """The file is not a valid codec stream."""


@dataclass
class Section:
    kind: int  # SECTION_KINDS
    index: int  # frame / chunk number (0 for images); sections of one index stay in order
    data: bytes
    flags: int = 0


@dataclass
class Container:
    model: str
    weights_id: bytes
    quality: int
    width: int
    height: int
    modality: str = "image"
    colour: str = "rgb"
    bit_depth: int = 8
    frames: int = 1
    rate: tuple = (0, 1)  # frames per second (video) or samples per second (audio) as a fraction
    channels: int = 3
    sections: list = field(default_factory=list)

    @property
    def payload_bytes(self) -> int:
        return sum(len(s.data) for s in self.sections)


def pack(c: Container) -> bytes:
    name = c.model.encode("utf-8")
    if not 0 < len(name) < 256:
        raise ValueError("model name must be 1..255 bytes")
    if len(c.weights_id) != 8:
        raise ValueError("weights id must be 8 bytes")
    if len(c.sections) > MAX_SECTIONS:
        raise ValueError("too many sections")
    head = _FIXED.pack(MAGIC, VERSION, MODALITIES[c.modality], 0, len(name)) + name
    head += _MEDIA.pack(c.weights_id, c.quality, c.width, c.height, c.frames, COLOUR[c.colour], c.bit_depth,
                        c.rate[0], c.rate[1], c.channels, len(c.sections))
    table = b"".join(_SECTION.pack(s.kind, s.flags, 0, s.index, len(s.data), zlib.crc32(s.data)) for s in c.sections)
    crc = struct.pack("<I", zlib.crc32(head + table))
    return b"".join([head, table, crc] + [s.data for s in c.sections])


def unpack(data: bytes) -> Container:
    data = bytes(data)
    if len(data) < _FIXED.size or data[:4] != MAGIC:
        raise ContainerError("not a codec stream (bad magic)")
    _, version, modality, _flags, nlen = _FIXED.unpack_from(data, 0)
    if version != VERSION:
        raise ContainerError(f"stream format version {version} is not supported (this codec reads {VERSION})")
    if modality not in _MOD_NAMES:
        raise ContainerError(f"unknown modality {modality}")
    off = _FIXED.size
    if len(data) < off + nlen + _MEDIA.size:
        raise ContainerError("stream truncated in its header")
    try:
        name = data[off: off + nlen].decode("utf-8")
    except UnicodeDecodeError:
        raise ContainerError("corrupt model name") from None
    off += nlen
    wid, quality, width, height, frames, colour, depth, rnum, rden, channels, nsec = _MEDIA.unpack_from(data, off)
    off += _MEDIA.size
    if nsec > MAX_SECTIONS or off + nsec * _SECTION.size + 4 > len(data):
        raise ContainerError("stream truncated in its section table")
    table_end = off + nsec * _SECTION.size
    (crc,) = struct.unpack_from("<I", data, table_end)
    if zlib.crc32(data[:table_end]) != crc:
        raise ContainerError("header checksum mismatch (corrupt file)")
    if colour not in _COL_NAMES:
        raise ContainerError(f"unknown colour format {colour}")
    if not (0 < width <= MAX_SIDE and 0 < height <= MAX_SIDE):
        raise ContainerError(f"invalid picture size {width}x{height}")
    entries = [_SECTION.unpack_from(data, off + i * _SECTION.size) for i in range(nsec)]
    total = table_end + 4 + sum(e[4] for e in entries)
    if total != len(data):
        what = "truncated" if total > len(data) else "has trailing bytes"
        raise ContainerError(f"stream {what} ({len(data)} bytes, header says {total})")
    pos = table_end + 4
    sections = []
    for kind, flags, _r, index, length, scrc in entries:
        body = data[pos: pos + length]
        if zlib.crc32(body) != scrc:
            raise ContainerError(f"section {len(sections)} checksum mismatch (corrupt file)")
        sections.append(Section(kind, index, body, flags))
        pos += length
    return Container(model=name, weights_id=wid, quality=quality, width=width, height=height,
                     modality=_MOD_NAMES[modality], colour=_COL_NAMES[colour], bit_depth=depth, frames=frames,
                     rate=(rnum, rden), channels=channels, sections=sections)


def header_size(c: Container) -> int:
    return _FIXED.size + len(c.model.encode()) + _MEDIA.size + len(c.sections) * _SECTION.size + 4
