"""``codec train`` and ``codec export`` (registered through the ``codec.commands`` entry points).

``python -m codec.training`` (and ``torchrun ... -m codec.training``) takes the same
arguments as ``codec train``.  Nothing heavy is imported until a command runs.
"""
from __future__ import annotations

import argparse
import json
import sys

TRAIN_EPILOG = """\
examples:
  codec train --config training/configs/cpu-smoke.json
  codec train --config mean-scale-q4 --set data.batch_size=8 --set run.steps=100000
  codec train --config mean-scale-q4 --resume auto          # continue OUT/last.pt if there is one
  codec train --resume runs/mean-scale-q4/last.pt            # the checkpoint's own config
  torchrun --nproc_per_node 4 -m codec.training --config mean-scale-q4
"""


def add_train_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", metavar="FILE",
                   help="JSON or TOML config, or the name of one in training/configs (e.g. mean-scale-q4); "
                   "optional with --resume CHECKPOINT (the checkpoint's config is used)")
    p.add_argument("--set", action="append", default=[], metavar="SECTION.FIELD=VALUE", dest="overrides",
                   help="override a config field, repeatable (value as JSON, else a string): "
                   "--set run.steps=1000 --set data.train='[\"a\",\"b\"]'")
    p.add_argument("--out", metavar="DIR", help="run folder (same as --set run.out=DIR)")
    p.add_argument("--resume", metavar="CHECKPOINT",
                   help="continue from a checkpoint (model, optimisers, schedule, step, RNG): a .pt file, a run "
                   "folder, or 'auto' (OUT/last.pt if it exists, else start)")
    p.add_argument("--stop-at", type=int, metavar="STEP",
                   help="save last.pt and stop at this step (the schedule still runs to run.steps)")
    p.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar or messages")


def config_from_args(args):
    from codec.training.checkpoint import load_checkpoint, task_of
    from codec.training.config import load_config

    overrides = list(args.overrides)
    if args.out:
        overrides.append(f"run.out={json.dumps(args.out)}")
    if args.config:
        return load_config(args.config, overrides)
    if args.resume and args.resume != "auto":
        ck = load_checkpoint(args.resume)
        if task_of(ck) != "image-rd":
            raise ValueError(f"{ck['path']} is a checkpoint of task '{task_of(ck)}': 'codec train' trains "
                             "image models (resume that task from Python: codec.training.loop.run_task)")
        return load_config(None, overrides, base=ck["config"])
    raise ValueError("give --config FILE (or --resume CHECKPOINT to continue a run with its own config)")


def run_train(args) -> int:
    import warnings

    warnings.filterwarnings("ignore", message=".*torch.jit.script.*", category=FutureWarning)
    cfg = config_from_args(args)
    if args.print_config:
        print(json.dumps(cfg.resolved(), indent=2))
        return 0
    from codec.training.tasks import train

    res = train(cfg, resume=args.resume, stop_at=args.stop_at, quiet=args.quiet)
    if res.model is not None and not args.quiet and int(__import__("os").environ.get("RANK", "0")) == 0:
        t = res.train or {}
        rate = next((k for k in ("bpp", "kbps") if k in t), None)  # (a VQ tokenizer trains without a rate)
        msg = f"step {res.step}" + (f": loss {t['loss']:.4f}" + (f", {t[rate]:.4f} {rate}" if rate else "") if t else "")
        if res.val and "psnr" in res.val:
            msg += f"; validation (real coding) {res.val['bpp']:.4f} bpp, {res.val['psnr']:.2f} dB"
        elif res.val:
            msg += f"; validation (real coding) {res.val['kbps']:.2f} kbps, mel distance {res.val['mel']:.3f}"
        if res.best.get("step") is not None:
            msg += f"; best at step {res.best['step']}"
        print(f"{msg}; checkpoints in {res.out}")
    return 130 if res.interrupted else 0


def _arch_overrides(items) -> dict:
    out = {}
    for it in items:
        k, sep, v = it.partition("=")
        try:
            out[k.strip()] = int(v)
        except ValueError:
            sep = ""
        if not sep or not k.strip():
            raise ValueError(f"--arch takes KEY=INTEGER, not {it!r}")
    return out


def run_export(args) -> int:
    import warnings

    warnings.filterwarnings("ignore", message=".*torch.jit.script.*", category=FutureWarning)
    from codec.training.export import export, export_tables, export_video

    if args.arch and (args.tables is not None or args.video is not None):
        raise ValueError("--arch is for a registry model's checkpoint (not with --tables or --video)")
    if args.tables is not None:
        if args.checkpoint is not None or args.video is not None or args.quality is not None or args.half:
            raise ValueError("--tables takes no CHECKPOINT, --video, --quality or --half")
        s = export_tables(args.tables, output=args.output, install=args.install, force=args.force)
    elif args.checkpoint is None:
        raise ValueError("give a CHECKPOINT (or --tables NAME)")
    elif args.video is not None:
        if args.quality is not None:
            raise ValueError("--video takes no --quality (a video model has variable rate)")
        s = export_video(args.checkpoint, intra=args.intra, name=args.video, output=args.output,
                         install=args.install, force=args.force, half=args.half)
    elif args.intra is not None:
        raise ValueError("--intra is for --video")
    else:
        s = export(args.checkpoint, output=args.output, half=args.half, quality=args.quality,
                   install=args.install, force=args.force, arch_kwargs=_arch_overrides(args.arch))
    vr = s.get("variable_rate", False)
    what = "variable rate" if vr else f"quality {s['quality']}"
    print(f"{s['path']}: model '{s['name']}' {what} {s['arch_kwargs']}, {s['dtype']}, "
          f"step {s['step']}, {s['file_bytes'] / 1e6:.2f} MB, weights {s['weights_id']}")
    call = f"load_model('{s['name']}')" if vr else f"load_model('{s['name']}', {s['quality']})"
    thing = "sound" if "kbps" in s["test"] else "clip" if "frames" in s["test"] else "picture"
    print(f"check: test {thing} coded at quality {s['quality']:g} to {s['test']}, repeatably"
          + (f"; installed: {call} uses it" if s["installed"] else ""))
    return 0


def register_train(sub) -> None:
    p = sub.add_parser(
        "train", help="rate-distortion training of an image model (see also torchrun -m codec.training)",
        description="Train a registry model with loss lambda*255^2*MSE + bpp (or lambda*(1-MS-SSIM) + bpp) on "
        "random crops of a folder of images; validate with real coding (bytes); write OUT/config.json, "
        "last.pt, best.pt, train.csv, val.csv. Under torchrun: DistributedDataParallel (NCCL on GPUs, gloo "
        "on CPUs).", formatter_class=argparse.RawDescriptionHelpFormatter, epilog=TRAIN_EPILOG)
    add_train_arguments(p)
    p.set_defaults(func=run_train)


def register_export(sub) -> None:
    p = sub.add_parser(
        "export", help="freeze a training checkpoint into coding weights (safetensors)",
        description="Freeze a checkpoint for coding: CDF tables, integer index path, fp32 or fp16 weights and "
        "metadata in NAME-qQ.safetensors (NAME.safetensors for a variable-rate model), loadable with "
        "codec.models.registry.load_model(NAME, Q, path=...). --install puts it where load_model(NAME, Q) and "
        "'codec encode' find it.")
    p.add_argument("checkpoint", metavar="CHECKPOINT", nargs="?", default=None,
                   help="a .pt checkpoint, or a run folder (its best.pt), or an exported weights file "
                        "(.safetensors, e.g. to store it again with --half)")
    p.add_argument("-o", "--output", help="output file or folder (default: beside the checkpoint)")
    p.add_argument("--half", action="store_true", help="store the float weights as fp16 (half the size)")
    p.add_argument("--quality", type=int, help="quality to register it as (default: the config's; not for "
                   "variable-rate models)")
    p.add_argument("--install", action="store_true",
                   help="write into the package's weights folder under the stable name NAME-qQ (NAME for a "
                        "variable-rate model)")
    p.add_argument("--force", action="store_true", help="replace an existing file")
    p.add_argument("--arch", metavar="KEY=VALUE", action="append", default=[],
                   help="change an integer architecture kwarg that adds or drops no weights, repeatable "
                        "(e.g. energy=1: an audio model's band-energy correction); the checkpoint's weights "
                        "must load into the result unchanged")
    p.add_argument("--video", metavar="NAME", default=None,
                   help="write video model NAME (e.g. video-ip) instead: CHECKPOINT is its P-frame residual "
                        "coder (a run of an image model on residual pictures, or an image weights file)")
    p.add_argument("--intra", metavar="WEIGHTS", default=None,
                   help="with --video: the I-frame coder's image weights (default: the installed mean-scale-vr)")
    p.add_argument("--tables", metavar="NAME", default=None,
                   help="write the coding tables of model NAME, one that fits itself to each item (inr-image): "
                        "its only stored state (no CHECKPOINT)")
    p.set_defaults(func=run_export)


def main(argv=None) -> int:
    """``python -m codec.training``: the arguments of ``codec train``."""
    p = argparse.ArgumentParser(prog="python -m codec.training", description="Rate-distortion training "
                                "(same arguments as 'codec train').",
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=TRAIN_EPILOG)
    add_train_arguments(p)
    args = p.parse_args(argv)
    try:
        return run_train(args)
    except KeyboardInterrupt:
        print("codec train: interrupted", file=sys.stderr)
        return 130
    except (ValueError, FileNotFoundError) as exc:
        print(f"codec train: error: {exc}", file=sys.stderr)
        return 2
