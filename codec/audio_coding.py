"""Audio through an audio model, in bounded memory: rate conversion, chunks, rate control.

An audio model codes at its own rate (``model.sample_rate``) in chunks
(:class:`codec.models.audio.Chunker`); this module joins it to the medium
(:mod:`codec.media.audio`):

- **encoding** resamples the signal to the model's rate (:class:`~codec.media.audio.Resampler`)
  and pushes it through a :class:`~codec.models.audio.StreamEncoder`; from a file
  (:func:`encode_file`) block by block as it is decoded, so memory does not grow with
  the length (the coded sections are kept: a few kB a second);
- **rate control** (``bitrate=``): the quality is the highest on the model's 0.01 grid
  whose stream, measured on up to :data:`SAMPLE_CHUNKS` chunks spread evenly over the
  signal (all of them for a signal of up to that many chunks), is at most the target
  (bisection; the model's rate rises with its quality);
- **decoding** (:func:`decoded_blocks`) decodes the chunks one by one, cross-fades them,
  resamples to the stream's rate and yields the samples of any time range: a range
  decodes only the chunks it needs (random access through the chunk index), and gives
  the samples a full decode gives there.
"""
from __future__ import annotations

import math

import numpy as np

from codec.errors import InputError

#: chunks measured by rate control (at most): 60 s of audio with 10 s chunks
SAMPLE_CHUNKS = 6
#: model-rate samples decoded beyond a time range on either side (the resampler's reach)
MARGIN = 4096


def _to_model(model, rate: int, channels: int):
    from codec.media.audio import Resampler

    return Resampler(rate, model.sample_rate, channels)


def stream_payload(model, blocks, rate: int, channels: int, quality):
    """Encode ``blocks`` (float32 ``[channels, m]`` at ``rate``) -> the model's Payload."""
    import torch

    res = _to_model(model, rate, channels)
    enc = model.encoder(channels, quality, rate)
    for b in blocks:
        enc.push(torch.from_numpy(np.ascontiguousarray(res.push(b))))
    enc.push(torch.from_numpy(np.ascontiguousarray(res.finish())))
    _check_not_empty(model, enc.chunker.n, res.n_in, rate)
    return enc.finish()


def _check_not_empty(model, n_model: int, n: int, rate: int) -> None:
    if n_model < 1:
        raise InputError(f"the audio is too short to code: {n} sample(s) at {rate} Hz is less than one sample "
                         f"at the model's {model.sample_rate} Hz")


def sample_segments(model, blocks, rate: int, channels: int, estimated: int | None) -> tuple:
    """``([(segment, core samples)], samples at the model's rate)``: up to :data:`SAMPLE_CHUNKS`
    chunks spread over the signal (``estimated``: its length at ``rate``, to space them; every
    chunk is kept until the count passes the limit, then every second one, and so on)."""
    import torch

    from codec.models.audio import Chunker

    res = _to_model(model, rate, channels)
    ch = Chunker(model, channels)
    stride = 1
    if estimated:
        n = math.ceil(estimated * model.sample_rate / rate)
        stride = max(1, math.ceil(math.ceil(n / model.hop) / SAMPLE_CHUNKS))
    kept = {}

    def keep(pairs):
        nonlocal stride
        for k, seg in pairs:
            if k % stride == 0:
                kept[k] = seg.clone()
            while len(kept) > SAMPLE_CHUNKS:
                stride *= 2
                for j in [j for j in kept if j % stride]:
                    del kept[j]

    for b in blocks:
        keep(ch.push(torch.from_numpy(np.ascontiguousarray(res.push(b)))))
    keep(ch.push(torch.from_numpy(np.ascontiguousarray(res.finish()))))
    _check_not_empty(model, ch.n, res.n_in, rate)
    keep(ch.finish())
    plan = model.chunks(ch.n)
    return [(kept[k], plan[k][1]) for k in sorted(kept)], ch.n


def pick_quality(model, spec, segments: list, kbps: float, total_seconds: float, overhead=(0, 0),
                 source_rate: int | None = None) -> tuple:
    """``(quality, estimated kbps)``: the highest quality on the spec's grid whose stream is
    estimated at most ``kbps`` (the lowest quality when none is): the sections of
    ``segments`` and their table entries per second, plus the stream's fixed bytes
    (``overhead = (fixed bytes, bytes per section)``, :func:`codec.container.overhead`)
    spread over ``total_seconds``; ``source_rate``: the signal's own rate, as
    :meth:`~codec.models.audio.AudioModel.encoder` takes it)."""
    if not (isinstance(kbps, (int, float)) and math.isfinite(kbps) and kbps > 0):
        raise InputError(f"a target bitrate is a positive number of kbit/s, not {kbps!r}")
    seconds = sum(core for _, core in segments) / model.sample_rate
    dev = next(model.parameters()).device
    fixed, per_section = overhead

    def rate(q):
        secs = [s for seg, _ in segments for s in model.compress_chunk(seg.to(dev), q, 0, source_rate)]
        nbytes = sum(len(s.data) + per_section for s in secs)
        return 8 * nbytes / seconds / 1000 + 8 * fixed / total_seconds / 1000

    qs = spec.quality
    lo, hi = round(qs.lo * qs.scale), round(qs.hi * qs.scale)  # integer steps
    r_lo = rate(lo / qs.scale)
    if r_lo > kbps:
        return lo / qs.scale, r_lo
    r_hi = rate(hi / qs.scale)
    if r_hi <= kbps:
        return hi / qs.scale, r_hi
    best = (lo, r_lo)
    while hi - lo > 1:  # rate(lo) <= kbps < rate(hi)
        mid = (lo + hi) // 2
        r = rate(mid / qs.scale)
        if r <= kbps:
            lo, best = mid, (mid, r)
        else:
            hi = mid
    return best[0] / qs.scale, best[1]


def parse_bitrate(text) -> float:
    """``"16k"``, ``"16 kbps"``, ``"16000"`` or ``16`` (a number below 1000 is kbit/s) -> kbit/s."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        v = float(text)
    else:
        t = str(text).strip().lower().replace(" ", "")
        for suffix in ("kbit/s", "kbps", "kb/s", "k"):
            if t.endswith(suffix):
                t, scale = t[: -len(suffix)], 1.0
                break
        else:
            scale = None
        try:
            v = float(t)
        except ValueError:
            raise InputError(f"a bitrate is a number of kbit/s such as 16k or 24 (got {text!r})") from None
        if scale is None and v >= 1000:
            v /= 1000  # bits per second
    if not (math.isfinite(v) and v > 0):
        raise InputError(f"a bitrate must be a positive number of kbit/s, not {text!r}")
    return v


def time_range(info, start=None, duration=None) -> tuple:
    """Samples ``(t0, t1)`` of a stream's audio for ``start`` and ``duration`` in seconds."""
    n, r = info.samples, info.sample_rate
    if start is None and duration is None:
        return 0, n
    s = 0.0 if start is None else start
    if isinstance(s, bool) or not (isinstance(s, (int, float)) and math.isfinite(s) and s >= 0):
        raise InputError(f"start must be a time in seconds >= 0, not {start!r}")
    if s * r >= n:  # (compared as floats: a huge start does not overflow an int)
        raise InputError(f"start {s:g} s is past the end of the audio ({n / r:g} s)")
    t0 = int(math.floor(s * r))  # the sample playing at that time
    if duration is None:
        return t0, n
    if isinstance(duration, bool) or not (isinstance(duration, (int, float)) and not math.isnan(duration)
                                          and duration > 0):
        raise InputError(f"duration must be a positive number of seconds, not {duration!r}")
    want = duration * r
    return t0, n if want >= n - t0 else t0 + max(1, int(round(want)))


def decoded_blocks(model, payload, info, quality, device, t0: int = 0, t1: int | None = None):
    """Yield the decoded samples ``t0..t1-1`` (at the stream's rate ``info.sample_rate``) as
    float32 ``[channels, m]`` blocks in order, clipped to [-1, 1]; only the chunks needed."""
    from codec.media.audio import Resampler

    t1 = info.samples if t1 is None else t1
    M, r = model.sample_rate, info.sample_rate
    n_model = model.parse_header(payload.header)[0]
    unit = M // math.gcd(M, r)  # model times that fall on a sample of the stream's rate
    a = max(0, (t0 * M // r - MARGIN) // unit * unit)
    b = min(n_model, -(-t1 * M // r) + MARGIN) if t1 < info.samples else n_model
    first, last = model.chunk_range(payload.header, a, b)
    res = Resampler(M, r, info.channels)
    s0 = a * r // M  # the stream's time of the resampler's first output sample
    pos = s0  # the time of the next output sample

    def give(y):
        nonlocal pos
        lo, hi = max(t0, pos), min(t1, pos + y.shape[1])
        pos += y.shape[1]
        if hi > lo:
            return y[:, lo - (pos - y.shape[1]):hi - (pos - y.shape[1])]
        return None

    for st, block in model.decode_chunks(payload, quality, device, first, last):
        lo, hi = max(st, a), min(st + block.shape[1], b)
        if hi <= lo:
            continue
        y = give(res.push(block[:, lo - st:hi - st].clamp(-1, 1).float().cpu().numpy()))
        if y is not None:
            yield y
        if pos >= t1:
            return
    y = give(res.finish())
    if y is not None:
        yield y
    if pos < t1:  # the two rounded lengths can differ by a sample: the signal is zero there
        yield np.zeros((info.channels, t1 - pos), np.float32)
