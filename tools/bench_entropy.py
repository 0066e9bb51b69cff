"""Benchmark: our CPU rANS coder against CompressAI's ``compressai.ans`` and
``constriction`` on the same symbols.

    python -m codec.tools.bench_entropy [--repeat 5]      (pip install -e '.[bench]')

Our coder runs twice: its lane loops compiled (``native``, the default where the
install built ``codec.entropy._ransc``) and in numpy (the reference).  CompressAI gets
the same symbols, table indexes and the same quantised tables (ours, handed over in
its ``cdfs / cdf_lengths / offsets`` form; both code escapes).  constriction (Rust) gets
the same symbols with its per-symbol ``QuantizedGaussian`` model (mean 0 and the
table row's scale), its fastest coder for per-symbol distributions: its per-symbol
``Categorical`` model would need an ``[N, W]`` probability matrix, gigabytes here.
constriction has no escapes: its alphabet is the symbols' range.

Times are the best of ``--repeat`` runs of each public call as a user makes it: for
CompressAI that includes turning tensors into the Python lists its API takes and the
decoded list back into a tensor; for constriction, the scale and mean arrays are made
outside the clock.  Prints symbols/s, ratios ours / other (> 1: we are faster) and the
stream sizes against the ideal information content under our tables.
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


def constriction_coder():
    """(encode, decode) with constriction's per-symbol quantised Gaussian, or None where
    constriction is not installed."""
    try:
        import constriction
    except ImportError:
        return None

    def encode(sym, means, stds, lo, hi):
        coder = constriction.stream.stack.AnsCoder()
        coder.encode_reverse(sym, constriction.stream.model.QuantizedGaussian(lo, hi), means, stds)
        return coder.get_compressed()

    def decode(data, means, stds, lo, hi):
        return constriction.stream.stack.AnsCoder(data).decode(
            constriction.stream.model.QuantizedGaussian(lo, hi), means, stds)

    return encode, decode


def run(repeat: int = 5) -> list[dict]:
    try:
        from compressai.ans import RansDecoder, RansEncoder
    except ImportError:
        raise SystemExit("this benchmark compares with CompressAI's rANS: pip install -e '.[bench]'") from None

    from codec.entropy import rans

    tables = E.gaussian_tables()
    scales = np.asarray(E.default_scale_table(), dtype=np.float64)
    cstr = constriction_coder()
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
        n_enc, ref = _best(lambda: E.encode(sym, idx, tables, backend="numpy"), repeat)
        n_dec, out = _best(lambda: E.decode(ref, idx, tables, backend="numpy"), repeat)
        assert ref == ours and torch.equal(out, sym)
        row = dict(case=name, n=n, native=rans.native_available(), enc=n / t_enc, dec=n / t_dec,
                   np_enc=n / n_enc, np_dec=n / n_dec)
        if cstr is not None:
            v = sym.reshape(-1).numpy().astype(np.int32)
            stds, means = scales[idx.reshape(-1).numpy()], np.zeros(n)
            lo, hi = int(v.min()), int(v.max())
            k_enc, data = _best(lambda: cstr[0](v, means, stds, lo, hi), repeat)
            k_dec, back = _best(lambda: cstr[1](data, means, stds, lo, hi), repeat)
            assert np.array_equal(back, v)
            row.update(cs_enc=n / k_enc, cs_dec=n / k_dec, cs_bytes=data.nbytes)
        c_enc, theirs = _best(lambda: enc.encode_with_indexes(sym.reshape(-1).tolist(), idx.reshape(-1).tolist(),
                                                              cdfs, sizes, offsets), repeat)
        c_dec, back = _best(lambda: torch.tensor(dec.decode_with_indexes(theirs, idx.reshape(-1).tolist(), cdfs,
                                                                          sizes, offsets), dtype=torch.int32),
                            repeat)
        assert torch.equal(back, sym.reshape(-1))
        ideal = E.ideal_bits(sym, idx, tables) / 8
        h = E.parse_header(ours)
        row.update(cai_enc=n / c_enc, cai_dec=n / c_dec, bytes=len(ours), cai_bytes=len(theirs), ideal=ideal,
                   layout=f"format v{h['version']}, {h['lanes']} lanes x {h['segments']} segment(s)")
        rows.append(row)
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=5, help="runs per measurement; the best is kept")
    args = ap.parse_args(argv)
    print(f"torch {torch.__version__}, numpy {np.__version__}, threads {torch.get_num_threads()}")
    rows = run(args.repeat)
    if "cs_enc" not in rows[0]:
        print("constriction is not installed (pip install -e '.[bench]'): its columns are left out")
    if not rows[0]["native"]:
        print("the compiled coder was not built with this install: 'ours' is the numpy coder")
    pct = lambda b, r: f"{100 * (b / r['ideal'] - 1):+.2f}%"  # noqa: E731
    for r in rows:
        print(f"\n{r['case']}  ({r['n']} symbols)")
        for what in ("enc", "dec"):
            line = (f"  {'encode' if what == 'enc' else 'decode'}  ours {r[what] / 1e6:6.1f} M sym/s   "
                    f"numpy {r['np_' + what] / 1e6:5.1f}   compressai {r['cai_' + what] / 1e6:5.1f}")
            if "cs_enc" in r:
                line += f"   constriction {r['cs_' + what] / 1e6:5.1f}"
            line += f"   ratio vs compressai {r[what] / r['cai_' + what]:.2f}"
            if "cs_enc" in r:
                line += f", vs constriction {r[what] / r['cs_' + what]:.2f}"
            print(line)
        line = (f"  bytes   ours {r['bytes']} ({pct(r['bytes'], r)} over ideal; {r['layout']})   compressai {r['cai_bytes']} "
                f"({pct(r['cai_bytes'], r)})")
        if "cs_enc" in r:
            line += f"   constriction {r['cs_bytes']} ({pct(r['cs_bytes'], r)}, its own model)"
        print(line + f"   ideal {r['ideal']:.0f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
