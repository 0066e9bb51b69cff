"""The compiled lane loops (entropy/_ransc.c) against the numpy reference coder: the same
bytes for every table, size, layout and escape pattern, the same symbols back, and the
same verdict on a stream that does not fit its tables."""
import shutil

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from codec import entropy as E
from codec.entropy import rans
from entropy_cases import random_case

if not rans.native_available():
    if shutil.which("cc") or shutil.which("gcc"):  # a machine that can build it must have built it
        pytest.fail("codec.entropy._ransc was not built although a C compiler is present "
                    "(reinstall: pip install -e .)", pytrace=False)
    pytest.skip("no C compiler here: the numpy coder serves alone", allow_module_level=True)


@pytest.fixture(scope="module")
def gauss():
    return E.gaussian_tables()


def both(items, tables, layouts=None):
    a = rans.encode_many(items, tables, layouts, native=False)
    b = rans.encode_many(items, tables, layouts, native=True)
    assert a == b
    idx = [i for _, i in items]
    for native in (False, True):
        for (s, _), o in zip(items, rans.decode_many(a, idx, tables, native=native)):
            np.testing.assert_array_equal(o, np.asarray(s).reshape(-1))
    return a


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    rows=st.integers(1, 6),
    width=st.integers(1, 60),
    n=st.integers(0, 5000),
    seed=st.integers(0, 2**32 - 1),
    spread=st.integers(0, 100),
    lanes=st.sampled_from([None, 32, 64, 96, 1024]),
    steps=st.integers(1, 200),
)
def test_same_bytes_as_numpy(rows, width, n, seed, spread, lanes, steps):
    t, idx, sym = random_case(rows, width, n, seed, spread)
    layout = None
    if lanes is not None and n:
        T = min(steps, -(-n // lanes))
        layout = rans.Layout(lanes, T, -(-n // (T * lanes)))
    both([(sym, idx)], t, [layout])


def test_batches_segments_and_kodak_size(gauss):
    rng = np.random.default_rng(3)
    items = []
    for n in (0, 1, 31, 33, 4096, 294_912):
        idx = torch.from_numpy(rng.integers(0, 64, n))
        sym = E.sample_symbols(gauss, idx, seed=n)
        sym[::997] += 40_000  # escapes
        items.append((sym, idx))
    streams = both(items, gauss)
    assert E.parse_header(streams[-1])["lanes"] * E.parse_header(streams[-1])["segments"] > 32
    n = 20_000
    idx = rng.integers(0, 64, n)
    sym = E.sample_symbols(gauss, idx, seed=1)
    for lay in [rans.Layout(32, 625, 1), rans.Layout(32, 1, 625), rans.Layout(1024, 3, 7), rans.Layout(96, 7, 30)]:
        both([(sym, idx)], gauss, [lay])


def _outcome(data, idx, tables, native):
    try:
        return rans.decode_many([data], [idx], tables, native=native)[0].tolist()
    except E.StreamError as exc:
        return type(exc).__name__


def test_same_verdict_on_wrong_indexes(gauss):
    """Decoding with table indexes the stream was not written with must fail in both
    coders alike (words run out, words left over, wrong final states, wrong escapes)."""
    rng = np.random.default_rng(11)
    idx = rng.integers(0, 64, 3000)
    sym = E.sample_symbols(gauss, idx, seed=11).numpy()
    sym[::301] += 5000
    data = rans.encode_many([(sym, idx)], gauss, native=False)[0]
    verdicts = set()
    for k in range(40):
        wrong = idx.copy()
        pick = rng.choice(idx.size, size=1 + k * 20, replace=False)
        wrong[pick] = rng.integers(0, 64, pick.size)
        a = _outcome(data, wrong, gauss, native=False)
        assert a == _outcome(data, wrong, gauss, native=True)
        verdicts.add(a if isinstance(a, str) else "decoded")
    assert "CorruptStreamError" in verdicts


def test_public_api_backends_agree(gauss, monkeypatch):
    rng = np.random.default_rng(2)
    idx = torch.from_numpy(rng.integers(0, 64, (8, 16, 16)))
    sym = E.sample_symbols(gauss, idx, seed=2)
    data = E.encode(sym, idx, gauss, backend="numpy")
    assert E.encode(sym, idx, gauss, backend="native") == data == E.encode(sym, idx, gauss)
    for backend in ("numpy", "native", None):
        assert torch.equal(E.decode(data, idx, gauss, backend=backend), sym)
    monkeypatch.setenv("CODEC_RANS_BACKEND", "numpy")
    assert E.encode(sym, idx, gauss) == data
    with pytest.raises(ValueError, match="unknown rANS backend"):
        E.encode(sym, idx, gauss, backend="fortran")


def _messages(data, idx, tables):
    out = []
    for native in (False, True):
        try:
            out.append(rans.decode_many([data], [idx], tables, native=native)[0].tolist())
        except E.StreamError as exc:
            out.append(str(exc))
    return out


def test_same_verdict_on_consistent_but_wrong_bodies(gauss):
    """Streams whose CRCs hold but whose lane states or words were changed before packing
    (what a buggy encoder could write): both coders reach the same verdict."""
    rng = np.random.default_rng(4)
    idx = rng.integers(0, 64, 5000)
    sym = E.sample_symbols(gauss, idx, seed=4).numpy()
    view = gauss.coder_view()
    p = rans._prepare(sym, idx, view)
    L, T, S = p.layout.lanes, p.layout.steps, p.layout.segments
    states = np.empty(S * L, np.uint32)
    words = np.empty(p.n, np.uint16)
    counts = np.empty(S, np.int64)
    k = rans._ransc.encode(p.pos, view.cdf_flat, states, words, counts, L, T, S)
    words = words[:k]
    seen = set()
    for trial in range(60):
        st_, w, c = states.copy(), words.copy(), counts.copy()
        kind = trial % 3
        if kind == 0:  # one final state changed
            st_[rng.integers(0, st_.size)] ^= np.uint32(1 << int(rng.integers(0, 20)))
        elif kind == 1:  # one word too many
            w = np.append(w, np.uint16(rng.integers(0, 1 << 16)))
            c[-1] += 1
        else:  # one word changed
            w[rng.integers(0, w.size)] ^= np.uint16(1 << int(rng.integers(0, 16)))
        data = rans._pack(p, st_.reshape(S, L), w, c, gauss.id)
        a, b = _messages(data, idx, gauss)
        assert a == b
        seen.add(a if isinstance(a, str) else "decoded")
    assert len(seen - {"decoded"}) >= 2, seen


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    rows=st.integers(1, 6),
    width=st.integers(1, 60),
    n=st.integers(0, 3000),
    seed=st.integers(0, 2**32 - 1),
    spread=st.integers(0, 100),
    cuts=st.lists(st.integers(0, 3000), max_size=4),
)
def test_sequential_streams_same_bytes_and_batches(rows, width, n, seed, spread, cuts):
    t, idx, sym = random_case(rows, width, n, seed, spread)
    data = E.encode_sequential(sym, idx, t, native=False)
    assert E.encode_sequential(sym, idx, t, native=True) == data
    bounds = [0, *sorted(min(c, n) for c in cuts), n]
    for native in (False, True):  # decoded in batches, as an autoregressive model asks
        dec = E.SequentialDecoder(data, t, n=n, native=native)
        got = [dec.decode(idx[a:b]) for a, b in zip(bounds, bounds[1:])]
        dec.finish()
        np.testing.assert_array_equal(np.concatenate(got), sym)


def test_sequential_bad_streams_same_verdict(gauss):
    rng = np.random.default_rng(8)
    idx = rng.integers(0, 64, 2000)
    sym = E.sample_symbols(gauss, idx, seed=8).numpy()
    sym[::97] += 9000
    data = E.encode_sequential(sym, idx, gauss)
    for trial in range(80):
        bad = bytearray(data)
        if trial % 2:
            bad[rng.integers(9, len(bad))] ^= 1 << int(rng.integers(0, 8))
        else:
            bad = bad[: rng.integers(9, len(bad))]
        verdicts = []
        for native in (False, True):
            try:
                dec = E.SequentialDecoder(bytes(bad), gauss, n=idx.size, native=native)
                out = dec.decode(idx)
                dec.finish()
                verdicts.append(out.tolist())
            except E.StreamError as exc:
                verdicts.append(type(exc).__name__)
        assert verdicts[0] == verdicts[1]


def test_an_install_without_the_c_core_writes_the_same_streams():
    """Where the C core could not be built, ``import codec.entropy._ransc`` fails: the
    numpy and Python loops must then serve every call and write the same bytes."""
    import subprocess
    import sys

    code = ("import sys; sys.modules['codec.entropy._ransc'] = None\n"
            "import numpy as np, torch\n"
            "from codec import entropy as E\n"
            "from codec.entropy import rans\n"
            "assert not rans.native_available()\n"
            "g = E.gaussian_tables(); rng = np.random.default_rng(6)\n"
            "idx = torch.from_numpy(rng.integers(0, 64, 70000)); sym = E.sample_symbols(g, idx, seed=6)\n"
            "sym[::999] += 3000\n"
            "d = E.encode(sym, idx, g); assert torch.equal(E.decode(d, idx, g), sym)\n"
            "s = E.encode_sequential(sym.numpy(), idx.numpy(), g)\n"
            "assert (E.decode_sequential(s, idx.numpy(), g) == sym.numpy()).all()\n"
            "sys.stdout.buffer.write(d + s)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=300)
    assert out.returncode == 0, out.stderr.decode()
    g = E.gaussian_tables()
    rng = np.random.default_rng(6)
    idx = torch.from_numpy(rng.integers(0, 64, 70000))
    sym = E.sample_symbols(g, idx, seed=6)
    sym[::999] += 3000
    assert out.stdout == E.encode(sym, idx, g, backend="native") + E.encode_sequential(sym.numpy(), idx.numpy(), g)


def test_a_stale_c_core_is_not_used():
    """A ``_ransc`` built from older sources (another ABI number) is refused with a warning."""
    import subprocess
    import sys

    code = ("import sys, types, warnings\n"
            "sys.modules['codec.entropy._ransc'] = types.ModuleType('codec.entropy._ransc')\n"
            "with warnings.catch_warnings(record=True) as w:\n"
            "    warnings.simplefilter('always')\n"
            "    from codec.entropy import rans\n"
            "assert not rans.native_available()\n"
            "assert any('built from other sources' in str(x.message) for x in w), [str(x.message) for x in w]\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
