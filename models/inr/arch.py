"""The INR image codec's architecture as its stream describes it: sizes, layers, header, cost.

A picture of ``H x W`` pixels has ``levels`` latent grids, grid ``l`` of ``ceil(H / 2**l) x
ceil(W / 2**l)`` values.  Each grid is brought to ``H x W`` by repeated doubling
(:func:`codec.models.inr.exact.features`); the ``levels`` planes feed the synthesis:
``syn_layers`` 1x1 layers of ``syn_hidden`` units with ReLU, a 1x1 layer to RGB, then
``refine`` 3x3 residual RGB layers.  The autoregressive model maps each latent's causal
context (:data:`~codec.models.inr.exact.CONTEXT`) through ``arm_layers`` 1x1 layers of
``arm_hidden`` units with ReLU and a 1x1 layer to (mean, log2 diversity).

Model header (little-endian): ``<IIBBBBBBB>`` width, height, version, levels, syn_hidden,
syn_layers, refine, arm_hidden, arm_layers; then per layer (synthesis layers, then the
autoregressive model's, in :func:`layers` order) two bytes: its ``shift`` and the table row of
its parameters.  Every field is bounded here, so a hostile header cannot ask for big layers.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass

from codec.models.inr.exact import CONTEXT, MAX_SHIFT
from codec.models.payload import PayloadError

HEADER = struct.Struct("<IIBBBBBBB")
VERSION = 1
MAX_LEVELS, MAX_HIDDEN, MAX_LAYERS = 10, 64, 4


@dataclass(frozen=True)
class Dims:
    levels: int = 7
    syn_hidden: int = 16
    syn_layers: int = 1
    refine: int = 1
    arm_hidden: int = 8
    arm_layers: int = 2

    def check(self):
        bad = [f"{k} {v}" for k, v, lo, hi in (
            ("levels", self.levels, 1, MAX_LEVELS), ("syn_hidden", self.syn_hidden, 1, MAX_HIDDEN),
            ("syn_layers", self.syn_layers, 0, MAX_LAYERS), ("refine", self.refine, 0, MAX_LAYERS),
            ("arm_hidden", self.arm_hidden, 1, MAX_HIDDEN), ("arm_layers", self.arm_layers, 0, MAX_LAYERS))
            if not lo <= v <= hi]
        if bad:
            raise PayloadError(f"INR architecture out of bounds: {', '.join(bad)}")
        return self


@dataclass(frozen=True)
class Layer:
    name: str
    cin: int
    cout: int
    k: int
    relu: bool
    residual: bool
    group: str  # "syn" or "arm"

    @property
    def params(self) -> int:
        return self.cout * self.cin * self.k * self.k + self.cout


def layers(d: Dims) -> list:
    out, cin = [], d.levels
    for i in range(d.syn_layers):
        out.append(Layer(f"syn{i}", cin, d.syn_hidden, 1, True, False, "syn"))
        cin = d.syn_hidden
    out.append(Layer("syn_out", cin, 3, 1, False, False, "syn"))
    out += [Layer(f"refine{i}", 3, 3, 3, False, True, "syn") for i in range(d.refine)]
    cin = len(CONTEXT)
    for i in range(d.arm_layers):
        out.append(Layer(f"arm{i}", cin, d.arm_hidden, 1, True, False, "arm"))
        cin = d.arm_hidden
    out.append(Layer("arm_out", cin, 2, 1, False, False, "arm"))
    return out


def max_levels(H: int, W: int) -> int:
    """The most latent levels a picture takes: the coarsest grid's cell at most twice the picture."""
    return min(MAX_LEVELS, (2 * max(H, W)).bit_length())


def grid_sizes(H: int, W: int, levels: int) -> list:
    """(rows, columns) of each latent grid, finest first."""
    return [(-(-H // (1 << lv)), -(-W // (1 << lv))) for lv in range(levels)]


def pack_header(H: int, W: int, d: Dims, shifts, rows) -> bytes:
    head = HEADER.pack(W, H, VERSION, d.levels, d.syn_hidden, d.syn_layers, d.refine, d.arm_hidden, d.arm_layers)
    return head + bytes(v for pair in zip(shifts, rows) for v in pair)


def parse_header(header: bytes, n_rows: int):
    """(H, W, Dims, shifts, rows) of a model header; :class:`PayloadError` for anything out of bounds."""
    if len(header) < HEADER.size:
        raise PayloadError(f"an INR header has at least {HEADER.size} bytes, not {len(header)}")
    W, H, version, *dims = HEADER.unpack_from(header)
    if version != VERSION:
        raise PayloadError(f"INR header version {version} (this decoder reads {VERSION})")
    d = Dims(*dims).check()
    if H < 1 or W < 1 or d.levels > max_levels(H, W):
        raise PayloadError(f"{d.levels} latent levels do not fit a {W}x{H} picture")
    n = len(layers(d))
    if len(header) != HEADER.size + 2 * n:
        raise PayloadError(f"an INR header of this architecture has {HEADER.size + 2 * n} bytes, not {len(header)}")
    shifts, rows = list(header[HEADER.size::2]), list(header[HEADER.size + 1::2])
    if max(shifts) > MAX_SHIFT or max(rows) >= n_rows:
        raise PayloadError("INR header: a layer's shift or parameter row is out of range")
    return H, W, d, shifts, rows


def macs_per_pixel(H: int, W: int, d: Dims) -> dict:
    """Decoder multiply-accumulates per pixel: synthesis, autoregressive model, upsampling."""
    ls = layers(d)
    syn = sum(L.cin * L.cout * L.k * L.k for L in ls if L.group == "syn")
    arm_per_latent = sum(L.cin * L.cout for L in ls if L.group == "arm")
    sizes = grid_sizes(H, W, d.levels)
    latents = sum(h * w for h, w in sizes)
    up = 0
    for lv in range(d.levels - 1):  # doubling the planes of levels > lv to grid lv: 2 MACs a new sample
        (h0, w0), (h1, w1) = sizes[lv + 1], sizes[lv]
        up += (d.levels - 1 - lv) * 2 * (h1 * w0 + h1 * w1)
    px = H * W
    return {"synthesis": syn, "entropy_model": arm_per_latent * latents / px, "upsampling": up / px,
            "total": syn + (arm_per_latent * latents + up) / px}
