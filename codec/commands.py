"""Sub-commands owned by the ``codec`` package: encode, decode, info, models, demo, selftest."""
from __future__ import annotations

import os
import sys
import time
import warnings

from codec.errors import CodecError
from codec.fileio import atomic_write, check_output, read_image_file

STREAM_EXT = ".nmc"


def register(sub) -> None:
    p = sub.add_parser(
        "encode", help="compress images to .nmc streams",
        description="Compress images (PNG, JPEG and every other format Pillow reads) to .nmc streams. "
        "One input: OUTPUT is the stream file. Several inputs (or OUTPUT ending in '/' or an existing "
        "directory): OUTPUT is a directory and each stream is named after its input (NAME.nmc).")
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="image files")
    p.add_argument("-o", "--output", required=True, help="output stream file, or directory for several inputs")
    p.add_argument("--model", default=None, help="model name (see 'codec models'; default: the best shipped one)")
    p.add_argument("--quality", type=float, default=None,
                   help="quality of the model, higher = more bits: a whole number for fixed-rate models, any value "
                        "in the range (steps of 0.01) for variable-rate ones (see 'codec models'; default: the "
                        "model's default)")
    _common(p)
    p.set_defaults(func=_encode)

    p = sub.add_parser(
        "decode", help="decompress .nmc streams to PNG",
        description="Decompress .nmc streams to 8-bit PNG images. One input: OUTPUT is the PNG file. "
        "Several inputs (or OUTPUT ending in '/' or an existing directory): OUTPUT is a directory and each "
        "image is named after its stream (NAME.png).")
    p.add_argument("inputs", nargs="+", metavar="INPUT", help=".nmc stream files")
    p.add_argument("-o", "--output", required=True, help="output PNG file, or directory for several inputs")
    _common(p)
    p.set_defaults(func=_decode)

    p = sub.add_parser("info", help="print what a stream contains",
                       description="Print the model, weights, picture size, sections and bytes of .nmc streams.")
    p.add_argument("inputs", nargs="+", metavar="FILE")
    p.set_defaults(func=_info)

    p = sub.add_parser("models", help="list the models and whether trained weights ship",
                       description="List the registered models, their quality levels and shipped weights.")
    p.set_defaults(func=_models)

    p = sub.add_parser(
        "demo", help="encode and decode the bundled sample image; print size, bpp and PSNR",
        description="Encode and decode the sample image shipped with the package (Kodak kodim23, 768x512) "
        "with the default model, and print the stream size, bits per pixel and PSNR.")
    p.add_argument("--model", default=None, help="model name (default: the best shipped one)")
    p.add_argument("--quality", type=float, default=None, help="quality (see 'codec encode --help')")
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when present)")
    p.add_argument("-o", "--output", default=None, help="also write the decoded image to this PNG")
    p.add_argument("--force", action="store_true", help="overwrite --output if it exists")
    p.set_defaults(func=_demo)

    p = sub.add_parser(
        "selftest", help="round-trip random symbols through the entropy coder and print the figures",
        description="Encode and decode random symbols drawn from the Gaussian table family "
        "with the CPU rANS coder; prints size, ideal size and throughput.")
    p.add_argument("--symbols", type=int, default=200_000, help="number of symbols (default 200000)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_selftest)


def _common(p):
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when present)")
    p.add_argument("--force", action="store_true", help="overwrite existing output files")
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


def _warn_untrained(model_name, quality, device):
    """(model, quality as the model takes it); a warning on stderr for an untrained model."""
    import codec
    from codec.api import resolve

    name, q = resolve(model_name, quality)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", codec.UntrainedModelWarning)
        m = codec.load_model(name, q, device)
    if not m.trained:
        what = f"model '{m.name}'" + ("" if m.variable_rate else f" quality {q}")
        print(f"codec: warning: {what} has no trained weights "
              "(random initialisation): its output is not meaningful", file=sys.stderr)
    return m, q


def _encode(args) -> int:
    import codec

    pairs = _targets(args.inputs, args.output, STREAM_EXT)
    for _, dst in pairs:
        check_output(dst, args.force)
    m, q = _warn_untrained(args.model, args.quality, args.device)

    def one(src, dst):
        img = read_image_file(src)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", codec.UntrainedModelWarning)
            data = codec.encode(img, model=m.name, quality=q, device=args.device)
        atomic_write(dst, data, args.force)
        w, h = img.size
        return f"{src} -> {dst}: {len(data)} bytes, {8 * len(data) / (w * h):.4f} bpp ({m.name} q{q:g})"

    return _run_many(pairs, one, args.quiet, "encode")


def _decode(args) -> int:
    import io

    import codec
    from codec.api import stream_quality
    from codec.container import unpack

    pairs = _targets(args.inputs, args.output, ".png")
    for _, dst in pairs:
        check_output(dst, args.force)

    def one(src, dst):
        with open(src, "rb") as f:
            data = f.read()
        c = unpack(data)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", codec.UntrainedModelWarning)
            img = codec.decode(data, device=args.device, output="pil")
        if any(issubclass(w.category, codec.UntrainedModelWarning) for w in caught):
            print(f"codec: warning: model '{c.model}' has no trained weights", file=sys.stderr)
        buf = io.BytesIO()
        img.save(buf, format="PNG")
        atomic_write(dst, buf.getvalue(), args.force)
        return f"{src} -> {dst}: {img.size[0]}x{img.size[1]} {c.colour} ({c.model} q{stream_quality(c):g})"

    return _run_many(pairs, one, args.quiet, "decode")


def _info(args) -> int:
    import codec

    status = 0
    for path in args.inputs:
        try:
            with open(path, "rb") as f:
                d = codec.info(f.read())
        except (CodecError, OSError) as exc:
            print(f"codec: error: {path}: {exc}", file=sys.stderr)
            status = 2
            continue
        print(f"{path}")
        print(f"  {d['modality']} {d['width']}x{d['height']} {d['colour']} {d['bit_depth']}-bit")
        print(f"  model {d['model']} quality {d['quality']:g} weights {d['weights_id']}")
        print(f"  {d['bytes']} bytes = {d['bpp']:.4f} bpp  (header {d['header_bytes']} bytes)")
        for i, s in enumerate(d["sections"]):
            print(f"  section {i}: {s['kind']:<12} {s['bytes']:>9} bytes")
    return status


def _models(args) -> int:
    from codec.models.registry import DEFAULT_MODEL, MODELS, has_weights

    for name, spec in sorted(MODELS.items()):
        mark = "*" if name == DEFAULT_MODEL else " "
        lo, hi = spec.qualities[0], spec.qualities[-1]
        if spec.variable_rate:
            w = "trained weights" if has_weights(name) else "NO trained weights"
            print(f"{mark} {name:<16} quality {lo}..{hi}, any value (steps of 0.01) "
                  f"(default {spec.default_quality}); {w}")
        else:
            shipped = [q for q in spec.qualities if has_weights(name, q)]
            w = f"trained weights for q{','.join(map(str, shipped))}" if shipped else "NO trained weights"
            print(f"{mark} {name:<16} qualities {lo}..{hi} (default {spec.default_quality}); {w}")
        print(f"  {spec.description}")
    print("* default model")
    return 0


def _demo(args) -> int:
    from importlib import resources

    import numpy as np
    from PIL import Image

    import codec

    if args.output:
        check_output(args.output, args.force)
    src = resources.files("codec").joinpath("assets", "kodim23.png")
    with resources.as_file(src) as path:
        img = Image.open(path)
        img.load()
    m, q = _warn_untrained(args.model, args.quality, args.device)
    dev = str(next(m.parameters()).device)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", codec.UntrainedModelWarning)
        t0 = time.perf_counter()
        data = codec.encode(img, model=m.name, quality=q, device=dev)
        t1 = time.perf_counter()
        out = codec.decode(data, device=dev)
        t2 = time.perf_counter()
    ref = np.asarray(img.convert("RGB")).astype(np.float64)
    mse = np.mean((ref - out.astype(np.float64)) ** 2)
    psnr = 10 * np.log10(255.0 ** 2 / mse) if mse > 0 else float("inf")
    w, h = img.size
    print(f"sample   kodim23.png {w}x{h} (Kodak)")
    print(f"model    {m.name} quality {q:g} on {dev}{'' if m.trained else '  [UNTRAINED]'}")
    print(f"size     {len(data)} bytes")
    print(f"bpp      {8 * len(data) / (w * h):.4f}")
    print(f"PSNR     {psnr:.2f} dB (RGB, 8-bit)")
    print(f"time     encode {t1 - t0:.2f} s, decode {t2 - t1:.2f} s")
    if args.output:
        import io

        buf = io.BytesIO()
        Image.fromarray(out).save(buf, format="PNG")
        atomic_write(args.output, buf.getvalue(), args.force)
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
