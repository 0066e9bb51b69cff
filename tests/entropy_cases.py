"""Random entropy-coding cases the tests draw (no external data)."""
import numpy as np

from codec import entropy as E


def random_case(rows: int, width: int, n: int, seed: int, spread: int):
    """(tables, table indexes, symbols): ``rows`` random Dirichlet rows of ``width`` symbols,
    and ``n`` symbols that stray up to ``spread`` outside their row's range (escapes on
    both sides)."""
    rng = np.random.default_rng(seed)
    pmf = rng.dirichlet(np.ones(width + 1) * rng.uniform(0.05, 3), size=rows)
    offsets = rng.integers(-50, 50, rows)
    t = E.tables_from_pmf(pmf, np.full(rows, width), offsets)
    idx = rng.integers(0, rows, n)
    return t, idx, offsets[idx] + rng.integers(-spread, width + spread, n)
