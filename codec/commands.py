"""Sub-commands owned by the ``codec`` package itself."""
from __future__ import annotations


def register(sub) -> None:
    p = sub.add_parser(
        "selftest",
        help="round-trip random symbols through the entropy coder and print the figures",
        description="Encode and decode random symbols drawn from the Gaussian table family "
        "with the CPU rANS coder; prints size, ideal size and throughput.",
    )
    p.add_argument("--symbols", type=int, default=200_000, help="number of symbols (default 200000)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_selftest)


def _selftest(args) -> int:
    import time

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
