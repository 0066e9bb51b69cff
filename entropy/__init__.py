"""codec.entropy: quantised CDF tables and the lane-interleaved rANS coder.

Imports nothing else of ours.  The byte format is specified in ``FORMAT.md``
beside this file.

>>> from codec import entropy
>>> t = entropy.gaussian_tables()             # 64 scale levels
>>> data = entropy.encode(symbols, levels, t)  # symbols, levels: int tensors, same numel
>>> entropy.decode(data, levels, t)           # int32 tensor shaped like levels
"""
from .coder import decode, decode_batch, encode, encode_batch, ideal_bits, sample_symbols
from .rans import CorruptStreamError, StreamError, TableMismatchError, parse_header
from .tables import (
    PRECISION,
    CDFTables,
    TableError,
    categorical_tables,
    default_scale_table,
    factorized_tables,
    factorized_tables_from_bottleneck,
    gaussian_tables,
    laplace_tables,
    quantize_pmf,
    tables_from_pmf,
)

__all__ = [
    "PRECISION", "CDFTables", "TableError", "StreamError", "CorruptStreamError", "TableMismatchError",
    "encode", "decode", "encode_batch", "decode_batch", "ideal_bits", "sample_symbols", "parse_header",
    "gaussian_tables", "laplace_tables", "categorical_tables", "factorized_tables",
    "factorized_tables_from_bottleneck", "default_scale_table",
    "quantize_pmf", "tables_from_pmf",
]
