"""Regenerate the golden rANS streams (only when the format version changes on purpose).

    python tests/golden/make_golden.py

Writes the tables (*.safetensors), inputs (*.npz) and streams (*.rans) beside this
file.  tests/test_entropy_golden.py checks that today's coder writes exactly these bytes.
"""
from __future__ import annotations

import pathlib

import numpy as np

HERE = pathlib.Path(__file__).resolve().parent


def cases():
    """name -> (tables, symbols int32, table_index int32, layout or None); deterministic."""
    from codec import entropy as E
    from codec.entropy.rans import Layout

    rng = np.random.default_rng(20261123)
    g = E.gaussian_tables(E.default_scale_table(max_scale=24.0, levels=12))
    lap = E.laplace_tables(E.default_scale_table(max_scale=8.0, levels=6))
    cat = E.categorical_tables(rng.dirichlet(np.ones(37) * 0.3, size=3))
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


def main():
    from codec.entropy import rans

    for name, (tables, sym, idx, layout) in cases().items():
        tables.save(HERE / f"tables_{tables.family}.safetensors")
        np.savez_compressed(HERE / f"{name}.npz", symbols=sym, table_index=idx)
        (HERE / f"{name}.rans").write_bytes(rans.encode_many([(sym, idx)], tables, [layout])[0])
        print(name, (HERE / f"{name}.rans").stat().st_size, "bytes")


if __name__ == "__main__":
    main()
