"""What a model's ``compress`` returns and its ``decompress`` takes: named sections and a small header.

A model owns its bitstream (after TFC's ``compress -> strings, shapes``): it decides
which sections it writes, in which order, and what its decoder needs to know beyond
the medium's own description (for an image model: the latent grid).  The container
(``codec/CONTAINER.md``) is only the envelope around a :class:`Payload`: it records
the model, its weights and quality, the medium's descriptor, the model header and the
section table.

Section kinds are names here; the container stores them as the codes of :data:`KINDS`
(one table for every model, so ``codec info`` can name the sections of any stream).
"""
from __future__ import annotations

from dataclasses import dataclass, field

#: section kind -> the code the container stores (u8). Codes are never reused.
KINDS = {"latent": 1, "hyper-latent": 2, "frame-index": 3, "metadata": 4, "network": 5, "tokens": 6, "gains": 7, "energy": 8}
KIND_NAMES = {v: k for k, v in KINDS.items()}
#: section flag bit 0: the section starts a random-access point (a key frame, a first chunk)
FLAG_KEY = 1
FLAGS_KNOWN = FLAG_KEY
#: the largest model header (the container stores its length as u16)
MAX_HEADER = (1 << 16) - 1


class PayloadError(ValueError):
    """A payload does not fit the model that is asked to decode it."""


@dataclass
class Section:
    kind: str  # a key of KINDS
    data: bytes
    index: int = 0  # frame or chunk number (0 for images); sections of one index keep their order
    flags: int = 0  # FLAG_KEY, ...

    def __post_init__(self):
        if self.kind not in KINDS:
            raise PayloadError(f"unknown section kind {self.kind!r} (known: {', '.join(KINDS)})")


@dataclass
class Payload:
    """A model's coded item: its sections, in order, and the model's header bytes."""

    sections: list = field(default_factory=list)
    header: bytes = b""

    @property
    def nbytes(self) -> int:
        """Bytes of the header and sections (the container adds its envelope)."""
        return len(self.header) + sum(len(s.data) for s in self.sections)

    def kinds(self) -> tuple:
        return tuple(s.kind for s in self.sections)

    def expect(self, kinds: tuple, what: str) -> list:
        """The sections' data when their kinds are exactly ``kinds`` (else :class:`PayloadError`)."""
        if self.kinds() != tuple(kinds):
            raise PayloadError(f"{what} writes sections {', '.join(kinds) or '(none)'}; this stream has "
                               f"{', '.join(self.kinds()) or '(none)'}")
        return [s.data for s in self.sections]
