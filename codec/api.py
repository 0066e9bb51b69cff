"""Python API: ``encode(item) -> bytes``, ``decode(bytes) -> item``, ``info(bytes)``, ``load_model(name)``.

The API is an envelope around the models: a medium (``codec.media``) turns what the
user passes into the model's input and the model's output back into what the user
gets; the model codes (``model.compress(x, quality) -> Payload``,
``model.decompress(payload, quality)``); the container (``codec.container``) wraps the
payload with the model's name, weights id and quality and the medium's descriptor.

Images in: PIL images, numpy arrays and torch tensors (see :mod:`codec.media.image`).
Images out (``decode(..., output=...)``): ``"numpy"`` (uint8 ``H x W x 3``, or ``H x W``
for grayscale), ``"torch"`` (float32 ``[C, H, W]``, exactly the 8-bit values / 255) or
``"pil"``.  Every mistake a user can make raises a :class:`~codec.errors.CodecError`.
"""
from __future__ import annotations

import contextlib
import functools
import warnings

from codec import container as ct
from codec import media
from codec.errors import CodecError, InputError, ResourceError


class UntrainedModelWarning(UserWarning):
    """The model has no trained weights: its output is not meaningful."""


def default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _check_device(device) -> str:
    import torch

    dev = str(device or default_device())
    if dev.startswith("cuda") and not torch.cuda.is_available():
        raise InputError("--device cuda was asked for, but no CUDA device is available")
    if not (dev == "cpu" or dev.startswith("cuda")):
        raise InputError(f"unknown device {dev!r} (use cpu or cuda)")
    return dev


def list_models() -> list[str]:
    from codec.models.registry import list_models as _lm

    return _lm()


def _spec(name):
    from codec.models import registry

    try:
        return registry.get_spec(name)
    except registry.UnknownModelError as exc:
        raise InputError(str(exc)) from None


def resolve(name: str | None = None, quality=None, medium: str = "image"):
    """(model name, quality as the model takes it) for user input: ``name`` defaults to the
    best shipped model of ``medium``, ``quality`` to the model's default.  A model with
    quality levels takes whole numbers (``4``); a variable-rate model any quality in its
    range on its step grid (``3.25``).  :class:`CodecError` for an unknown model or quality."""
    from codec.models import registry

    if name is None:
        media.get(medium)
        try:
            name = registry.default_model(medium)
        except registry.UnknownModelError as exc:
            raise InputError(str(exc)) from None
    spec = _spec(name)
    try:
        return name, spec.check_quality(quality)
    except ValueError as exc:
        raise InputError(str(exc)) from None


@functools.lru_cache(maxsize=8)
def _load(name, key, device):
    from codec.models import registry

    return registry.load_model(name, key, device=device)


def load_model(name: str | None = None, quality=None, device=None, medium: str = "image"):
    """A frozen model from the registry (cached).  ``name`` defaults to the best shipped
    model of ``medium``.  A variable-rate model is one object for every quality (its
    ``quality`` attribute is None): pass the quality to its ``compress``/``decompress``."""
    name, q = resolve(name, quality, medium)
    spec = _spec(name)
    model = _load(name, spec.quality.weights_key(q), _check_device(device))
    if not model.trained:
        warnings.warn(f"{spec.label(q)} has no trained weights (random initialisation): "
                      "its output is not meaningful", UntrainedModelWarning, stacklevel=2)
    return model


@contextlib.contextmanager
def _resources(what: str, hint: str = "try a smaller input or another device"):
    """Allocation failures (CPU or GPU) as one-line :class:`ResourceError` s."""
    import torch

    try:
        yield
    except (MemoryError, getattr(torch, "OutOfMemoryError", torch.cuda.OutOfMemoryError)) as exc:
        raise ResourceError(f"not enough memory to {what} ({exc.__class__.__name__}); {hint}") from None
    except RuntimeError as exc:
        text = str(exc)
        if "memory" in text and ("allocate" in text or "out of" in text or "not enough" in text):
            first = text.strip().splitlines()[0][:160]
            raise ResourceError(f"not enough memory to {what} ({first}); {hint}") from None
        raise


# ----------------------------------------------------------------------------- coding
def _medium_for(model, medium):
    if model is not None:
        spec = _spec(model)
        if medium is not None and medium != spec.modality:
            raise InputError(f"model '{model}' codes {spec.modality}, not {medium}")
        medium = spec.modality
    return media.get(medium or "image")


def check_fits(name: str, info) -> None:
    """Refuse an item the model cannot code (before it loads): an audio model's channel count."""
    spec = _spec(name)
    most = getattr(spec.arch_class(), "max_channels", None) if spec.modality == "audio" else None
    if most is not None and info.channels > most:
        raise InputError(f"model '{name}' codes up to {most} channels; the audio has {info.channels} "
                         "(mix it down first, e.g. ffmpeg -ac 2)")


def check_effort(model: str | None, effort, medium: str = "image", what: str = "effort= (--effort)") -> None:
    """Refuse an effort (or ``what``) for a model (default: ``medium``'s) whose encoder takes none,
    or an unknown effort."""
    spec = _spec(resolve(model, None, medium)[0] if model is None else model)
    if not spec.effort:
        raise InputError(f"{what} is for the image models and the INR models (encoders that "
                         f"optimise while they encode); model '{spec.name}' takes none")
    if effort is not None:
        try:
            spec.arch_class().iterations(effort)
        except ValueError as exc:
            raise InputError(str(exc)) from None


def encode(item, *, model: str | None = None, quality=None, device=None, medium: str | None = None,
           max_pixels=None, sample_rate=None, bitrate=None, max_samples=None, fps=None, gop=None,
           effort=None, progress=None) -> bytes:
    """Compress one item to a self-describing stream (``codec/CONTAINER.md``).

    ``model`` picks the codec (default: the best shipped one of ``medium``, default
    ``"image"``; an :class:`~codec.media.audio.Audio`, or ``sample_rate=``, means audio);
    ``quality``: a whole number for models with levels, any value in the range (steps of
    0.01) for variable-rate ones (see ``codec models``); higher means more bits.

    Images: PIL images, arrays, tensors; ``max_pixels`` raises the size limit (default
    :data:`codec.media.image.DEFAULT_MAX_PIXELS`, or ``$CODEC_MAX_PIXELS``).
    Audio: a :class:`codec.media.audio.Audio`, or an array/tensor ``[n]`` / ``[channels, n]``
    with its ``sample_rate``; ``bitrate`` (kbit/s, ``16`` or ``"16k"``) picks the quality
    that comes closest to it from below (:func:`codec.audio_coding.pick_quality`);
    ``max_samples`` raises the length limit (samples per channel).
    Video: a :class:`codec.media.video.Video`, or frames (an array ``[T, H, W, 3]``, a tensor
    ``[T, 3, H, W]``, a list or an iterator of ``[H, W, 3]`` frames) with their ``fps``;
    frames are coded as they come (an iterator streams); ``gop``: a key frame every this
    many frames (default 32); ``max_pixels`` bounds the frame size.
    Models whose encoder optimises as it encodes: ``effort`` (``"fast"``, ``"medium"``,
    ``"slow"``, ``"placebo"`` or a number of iterations) sets how long, ``progress(step,
    total, bpp, psnr)`` follows it: the INR models (``inr-image``, ``inr-video``) fit
    themselves to each item (default ``"medium"``); the image transform codecs refine the
    latent they code (:meth:`codec.models.image.ImageModel.refine`; default ``"medium"``, 20 iterations; ``"fast"``: none)."""
    from codec.media.audio import Audio
    from codec.media.video import Video

    if medium is None and model is None and (sample_rate is not None or isinstance(item, Audio)):
        medium = "audio"
    if medium is None and model is None and (fps is not None or isinstance(item, Video)):
        medium = "video"
    med = _medium_for(model, medium)
    if fps is not None and med.NAME != "video":
        raise InputError("fps= is for video")
    if gop is not None and med.NAME != "video":
        raise InputError("gop= is for video")
    if bitrate is not None and med.NAME != "audio":
        raise InputError(f"bitrate= is for audio ({med.NAME} takes a quality)")
    if effort is not None or progress is not None:
        check_effort(model, effort, med.NAME, "progress=" if effort is None else "effort= (--effort)")
    if med.NAME == "video":
        if sample_rate is not None or max_samples is not None:
            raise InputError("sample_rate= and max_samples= are for audio")
        return _encode_video(med, item, model, quality, device, max_pixels, fps, gop, effort=effort)
    if bitrate is not None and quality is not None:
        raise InputError("give a quality or a bitrate, not both")
    name, q = resolve(model, quality, med.NAME)
    if med.NAME == "audio":
        item = med.from_user(item, sample_rate, limit=max_samples)  # checked before a model loads
        check_fits(name, item.info)
    else:
        if sample_rate is not None:
            raise InputError("sample_rate= is for audio")
        item = med.from_user(item, limit=max_pixels)
    m = load_model(name, q, device)
    spec = _spec(name)
    dev = next(m.parameters()).device
    refines = med.NAME == "image" and spec.effort and not spec.fitted and m.iterations(effort) > 0
    hint = ("try effort='fast' (--effort fast: no latent refinement, which needs about 760 bytes of memory a "
            "pixel), a smaller input or another device") if refines else "try a smaller input or another device"
    with _resources(f"encode a {med.describe(item.info)}", hint):
        if med.NAME == "audio":
            from codec import audio_coding as ac

            blocks = [item.samples]
            if bitrate is not None:
                segs, n_model = ac.sample_segments(m, blocks, item.sample_rate, item.channels, item.length)
                q, _ = ac.pick_quality(m, spec, segs, ac.parse_bitrate(bitrate), item.duration,
                                       _overhead(m, spec, item.info, n_model), item.sample_rate)
            payload = ac.stream_payload(m, blocks, item.sample_rate, item.channels, q)
        elif spec.effort:
            payload = m.compress(med.model_input(item, dev), q, effort=effort, progress=progress)
        else:
            payload = m.compress(med.model_input(item, dev), q)
    c = ct.Container(model=m.name, weights_id=m.weights_id, quality=spec.quality_code(q), media=item.info,
                     payload=payload)
    return ct.pack(c)


def _encode_video(med, item, model, quality, device, max_pixels, fps, gop, progress=None, effort=None) -> bytes:
    from codec import video_coding as vc

    name, q = resolve(model, quality, "video")
    g = vc.check_gop(vc.DEFAULT_GOP if gop is None else gop)
    video = med.from_user(item, fps, limit=max_pixels)  # checked before a model loads
    m = load_model(name, q, device)
    with _resources(f"encode a {video.width}x{video.height} video"):
        payload, n = vc.stream_payload(m, video.frames, video.width, video.height, q, g, progress, effort)
    info = ct.VideoInfo(video.width, video.height, n, (video.fps.numerator, video.fps.denominator), "rgb", 8)
    return ct.pack(ct.Container(model=m.name, weights_id=m.weights_id, quality=_spec(name).quality_code(q),
                                media=info, payload=payload))


def _overhead(m, spec, info, n_model) -> tuple:
    """(fixed, per-section) container bytes of an audio stream of ``info`` (rate control)."""
    from codec.models.payload import Payload

    c = ct.Container(model=m.name, weights_id=m.weights_id, quality=spec.quality_code(spec.quality.lo),
                     media=info, payload=Payload([], m.header(n_model, info.channels,
                                                    m.MID_SIDE if info.channels == 2 else m.INDEPENDENT)))
    return ct.overhead(c)


def _open_stream(data, device, limit):
    """(container, medium, model, quality, checked payload) of a stream, before any decoding."""
    c = ct.unpack(data)
    med = media.get(c.modality)
    q = stream_quality(c)
    med.check_work(c.media, limit)
    m = load_model(c.model, q, device)
    spec = _spec(c.model)
    if c.weights_id != m.weights_id:
        raise InputError(f"stream was made with other weights for {spec.label(q)} "
                         f"({c.weights_id.hex()}) than the installed ones ({m.weights_id.hex()})")
    return c, med, m, q, med.checked_payload(m, c, limit)


@contextlib.contextmanager
def _decoding(med, c):
    """A model's and the entropy stage's complaints about a stream as :class:`CodecError` s."""
    from codec.models.payload import PayloadError

    try:
        with _resources(f"decode a {med.describe(c.media)}"):
            yield
    except ResourceError:
        raise
    except PayloadError as exc:
        raise InputError(f"stream does not fit its model: {exc}") from None
    except CodecError as exc:  # the entropy stage's StreamError family
        if isinstance(exc, (InputError, ct.ContainerError)):
            raise
        raise ct.ContainerError(f"corrupt stream: {exc}") from None
    except ValueError as exc:
        raise InputError(f"stream does not fit its model: {exc}") from None


def decode(data: bytes, *, device=None, output: str | None = None, max_pixels=None, max_samples=None,
           start=None, duration=None, frames=None):
    """Decompress a stream made by :func:`encode` (on any device, by any install).

    The work a stream asks for is bounded before any network runs: its picture must
    be within the pixel limit (``max_pixels``, as for :func:`encode`; audio:
    ``max_samples``) and its model header must fit its item.

    Images come back as ``output`` ``"numpy"`` (default), ``"torch"`` or ``"pil"``; audio as
    an :class:`~codec.media.audio.Audio` (``output="audio"``, the default), or its samples
    (``"numpy"``, ``"torch"``).  ``start`` / ``duration`` (seconds, audio only) decode a
    time range: only the chunks it needs, and the samples a full decode gives there.
    Video comes back as a :class:`~codec.media.video.Video` whose frames are decoded as they
    are iterated (``output="video"``, the default; bounded memory), or all frames at once
    (``"numpy"`` ``[T, H, W, 3]`` uint8, ``"torch"`` ``[T, 3, H, W]`` float); ``frames``
    (``"A-B"``, 0-based and inclusive, or ``(start, stop)``) decodes from the nearest key
    frame before ``A``: the frames a full decode gives there."""
    c = ct.unpack(data)
    med = media.get(c.modality)
    output = med.OUTPUTS[0] if output is None else output
    if output not in med.OUTPUTS:
        raise InputError(f"output must be one of {', '.join(med.OUTPUTS)}, not {output!r}")
    if (start is not None or duration is not None) and c.modality != "audio":
        raise InputError("start= and duration= are for audio streams")
    if frames is not None and c.modality != "video":
        raise InputError("frames= is for video streams")
    if c.modality == "video":
        return med.to_user(_decode_video(data, c, device, max_pixels, frames), output)
    if c.modality == "audio":
        from codec import audio_coding as ac

        ac.time_range(c.media, start, duration)  # before a model loads
    c, med, m, q, payload = _open_stream(data, device, max_samples if c.modality == "audio" else max_pixels)
    dev = next(m.parameters()).device
    with _decoding(med, c):
        if c.modality == "audio":
            import numpy as np

            from codec import audio_coding as ac

            t0, t1 = ac.time_range(c.media, start, duration)
            out = np.empty((c.media.channels, t1 - t0), np.float32)
            pos = 0
            for y in ac.decoded_blocks(m, payload, c.media, q, dev, t0, t1):
                out[:, pos:pos + y.shape[1]] = y
                pos += y.shape[1]
            item = med.Audio(out, c.media.sample_rate, c.media.bit_depth)
        else:
            item = med.model_output(m.decompress(payload, q, device=dev), c.media)
    return med.to_user(item, output)


def _frame_span(info, frames) -> tuple:
    from codec import video_coding as vc

    if isinstance(frames, tuple) and len(frames) == 2:
        a, b = frames
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in frames) or not 0 <= a < b:
            raise InputError(f"frames=(start, stop) takes whole numbers with 0 <= start < stop, not {frames!r}")
        if a >= info.frames:
            raise InputError(f"frames {frames} are outside the video's 0-{info.frames - 1}")
        return a, min(b, info.frames)
    return vc.frame_range(info, frames)


def _decode_video(data, c, device, max_pixels, frames):
    """A lazy :class:`Video` of the frames of a video stream (checked before any network runs)."""
    from codec import video_coding as vc

    t0, t1 = _frame_span(c.media, frames)  # before a model loads
    c, med, m, q, payload = _open_stream(data, device, max_pixels)
    dev = next(m.parameters()).device

    def frames_():
        with _decoding(med, c):
            yield from vc.decoded_frames(m, payload, c.media, q, dev, t0, t1)

    fps = c.media.fps
    from fractions import Fraction

    return med.Video(frames_(), Fraction(*fps), c.media.width, c.media.height, t1 - t0)


def encode_file(src, dst, *, model: str | None = None, quality=None, bitrate=None, device=None,
                max_samples=None, force: bool = False, gop=None, size=None, fps=None, pix_fmt=None,
                max_pixels=None, progress=None, effort=None, fit_progress=None) -> dict:
    """Encode an audio or video file to a stream file in bounded memory.  Audio: decoded,
    resampled and coded block by block; with ``bitrate``, read twice: once to measure, once
    to code.  Video: frame by frame (``gop``: key-frame interval; ``size`` ``"WxH"``, ``fps``
    and ``pix_fmt`` for raw ``.yuv``; ``progress(nbytes)`` after each frame; a fitted model's
    ``effort`` and ``fit_progress(epoch, epochs, psnr)``).  Returns what
    was done: ``bytes``, ``kbps``, ``quality``, ``model``, ``info``."""
    medium = _spec(model).modality if model is not None else media.medium_of(src)
    if medium == "video":
        if bitrate is not None or max_samples is not None:
            raise InputError("bitrate= and max_samples= are for audio")
        return _encode_video_file(src, dst, model, quality, device, force, gop, size, fps, pix_fmt, max_pixels,
                                  progress, effort, fit_progress)
    if any(v is not None for v in (gop, size, fps, pix_fmt, progress, effort, fit_progress)):
        raise InputError("gop=, size=, fps=, pix_fmt=, progress=, effort= and fit_progress= are for video files")
    from codec import audio_coding as ac
    from codec.fileio import atomic_write, check_output
    from codec.media import audio as A

    med = _medium_for(model, "audio")
    if bitrate is not None and quality is not None:
        raise InputError("give a quality or a bitrate, not both")
    target = ac.parse_bitrate(bitrate) if bitrate is not None else None
    name, q = resolve(model, quality, med.NAME)
    check_output(dst, force)
    with A.Reader(src, max_samples) as r:  # the file is checked before a model loads
        rate, channels, depth, est = r.sample_rate, r.channels, r.bit_depth, r.estimated
        check_fits(name, ct.AudioInfo(rate, channels, 1, depth))
        m = load_model(name, q, device)
        spec = _spec(name)
        what = f"encode {src}"
        with _resources(what):
            if target is not None:
                segs, n_model = ac.sample_segments(m, r.blocks(), rate, channels, est)
        if target is not None:
            info = ct.AudioInfo(rate, channels, r.samples, depth)
            q, _ = ac.pick_quality(m, spec, segs, target, info.samples / rate, _overhead(m, spec, info, n_model),
                                   rate)
            del segs
    with A.Reader(src, max_samples) as r, _resources(f"encode {src}"):
        counted = []

        def blocks():
            for b in r.blocks():
                counted.append(b.shape[1])
                yield b

        payload = ac.stream_payload(m, blocks(), rate, channels, q)
        info = ct.AudioInfo(rate, channels, sum(counted), depth)
    data = ct.pack(ct.Container(model=m.name, weights_id=m.weights_id, quality=spec.quality_code(q), media=info,
                                payload=payload))
    atomic_write(dst, data, force)
    return {"bytes": len(data), "kbps": A.rate(len(data), info), "quality": q, "model": m.name, "info": info}


def _encode_video_file(src, dst, model, quality, device, force, gop, size, fps, pix_fmt, max_pixels,
                       progress, effort=None, fit_progress=None) -> dict:
    from codec import video_coding as vc
    from codec.fileio import atomic_write, check_output
    from codec.media import video as V

    name, q = resolve(model, quality, "video")
    g = vc.check_gop(vc.DEFAULT_GOP if gop is None else gop)
    if effort is not None:
        check_effort(name, effort)
    check_output(dst, force)
    with V.Reader(src, size=size, fps=fps, pix_fmt=pix_fmt, limit=max_pixels) as r:  # checked before a model loads
        m = load_model(name, q, device)
        with _resources(f"encode {src}"):
            payload, n = vc.stream_payload(m, r.frames(), r.width, r.height, q, g, progress, effort, fit_progress)
        info = ct.VideoInfo(r.width, r.height, n, (r.fps.numerator, r.fps.denominator), "rgb", 8)
    data = ct.pack(ct.Container(model=m.name, weights_id=m.weights_id, quality=_spec(name).quality_code(q),
                                media=info, payload=payload))
    atomic_write(dst, data, force)
    return {"bytes": len(data), "kbps": V.rate(len(data), info), "quality": q, "model": m.name, "info": info,
            "gop": g}


def decode_file(data: bytes, dst, *, device=None, max_samples=None, start=None, duration=None,
                force: bool = False, frames=None, max_pixels=None, progress=None) -> dict:
    """Decode an audio stream to a WAV or FLAC file (by the extension) in bounded memory,
    chunk by chunk; ``start`` / ``duration`` as for :func:`decode`; or a video stream to a
    ``.y4m``, a lossless FFV1 ``.mkv`` or a folder of PNG frames, frame by frame (``frames``
    as for :func:`decode`; ``progress()`` after each frame).  Nothing is left at ``dst`` on
    an error.  Returns ``info``, ``samples`` (audio) or ``frames`` (video), ``model``, ``quality``."""
    from codec import audio_coding as ac
    from codec.media import audio as A

    c = ct.unpack(data)
    if c.modality == "video":
        if start is not None or duration is not None or max_samples is not None:
            raise InputError("start=, duration= and max_samples= are for audio streams")
        return _decode_video_file(data, c, dst, device, force, frames, max_pixels, progress)
    if frames is not None or progress is not None:
        raise InputError("frames= and progress= are for video streams")
    if c.modality != "audio":
        raise InputError(f"decode_file writes audio or video; this stream holds {c.modality}")
    w = A.Writer(dst, c.media.sample_rate, c.media.channels, force=force)  # checks dst first
    t0, t1 = ac.time_range(c.media, start, duration)
    c, med, m, q, payload = _open_stream(data, device, max_samples)
    dev = next(m.parameters()).device
    with _decoding(med, c), w:
        for y in ac.decoded_blocks(m, payload, c.media, q, dev, t0, t1):
            w.write(y)
    return {"info": c.media, "samples": w.samples, "model": c.model, "quality": q}


def _decode_video_file(data, c, dst, device, force, frames, max_pixels, progress) -> dict:
    from fractions import Fraction

    from codec.media import video as V

    w = V.Writer(dst, c.media.width, c.media.height, Fraction(*c.media.fps), force=force)  # checks dst first
    video = _decode_video(data, c, device, max_pixels, frames)
    with w:
        for f in video.frames:
            w.write(f)
            if progress is not None:
                progress()
    return {"info": c.media, "frames": w.count, "model": c.model, "quality": stream_quality(c)}


def stream_quality(c: ct.Container):
    """The quality of a stream, as its model takes it.  :class:`CodecError` for an unknown
    model, a model of another medium, or a quality the model lacks."""
    spec = _spec(c.model)
    if spec.modality != c.modality:
        raise ct.ContainerError(f"stream says it is {c.modality}, but its model '{c.model}' codes {spec.modality}")
    try:
        return spec.quality_from_code(c.quality)
    except ValueError as exc:
        raise InputError(f"stream does not fit its model: {exc}") from None


def info(data: bytes) -> dict:
    """What a stream holds: model, weights, medium, sections and sizes (bytes and rate)."""
    c = ct.unpack(data)
    try:
        quality = stream_quality(c)
    except CodecError:  # a model this installation does not know: the raw field
        quality = c.quality
    d = {"modality": c.modality, "model": c.model, "quality": quality, "weights_id": c.weights_id.hex(),
         "version": c.version, "bytes": len(data), "header_bytes": ct.header_size(data, c),
         "model_header_bytes": len(c.payload.header),
         "sections": [{"kind": s.kind, "index": s.index, "flags": s.flags, "bytes": len(s.data)}
                      for s in c.sections]}
    d.update({k: v for k, v in vars(c.media).items()})
    try:
        describe = getattr(_spec(c.model).arch_class(), "describe_header", None)
        if describe is not None:  # e.g. an INR's architecture and decoder MACs per pixel
            d["decoder"] = describe(c.payload.header)
    except (CodecError, ValueError):
        pass
    try:
        med = media.get(c.modality)
    except InputError:
        return d
    d["rate_unit"] = med.RATE_UNIT
    d[med.RATE_UNIT] = med.rate(len(data), c.media)
    return d
