"""Benchmark: our CPU rANS coder against CompressAI's ``compressai.ans`` on the same symbols.

    python -m codec.tools.bench_entropy [--repeat 5]

Both coders get the same symbols, table indexes and the same quantised tables (ours,
handed to CompressAI in its ``cdfs / cdf_lengths / offsets`` form; both code escapes).
Times are the best of ``--repeat`` runs of each public call as a user makes it: for
CompressAI that includes turning tensors into the Python lists its API takes and the
decoded list back into a tensor.  Prints symbols/s, the ratio ours/CompressAI (> 1
means we are faster) and the stream sizes against the ideal information content.
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from codec import entropy as E


def _best(fn, repeat):
    best, out = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def cases():
    rng = np.random.default_rng(0)
    kodak = (192, 32, 48)
    yield "kodak latent 192x32x48, levels uniform 0..63", torch.from_numpy(rng.integers(0, 64, kodak))
    yield "kodak latent 192x32x48, low rate (levels 0..23)", torch.from_numpy(rng.integers(0, 24, kodak))
    yield "1M symbols, levels uniform 0..63", torch.from_numpy(rng.integers(0, 64, 1_000_000))


def compressai_tables(tables) -> tuple[list, list, list]:
    """Our tables in CompressAI's ``cdfs, cdf_lengths, offsets`` form (same escape semantics)."""
    cdfs = [tables.cdf[r, : tables.lengths[r] + 2].tolist() for r in range(tables.num_rows)]
    return cdfs, (tables.lengths + 2).tolist(), tables.offsets.tolist()


def run(repeat: int = 5) -> list[dict]:
    from compressai.ans import RansDecoder, RansEncoder

    tables = E.gaussian_tables()
    tables.coder_view().lut  # built once with the tables, as a model does at load time
    cdfs, sizes, offsets = compressai_tables(tables)
    enc, dec = RansEncoder(), RansDecoder()
    rows = []
    for name, idx in cases():
        sym = E.sample_symbols(tables, idx, seed=1)
        n = sym.numel()
        t_enc, ours = _best(lambda: E.encode(sym, idx, tables), repeat)
        t_dec, out = _best(lambda: E.decode(ours, idx, tables), repeat)
        assert torch.equal(out, sym)
        c_enc, theirs = _best(lambda: enc.encode_with_indexes(sym.reshape(-1).tolist(), idx.reshape(-1).tolist(),
                                                              cdfs, sizes, offsets), repeat)
        c_dec, back = _best(lambda: torch.tensor(dec.decode_with_indexes(theirs, idx.reshape(-1).tolist(), cdfs,
                                                                          sizes, offsets), dtype=torch.int32),
                            repeat)
        assert torch.equal(back, sym.reshape(-1))
        ideal = E.ideal_bits(sym, idx, tables) / 8
        rows.append(dict(case=name, n=n, enc=n / t_enc, dec=n / t_dec, cai_enc=n / c_enc, cai_dec=n / c_dec,
                         bytes=len(ours), cai_bytes=len(theirs), ideal=ideal))
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=5, help="runs per measurement; the best is kept")
    args = ap.parse_args(argv)
    print(f"torch {torch.__version__}, numpy {np.__version__}, threads {torch.get_num_threads()}")
    for r in run(args.repeat):
        print(f"\n{r['case']}  ({r['n']} symbols)")
        print(f"  encode  ours {r['enc'] / 1e6:7.2f} M sym/s   compressai {r['cai_enc'] / 1e6:7.2f} M sym/s"
              f"   ratio {r['enc'] / r['cai_enc']:.2f}")
        print(f"  decode  ours {r['dec'] / 1e6:7.2f} M sym/s   compressai {r['cai_dec'] / 1e6:7.2f} M sym/s"
              f"   ratio {r['dec'] / r['cai_dec']:.2f}")
        print(f"  bytes   ours {r['bytes']} (+{100 * (r['bytes'] / r['ideal'] - 1):.2f}% over ideal)   "
              f"compressai {r['cai_bytes']} (+{100 * (r['cai_bytes'] / r['ideal'] - 1):.2f}%)   "
              f"ideal {r['ideal']:.0f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
