"""Regenerate the golden rANS streams of the current format version (only when it changes on purpose).

    python tests/golden/make_golden.py [--rebuild-tables]

Writes the inputs (*.npz) and streams (*.rans) beside this file, and the tables
(*.safetensors).  The stored tables are kept unless ``--rebuild-tables`` is given: they
were built by the table builders of the format's first release (scipy-based, since
replaced by the deterministic ones, which differ from them by one count in a few
entries), and the streams pin the coder, not the builders (those are pinned by their
ids in tests/test_entropy_golden.py).  tests/test_entropy_golden.py checks that today's
coder writes exactly these bytes.  The ``*_v1.rans`` streams beside them were written by
the version 1 coder (the same inputs) and are never regenerated: they pin that old streams
still decode, and that the version 1 writer, which a test still uses, is unchanged.
"""
from __future__ import annotations

import argparse
import pathlib

import numpy as np

HERE = pathlib.Path(__file__).resolve().parent


def cases(rebuild_tables: bool = False):
    """name -> (tables, symbols int32, table_index int32, layout or None); deterministic.

    Uses the stored ``tables_<family>.safetensors`` where they exist (unless
    ``rebuild_tables``), the builders otherwise."""
    from codec import entropy as E
    from codec.entropy.rans import Layout

    def stored(built):
        path = HERE / f"tables_{built.family}.safetensors"
        return built if rebuild_tables or not path.exists() else E.CDFTables.load(path)

    rng = np.random.default_rng(20261123)
    g = stored(E.gaussian_tables(E.default_scale_table(max_scale=24.0, levels=12)))
    lap = stored(E.laplace_tables(E.default_scale_table(max_scale=8.0, levels=6)))
    cat = stored(E.categorical_tables(rng.dirichlet(np.ones(37) * 0.3, size=3)))
    out = {}
    idx = rng.integers(0, g.num_rows, (3, 17, 23)).astype(np.int32)
    sym = E.sample_symbols(g, idx, seed=1).numpy()
    sym.flat[::97] += 4000  # force escapes, above and below the rows' ranges
    sym.flat[5::101] -= 70000
    out["gaussian"] = (g, sym, idx, None)
    idx = rng.integers(0, lap.num_rows, 3000).astype(np.int32)
    out["laplace_3_segments"] = (lap, E.sample_symbols(lap, idx, seed=2).numpy(), idx, Layout(64, 16, 3))
    idx = rng.integers(0, 3, (8, 8)).astype(np.int32)
    out["categorical"] = (cat, E.sample_symbols(cat, idx, seed=3).numpy().clip(0, 36), idx, None)
    out["empty"] = (g, np.zeros((0, 4), np.int32), np.zeros((0, 4), np.int32), None)
    return out


def main(argv=None):
    from codec.entropy import rans

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rebuild-tables", action="store_true", help="rebuild the tables with today's builders")
    args = ap.parse_args(argv)
    for name, (tables, sym, idx, layout) in cases(args.rebuild_tables).items():
        from safetensors.torch import save_file

        from codec.fileio import atomic_path

        with atomic_path(HERE / f"tables_{tables.family}.safetensors", force=True) as tmp:
            save_file(tables.state_dict(), tmp, metadata=tables.file_metadata())
        np.savez_compressed(HERE / f"{name}.npz", symbols=sym, table_index=idx)
        (HERE / f"{name}.rans").write_bytes(rans.encode_many([(sym, idx)], tables, [layout])[0])
        print(name, (HERE / f"{name}.rans").stat().st_size, "bytes")


if __name__ == "__main__":
    main()
