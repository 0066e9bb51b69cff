"""Side-by-side crops of one picture as each codec of a results folder codes it at about the
same rate: the picture for a report where numbers hide what the artefacts look like.

    python -m codec.tools.crops RESULTS_DIR --data DATASET_DIR --image kodim23.png \\
        --bpp 0.03 --box 300,100,256,192 -o crops.png

For every results file (``codec eval`` output) that has the picture, the quality whose
measured rate on that picture is nearest to ``--bpp`` is coded again with the same codec and
settings (an ``ours`` codec at the effort its results record), decoded, and the box cut out;
the tiles (the original first) are labelled with the codec, the rate from the bytes and the
PSNR of the whole picture, and written as one PNG.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np


def codec_of(results: dict):
    """The codec (and a label) that wrote ``results``: a classical codec by its key, ours by
    the model and effort its settings record."""
    from codec.tools.registry import make_codec

    meta = results.get("meta", {})
    settings = meta.get("settings", {})
    if "model" in settings:
        codec, _ = make_codec(f"ours:{settings['model']}")
        effort = settings.get("effort")
        if effort and hasattr(codec, "effort"):
            codec.effort = effort.split(":")[0]
    else:
        codec, _ = make_codec(meta["codec"])
    return codec, results.get("name", meta.get("codec", "?"))


def nearest_quality(results: dict, image: str, bpp: float):
    """(quality, its bpp on ``image``) of the point nearest to ``bpp`` (log scale), or None."""
    per = results.get("per_image", {}).get(image)
    if not per:
        return None
    rates = np.asarray(per["bpp"], dtype=float)
    i = int(np.argmin(np.abs(np.log(rates / bpp))))
    return results["results"]["quality"][i], float(rates[i])


def tiles(files, data_dir: Path, image: str, bpp: float, box, codecs=None) -> tuple:
    """(the crop of the original, [(label, crop)]) for the results ``files``."""
    from codec.media import image as imgmod
    from codec.media.image_metrics import psnr_rgb

    ref = imgmod.read(data_dir / image).rgb
    x, y, w, h = box
    H, W = ref.shape[:2]
    if x < 0 or y < 0 or w < 1 or h < 1 or x + w > W or y + h > H:
        raise ValueError(f"--box {x},{y},{w},{h} is outside the {W}x{H} picture")
    out = []
    for f in files:
        res = json.loads(Path(f).read_text())
        key = res.get("meta", {}).get("codec", Path(f).stem)
        if codecs and key not in codecs and Path(f).stem not in codecs:
            continue
        pick = nearest_quality(res, image, bpp)
        if pick is None:
            continue
        codec, name = codec_of(res)
        q, _ = pick
        data = codec.encode(ref, q)
        rec = codec.decode(data, ref)
        rate = 8 * len(data) / (W * H)
        out.append((f"{name}\n{rate:.4f} bpp, {psnr_rgb(ref, rec):.2f} dB", rec[y:y + h, x:x + w], rate))
    out.sort(key=lambda t: t[2])
    return ref[y:y + h, x:x + w], [(label, crop) for label, crop, _ in out]


def compose(original, labelled, columns: int = 4, label_height: int = 34):
    """One RGB array: the original crop, then each labelled crop, in rows of ``columns``."""
    from PIL import Image, ImageDraw

    h, w = original.shape[:2]
    items = [("original", original)] + list(labelled)
    rows = -(-len(items) // columns)
    canvas = Image.new("RGB", (columns * w, rows * (h + label_height)), "white")
    draw = ImageDraw.Draw(canvas)
    for i, (label, crop) in enumerate(items):
        r, c = divmod(i, columns)
        canvas.paste(Image.fromarray(np.ascontiguousarray(crop)), (c * w, r * (h + label_height)))
        draw.multiline_text((c * w + 4, r * (h + label_height) + h + 2), label, fill="black", spacing=2)
    return np.asarray(canvas)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m codec.tools.crops", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("results", nargs="+", help="codec eval results folders or JSON files")
    p.add_argument("--data", required=True, help="the folder of the evaluated pictures")
    p.add_argument("--image", required=True, help="the picture's file name in the results (e.g. kodim23.png)")
    p.add_argument("--bpp", type=float, required=True, help="the rate to show every codec at (nearest point)")
    p.add_argument("--box", required=True, help="X,Y,W,H of the crop in pixels")
    p.add_argument("--codec", action="append", help="only these codecs (results file stems; repeatable)")
    p.add_argument("--columns", type=int, default=4)
    p.add_argument("-o", "--output", required=True, help="PNG to write")
    p.add_argument("--force", action="store_true", help="replace an existing output")
    args = p.parse_args(argv)
    from codec.errors import CodecError
    from codec.fileio import atomic_path

    try:
        box = tuple(int(v) for v in args.box.split(","))
        if len(box) != 4:
            raise ValueError
    except ValueError:
        print(f"crops: error: --box takes X,Y,W,H (four whole numbers), not {args.box!r}", file=sys.stderr)
        return 2
    out = Path(args.output)
    files = []
    for r in args.results:
        files += sorted(Path(r).glob("*.json")) if Path(r).is_dir() else [Path(r)]
    try:
        original, labelled = tiles(files, Path(args.data), args.image, args.bpp, box, args.codec)
    except (ValueError, CodecError, OSError) as exc:
        print(f"crops: error: {exc}", file=sys.stderr)
        return 2
    if not labelled:
        print(f"crops: error: no results file has {args.image}", file=sys.stderr)
        return 2
    from PIL import Image

    try:
        with atomic_path(out, force=args.force) as tmp:
            Image.fromarray(compose(original, labelled, args.columns)).save(tmp, format="PNG")
    except CodecError as exc:  # (an existing output without --force)
        print(f"crops: error: {exc}", file=sys.stderr)
        return 2
    print(f"{out}: {len(labelled)} codecs at about {args.bpp:g} bpp, crop {box[2]}x{box[3]} at ({box[0]}, {box[1]})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
