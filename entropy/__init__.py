"""codec.entropy: quantised CDF tables and the lane-interleaved rANS coder.

Imports nothing else of ours.  The byte format is specified in ``FORMAT.md``
beside this file and implemented by ``codec.entropy.format``.

>>> from codec import entropy
>>> t = entropy.gaussian_tables()             # 64 scale levels
>>> data = entropy.encode(symbols, levels, t)  # symbols, levels: int tensors, same numel
>>> entropy.decode(data, levels, t)           # int32 tensor shaped like levels

The names below are imported on first use (PEP 562), so that ``import
codec.entropy.errors`` (or ``.tables``) does not import torch.
"""
from __future__ import annotations

import importlib

# name -> submodule that defines it
_EXPORTS = {
    "CodecError": "errors", "TableError": "errors", "StreamError": "errors",
    "CorruptStreamError": "errors", "TableMismatchError": "errors",
    "encode": "coder", "decode": "coder", "encode_batch": "coder", "decode_batch": "coder",
    "ideal_bits": "coder", "sample_symbols": "coder",
    "parse_header": "format",
    "PRECISION": "tables", "CDFTables": "tables", "categorical_tables": "tables", "concat_tables": "tables",
    "default_scale_table": "tables", "factorized_tables": "tables", "gaussian_tables": "tables",
    "laplace_tables": "tables", "quantize_pmf": "tables", "tables_from_pmf": "tables",
    "encode_sequential": "sequential", "decode_sequential": "sequential", "SequentialDecoder": "sequential",
}
#: reachable as attributes without importing them first (``rans_triton`` is not: it imports
#: Triton; ``from codec.entropy import rans_triton`` where it is wanted)
_SUBMODULES = ("coder", "errors", "format", "numerics", "rans", "sequential", "tables")

__all__ = [
    "CodecError", "PRECISION", "CDFTables", "TableError", "StreamError", "CorruptStreamError",
    "TableMismatchError", "encode", "decode", "encode_batch", "decode_batch", "ideal_bits", "sample_symbols",
    "parse_header", "gaussian_tables", "laplace_tables", "categorical_tables", "concat_tables", "factorized_tables",
    "default_scale_table", "quantize_pmf", "tables_from_pmf", "encode_sequential", "decode_sequential",
    "SequentialDecoder",
]


def __getattr__(name: str):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    elif name in _SUBMODULES:  # ``entropy.rans`` etc. without importing them first
        value = importlib.import_module(f"{__name__}.{name}")
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__) | set(_SUBMODULES))
