"""The container: a versioned envelope around a model's :class:`~codec.models.payload.Payload`.

Specification: ``codec/CONTAINER.md``.  ``pack(Container) -> bytes`` and
``unpack(bytes) -> Container`` are exact inverses for version 2; ``unpack`` also reads
version 1 (image) streams.  ``unpack`` checks every length against the data it has
before it allocates anything, every field against the values this version defines
(an unknown modality, colour format, bit depth, section kind, flag or a non-zero
reserved field is an error, never ignored) and every CRC.
"""
from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field

from codec.errors import CodecError
from codec.models.payload import FLAGS_KNOWN, KIND_NAMES, KINDS, MAX_HEADER, Payload, Section

MAGIC = b"\x89NMC"
VERSION = 2
READS = (1, 2)
MODALITIES = {"image": 0, "video": 1, "audio": 2}
_MOD_NAMES = {v: k for k, v in MODALITIES.items()}
MAX_SECTIONS = 1 << 20
MAX_SIDE = 1 << 16  # pixels per side
MAX_FRAMES = 1 << 24
MAX_SAMPLE_RATE = 768_000
MAX_CHANNELS = 64
MAX_SAMPLES = 1 << 40

_FIXED = struct.Struct("<4sBBHB")  # magic, version, modality, flags, model-name length
_ENVELOPE = struct.Struct("<8sH")  # weights id, quality
_LEN16 = struct.Struct("<H")
_COUNT = struct.Struct("<I")
_SECTION = struct.Struct("<BBHIII")  # kind, flags, reserved, index, length, crc32
_CRC = struct.Struct("<I")


class ContainerError(CodecError):
    """The file is not a valid codec stream."""


# ----------------------------------------------------------------------------- descriptors
@dataclass(frozen=True)
class ImageInfo:
    """What an image stream's picture was: size, colour format and bit depth."""

    width: int
    height: int
    colour: str = "rgb"  # COLOURS
    bit_depth: int = 8

    modality = "image"
    COLOURS = ("rgb", "gray")
    DEPTHS = (8,)
    _S = struct.Struct("<IIBB")

    @property
    def pixels(self) -> int:
        return self.width * self.height

    def check(self) -> "ImageInfo":
        if not (0 < self.width <= MAX_SIDE and 0 < self.height <= MAX_SIDE):
            raise ContainerError(f"invalid picture size {self.width}x{self.height} (1..{MAX_SIDE} a side)")
        if self.colour not in self.COLOURS:
            raise ContainerError(f"unknown colour format {self.colour!r} for an image")
        if self.bit_depth not in self.DEPTHS:
            raise ContainerError(f"bit depth {self.bit_depth} is not supported for images (8)")
        return self

    def pack(self) -> bytes:
        return self._S.pack(self.width, self.height, self.COLOURS.index(self.colour), self.bit_depth)

    @classmethod
    def unpack(cls, b: bytes) -> "ImageInfo":
        if len(b) != cls._S.size:
            raise ContainerError(f"an image descriptor has {cls._S.size} bytes, not {len(b)}")
        w, h, colour, depth = cls._S.unpack(b)
        if colour >= len(cls.COLOURS):
            raise ContainerError(f"unknown colour format {colour} for an image")
        return cls(w, h, cls.COLOURS[colour], depth).check()


@dataclass(frozen=True)
class AudioInfo:
    """What an audio stream's signal was: sample rate, channels, length and bit depth."""

    sample_rate: int
    channels: int
    samples: int  # per channel
    bit_depth: int = 16

    modality = "audio"
    DEPTHS = (16, 24, 32)
    _S = struct.Struct("<IHQB")

    def check(self) -> "AudioInfo":
        if not 0 < self.sample_rate <= MAX_SAMPLE_RATE:
            raise ContainerError(f"invalid sample rate {self.sample_rate} (1..{MAX_SAMPLE_RATE})")
        if not 0 < self.channels <= MAX_CHANNELS:
            raise ContainerError(f"invalid channel count {self.channels} (1..{MAX_CHANNELS})")
        if not 0 < self.samples <= MAX_SAMPLES:
            raise ContainerError(f"invalid length {self.samples} samples")
        if self.bit_depth not in self.DEPTHS:
            raise ContainerError(f"bit depth {self.bit_depth} is not supported for audio (16, 24, 32)")
        return self

    def pack(self) -> bytes:
        return self._S.pack(self.sample_rate, self.channels, self.samples, self.bit_depth)

    @classmethod
    def unpack(cls, b: bytes) -> "AudioInfo":
        if len(b) != cls._S.size:
            raise ContainerError(f"an audio descriptor has {cls._S.size} bytes, not {len(b)}")
        return cls(*cls._S.unpack(b)).check()


@dataclass(frozen=True)
class VideoInfo:
    """What a video stream's frames were: size, count, rate, chroma format and bit depth."""

    width: int
    height: int
    frames: int
    fps: tuple = (25, 1)  # numerator, denominator
    colour: str = "yuv420"  # COLOURS
    bit_depth: int = 8

    modality = "video"
    COLOURS = ("yuv420", "yuv444", "rgb")
    DEPTHS = (8, 10)
    _S = struct.Struct("<IIIIIBB")

    @property
    def pixels(self) -> int:
        return self.width * self.height * self.frames

    def check(self) -> "VideoInfo":
        if not (0 < self.width <= MAX_SIDE and 0 < self.height <= MAX_SIDE):
            raise ContainerError(f"invalid frame size {self.width}x{self.height} (1..{MAX_SIDE} a side)")
        if self.colour == "yuv420" and (self.width % 2 or self.height % 2):
            raise ContainerError(f"a 4:2:0 frame needs even sides, not {self.width}x{self.height}")
        if not 0 < self.frames <= MAX_FRAMES:
            raise ContainerError(f"invalid frame count {self.frames} (1..{MAX_FRAMES})")
        if self.fps[0] < 1 or self.fps[1] < 1:
            raise ContainerError(f"invalid frame rate {self.fps[0]}/{self.fps[1]}")
        if self.colour not in self.COLOURS:
            raise ContainerError(f"unknown colour format {self.colour!r} for video")
        if self.bit_depth not in self.DEPTHS:
            raise ContainerError(f"bit depth {self.bit_depth} is not supported for video (8, 10)")
        return self

    def pack(self) -> bytes:
        return self._S.pack(self.width, self.height, self.frames, self.fps[0], self.fps[1],
                            self.COLOURS.index(self.colour), self.bit_depth)

    @classmethod
    def unpack(cls, b: bytes) -> "VideoInfo":
        if len(b) != cls._S.size:
            raise ContainerError(f"a video descriptor has {cls._S.size} bytes, not {len(b)}")
        w, h, n, num, den, colour, depth = cls._S.unpack(b)
        if colour >= len(cls.COLOURS):
            raise ContainerError(f"unknown colour format {colour} for video")
        return cls(w, h, n, (num, den), cls.COLOURS[colour], depth).check()


DESCRIPTORS = {"image": ImageInfo, "audio": AudioInfo, "video": VideoInfo}


# ----------------------------------------------------------------------------- the container
@dataclass
class Container:
    model: str
    weights_id: bytes
    quality: int  # the model's quality code (codec.models.registry.QualitySpec.code)
    media: object  # ImageInfo, AudioInfo or VideoInfo
    payload: Payload = field(default_factory=Payload)
    version: int = VERSION

    @property
    def modality(self) -> str:
        return self.media.modality

    @property
    def sections(self) -> list:
        return self.payload.sections


def overhead(c: Container) -> tuple[int, int]:
    """``(fixed, per_section)``: the bytes a stream of ``c`` spends besides its sections' data
    (envelope, descriptor, model header, CRC) and per section (its table entry)."""
    import dataclasses

    from codec.models.payload import Payload

    empty = dataclasses.replace(c, payload=Payload([], c.payload.header))
    return len(pack(empty)), _SECTION.size


def pack(c: Container) -> bytes:
    """The bytes of ``c`` (version 2).  ``ValueError`` for a container that cannot be written."""
    name = c.model.encode("utf-8")
    if not 0 < len(name) < 256:
        raise ValueError("model name must be 1..255 bytes")
    if len(c.weights_id) != 8:
        raise ValueError("weights id must be 8 bytes")
    if not 0 <= c.quality < 1 << 16:
        raise ValueError(f"quality code {c.quality} does not fit 16 bits")
    p = c.payload
    if len(p.sections) > MAX_SECTIONS:
        raise ValueError(f"too many sections ({len(p.sections)} > {MAX_SECTIONS})")
    if len(p.header) > MAX_HEADER:
        raise ValueError(f"model header too long ({len(p.header)} bytes)")
    desc = c.media.check().pack()
    _check_sections(c.media, [(s.flags, 0, s.index) for s in p.sections])
    head = b"".join([_FIXED.pack(MAGIC, VERSION, MODALITIES[c.modality], 0, len(name)), name,
                     _ENVELOPE.pack(c.weights_id, c.quality), _LEN16.pack(len(desc)), desc,
                     _LEN16.pack(len(p.header)), p.header, _COUNT.pack(len(p.sections))])
    table = b"".join(_SECTION.pack(KINDS[s.kind], s.flags, 0, s.index, len(s.data), zlib.crc32(s.data))
                     for s in p.sections)
    return b"".join([head, table, _CRC.pack(zlib.crc32(head + table))] + [s.data for s in p.sections])


class _Reader:
    """Bounds-checked reads from the front of a stream."""

    def __init__(self, data: bytes):
        self.data, self.off = data, 0

    def take(self, n: int, what: str) -> bytes:
        if self.off + n > len(self.data):
            raise ContainerError(f"stream truncated in its {what}")
        b = self.data[self.off: self.off + n]
        self.off += n
        return b

    def struct(self, s: struct.Struct, what: str):
        return s.unpack(self.take(s.size, what))


def unpack(data: bytes) -> Container:
    """Parse and check a stream (version 1 or 2); :class:`ContainerError` for anything wrong."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise ContainerError(f"a stream is bytes, not {type(data).__name__}")
    data = bytes(data)
    r = _Reader(data)
    if len(data) < _FIXED.size or data[:4] != MAGIC:
        raise ContainerError("not a codec stream (bad magic)")
    _, version, modality, flags, nlen = r.struct(_FIXED, "header")
    if version not in READS:
        raise ContainerError(f"stream format version {version} is not supported (this codec reads "
                             f"{', '.join(map(str, READS))})")
    if modality not in _MOD_NAMES:
        raise ContainerError(f"unknown modality {modality}")
    if flags != 0:
        raise ContainerError(f"unknown header flags {flags:#x}")
    try:
        name = r.take(nlen, "header").decode("utf-8")
    except UnicodeDecodeError:
        raise ContainerError("corrupt model name") from None
    if not name:
        raise ContainerError("empty model name")
    if version == 1:
        wid, quality, media, header = _v1_fields(r, _MOD_NAMES[modality])
    else:
        wid, quality = r.struct(_ENVELOPE, "header")
        (dlen,) = r.struct(_LEN16, "header")
        media = DESCRIPTORS[_MOD_NAMES[modality]].unpack(r.take(dlen, "descriptor"))
        (hlen,) = r.struct(_LEN16, "header")
        header = r.take(hlen, "model header")
    (nsec,) = r.struct(_COUNT, "section table")
    if nsec > MAX_SECTIONS:
        raise ContainerError(f"too many sections ({nsec} > {MAX_SECTIONS})")
    if r.off + nsec * _SECTION.size + _CRC.size > len(data):
        raise ContainerError("stream truncated in its section table")
    table_end = r.off + nsec * _SECTION.size
    (crc,) = _CRC.unpack_from(data, table_end)
    if zlib.crc32(data[:table_end]) != crc:
        raise ContainerError("header checksum mismatch (corrupt file)")
    entries = [_SECTION.unpack_from(data, r.off + i * _SECTION.size) for i in range(nsec)]
    total = table_end + _CRC.size + sum(e[4] for e in entries)
    if total != len(data):
        what = "truncated" if total > len(data) else "has trailing bytes"
        raise ContainerError(f"stream {what} ({len(data)} bytes, header says {total})")
    for i, e in enumerate(entries):
        if e[0] not in KIND_NAMES:
            raise ContainerError(f"section {i} has an unknown kind {e[0]}")
    _check_sections(media, [e[1:4] for e in entries])
    pos, sections = table_end + _CRC.size, []
    for i, (kind, sflags, _reserved, index, length, scrc) in enumerate(entries):
        body = data[pos: pos + length]
        if zlib.crc32(body) != scrc:
            raise ContainerError(f"section {i} checksum mismatch (corrupt file)")
        sections.append(Section(KIND_NAMES[kind], body, index, sflags))
        pos += length
    return Container(name, wid, quality, media, Payload(sections, header), version)


def _check_sections(media, entries) -> None:
    """(flags, reserved, index) of each section: known flags, reserved 0, indexes that never
    decrease; an image's sections have index 0 and no flags (a picture is one access point)."""
    last = 0
    for i, (flags, reserved, index) in enumerate(entries):
        if flags & ~FLAGS_KNOWN or reserved or (media.modality == "image" and flags):
            raise ContainerError(f"section {i} has unknown flags {flags:#x} / reserved {reserved:#x} "
                                 f"(an image's sections have none)")
        if index < last or (media.modality == "image" and index != 0):
            raise ContainerError(f"section {i} has an out-of-order index {index}")
        last = index


_V1_MEDIA = struct.Struct("<8sHIIIBBIIHI")
# weights id, quality, width, height, frames/chunks, colour, bit depth, rate numerator,
# rate denominator, channels, section count (the count is read with the section table)


def _v1_fields(r: _Reader, modality: str):
    """Version 1 (images only): the fixed media block.  The model header is empty: the
    decoder derives the latent grid from the picture size, as version 1 did."""
    if modality != "image":
        raise ContainerError(f"version 1 streams hold images only, not {modality}")
    wid, quality, width, height, frames, colour, depth, rnum, rden, channels = r.struct(
        struct.Struct(_V1_MEDIA.format[:-1]), "header")
    if colour > 1:
        raise ContainerError(f"unknown colour format {colour} for an image")
    if frames != 1 or channels != 3 or (rnum, rden) != (0, 1):
        raise ContainerError(f"a version 1 image has 1 frame, 3 channels and rate 0/1, not {frames}, "
                             f"{channels} and {rnum}/{rden}")
    return wid, quality, ImageInfo(width, height, ("rgb", "gray")[colour], depth).check(), b""


def header_size(data: bytes, c: Container) -> int:
    """Bytes of the envelope (everything before the first section payload)."""
    return len(data) - sum(len(s.data) for s in c.sections)
