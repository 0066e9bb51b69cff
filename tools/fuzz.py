"""Fuzzing of the container and every decoder: ``python -m codec.tools.fuzz --cases 100000``.

Seeds are real streams: synthetic pictures (gray and RGB, 8x8 to 70x50) coded by each image
model at two qualities, short synthetic sounds (mono and stereo, 16 to 48 kHz) by each audio
model, tiny clips (3 to 5 frames, key frames and P-frames, 17x9 to 64x48) by each video
model, the golden version 1 streams, raw rANS streams (empty, tiny, escapes,
multi-segment).  Half the cases mutate bytes (flips, sets, interesting integers, insertions,
deletions, truncations, appends, duplicated or swapped chunks, splices); half are structure-
aware (a field of the container, ``codec/CONTAINER.md``, version 2 as ``codec/container.py``
writes it, or of a rANS stream, ``entropy/FORMAT.md``; renamed models; swapped, dropped,
duplicated, emptied or foreign sections; rANS states, words, escapes), then the CRCs are
recomputed (:func:`fix_container`, :func:`fix_rans`) so that they reach the deeper parsers.

Cases run in a worker process under a watchdog (past ``--timeout-s``: a hang; the worker
restarts) and an address-space limit.  A CodecError is a clean error; anything else, or a
dead worker, a crash; a stream that decodes is silent (identical to the seed's result, or
different).  The CRCs catch every byte mutation, so a silent raw case is a bug; a CRC-fixed
case is a re-signed stream, and its silent results show what nothing cross-checks.
"""
from __future__ import annotations

import argparse
import collections
import hashlib
import json
import random
import re
import struct
import tempfile
import time
import traceback
import warnings
import zlib
from pathlib import Path

TARGETS = ("container", "decode", "info", "rans")
OUTCOMES = ("error", "crash", "hang", "silent_identical", "silent_different")
PICTURES = ((8, 8, "gray"), (16, 24, "rgb"), (50, 70, "rgb"), (33, 47, "gray"))  # height, width, colour
SOUNDS = ((16000, 1, 4000), (44100, 2, 3000), (22050, 1, 700), (48000, 2, 9000))  # rate, channels, samples
CLIPS = ((32, 48, 4, 2), (24, 40, 3, 3), (17, 9, 3, 1), (48, 64, 5, 4))  # height, width, frames, gop
INTERESTING = (0, 1, 2, 3, 7, 8, 15, 16, 31, 32, 33, 63, 64, 127, 128, 255, 256, 1023, 1024, 4096, 16384, 32767,
               32768, 65535, 65536, 1 << 20, 1 << 24, (1 << 31) - 1, 1 << 31, (1 << 32) - 1, 1 << 40, (1 << 64) - 1)
RAW_OPS = ("flip", "set", "insert", "delete", "truncate", "append", "dup", "swap", "splice")
GOLDEN = Path(__file__).resolve().parents[1] / "tests" / "golden"
_U16, _U32, _SEC = struct.Struct("<H"), struct.Struct("<I"), 16
_RANS = [("magic", 0, 4), ("version", 4, 1), ("precision", 5, 1), ("lanes", 6, 2), ("steps", 8, 4),
         ("segments", 12, 4), ("symbols", 16, 8), ("table_id", 24, 8), ("escapes", 32, 4),
         ("escape_bytes", 36, 4), ("escape_crc", 40, 4), ("header_crc", 44, 4)]


def _crc(b) -> bytes:
    return _U32.pack(zlib.crc32(bytes(b)))


# ----------------------------------------------------------------------------- layouts and CRC fix-ups
def container_fields(b: bytes):
    """``(fields [(name, offset, size)], sections [(entry, body, length)], table_end)`` of a
    ``.nmc`` stream (version 1 or 2) read leniently, or None where its layout is broken."""
    try:
        f, off = [("magic", 0, 4), ("version", 4, 1), ("modality", 5, 1), ("flags", 6, 2), ("name_len", 8, 1),
                  ("name", 9, b[8])], 9 + b[8]
        if b[4] == 1:
            names = (("weights_id", 8), ("quality", 2), ("width", 4), ("height", 4), ("frames", 4), ("colour", 1),
                     ("depth", 1), ("rate_num", 4), ("rate_den", 4), ("channels", 2))
        else:
            dlen = _U16.unpack_from(b, off + 10)[0]
            hlen = _U16.unpack_from(b, off + 12 + dlen)[0]
            names = ((("weights_id", 8), ("quality", 2), ("desc_len", 2))
                     + ((("width", 4), ("height", 4), ("colour", 1), ("depth", 1)) if dlen == 10 else (("desc", dlen),))
                     + (("header_len", 2),) + ((("grid_rows", 4), ("grid_cols", 4)) if hlen == 8 else (("head", hlen),)))
        for name, size in names:
            f.append((name, off, size))
            off += size
        nsec = _U32.unpack_from(b, off)[0]
        f.append(("section_count", off, 4))
        off += 4
        if nsec > 64 or off + _SEC * nsec + 4 > len(b):
            return None
        secs, pos = [], off + _SEC * nsec + 4
        for i in range(nsec):
            e = off + _SEC * i
            f += [(f"s{i}.{n}", e + o, z) for n, o, z in
                  (("kind", 0, 1), ("flags", 1, 1), ("reserved", 2, 2), ("index", 4, 4), ("length", 8, 4), ("crc", 12, 4))]
            secs.append((e, pos, _U32.unpack_from(b, e + 8)[0]))
            pos += secs[-1][2]
        return f + [("header_crc", off + _SEC * nsec, 4)], secs, off + _SEC * nsec
    except (IndexError, struct.error):
        return None


def fix_container(b: bytes) -> bytes:
    """``b`` with every section CRC and then the header CRC recomputed (where its layout allows)."""
    lay = container_fields(b)
    if lay is None:
        return bytes(b)
    b = bytearray(b)
    for e, pos, length in lay[1]:
        b[e + 12: e + 16] = _crc(b[pos: pos + length])
    b[lay[2]: lay[2] + 4] = _crc(b[: lay[2]])
    return bytes(b)


def rans_fields(b: bytes):
    """``(fields, segments [(entry, body, size)], escape_offset)`` of a rANS stream of either
    version (``entropy/format.py``'s :func:`regions`; a segment's entry is its directory entry
    or word count), or None where its layout cannot be read."""
    from codec.entropy import format as fmt
    try:
        r, h = fmt.regions(b), fmt.parse_header(b)
    except Exception:  # noqa: BLE001 - any unreadable stream is simply not structured
        return None
    if len(r["segments"]) > 4096:
        return None
    if r["version"] == 1:
        fields = list(_RANS)
        entries = [fmt.HEADER_SIZE + 8 * s for s in range(len(r["segments"]))]
        for s, e in enumerate(entries):
            fields += [(f"seg{s}.words", e, 4), (f"seg{s}.crc", e + 4, 4)]
    else:  # version 2: header numbers are varints; a field is a number's bytes as they stand
        fields = [("magic", 0, 4), ("version", 4, 1), ("precision", 5, 1), ("table_id", 6, 8)]
        pos, entries = fmt.HEADER2.size, []
        for i in range(5 + len(r["segments"])):
            _, end = fmt.read_varint(b, pos)
            name = ("symbols", "lanes", "steps", "escapes", "escape_bytes")[i] if i < 5 else f"seg{i - 5}.words"
            fields.append((name, pos, end - pos))
            if i >= 5:
                entries.append(pos)
            pos = end
        fields += [("header_crc", r["header_crc"], 4), ("body_crc", r["body_crc"], 4)]
    segs = [(e, off, size) for e, (off, size) in zip(entries, r["segments"])]
    return fields, segs, r["escapes"][0], 4 * h["lanes"]


def fix_rans(b: bytes) -> bytes:
    """``b`` with every CRC of a rANS stream recomputed (where its layout can be read)."""
    from codec.entropy import format as fmt
    try:
        return fmt.resign(bytes(b))
    except Exception:  # noqa: BLE001 - a stream too broken to re-sign stays as it is
        return bytes(b)


# ----------------------------------------------------------------------------- mutations
def _value(rng, old: int, size: int) -> int:
    r, top = rng.random(), 1 << 8 * size
    if r < 0.3:
        return (old + rng.choice((-1, 1, -2, 2, -16, 16, 100))) % top
    if r < 0.6:
        return rng.choice(INTERESTING) % top
    return rng.randrange(top) if r < 0.8 else old ^ (1 << rng.randrange(8 * size))


def _set(rng, b: bytearray, lo: int, hi: int) -> None:
    """Set a byte of ``b[lo:hi]`` to 0, 0xFF or a random value, flip one of its bits, or write an
    interesting integer there."""
    i, r = rng.randrange(lo, hi), rng.random()
    if r < 0.6:
        b[i] = b[i] ^ (1 << rng.randrange(8)) if r < 0.3 else rng.choice((0, 255, rng.randrange(256)))
    else:
        w = min(rng.choice((2, 4, 8)), hi - i)
        b[i: i + w] = (rng.choice(INTERESTING) % (1 << 8 * w)).to_bytes(w, "little")


def _raw(rng, op: str, b: bytearray, donor: bytes) -> bytearray:
    n, k = len(b), rng.randint(1, 16)
    i = rng.randrange(n + 1)
    if op in ("flip", "set") and n:
        _set(rng, b, 0, n) if op == "set" else b.__setitem__(i % n, b[i % n] ^ (1 << rng.randrange(8)))
    elif op in ("insert", "append"):
        k = k if op == "insert" else rng.randint(1, 64)
        new = bytes([rng.randrange(256)]) * k if rng.random() < 0.5 else bytes(rng.randrange(256) for _ in range(k))
        b[i if op == "insert" else n:] = new + b[i if op == "insert" else n:]
    elif op == "delete":
        del b[i: i + k]
    elif op == "truncate":
        del b[i if i < n else 0:]
    elif op == "dup" and n:
        b[i:i] = b[(j := rng.randrange(n)): j + rng.randint(1, 64)]
    elif op == "swap" and n > 2:
        a = rng.randrange(n - 1)
        c = rng.randrange(a + 1, n)
        w = rng.randint(1, max(1, min(32, c - a)))
        b[a: a + w], b[c: c + w] = b[c: c + w], b[a: a + w]
    elif op == "splice":
        b = b[:i] + bytearray(donor[rng.randrange(len(donor) + 1):])
    return b


def _rans_struct(rng, data: bytes) -> tuple:
    """A structure-aware mutation of a rANS stream, its CRCs fixed: ``(bytes, description)``."""
    fields, segs, esc, lanes = rans_fields(data)  # lanes: bytes of a segment's states
    b, r = bytearray(data), rng.random()
    if r < 0.5:
        name, off, size = rng.choice([f for f in fields if not f[0].endswith("crc")])
        b[off: off + size] = _value(rng, int.from_bytes(b[off: off + size], "little"), size).to_bytes(size, "little")
        return fix_rans(b), f"rans-field {re.sub(r'[0-9]+', '', name)}"
    regions = ([(o, o + lanes, "states") for _, o, s in segs if s] + [(esc, len(b), "escapes")] * (esc < len(b))
               + [(o + lanes, o + s, "words") for _, o, s in segs if s > lanes])
    if r < 0.85 and regions:
        lo, hi, what = rng.choice(regions)
        for _ in range(rng.choice((1, 1, 2, 4))):
            _set(rng, b, lo, hi)
        return fix_rans(b), f"rans-{what}"
    return fix_rans(_raw(rng, rng.choice(RAW_OPS), b, data)), "rans-raw"


def _nmc_struct(rng, data: bytes, donor: bytes, names, deep: bool) -> tuple:
    """A structure-aware mutation of a container (``deep``: of its rANS streams too), CRCs fixed."""
    lay = container_fields(data)
    fields, secs, table_end = lay
    entries, bodies = [data[e: e + _SEC] for e, _, _ in secs], [data[p: p + n] for _, p, n in secs]
    what = rng.choices(*zip(*[("field", 35), ("rename", 5), ("medium", 5), ("sections", 10), ("raw", 15)]
                            + [("section", 35)] * deep))[0]
    b, i, j = bytearray(data), rng.randrange(max(1, len(secs))), rng.randrange(max(1, len(secs)))
    if what == "field":
        name, off, size = rng.choice([f for f in fields if f[2] and not f[0].endswith("crc")])
        same = [f for f in (container_fields(donor) or [[]])[0] if f[0] == name and f[2] == size]
        if same and rng.random() < 0.2:
            b[off: off + size] = donor[same[0][1]: same[0][1] + size]
        elif size <= 8:
            b[off: off + size] = _value(rng, int.from_bytes(b[off: off + size], "little"), size).to_bytes(size, "little")
        else:
            _set(rng, b, off, off + size)
        return fix_container(b), f"field {re.sub(r'[0-9]+', '', name)}"
    if what == "rename":
        new = rng.choice(list(names) + ["", "x" * 255, "\u00e9t\u00e9", "factorized\0"]).encode()
        new = b"\xff\xfe" if rng.random() < 0.1 else new
        return fix_container(data[:8] + bytes([len(new)]) + new + data[9 + data[8]:]), "rename"
    if what == "medium" and data[4] == 2:  # an audio or video descriptor, a field or two changed
        mod, form, vals = rng.choice(((1, "<IIIIIBB", [64, 48, 10, 25, 1, 0, 8]), (2, "<IHQB", [48000, 2, 999, 16])))
        for k in [rng.randrange(len(vals)) for _ in range(rng.randint(0, 2))]:
            vals[k] = _value(rng, vals[k], struct.calcsize("<" + form[k + 1]))
        (_, off, _), = [f for f in fields if f[0] == "desc_len"]
        desc = struct.pack(form, *vals)
        b = data[:5] + bytes([mod]) + data[6:off] + _U16.pack(len(desc)) + desc + data[off + 2 + _U16.unpack_from(data, off)[0]:]
        return fix_container(b), "medium"
    if what == "section" and secs:
        bodies[i], how = _rans_struct(rng, bodies[i]) if rans_fields(bodies[i]) else (bodies[i][:-1], "cut")
        how = f"section {how}"
    elif what == "sections" and secs:
        op = rng.choice(("swap", "drop", "dup", "donor", "empty"))
        if op == "swap":
            bodies[i], bodies[j] = bodies[j], bodies[i]
        elif op in ("drop", "dup"):
            entries[i:i + 1], bodies[i:i + 1] = ([], []) if op == "drop" else ([entries[i]] * 2, [bodies[i]] * 2)
        else:
            other = (container_fields(donor) or [0, []])[1]
            _, p, n = rng.choice(other) if op == "donor" and other else (0, 0, 0)
            bodies[i] = donor[p: p + n]
        how = f"sections {op}"
    else:
        return fix_container(_raw(rng, rng.choice(RAW_OPS), b, donor)), "raw+crc"
    table = b"".join(e[:8] + _U32.pack(len(d)) + e[12:] for e, d in zip(entries, bodies))
    start = table_end - _SEC * len(secs) - 4
    return fix_container(data[:start] + _U32.pack(len(entries)) + table + bytes(4) + b"".join(bodies)), how


def mutate(rng, data: bytes, donor: bytes, kind: str, names=(), deep=True, avoid=()) -> tuple:
    """``(mutated bytes, description, crc_fixed)`` of a seed of ``kind`` ("nmc" or "rans"), never
    ``data`` itself nor a stream in ``avoid``; ``deep``: mutate the rANS streams inside a container too."""
    for _ in range(20):
        if rng.random() < 0.5:
            b, ops = bytearray(data), []
            for _ in range(1 if rng.random() < 0.6 else rng.randint(2, 4)):
                ops.append(rng.choice(RAW_OPS))
                b = _raw(rng, ops[-1], b, donor)
            b, how, fixed = bytes(b), "+".join(ops), False
        else:
            (b, how), fixed = _rans_struct(rng, data) if kind == "rans" else _nmc_struct(rng, data, donor, names, deep), True
        if b != data and b not in avoid:
            break
    return b, how, fixed


# ----------------------------------------------------------------------------- targets and seeds
_TABLES: dict = {}


def _tables(name: str):
    from codec import entropy

    if name not in _TABLES:
        _TABLES[name] = (entropy.categorical_tables([[0.5, 0.2, 0.2, 0.1], [0.05, 0.05, 0.1, 0.8]])
                         if name == "categorical" else getattr(entropy, f"{name}_tables")())
    return _TABLES[name]


def _call(target: str, data: bytes, extra=None):
    import codec
    from codec import container, entropy

    if target == "rans":
        return entropy.decode(data, extra[1], _tables(extra[0]), backend="numpy")
    return {"container": container.unpack, "info": lambda d: sorted(codec.info(d).items()),
            "decode": lambda d: codec.decode(d, device="cpu", output="numpy")}[target](data)


def _digest(x) -> str:
    x = x.cpu().numpy() if hasattr(x, "numpy") else x
    raw = repr((x.shape, str(x.dtype))).encode() + x.tobytes() if hasattr(x, "tobytes") else repr(x).encode()
    return hashlib.sha256(raw).hexdigest()[:16]


def run_case(target: str, data: bytes, extra=None) -> tuple:
    """One call, in this process: ``(outcome, detail, digest, traceback, warning)``; outcome "ok"
    (the call returned), "error" (a CodecError) or "crash" (any other exception)."""
    from codec.api import UntrainedModelWarning
    from codec.errors import CodecError

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        warnings.filterwarnings("ignore", category=UntrainedModelWarning)
        try:
            res = ("ok", "", _digest(_call(target, data, extra)), None)
        except Exception as exc:  # noqa: BLE001 - anything but a CodecError is what we look for
            first = (str(exc).strip().splitlines() or [""])[0][:200]
            res = ((("error", f"{type(exc).__name__}: {first}", None, None) if isinstance(exc, CodecError)
                    else ("crash", f"{type(exc).__name__}: {first}", None, traceback.format_exc(limit=-12))))
    return res + (f"{caught[0].category.__name__}: {caught[0].message}" if caught else None,)


def build_corpus(targets, models, pictures: int = len(PICTURES)) -> dict:
    """Seeds ``{"nmc": [...], "rans": [...]}``, each ``{data, model, extra, ref: {target: digest}, warm}``."""
    import numpy as np

    import codec
    from codec import entropy
    from codec.entropy import rans
    from codec.models import registry

    corpus, streams = {"nmc": [], "rans": []}, []
    for name in models if set(targets) - {"rans"} else []:
        spec = registry.get_spec(name)
        if spec.modality == "video":  # a few tiny clips: key frames and P-frames
            for q in (2.5, 6.0):
                for k, (h, w, n, gop) in enumerate(CLIPS[:pictures]):
                    yy, xx = np.mgrid[0:h + n, 0:w + 2 * n]
                    big = np.stack([xx * 200 / w, yy * 200 / h, (xx + yy) * 90 / (w + h)], -1)
                    big = np.clip(big + np.random.default_rng(k).normal(30, 8, big.shape), 0, 255).astype(np.uint8)
                    frames = np.stack([big[i:i + h, 2 * i:2 * i + w] for i in range(n)])
                    streams.append((name, q, codec.encode(frames, fps=25, gop=gop, model=name, quality=q,
                                                          device="cpu")))
            continue
        if spec.modality == "audio":  # short clips: mono 16 kHz, stereo 44.1 kHz (several chunks' worth of fields)
            from codec.media.audio import Audio

            for q in (2.5, 6.0):
                for k, (rate, ch, n) in enumerate(SOUNDS[:pictures]):
                    t = np.arange(n) / rate
                    x = np.stack([0.3 * np.sin(2 * np.pi * (300 + 200 * c) * t) for c in range(ch)])
                    x = x + np.random.default_rng(k).normal(0, 0.01, x.shape)
                    streams.append((name, q, codec.encode(Audio(np.clip(x, -1, 1).astype(np.float32), rate),
                                                          model=name, quality=q, device="cpu")))
            continue
        # an INR: a short fit; an image model: no latent refinement (a refined latent is coded as any other)
        extra = {"effort": 20} if spec.fitted else {"effort": "fast"} if spec.effort else {}
        for q in (2.5, 6.0) if spec.variable_rate else (2, spec.quality.default):
            for k, (h, w, colour) in enumerate(PICTURES[:pictures]):
                yy, xx = np.mgrid[0:h, 0:w]
                img = np.stack([xx * 200 / w, yy * 200 / h, (xx + yy) * 90 / (w + h)], -1)
                img = np.clip(img + np.random.default_rng(k).normal(30, 8, img.shape), 0, 255).astype(np.uint8)
                streams.append((name, q, codec.encode(img[..., 0] if colour == "gray" else img, model=name,
                                                      quality=q, device="cpu", **extra)))
    for path in sorted(GOLDEN.glob("v1-*.nmc")) if GOLDEN.is_dir() and streams else []:
        c = codec.container.unpack(path.read_bytes())
        q = codec.api.stream_quality(c) if c.model in models else None
        if q is not None and codec.load_model(c.model, q).weights_id == c.weights_id:  # not of replaced weights
            streams.append((c.model, q, path.read_bytes()))
    for name, q, data in streams:
        corpus["nmc"].append(dict(data=data, model=f"{name} q{q}", extra=None, warm=(name, q),
                                  ref={t: _digest(_call(t, data)) for t in targets if t != "rans"}))
    g = np.random.default_rng(7)
    for name, n, layout in (("gaussian", 0, None), ("gaussian", 1, None), ("gaussian", 700, None), ("laplace", 3000,
                            (32, 20, 5)), ("categorical", 400, None), ("laplace", 2560, (64, 8, 5))) if "rans" in targets else ():
        t = _tables(name)
        idx = g.integers(0, t.num_rows, n).astype(np.int32)
        sym = entropy.sample_symbols(t, idx, seed=n)
        sym[::37] += 50  # escapes
        data = (entropy.encode(sym, idx, t, backend="numpy") if layout is None
                else rans.encode_many([(sym, idx)], t, layouts=[rans.Layout(*layout)])[0])
        if _digest(_call("rans", data, (name, idx))) != _digest(sym):
            raise RuntimeError(f"seed rANS stream {name} N={n} does not decode to its symbols")
        corpus["rans"].append(dict(data=data, model=f"{name} N={n}", extra=(name, idx), ref={"rans": _digest(sym)}))
    return corpus


# ----------------------------------------------------------------------------- the worker and its watchdog
def serve(conn, mem_gb: float, threads: int = 1):
    """The worker's loop: ("corpus", ...), ("warm", [(model, quality)]) and ("case", target, data, extra)."""
    import resource

    import torch

    import codec.api

    torch.set_num_threads(threads)
    warnings.filterwarnings("ignore", category=codec.api.UntrainedModelWarning)
    if mem_gb:
        vm = int(re.search(r"VmSize:\s+(\d+)", Path("/proc/self/status").read_text()).group(1)) * 1024
        resource.setrlimit(resource.RLIMIT_AS, (vm + int(mem_gb * 2**30), resource.getrlimit(resource.RLIMIT_AS)[1]))
    while True:
        try:
            op, *args = conn.recv()
        except EOFError:
            return
        conn.send(build_corpus(*args) if op == "corpus" else run_case(*args) if op == "case" else
                  [codec.api.load_model(name, q, "cpu").name for name, q in args[0]])


class Worker:
    """A process that runs cases; it is restarted when a case outlives its time limit or kills it."""

    def __init__(self, mem_gb: float = 4, target=serve):
        import multiprocessing

        self.ctx, self.target, self.mem_gb, self.warm, self.restarts = multiprocessing.get_context("spawn"), target, mem_gb, [], 0
        self._start()

    def _start(self):
        self.conn, child = self.ctx.Pipe()
        self.proc = self.ctx.Process(target=self.target, args=(child, self.mem_gb), daemon=True)
        self.proc.start()
        child.close()
        if self.warm:  # load the models before a case's clock runs
            self.call(("warm", self.warm), 900)

    def call(self, msg, timeout: float):
        """The worker's answer, or ("hang", ...) past ``timeout`` s, or ("crash", ...) when it died."""
        why = ("hang", f"no result within {timeout:g} s")
        try:
            self.conn.send(msg)
            if self.conn.poll(timeout):
                return self.conn.recv()
        except (EOFError, OSError):
            self.proc.join(5)
            why = ("crash", f"worker died (exit code {self.proc.exitcode})")
        self.close()
        self.restarts += 1
        self._start()
        return why + (None, None, None)

    def close(self):
        self.proc.kill()
        self.proc.join()
        self.conn.close()


# ----------------------------------------------------------------------------- the run and its report
def fuzz(cases=10000, seed=0, targets=TARGETS, models=None, timeout_s=10.0, out=None, mem_gb=4.0,
         pictures=len(PICTURES), progress=True) -> dict:
    """Run ``cases`` cases, round robin over ``targets``; returns the report (``--json`` writes it)."""
    from tqdm import tqdm

    from codec.models.registry import MODELS

    models = list(models or sorted(MODELS))
    out, t0, worker = Path(out or Path(tempfile.gettempdir()) / "codec-fuzz"), time.time(), Worker(mem_gb)
    corpus = worker.call(("corpus", list(targets), models, pictures), 1800)
    if not isinstance(corpus, dict):
        raise RuntimeError(f"building the seed corpus failed: {corpus[1]}\n{corpus[3] or ''}")
    worker.warm = sorted({s["warm"] for s in corpus["nmc"]})
    worker.call(("warm", worker.warm), 900)
    seen, stats = {s["data"] for pool in corpus.values() for s in pool}, {t: collections.Counter() for t in targets}
    kinds, spent, saved, t1 = collections.Counter(), collections.Counter(), collections.Counter(), time.time()
    for i in tqdm(range(cases), disable=not progress, unit="case", smoothing=0.02, mininterval=2):
        target = targets[i % len(targets)]
        rng, pool = random.Random(f"{seed}:{i}"), corpus["rans" if target == "rans" else "nmc"]
        s = rng.choice(pool)
        data, how, fixed = mutate(rng, s["data"], rng.choice(pool)["data"], "rans" if target == "rans" else "nmc",
                                  models, target == "decode", seen)
        start = time.perf_counter()
        outcome, detail, digest, tb, warn = worker.call(("case", target, data, s["extra"]), timeout_s)
        spent[target] += time.perf_counter() - start
        if outcome == "ok":
            outcome = "silent_identical" if digest == s["ref"][target] else "silent_different"
        mode = "fixed" if fixed else "raw"
        sig = f"{mode}: {how}" if outcome.startswith("silent") else \
            re.sub(r"\b[0-9a-f]{16}\b", "<hex>", re.sub(r"(?<![a-z])-?[0-9][0-9.]*", "N", detail))[:110]
        stats[target].update([outcome, f"{mode}/{outcome}", f"{mode}/cases"] + (["warnings"] if warn else []))
        kinds[(target, outcome, sig)] += 1
        if outcome != "error" and kinds[(target, outcome, sig)] <= 3 and sum(saved.values()) < 300:
            saved[outcome] += 1
            out.mkdir(parents=True, exist_ok=True)
            (out / f"{target}-{outcome}-{seed}-{i:07d}.bin").write_bytes(data)
            (out / f"{target}-{outcome}-{seed}-{i:07d}.json").write_text(json.dumps(dict(
                target=target, case=i, seed=seed, from_seed=s["model"], mutation=f"{mode}: {how}", outcome=outcome,
                detail=detail, warning=warn, traceback=tb,
                rans=None if s["extra"] is None else [s["extra"][0], s["extra"][1].tolist()]), indent=1))
    worker.close()
    wall = time.time() - t1
    rep = dict(cases=cases, seed=seed, models=models, timeout_s=timeout_s, mem_gb=mem_gb, elapsed_s=round(wall, 1),
               corpus={k: len(v) for k, v in corpus.items()}, setup_s=round(t1 - t0, 1), worker_restarts=worker.restarts,
               cases_per_s=round(cases / max(wall, 1e-9), 1), reproducers=str(out) if saved else None, targets={})
    for t, c in stats.items():
        n = sum(c[o] for o in OUTCOMES)
        rep["targets"][t] = dict(cases=n, **{o: c[o] for o in OUTCOMES}, warnings=c["warnings"],
                                 cases_per_s=round(n / max(spent[t], 1e-9), 1),
                                 **{m: {o: c[f"{m}/{o}"] for o in ("cases",) + OUTCOMES} for m in ("raw", "fixed")},
                                 by_kind={o: [[sig, k] for (tt, oo, sig), k in kinds.most_common() if (tt, oo) == (t, o)]
                                          [:12] for o in OUTCOMES})
    return rep


def format_report(rep: dict) -> str:
    head = ("target", "cases", "clean errors", "crashes", "hangs", "silent= raw/fixed", "silent≠ raw/fixed", "warnings",
            "cases/s")
    rows = [head] + [(t, r["cases"], r["error"], r["crash"], r["hang"],
                      f"{r['raw']['silent_identical']}/{r['fixed']['silent_identical']}",
                      f"{r['raw']['silent_different']}/{r['fixed']['silent_different']}", r["warnings"], r["cases_per_s"])
                     for t, r in rep["targets"].items()]
    w = [max(len(str(row[k])) for row in rows) for k in range(len(head))]
    lines = [f"{rep['cases']} cases (seed {rep['seed']}) in {rep['elapsed_s']} s = {rep['cases_per_s']} cases/s; "
             f"seeds {rep['corpus']}, set-up {rep['setup_s']} s, worker restarts {rep['worker_restarts']}"]
    lines += ["  ".join(str(v).rjust(w[k]) if k else str(v).ljust(w[k]) for k, v in enumerate(row)) for row in rows]
    for t, r in rep["targets"].items():
        lines.append(f"{t}: {r['raw']['cases']} raw and {r['fixed']['cases']} crc-fixed cases")
        lines += [f"  {o:>16} {n:6d}  {sig}" for o, kinds in r["by_kind"].items() for sig, n in kinds[:8]]
    return "\n".join(lines + ([f"reproducers: {rep['reproducers']}"] if rep["reproducers"] else []))


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(prog="python -m codec.tools.fuzz", description=__doc__.splitlines()[0])
    p.add_argument("--cases", type=int, default=10000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--timeout-s", type=float, default=10.0, help="a case that takes longer is a hang")
    p.add_argument("--targets", default=",".join(TARGETS))
    p.add_argument("--models", default=None, help="comma-separated image, audio or video models (default: every one)")
    p.add_argument("--pictures", type=int, default=len(PICTURES), help=f"pictures per model (1..{len(PICTURES)})")
    p.add_argument("--mem-gb", type=float, default=4.0, help="address space a worker may add (0: no limit)")
    p.add_argument("--out", default=None, help="folder for reproducers (default: $TMPDIR/codec-fuzz)")
    p.add_argument("--json", default=None, help="write the report here")
    p.add_argument("--replay", default=None, metavar="FILE.bin", help="run one saved reproducer")
    p.add_argument("--no-progress", action="store_true")
    a = p.parse_args(argv)
    if a.replay:  # a reproducer: FILE.bin beside FILE.json
        meta = json.loads(Path(a.replay).with_suffix(".json").read_text())
        extra = meta["rans"] and (meta["rans"][0], __import__("numpy").asarray(meta["rans"][1], dtype="int32"))
        res = run_case(meta["target"], Path(a.replay).read_bytes(), extra)
        print(*[r for r in res if r], sep="\n")
        return {"outcome": res[0], "detail": res[1]}
    targets = tuple(a.targets.split(","))
    if not set(targets) <= set(TARGETS):
        p.error(f"--targets: choose from {','.join(TARGETS)}")
    rep = fuzz(a.cases, a.seed, targets, a.models.split(",") if a.models else None, a.timeout_s, a.out, a.mem_gb,
               max(1, min(a.pictures, len(PICTURES))), progress=not a.no_progress)
    print(format_report(rep))
    if a.json:
        Path(a.json).write_text(json.dumps(rep, indent=1))
    return rep


if __name__ == "__main__":
    main()
