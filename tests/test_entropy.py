"""Entropy stage: tables, exact round trips, efficiency, and bad input."""
import struct
import warnings
import zlib

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from codec import entropy as E
from codec.entropy import rans
from codec.entropy.tables import TOTAL, TableError


@pytest.fixture(scope="module")
def gauss():
    return E.gaussian_tables()


def roundtrip(sym, idx, tables):
    data = E.encode(sym, idx, tables)
    out = E.decode(data, idx, tables)
    assert out.dtype == torch.int32
    assert tuple(out.shape) == tuple(np.shape(idx))
    np.testing.assert_array_equal(out.numpy(), np.asarray(sym).reshape(np.shape(idx)))
    return data


# --------------------------------------------------------------------------- tables
def test_tables_invariants(gauss):
    t = gauss
    f = t.freq()
    live = np.arange(t.width)[None] <= t.lengths[:, None]
    assert (f[live] >= 1).all() and (f[~live] == 0).all()
    assert (f.sum(1) == TOTAL).all()
    assert t.num_rows == 64


def test_quantize_pmf_largest_remainder_and_minimum():
    freq = E.quantize_pmf([[0.5, 0.5 - 1e-12, 1e-12, 0.0]], [3])
    assert freq.sum() == TOTAL and freq.min() >= 1
    assert freq[0, 0] >= freq[0, 1]  # ties go to the lower index


def test_gaussian_rows_match_the_density():
    from scipy.stats import norm

    t = E.gaussian_tables()
    r = 30
    scale = E.default_scale_table()[r]
    p = t.probabilities()[r, : t.lengths[r]]
    k = np.arange(t.lengths[r]) + t.offsets[r]
    ref = norm.cdf((k + 0.5) / scale) - norm.cdf((k - 0.5) / scale)
    assert np.abs(p - ref).max() <= 2.5 / TOTAL  # within about two counts everywhere


def test_tables_save_load_and_validation(tmp_path, gauss):
    path = tmp_path / "t.safetensors"
    gauss.save(path)
    assert E.CDFTables.load(path) == gauss
    bad = gauss.cdf.copy()
    bad[0, 2] = bad[0, 1]  # a zero frequency
    with pytest.raises(TableError):
        E.CDFTables(bad, gauss.lengths, gauss.offsets)
    with pytest.raises(TableError):
        E.CDFTables(gauss.cdf[:, :-1], gauss.lengths, gauss.offsets)


def test_factorized_from_compressai_bottleneck():
    from compressai.entropy_models import EntropyBottleneck

    torch.manual_seed(0)
    eb = EntropyBottleneck(6)
    with torch.no_grad():
        for p in eb.parameters():
            p.add_(0.1 * torch.randn_like(p))
    t = E.factorized_tables_from_bottleneck(eb)
    assert t.num_rows == 6
    # the quantised probabilities follow the bottleneck's own likelihood
    r = 2
    vals = torch.arange(int(t.offsets[r]), int(t.offsets[r] + t.lengths[r])).double()
    x = torch.zeros(6, 1, vals.numel(), dtype=torch.float64)  # the bottleneck's [C, 1, K] layout
    x[r, 0] = vals
    lik, _, _ = eb.double()._likelihood(x)
    np.testing.assert_allclose(t.probabilities()[r, : t.lengths[r]], lik[r, 0].detach().numpy(), atol=3 / TOTAL)
    idx = torch.arange(6).repeat_interleave(500).reshape(6, 500)
    roundtrip(E.sample_symbols(t, idx, seed=4), idx, t)


def test_factorized_generic_cdf():
    from scipy.stats import logistic

    t = E.factorized_tables(lambda x: logistic.cdf(x / np.array([[1.0], [3.0]])), [-10, -20], [10, 25])
    assert list(t.lengths) == [21, 46] and list(t.offsets) == [-10, -20]


# --------------------------------------------------------------------------- round trips
@pytest.mark.parametrize("n", [0, 1, 2, 31, 32, 33, 1000, 65_537])
def test_roundtrip_sizes(gauss, n):
    rng = np.random.default_rng(n)
    idx = torch.from_numpy(rng.integers(0, 64, n)).int()
    roundtrip(E.sample_symbols(gauss, idx, seed=n), idx, gauss)


def test_roundtrip_shapes_and_dtypes(gauss):
    rng = np.random.default_rng(1)
    for shape in [(0,), (0, 3), (1, 192, 4, 6), (2, 3, 5, 7)]:
        idx = torch.from_numpy(rng.integers(0, 64, shape))
        sym = E.sample_symbols(gauss, idx, seed=2)
        for dt in (torch.int16, torch.int32, torch.int64):
            roundtrip(sym.to(dt), idx.to(dt), gauss)
    idx = rng.integers(0, 64, (4, 4))  # numpy in, too
    roundtrip(E.sample_symbols(gauss, idx).numpy(), idx, gauss)


@pytest.mark.slow
def test_roundtrip_millions(gauss):
    n = 3_000_000
    rng = np.random.default_rng(7)
    idx = torch.from_numpy(rng.integers(0, 64, n).astype(np.int32))
    roundtrip(E.sample_symbols(gauss, idx, seed=7), idx, gauss)


def test_roundtrip_laplace_categorical_escapes():
    lap = E.laplace_tables()
    rng = np.random.default_rng(3)
    idx = torch.from_numpy(rng.integers(0, 64, 20_000))
    sym = E.sample_symbols(lap, idx, seed=3)
    sym[::50] = 2**31 - 1  # extreme escapes, both sides
    sym[1::50] = -(2**31)
    data = roundtrip(sym, idx, lap)
    rel = sym.long() - torch.from_numpy(lap.offsets).long()[idx]
    outside = int(((rel < 0) | (rel >= torch.from_numpy(lap.lengths).long()[idx])).sum())
    assert outside >= 800 and E.parse_header(data)["escapes"] == outside
    cat = E.categorical_tables(rng.dirichlet(np.ones(512), size=4))
    idx = torch.from_numpy(rng.integers(0, 4, 10_000))
    roundtrip(E.sample_symbols(cat, idx, seed=5).clamp(0, 511), idx, cat)
    sym = torch.from_numpy(rng.integers(-3, 600, 10_000))  # categorical with escapes too
    roundtrip(sym, idx, cat)


def test_batch_equals_single_streams(gauss):
    rng = np.random.default_rng(11)
    items = []
    for n in [0, 10, 5_000, 120_000]:
        idx = torch.from_numpy(rng.integers(0, 64, n))
        items.append((E.sample_symbols(gauss, idx, seed=n), idx))
    streams = E.encode_batch(items, gauss)
    assert streams == [E.encode(s, i, gauss) for s, i in items]
    outs = E.decode_batch(streams, [i for _, i in items], gauss)
    for (s, _), o in zip(items, outs):
        assert torch.equal(o, s.int())


def test_any_valid_layout_decodes(gauss):
    rng = np.random.default_rng(5)
    n = 10_000
    idx = rng.integers(0, 64, n)
    sym = E.sample_symbols(gauss, idx, seed=5)
    for lay in [rans.Layout(32, 313, 1), rans.Layout(32, 1, 313), rans.Layout(1024, 3, 4), rans.Layout(96, 7, 15)]:
        data = rans.encode_many([(sym, idx)], gauss, [lay])[0]
        assert E.parse_header(data)["segments"] == lay.segments
        assert torch.equal(E.decode(data, idx, gauss), sym)
    with pytest.raises(ValueError):
        rans.encode_many([(sym, idx)], gauss, [rans.Layout(32, 1, 1)])


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    rows=st.integers(1, 5),
    width=st.integers(1, 40),
    n=st.integers(0, 3000),
    seed=st.integers(0, 2**32 - 1),
    spread=st.integers(0, 80),
)
def test_property_random_tables(rows, width, n, seed, spread):
    rng = np.random.default_rng(seed)
    pmf = rng.dirichlet(np.ones(width + 1) * rng.uniform(0.05, 3), size=rows)
    offsets = rng.integers(-50, 50, rows)
    t = E.tables_from_pmf(pmf, np.full(rows, width), offsets)
    idx = rng.integers(0, rows, n)
    sym = offsets[idx] + rng.integers(-spread, width + spread, n)
    roundtrip(torch.from_numpy(sym), torch.from_numpy(idx), t)


# --------------------------------------------------------------------------- efficiency
def test_efficiency_1m_gaussian(gauss):
    n = 1_000_000
    rng = np.random.default_rng(0)
    idx = torch.from_numpy(rng.integers(0, 64, n).astype(np.int32))
    sym = E.sample_symbols(gauss, idx, seed=0)
    data = E.encode(sym, idx, gauss)
    h = E.parse_header(data)
    ideal = E.ideal_bits(sym, idx, gauss) / 8
    header = rans.HEADER_SIZE + 8 * h["segments"]
    assert len(data) <= 1.01 * ideal + header, (len(data), ideal)
    # the layout rule keeps final states near 1% of the payload
    assert 4 * h["lanes"] * h["segments"] <= 0.0105 * ideal


def test_layout_rule_state_budget():
    for n, payload in [(1, 1), (5000, 3000), (294_912, 170_000), (10**6, 575_000), (64 * 10**6, 40 * 10**6)]:
        lay = rans.choose_layout(n, payload)
        lay.check(n)
        assert lay.lanes % 32 == 0 and lay.lanes <= 1024
        total = lay.lanes * lay.segments
        assert total == 32 or 4 * total <= 0.0101 * payload + 4 * 32 * lay.segments


# --------------------------------------------------------------------------- bad input
@pytest.fixture(scope="module")
def stream(gauss):
    rng = np.random.default_rng(9)
    idx = torch.from_numpy(rng.integers(0, 64, 3000))
    sym = E.sample_symbols(gauss, idx, seed=9)
    sym[::301] += 5000
    return E.encode(sym, idx, gauss), idx


def test_truncated_streams(gauss, stream):
    data, idx = stream
    for cut in [0, 1, 10, 47, 48, 60, len(data) // 2, len(data) - 1]:
        with pytest.raises(E.CorruptStreamError):
            E.decode(data[:cut], idx, gauss)
    with pytest.raises(E.CorruptStreamError):
        E.decode(data + b"\0", idx, gauss)


def test_every_single_bit_flip_is_detected(gauss, stream):
    data, idx = stream
    rng = np.random.default_rng(0)
    positions = sorted(set(range(0, 64)) | set(rng.integers(0, len(data), 200).tolist()))
    for p in positions:
        for bit in (0, 5):
            bad = bytearray(data)
            bad[p] ^= 1 << bit
            with pytest.raises(E.StreamError):
                E.decode(bytes(bad), idx, gauss)


def test_wrong_tables_and_wrong_size(gauss, stream):
    data, idx = stream
    with pytest.raises(E.TableMismatchError):
        E.decode(data, idx, E.laplace_tables())
    with pytest.raises(E.CorruptStreamError):
        E.decode(data, idx[:-1], gauss)
    with pytest.raises(ValueError):
        E.decode(data, idx + 64, gauss)
    with pytest.raises(E.CorruptStreamError):
        E.decode(b"JUNK" + data[4:], idx, gauss)


def _reheader(data, **fields):
    h = E.parse_header(data)
    h.update(fields)
    head = rans.HEADER.pack(rans.MAGIC, h["version"], h["precision"], h["lanes"], h["steps"], h["segments"],
                            h["symbols"], h["table_id"], h["escapes"], h["escape_bytes"], h["escape_crc"])
    S = E.parse_header(data)["segments"]
    dir_bytes = data[rans.HEADER_SIZE: rans.HEADER_SIZE + 8 * S]
    crc = zlib.crc32(head + dir_bytes)  # a *valid* header CRC: the checks behind it must hold
    return head + struct.pack("<I", crc) + data[rans.HEADER_SIZE:]


def test_absurd_header_fields(gauss, stream):
    data, idx = stream
    n = idx.numel()
    cases = [
        dict(steps=2**32 - 1), dict(segments=2**32 - 1), dict(lanes=32 * 2000), dict(lanes=33),
        dict(symbols=2**63), dict(escapes=2**32 - 1), dict(escape_bytes=2**32 - 1),
        dict(steps=0), dict(version=9), dict(precision=12),
    ]
    for fields in cases:
        with pytest.raises(E.CorruptStreamError):
            E.decode(_reheader(data, **fields), idx, gauss)
    # huge directory counts with a valid CRC: rejected from the length check, no allocation
    S = E.parse_header(data)["segments"]
    bad = bytearray(data)
    struct.pack_into("<I", bad, rans.HEADER_SIZE, 2**31)
    with pytest.raises(E.CorruptStreamError):
        E.decode(_reheader(bytes(bad)), idx, gauss)
    assert n and S


def test_user_errors(gauss):
    with pytest.raises(ValueError):
        E.encode(torch.zeros(5, dtype=torch.int32), torch.zeros(4, dtype=torch.int32), gauss)
    with pytest.raises(TypeError):
        E.encode(torch.zeros(5), torch.zeros(5, dtype=torch.int32), gauss)
    with pytest.raises(ValueError):
        E.encode(torch.zeros(5, dtype=torch.int64), torch.full((5,), 64), gauss)
    with pytest.raises(ValueError):
        E.encode(torch.full((5,), 2**40), torch.zeros(5, dtype=torch.int64), gauss)


def test_gpu_coder_self_check_falls_back_with_a_warning(gauss, monkeypatch):
    """The automatic choice uses the GPU coder on a device only if it writes the CPU coder's
    bytes there; a coder that does not (here a fake one) is refused once, with a warning."""
    from codec.entropy import coder

    class Wrong:
        @staticmethod
        def encode_many_gpu(items, tables):
            return [b"\0" + d[1:] for d in rans.encode_many([(s.cpu(), i.cpu()) for s, i in items], tables)]

        @staticmethod
        def decode_many_gpu(streams, indexes, tables):
            raise AssertionError("not reached")

    class Right(Wrong):
        @staticmethod
        def encode_many_gpu(items, tables):
            return rans.encode_many([(s.cpu(), i.cpu()) for s, i in items], tables)

        @staticmethod
        def decode_many_gpu(streams, indexes, tables):
            return [torch.from_numpy(v) for v in rans.decode_many(streams, [i.cpu() for i in indexes], tables)]

    monkeypatch.setattr(coder, "_gpu_checked", {})
    monkeypatch.setattr(coder, "_load_triton", lambda required: Wrong)
    with pytest.warns(RuntimeWarning, match="failed its self-check on cpu .*differs"):
        assert coder.gpu_coder_ok("cpu", gauss) is False
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # decided once: no second warning, no second check
        assert coder.gpu_coder_ok("cpu", gauss) is False
    monkeypatch.setattr(coder, "_gpu_checked", {})
    monkeypatch.setattr(coder, "_load_triton", lambda required: Right)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert coder.gpu_coder_ok("cpu", gauss) is True
