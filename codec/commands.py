"""Sub-commands owned by the ``codec`` package: encode, decode, info, models, demo, selftest."""
from __future__ import annotations

import os
import sys
import time
import warnings

from codec.errors import CodecError, InputError
from codec.fileio import atomic_write, check_output

STREAM_EXT = ".nmc"


def register(sub) -> None:
    p = sub.add_parser(
        "encode", help="compress media files to .nmc streams",
        description="Compress media files to .nmc streams; each file reaches the codec of its medium (images: "
        "PNG, JPEG and every other format Pillow reads; audio: WAV, FLAC, MP3, Ogg/Opus, M4A and every other "
        "format FFmpeg decodes, coded in chunks with bounded memory; video: MP4, MKV, WebM, Y4M, raw .yuv with "
        "--size/--fps/--pix-fmt and every other format FFmpeg decodes, coded frame by frame with I- and P-frames; "
        "an audio track in a video file is not coded). One input: "
        "OUTPUT is the stream file. Several inputs (or OUTPUT ending in '/' or an existing directory): OUTPUT "
        "is a directory and each stream is named after its input (NAME.nmc).")
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="media files (one medium per call)")
    p.add_argument("-o", "--output", required=True, help="output stream file, or directory for several inputs")
    p.add_argument("--model", default=None, help="model name (see 'codec models'; default: the best shipped one "
                   "for the medium)")
    p.add_argument("--quality", type=float, default=None,
                   help="quality of the model, higher = more bits: a whole number for models with levels, any "
                        "value in the range (steps of 0.01) for variable-rate ones (see 'codec models'; default: "
                        "the model's default)")
    p.add_argument("--bitrate", default=None, metavar="KBPS",
                   help="audio: target bitrate, e.g. 16k or 24 (kbit/s): the highest quality whose stream is at "
                        "most this, measured on up to 60 s of the file (instead of --quality)")
    p.add_argument("--gop", type=int, default=None, metavar="N",
                   help="video: a key frame (random-access point) every N frames (default 32; 1: every frame)")
    p.add_argument("--effort", default=None, metavar="E",
                   help="how long the encoder optimises: fast, medium (default), slow, placebo, or a number of "
                        "iterations; more effort, fewer bits at the same quality. Image models refine the latent "
                        "they code (fast: 0, medium: 20, slow: 50, placebo: 200 iterations; decoding is "
                        "unchanged); INR models (--model inr-image, inr-video) fit a network to each picture or "
                        "group of frames (inr-image at medium: about a minute for 256x256 pixels on one CPU core)")
    p.add_argument("--size", default=None, metavar="WxH", help="raw .yuv input: the frame size, e.g. 352x288")
    p.add_argument("--fps", default=None, metavar="F", help="raw .yuv input: the frame rate, e.g. 25 or 30000/1001")
    p.add_argument("--pix-fmt", default=None, metavar="FMT",
                   help="raw .yuv input: the pixel format (default yuv420p; also yuv422p, yuv444p, nv12, gray, "
                        "rgb24, ...)")
    _common(p)
    p.set_defaults(func=_encode)

    p = sub.add_parser(
        "decode", help="decompress .nmc streams (images to PNG, audio to WAV or FLAC, video to Y4M, MKV or PNGs)",
        description="Decompress .nmc streams (images to 8-bit PNG; audio to 16-bit WAV or FLAC, by the output's "
        "extension, at the original sample rate and length; video to .y4m (YUV 4:2:0), .mkv (lossless FFV1, "
        "the decoded RGB exactly) or, for an OUTPUT without an extension, a new folder of PNG frames). One "
        "input: OUTPUT is the file. Several inputs (or OUTPUT ending in '/' or an existing directory): OUTPUT "
        "is a directory and each output is named after its stream (NAME.png, NAME.wav, NAME.y4m).")
    p.add_argument("inputs", nargs="+", metavar="INPUT", help=".nmc stream files")
    p.add_argument("-o", "--output", required=True, help="output file, or directory for several inputs")
    p.add_argument("--start", type=float, default=None, metavar="SECONDS",
                   help="audio: decode from this time on (only the chunks needed)")
    p.add_argument("--duration", type=float, default=None, metavar="SECONDS",
                   help="audio: decode this many seconds (from --start, or from the beginning)")
    p.add_argument("--frames", default=None, metavar="A-B",
                   help="video: decode frames A to B (from 0, both included; 'A-' to the end), decoding from "
                        "the nearest key frame before A")
    _common(p)
    p.set_defaults(func=_decode)

    p = sub.add_parser("info", help="print what a stream contains",
                       description="Print the model, weights, medium, sections and bytes of .nmc streams.")
    p.add_argument("inputs", nargs="+", metavar="FILE")
    p.add_argument("--all-sections", action="store_true",
                   help=f"list every section (default: the first {INFO_SECTIONS}, then a summary per kind)")
    p.set_defaults(func=_info)

    p = sub.add_parser("models", help="list the models and whether trained weights ship",
                       description="List the registered models, their medium, qualities and shipped weights.")
    p.set_defaults(func=_models)

    p = sub.add_parser(
        "demo", help="encode and decode the bundled sample image (or sound: --audio); print size, rate, quality",
        description="Encode and decode the sample image shipped with the package (Kodak kodim23, 768x512) "
        "with the default model, and print the stream size, bits per pixel and PSNR.")
    p.add_argument("--model", default=None, help="model name (default: the best shipped one)")
    p.add_argument("--quality", type=float, default=None, help="quality (see 'codec encode --help')")
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when present)")
    p.add_argument("-o", "--output", default=None, help="also write the decoded image to this PNG (with --audio: "
                   "the decoded sound to this WAV or FLAC)")
    p.add_argument("--force", action="store_true", help="overwrite --output if it exists")
    p.add_argument("--audio", action="store_true", help="the bundled speech sample instead (LJ Speech LJ001-0001, "
                   "9.7 s, 22.05 kHz, public domain) with the default audio model; prints kbps, SI-SDR, mel distance")
    p.add_argument("--bitrate", default=None, metavar="KBPS", help="with --audio: a target bitrate instead of --quality")
    p.add_argument("--effort", default=None, metavar="E", help="the image encoder's effort (see 'codec encode --help'; "
                   "default medium: 20 iterations of latent refinement, fast: none)")
    p.add_argument("--video", action="store_true", help="the bundled clip instead (Big Buck Bunny, 48 frames, "
                   "320x180, 25 fps, CC-BY 3.0 Blender Foundation) with the default video model; prints kbps, "
                   "PSNR-YUV and frames/s (-o: a .y4m, .mkv or PNG folder)")
    p.set_defaults(func=_demo)

    p = sub.add_parser(
        "selftest", help="round-trip random symbols through the entropy coder and print the figures",
        description="Encode and decode random symbols drawn from the Gaussian table family "
        "with the CPU rANS coder; prints size, ideal size and throughput.")
    p.add_argument("--symbols", type=int, default=200_000, help="number of symbols (default 200000)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_selftest)


INFO_SECTIONS = 16


def _common(p):
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when present)")
    p.add_argument("--force", action="store_true", help="overwrite existing output files (regular files only)")
    p.add_argument("--max-pixels", type=float, default=None, metavar="N",
                   help="largest picture to code, in pixels (default 2^25 = 33.5 Mpx, or less where half the "
                        "memory would not hold it; or $CODEC_MAX_PIXELS); coding needs about 350 bytes of memory "
                        "per pixel")
    p.add_argument("--max-samples", type=float, default=None, metavar="N",
                   help="longest audio to code, in samples per channel (default 3 hours at 48 kHz; or "
                        "$CODEC_MAX_SAMPLES); audio is coded in chunks, so memory does not grow with it")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar or per-file lines")


def _targets(inputs, output, ext):
    """(input, output) pairs; a directory output for several inputs."""
    many = len(inputs) > 1 or output.endswith(("/", os.sep)) or os.path.isdir(output)
    if not many:
        return [(inputs[0], output)]
    os.makedirs(output, exist_ok=True)
    pairs, seen = [], set()
    for i in inputs:
        stem = os.path.splitext(os.path.basename(i))[0]
        out = os.path.join(output, stem + ext)
        if out in seen:
            raise CodecError(f"two inputs would both write {out}")
        seen.add(out)
        pairs.append((i, out))
    return pairs


def _run_many(pairs, one, quiet, what):
    """Run ``one(src, dst) -> line`` over pairs with a progress bar; a failing file does not stop the rest."""
    from tqdm import tqdm

    failures = 0
    single = len(pairs) == 1
    bar = tqdm(pairs, desc=what, unit="file", disable=quiet or single, file=sys.stderr)
    for src, dst in bar:
        try:
            line = one(src, dst)
        except (CodecError, OSError, ValueError) as exc:
            if single:
                raise
            failures += 1
            msg = str(exc)
            if isinstance(exc, OSError) and exc.filename and str(exc.filename) not in msg:
                msg = f"{msg}: {exc.filename}"
            tqdm.write(f"codec: error: {src}: {msg}", file=sys.stderr)
            continue
        if not quiet:
            tqdm.write(line) if not single else print(line)
    if failures:
        print(f"codec: {failures} of {len(pairs)} files failed", file=sys.stderr)
        return 1
    return 0


def _read_ahead(pairs, read):
    """``(read, close)`` for a run over ``pairs`` (``read`` called in their order): from the
    second input on, each is read in a thread while the caller codes the one before (the
    first is read before the thread starts, so two reads never overlap); errors surface
    when that input's turn comes.  ``close()`` stops the thread (call it when the run ends,
    however it ends)."""
    if len(pairs) < 2:
        return read, lambda: None
    from concurrent.futures import ThreadPoolExecutor

    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="codec-read")
    srcs, turn, ahead = [src for src, _ in pairs], [0], {}

    def next_read(src):
        i = turn[0]
        turn[0] += 1
        fut = ahead.pop(i, None)
        try:
            return fut.result() if fut is not None and srcs[i] == src else read(src)
        finally:  # the next read starts only once this one is over: never two at a time
            if i + 1 < len(srcs):
                ahead[i + 1] = pool.submit(read, srcs[i + 1])

    def close():
        pool.shutdown(wait=False, cancel_futures=True)

    return next_read, close


def _load_model(model_name, quality, device, medium="image"):
    """(model, quality as the model takes it); a warning on stderr for an untrained model."""
    import codec
    from codec.api import _spec, resolve

    name, q = resolve(model_name, quality, medium)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", codec.UntrainedModelWarning)
        m = codec.load_model(name, q, device)
    if not m.trained:
        print(f"codec: warning: {_spec(name).label(q)} has no trained weights "
              "(random initialisation): its output is not meaningful", file=sys.stderr)
    return m, q


def _medium_of_inputs(inputs, model_name):
    """The one medium of the inputs (checked to exist first); the model's, when one is named."""
    from codec import media
    from codec.api import _spec

    for src in inputs:
        if not os.path.exists(src):
            raise InputError(f"no such file: {src}")
        if os.path.isdir(src):
            raise InputError(f"{src} is a directory (give the files, e.g. {src.rstrip('/')}/*.png)")
    kinds = sorted({media.medium_of(src) for src in inputs})
    if len(kinds) > 1:
        raise InputError(f"the inputs mix media ({', '.join(kinds)}): encode one medium per call")
    medium = kinds[0]
    if model_name is not None and _spec(model_name).modality != medium:
        raise InputError(f"model '{model_name}' codes {_spec(model_name).modality}, not {medium} "
                         f"({inputs[0]})")
    return media.get(medium)


def _encode(args) -> int:
    import codec

    med = _medium_of_inputs(args.inputs, args.model)  # before any model loads
    pairs = _targets(args.inputs, args.output, STREAM_EXT)
    for _, dst in pairs:
        check_output(dst, args.force)
    from codec.api import _spec, resolve

    name = resolve(args.model, args.quality, med.NAME)[0]  # a medium with no codec, a bad quality: before any reading
    spec = _spec(name)
    if args.effort is not None:
        from codec.api import check_effort

        check_effort(name, args.effort)
    if args.bitrate is not None:
        if med.NAME != "audio":
            raise InputError(f"--bitrate is for audio; {med.NAME} takes --quality")
        if args.quality is not None:
            raise InputError("give --quality or --bitrate, not both")
        from codec.audio_coding import parse_bitrate

        parse_bitrate(args.bitrate)
    video_args = [o for o, v in (("--gop", args.gop), ("--size", args.size), ("--fps", args.fps),
                                 ("--pix-fmt", args.pix_fmt)) if v is not None]
    if video_args and med.NAME != "video":
        raise InputError(f"{', '.join(video_args)}: for video inputs")
    if med.NAME == "video":
        from codec.video_coding import check_gop

        check_gop(32 if args.gop is None else args.gop)
    limit = args.max_samples if med.NAME == "audio" else args.max_pixels
    raw = dict(size=args.size, fps=args.fps, pix_fmt=args.pix_fmt) if med.NAME == "video" else {}
    if len(pairs) == 1:  # a bad single input fails before a model loads (several: each says so in turn)
        info = med.probe(pairs[0][0], limit=limit, **raw)
        from codec.api import check_fits

        check_fits(resolve(args.model, args.quality, med.NAME)[0], info)
    m, q = _load_model(args.model, args.quality, args.device, med.NAME)
    if med.NAME == "audio":
        return _run_many(pairs, lambda src, dst: _encode_audio(args, m, q, src, dst), args.quiet, "encode")
    if med.NAME == "video":
        return _run_many(pairs, lambda src, dst: _encode_video(args, m, q, src, dst), args.quiet, "encode")

    read, close_reads = _read_ahead(pairs, lambda src: med.read(src, limit=args.max_pixels))

    def one(src, dst):
        item = read(src)
        extra, bar = _picture_effort(args, m, spec, os.path.basename(src))
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", codec.UntrainedModelWarning)
                data = codec.encode(item, model=m.name, quality=q, device=args.device, max_pixels=args.max_pixels,
                                    **extra)
        finally:
            if bar is not None:
                bar.close()
        atomic_write(dst, data, args.force)
        how = (f", effort {args.effort or m.default_effort}, {m.last_fit['seconds']:.1f} s "
               f"{'fitting' if spec.fitted else 'refining'}") if bar is not None else ""
        return (f"{src} -> {dst}: {len(data)} bytes, {med.rate(len(data), item.info):.4f} {med.RATE_UNIT} "
                f"({m.name} q{q:g}{how})")

    try:
        return _run_many(pairs, one, args.quiet, "encode")
    finally:
        close_reads()


def _encode_audio(args, m, q, src, dst) -> str:
    import codec
    from codec.api import encode_file
    from codec.media import audio as A

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", codec.UntrainedModelWarning)
        r = encode_file(src, dst, model=m.name, quality=None if args.bitrate else q, bitrate=args.bitrate,
                        device=args.device, max_samples=args.max_samples, force=args.force)
    target = ""
    if args.bitrate:
        from codec.audio_coding import parse_bitrate

        want = parse_bitrate(args.bitrate)
        target = f", target {want:g} kbps"
        from codec.api import _spec

        if r["quality"] == _spec(m.name).quality.lo and r["kbps"] > want:
            print(f"codec: note: {src}: {want:g} kbps is below this model's lowest quality "
                  f"({r['kbps']:.2f} kbps at q{r['quality']:g})", file=sys.stderr)
    return (f"{src} -> {dst}: {r['bytes']} bytes, {r['kbps']:.2f} kbps, {A.describe(r['info'])} "
            f"({m.name} q{r['quality']:g}{target})")


def _fit_bar(args, m, what, unit, postfix):
    """A bar for the fit of a model that fits itself to each item, and the callback that moves it:
    ``callback(step, total, *figures)``, ``postfix(*figures)`` the bar's text; a step below the
    bar's position starts it again (the next group of frames)."""
    bar = _frame_bar(args, m.iterations(args.effort), what, unit)

    def progress(step, total, *figures):
        if step < bar.n:
            bar.reset(total)
        bar.update(step - bar.n)
        bar.set_postfix_str(postfix(*figures), refresh=False)

    return bar, progress


def _picture_effort(args, m, spec, name):
    """``(encode keywords, bar or None)`` for one picture: ``args.effort`` for a model whose encoder
    takes one, and a bar that follows its iterations (an INR's fit, an image model's latent
    refinement) when there are any."""
    if not spec.effort:
        return {}, None
    extra = {"effort": args.effort}
    if m.iterations(args.effort) == 0:
        return extra, None
    bar, extra["progress"] = _fit_bar(args, m, f"{'fit' if spec.fitted else 'refine'} {name}", "it",
                                      lambda bpp, psnr: f"{bpp:.3f} bpp (estimate), {psnr:.2f} dB")
    return extra, bar


def _frame_bar(args, total, what, unit="frame"):
    from tqdm import tqdm

    return tqdm(total=total, desc=what, unit=unit, disable=getattr(args, "quiet", False), file=sys.stderr,
                leave=False, dynamic_ncols=True)


def _has_audio(src) -> bool:
    try:
        import av

        with av.open(src) as c:
            return bool(c.streams.audio)
    except Exception:  # noqa: BLE001 - raw .yuv, y4m, PNG folders: no audio track
        return False


def _encode_video(args, m, q, src, dst) -> str:
    import codec
    from codec.api import _spec, encode_file
    from codec.media import video as V

    raw = dict(size=args.size, fps=args.fps, pix_fmt=args.pix_fmt)
    info = V.probe(src, limit=args.max_pixels, **raw)
    if _has_audio(src):
        print(f"codec: note: {src}: its audio track is not coded (video streams hold frames only)", file=sys.stderr)
    bar = _frame_bar(args, info.frames, "encode")
    sent = [0]

    def progress(nbytes):
        sent[0] += nbytes
        bar.update(1)
        bar.set_postfix_str(f"{sent[0] / 1000:.0f} kB", refresh=False)

    fit = {}
    if _spec(m.name).fitted:  # a bar for the fit of each group of frames
        fbar, fit_progress = _fit_bar(args, m, "fit group", "epoch", lambda psnr: f"{psnr:.2f} dB (float fit)")
        fit = dict(effort=args.effort, fit_progress=fit_progress)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", codec.UntrainedModelWarning)
            r = encode_file(src, dst, model=m.name, quality=q, device=args.device, force=args.force, gop=args.gop,
                            max_pixels=args.max_pixels, progress=progress, **fit, **raw)
    finally:
        bar.close()
        if fit:
            fbar.close()
    return (f"{src} -> {dst}: {r['bytes']} bytes, {r['kbps']:.1f} kbps, "
            f"{V.bpp(r['bytes'], r['info']):.4f} bpp, {V.describe(r['info'])} ({m.name} q{r['quality']:g}, "
            f"key frame every {r['gop']})")


def _decode_video(args, data, c, src, dst) -> str:
    from fractions import Fraction

    import codec
    from codec.api import decode_file
    from codec.media import video as V
    from codec.video_coding import frame_range

    a, b = frame_range(c.media, args.frames)
    V.Writer(dst, c.media.width, c.media.height, Fraction(*c.media.fps), force=args.force)  # the output, first
    bar = _frame_bar(args, b - a, "decode")
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", codec.UntrainedModelWarning)
            r = decode_file(data, dst, device=args.device, frames=args.frames, max_pixels=args.max_pixels,
                            force=args.force, progress=lambda: bar.update(1))
    finally:
        bar.close()
    if any(issubclass(w.category, codec.UntrainedModelWarning) for w in caught):
        print(f"codec: warning: model '{c.model}' has no trained weights", file=sys.stderr)
    part = "" if r["frames"] == c.media.frames else f", frames {a}-{b - 1}"
    return f"{src} -> {dst}: {V.describe(c.media)}{part} ({c.model} q{r['quality']:g})"


def _decode_audio(args, data, c, src, dst) -> str:
    import codec
    from codec.api import decode_file
    from codec.media import audio as A

    if os.path.splitext(dst)[1].lower() not in A.WRITE_FORMATS:
        raise InputError(f"{dst}: audio decodes to {' or '.join(A.WRITE_FORMATS)} files")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", codec.UntrainedModelWarning)
        r = decode_file(data, dst, device=args.device, max_samples=args.max_samples, start=args.start,
                        duration=args.duration, force=args.force)
    if any(issubclass(w.category, codec.UntrainedModelWarning) for w in caught):
        print(f"codec: warning: model '{c.model}' has no trained weights", file=sys.stderr)
    part = "" if r["samples"] == c.media.samples else f", {r['samples'] / c.media.sample_rate:.3f} s of it"
    return f"{src} -> {dst}: {A.describe(c.media)}{part} ({c.model} q{r['quality']:g})"


def _decode(args) -> int:
    import codec
    from codec import media
    from codec.api import stream_quality
    from codec.container import unpack

    from codec.media.video import is_frame_folder

    # (one stream into an existing folder of PNG frames: that folder is the output, as for a new one)
    frames_out = len(args.inputs) == 1 and is_frame_folder(args.output) and not args.output.endswith(("/", os.sep))
    many = not frames_out and (len(args.inputs) > 1 or args.output.endswith(("/", os.sep))
                               or os.path.isdir(args.output))
    pairs = [(args.inputs[0], args.output)] if frames_out else _targets(args.inputs, args.output, "")
    if many:  # several streams into a folder: each output named after its stream, with its medium's extension
        pairs = [(src, dst + _extension_of(src)) for src, dst in pairs]
    for _, dst in pairs:
        if not frames_out:
            check_output(dst, args.force)

    def one(src, dst):
        data = read_stream(src)
        c = unpack(data)
        med = media.get(c.modality)
        if c.modality != "video" and args.frames is not None:
            raise InputError(f"{src}: --frames is for video streams")
        if c.modality == "audio":
            return _decode_audio(args, data, c, src, dst)
        if args.start is not None or args.duration is not None:
            raise InputError(f"{src}: --start and --duration are for audio streams")
        if c.modality == "video":
            return _decode_video(args, data, c, src, dst)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", codec.UntrainedModelWarning)
            out = codec.decode(data, device=args.device, output="numpy", max_pixels=args.max_pixels)
        if any(issubclass(w.category, codec.UntrainedModelWarning) for w in caught):
            print(f"codec: warning: model '{c.model}' has no trained weights", file=sys.stderr)
        atomic_write(dst, med.encode_png(med.from_user(out)), args.force)
        return f"{src} -> {dst}: {med.describe(c.media)}, {c.media.colour} ({c.model} q{stream_quality(c):g})"

    return _run_many(pairs, one, args.quiet, "decode")


def _extension_of(path) -> str:
    """What a stream decodes to: ".wav" for audio, ".y4m" for video, ".png" otherwise (also
    for what is not a stream: its error comes when it is decoded)."""
    from codec.container import unpack

    try:
        return {"audio": ".wav", "video": ".y4m"}.get(unpack(read_stream(path)).modality, ".png")
    except CodecError:
        return ".png"


MAX_STREAM_BYTES = 1 << 32


def read_stream(path) -> bytes:
    """The bytes of a stream file (:class:`InputError` for a missing, special or huge file)."""
    import stat

    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise InputError(f"no such file: {path}") from None
    if stat.S_ISDIR(st.st_mode):
        raise InputError(f"{path} is a directory, not a stream")
    if not stat.S_ISREG(st.st_mode):
        raise InputError(f"{path} is not a regular file")
    if st.st_size > MAX_STREAM_BYTES:
        raise InputError(f"{path} is {st.st_size} bytes, larger than any stream ({MAX_STREAM_BYTES})")
    with open(path, "rb") as f:
        return f.read()


def _info(args) -> int:
    import collections

    import codec

    status = 0
    for path in args.inputs:
        try:
            d = codec.info(read_stream(path))
        except (CodecError, OSError) as exc:
            msg = str(exc)
            print(f"codec: error: {msg if path in msg else f'{path}: {msg}'}", file=sys.stderr)
            status = 2
            continue
        print(f"{path}")
        if d["modality"] == "image":
            print(f"  image {d['width']}x{d['height']} {d['colour']} {d['bit_depth']}-bit")
        elif d["modality"] == "audio":
            secs = d["samples"] / d["sample_rate"]
            print(f"  audio {secs:.3f} s, {d['sample_rate']} Hz, "
                  f"{ {1: 'mono', 2: 'stereo'}.get(d['channels'], str(d['channels']) + ' channels')}, "
                  f"{d['bit_depth']}-bit source, {d['samples']} samples per channel")
        elif d["modality"] == "video":
            from codec.container import VideoInfo
            from codec.media.video import describe

            keys = sum(1 for s in d["sections"] if s["flags"] & 1)
            info = VideoInfo(d["width"], d["height"], d["frames"], tuple(d["fps"]), d["colour"], d["bit_depth"])
            print(f"  video {describe(info)}, {d['colour']} {d['bit_depth']}-bit, {keys} key frame"
                  f"{'' if keys == 1 else 's'}")
        else:
            print(f"  {d['modality']} " + ", ".join(f"{k} {d[k]}" for k in ("width", "height", "frames", "fps",
                  "sample_rate", "channels", "samples", "colour", "bit_depth") if k in d))
        print(f"  model {d['model']} quality {d['quality']:g} weights {d['weights_id']} (container v{d['version']})")
        if "decoder" in d:
            mac = d["decoder"]["macs_per_pixel"]
            if "per" in d["decoder"]:  # a network per group of frames
                print(f"  decoder: {mac['total']:.0f} MACs per pixel; {d['decoder']['parameters']} network "
                      f"parameters per {d['decoder']['per']}, coded in the stream")
            else:
                print(f"  decoder: {mac['total']:.0f} MACs per pixel (synthesis {mac['synthesis']:.0f}, entropy "
                      f"model {mac['entropy_model']:.0f}, upsampling {mac['upsampling']:.0f}); "
                      f"{d['decoder']['parameters']} network parameters, coded in the stream")
        rate = f" = {d[d['rate_unit']]:.4f} {d['rate_unit']}" if "rate_unit" in d else ""
        print(f"  {d['bytes']} bytes{rate}  (header {d['header_bytes']} bytes)")
        secs = d["sections"]
        shown = secs if args.all_sections else secs[:INFO_SECTIONS]
        for i, s in enumerate(shown):
            key = " key" if s["flags"] & 1 else ""
            where = f" [{s['index']}]" if d["modality"] != "image" else ""
            print(f"  section {i}: {s['kind']:<12}{where} {s['bytes']:>9} bytes{key}")
        if len(shown) < len(secs):
            per = collections.Counter(s["kind"] for s in secs)
            size = collections.Counter()
            for s in secs:
                size[s["kind"]] += s["bytes"]
            print(f"  ... {len(secs) - len(shown)} more sections (--all-sections lists them); in all: "
                  + ", ".join(f"{per[k]} {k} ({size[k]} bytes)" for k in per))
    return status


def _models(args) -> int:
    from codec.models.registry import DEFAULT_MODELS, MODELS, has_weights

    defaults = set(DEFAULT_MODELS.values())
    for name, spec in sorted(MODELS.items()):
        mark = "*" if name in defaults else " "
        qs = spec.quality
        if spec.fitted:
            w = "fitted to each item (no trained weights; its coding tables ship)" if has_weights(name) \
                else "fitted to each item, but its coding tables are missing"
        elif qs.continuous:
            w = "trained weights" if has_weights(name) else "NO trained weights"
        else:
            shipped = [q for q in range(qs.lo, qs.hi + 1) if has_weights(name, q)]
            w = f"trained weights for q{','.join(map(str, shipped))}" if shipped else "NO trained weights"
        print(f"{mark} {name:<16} {spec.modality}, {qs.describe()}; {w}")
        print(f"  {spec.description}")
    print("* default model of its medium (" + ", ".join(f"{k}: {v}" for k, v in DEFAULT_MODELS.items()) + ")")
    return 0


def _demo_audio(args) -> int:
    from importlib import resources

    import codec
    from codec.media import audio as med
    from codec.media.audio_metrics import mel_distance, si_sdr

    if args.output:
        med.Writer(args.output, 22050, 1, force=args.force)  # checks the name and the target first
    if args.bitrate is not None and args.quality is not None:
        raise InputError("give --quality or --bitrate, not both")
    src = resources.files("codec").joinpath("assets", "LJ001-0001.flac")
    with resources.as_file(src) as path:
        a = med.read(path)
    m, q = _load_model(args.model, args.quality, args.device, "audio")
    dev = str(next(m.parameters()).device)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", codec.UntrainedModelWarning)
        t0 = time.perf_counter()
        data = codec.encode(a, model=m.name, quality=None if args.bitrate else q, bitrate=args.bitrate, device=dev)
        t1 = time.perf_counter()
        out = codec.decode(data, device=dev)
        t2 = time.perf_counter()
    print(f"sample   LJ001-0001.flac {a.duration:.2f} s, {a.sample_rate} Hz, mono (LJ Speech)")
    print(f"model    {m.name} quality {codec.info(data)['quality']:g} on {dev}{'' if m.trained else '  [UNTRAINED]'}")
    print(f"size     {len(data)} bytes")
    print(f"kbps     {med.rate(len(data), a.info):.2f}")
    print(f"SI-SDR   {si_sdr(a, out):.2f} dB, mel distance {mel_distance(a, out):.3f}")
    print(f"time     encode {t1 - t0:.2f} s, decode {t2 - t1:.2f} s")
    if args.output:
        med.write(args.output, out, force=args.force)
        print(f"wrote    {args.output}")
    return 0


def _demo_video(args) -> int:
    from importlib import resources

    import numpy as np

    import codec
    from codec.media import video as med
    from codec.media.video_metrics import psnr_yuv

    if args.output:
        med.Writer(args.output, 320, 180, 25, force=args.force)  # checks the name and the target first
    src = resources.files("codec").joinpath("assets", "bbb-320x180.mp4")
    with resources.as_file(src) as path:
        clip = med.read(path)
        frames = np.stack(list(clip.frames))
    m, q = _load_model(args.model, args.quality, args.device, "video")
    dev = str(next(m.parameters()).device)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", codec.UntrainedModelWarning)
        t0 = time.perf_counter()
        data = codec.encode(frames, model=m.name, quality=q, fps=clip.fps, device=dev)
        t1 = time.perf_counter()
        out = codec.decode(data, device=dev, output="numpy")
        t2 = time.perf_counter()
    n = len(frames)
    info = codec.info(data)
    keys = sum(1 for s in info["sections"] if s["flags"] & 1)
    yuv = [med.rgb_to_yuv420(f) for f in frames]
    dec = [med.rgb_to_yuv420(f) for f in out]
    print(f"sample   bbb-320x180.mp4 {n} frames, 320x180, {clip.fps} fps (Big Buck Bunny, CC-BY 3.0)")
    print(f"model    {m.name} quality {q:g} on {dev}, {keys} key frame{'' if keys == 1 else 's'}"
          f"{'' if m.trained else '  [UNTRAINED]'}")
    print(f"size     {len(data)} bytes")
    print(f"kbps     {info['kbps']:.1f} ({8 * len(data) / (n * 320 * 180):.4f} bpp)")
    print(f"PSNR     {psnr_yuv(yuv, dec):.2f} dB (YUV 4:2:0, 6:1:1)")
    print(f"time     encode {n / (t1 - t0):.1f} frames/s, decode {n / (t2 - t1):.1f} frames/s")
    if args.output:
        med.write(args.output, med.Video(out, clip.fps, 320, 180, n), force=args.force)
        print(f"wrote    {args.output}")
    return 0


def _demo(args) -> int:
    from importlib import resources

    import codec

    if args.audio and args.video:
        raise InputError("give --audio or --video, not both")
    if args.effort is not None and (args.audio or args.video):
        raise InputError("--effort is for the image demo")
    if args.video:
        if args.bitrate is not None:
            raise InputError("--bitrate is for the audio demo (--audio)")
        return _demo_video(args)
    if args.audio:
        return _demo_audio(args)
    if args.bitrate is not None:
        raise InputError("--bitrate is for the audio demo (--audio)")
    from codec.media import image as med
    from codec.media.image_metrics import psnr_rgb

    if args.output:
        check_output(args.output, args.force)
    src = resources.files("codec").joinpath("assets", "kodim23.png")
    with resources.as_file(src) as path:
        pic = med.read(path)
    m, q = _load_model(args.model, args.quality, args.device)
    dev = str(next(m.parameters()).device)
    from codec.api import _spec, check_effort

    spec = _spec(m.name)
    if args.effort is not None:
        check_effort(m.name, args.effort)
    extra, bar = _picture_effort(args, m, spec, "kodim23.png")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", codec.UntrainedModelWarning)
        t0 = time.perf_counter()
        try:
            data = codec.encode(pic, model=m.name, quality=q, device=dev, **extra)
        finally:
            if bar is not None:
                bar.close()
        t1 = time.perf_counter()
        out = codec.decode(data, device=dev)
        t2 = time.perf_counter()
    h, w = pic.rgb.shape[:2]
    print(f"sample   kodim23.png {w}x{h} (Kodak)")
    effort = f", effort {args.effort or m.default_effort}" if spec.effort else ""
    print(f"model    {m.name} quality {q:g}{effort} on {dev}{'' if m.trained else '  [UNTRAINED]'}")
    print(f"size     {len(data)} bytes")
    print(f"bpp      {med.rate(len(data), pic.info):.4f}")
    print(f"PSNR     {psnr_rgb(pic.rgb, out):.2f} dB (RGB, 8-bit)")
    print(f"time     encode {t1 - t0:.2f} s, decode {t2 - t1:.2f} s")
    if args.output:
        atomic_write(args.output, med.encode_png(med.Picture(out)), args.force)
        print(f"wrote    {args.output}")
    return 0


def _selftest(args) -> int:
    import numpy as np
    import torch

    from codec import entropy

    if args.symbols < 0:
        raise ValueError("--symbols must be >= 0")
    tables = entropy.gaussian_tables()
    rng = np.random.default_rng(args.seed)
    idx = torch.from_numpy(rng.integers(0, tables.num_rows, args.symbols)).int()
    sym = entropy.sample_symbols(tables, idx, seed=args.seed)
    t0 = time.perf_counter()
    data = entropy.encode(sym, idx, tables)
    t1 = time.perf_counter()
    out = entropy.decode(data, idx, tables)
    t2 = time.perf_counter()
    ok = bool(torch.equal(out, sym.to(out.dtype)))
    ideal = entropy.ideal_bits(sym, idx, tables) / 8
    n = max(args.symbols, 1)
    print(f"symbols        {args.symbols}")
    print(f"stream bytes   {len(data)}  (ideal {ideal:.0f}, overhead {100 * (len(data) / max(ideal, 1) - 1):.2f}%)")
    print(f"encode         {n / (t1 - t0) / 1e6:.1f} M symbols/s")
    print(f"decode         {n / (t2 - t1) / 1e6:.1f} M symbols/s")
    print(f"round trip     {'exact' if ok else 'MISMATCH'}")
    return 0 if ok else 1
