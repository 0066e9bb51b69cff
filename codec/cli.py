"""The ``codec`` command line.

Sub-commands live where their code lives.  ``codec`` itself owns ``encode``, ``decode``,
``info``, ``models``, ``demo`` and ``selftest`` (``codec/commands.py``); packages that build on it (``codec.tools``,
``codec.training``) register further sub-commands through the entry-point group
``codec.commands`` in ``pyproject.toml``.  This keeps the dependency direction one
way: ``codec`` never imports ``codec.tools`` or ``codec.training`` by name.

A sub-command module exposes ``register(subparsers)`` that adds its parser and sets
``func=callable(args) -> int`` on it.

User mistakes raise :class:`CodecError` (and the OS's ``OSError`` for files); the CLI
prints one line ``codec: error: ...`` and exits 2.
"""
from __future__ import annotations

import argparse
import sys
from importlib import metadata

from codec.errors import CodecError

BUILTIN = ("codec.commands",)


def _plugins():
    try:
        eps = metadata.entry_points(group="codec.commands")
    except TypeError:  # pragma: no cover - Python < 3.10
        eps = metadata.entry_points().get("codec.commands", [])
    return sorted(eps, key=lambda e: e.name)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="codec",
        description="Neural media codec: learned compression to real, bit-exact bitstreams "
        "that decode on any device.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    from codec import __version__

    parser.add_argument("--version", action="version", version=f"codec {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    import importlib

    for modname in BUILTIN:
        importlib.import_module(modname).register(sub)
    for ep in _plugins():
        try:
            register = ep.load()
        except Exception as exc:  # a broken plug-in must not take the CLI down
            print(f"codec: warning: sub-command '{ep.name}' unavailable: {exc}", file=sys.stderr)
            continue
        register(sub)
    return parser


def main(argv=None) -> int:
    import warnings

    # compressai scripts a few functions at import; torch deprecates that. Not the user's concern.
    warnings.filterwarnings("ignore", message=".*torch.jit.script.*", category=FutureWarning)
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("codec: interrupted", file=sys.stderr)
        return 130
    except (CodecError, OSError, ValueError) as exc:
        msg = str(exc) or exc.__class__.__name__
        if isinstance(exc, OSError) and exc.filename and str(exc.filename) not in msg:
            msg = f"{msg}: {exc.filename}"
        print(f"codec: error: {msg}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
