"""The audio codec: wavelet packet and MDCT, model, chunks, streaming, rate control, API and CLI."""
from __future__ import annotations

import os
import subprocess
import sys
import warnings

import numpy as np
import pytest
import torch

import codec
from codec.errors import CodecError, InputError
from codec.media import audio as A
from codec.models.audio import MDCT, AudioModel, WaveletPacket, dwt97, gray_rank, idwt97

MODEL = "wavelet-audio"


def _signal(rate, seconds, channels, seed=0):
    g = np.random.default_rng(seed)
    n = int(rate * seconds)
    t = np.arange(n) / rate
    chans = [0.3 * np.sin(2 * np.pi * (220 + 110 * c) * t) * (0.6 + 0.4 * np.sin(2 * np.pi * 1.5 * t))
             + 0.02 * g.standard_normal(n) for c in range(channels)]
    return A.Audio(np.clip(np.stack(chans), -1, 1).astype(np.float32), rate)


def _small(loudness=0, fill_levels=0, transform=0, energy=0):
    torch.manual_seed(0)
    m = AudioModel(wavelet_levels=5, N=64, E=32, hop=4096, context=256, loudness=loudness,
                   fill_levels=fill_levels, transform=transform, energy=energy).eval()
    m.latent_codec.init_gains([0.5 * 1.7 ** k for k in range(8)], ref=4)
    m.freeze()
    return m


@pytest.fixture(scope="module", params=[(0, 0, 0), (1, 0, 0), (1, 1, 1), (1, 1, 2)],
                ids=["fixed-steps", "loudness-steps", "mdct-energy", "mdct-mel-energy"])
def small(request):
    """A frozen model with short chunks (4096 samples, 256 of context), 32 bands and random
    weights: a 5-level packet with fixed quantisation steps, with steps that follow
    loudness, and an MDCT with loudness steps and band-energy correction (half-octave or
    mel groups)."""
    loudness, transform, energy = request.param
    return _small(loudness, transform=transform, energy=energy)


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", codec.UntrainedModelWarning)
        yield


# ----------------------------------------------------------------------------- transform
def test_wavelet_packet_is_invertible_and_orthogonal_enough():
    x = torch.randn(3, 1, 4096, dtype=torch.float64)
    wp = WaveletPacket(5)
    c = wp(x)
    assert c.shape == (3, 32, 128)
    assert torch.allclose(wp.inverse(c), x, atol=1e-12)
    lo, hi = dwt97(x[..., :64])
    assert torch.allclose(idwt97(lo, hi), x[..., :64], atol=1e-12)
    # energy is kept within a few percent (CDF 9/7 is near-orthogonal)
    ratio = float(c.pow(2).sum() / x.pow(2).sum())
    assert 0.8 < ratio < 1.25
    with pytest.raises(ValueError, match="multiple of 32"):
        wp(torch.zeros(1, 1, 100))


def test_constant_signal_goes_to_the_lowest_band():
    c = WaveletPacket(3)(torch.ones(1, 1, 256, dtype=torch.float64))
    assert float(c[:, 1:].abs().max()) < 1e-9 and float(c[:, 0].abs().min()) > 1


@pytest.mark.parametrize("levels", [3, 5, 8])
def test_mdct_is_orthogonal_and_invertible_with_no_samples_outside_the_signal(levels):
    M = 1 << levels
    x = torch.randn(2, 1, M * 12, dtype=torch.float64)
    t = MDCT(levels)
    c = t(x)
    assert c.shape == (2, M, 12) and c.dtype == torch.float64
    assert torch.allclose(t.inverse(c), x, atol=1e-12)  # the first and last samples too
    assert float(c.pow(2).sum() / x.pow(2).sum()) == pytest.approx(1, abs=1e-12)
    # each frame alone: a coefficient's synthesis function has unit energy and is orthogonal to the others
    e = torch.zeros(1, M, 12, dtype=torch.float64)
    e[0, 3, 5] = 1
    assert float(t(t.inverse(e)).sub(e).abs().max()) < 1e-12
    with pytest.raises(ValueError, match=f"multiple of {M}"):
        t(torch.zeros(1, 1, M * 3 + 1))


def test_mdct_bands_are_in_the_packet_order_and_leak_far_less():
    """Channel b holds frequency bin gray_rank(b) in both transforms; a band's synthesis
    function keeps its energy within 3 bins with the MDCT, not with the 8-level packet."""
    packet, mdct = WaveletPacket(8), MDCT(8)
    far = {"packet": [], "mdct": []}
    for b in range(0, 256, 17):
        for name, t in (("packet", packet), ("mdct", mdct)):
            c = torch.zeros(1, 256, 64, dtype=torch.float64)
            c[0, b, 32] = 1
            power = torch.fft.rfft(t.inverse(c)[0, 0]).abs().square()
            bins = torch.arange(power.numel(), dtype=torch.float64) / 32  # 93.75 Hz bins
            assert int(bins[power.argmax()]) == gray_rank(b)
            far[name].append(float(power[(bins - gray_rank(b) - 0.5).abs() > 3].sum() / power.sum()))
    assert max(far["mdct"]) < 1e-3 and np.mean(far["packet"]) > 100 * np.mean(far["mdct"])
    assert [gray_rank(b) for b in range(8)] == [0, 1, 3, 2, 7, 6, 4, 5]


def test_an_unknown_transform_is_refused():
    with pytest.raises(ValueError, match="unknown transform 2"):
        AudioModel(wavelet_levels=5, N=64, E=32, hop=4096, context=256, transform=2)


def test_compander_is_invertible_and_coarser_for_large_coefficients():
    from codec.models.audio import compand, expand

    u = torch.linspace(-3000, 3000, 20001, dtype=torch.float64)
    for p in (0.3, 0.75, 1.0):
        pt = torch.tensor(p, dtype=torch.float64)
        assert torch.allclose(expand(compand(u, pt), pt), u, rtol=1e-9, atol=1e-9)
    v = compand(u, torch.tensor(0.75, dtype=torch.float64))
    slope = (v[1:] - v[:-1]) / (u[1:] - u[:-1])
    assert float(slope[10000]) == pytest.approx(1, abs=0.05) and float(slope[-1]) < 0.2


def test_the_noise_fill_is_the_same_everywhere_and_silent_where_nothing_is_predicted():
    from codec.models.latent_codecs import NoiseFill, hash_noise

    n = hash_noise((4, 1000))
    # pinned: a decoder on any install or device draws exactly these values
    assert n.flatten()[:3].tolist() == [-1.7051515579223633, 0.42372754216194153, -1.628908634185791]
    assert torch.equal(hash_noise((4, 1000)), n) and torch.equal(hash_noise((4000,))[:3], n.flatten()[:3])
    assert abs(float(n.mean())) < 0.05 and float(n.var()) == pytest.approx(1, abs=0.05)
    assert float(n.abs().max()) < 3 ** 0.5
    if torch.cuda.is_available():
        assert torch.equal(hash_noise((4, 1000), "cuda").cpu(), n)
    fill = NoiseFill(2, alpha=0.5)
    zero = torch.tensor([[[[True, True, False]], [[True, True, True]]]])
    scales = torch.tensor([[[[0.11, 0.5, 0.5]], [[2.0, 0.11, 40.0]]]])
    noise = torch.ones(1, 2, 1, 3)
    with torch.no_grad():
        out = fill(zero, scales, noise, 0.11)
    assert float(out[0, 0, 0, 0]) == pytest.approx(0, abs=1e-5)  # at the scale floor: silence stays silent
    assert float(out[0, 0, 0, 2]) == 0  # a non-zero symbol gets no fill
    assert 0 < float(out[0, 0, 0, 1]) < 0.5 * 12 ** -0.5 and float(out[0, 1, 0, 2]) < 0.5 * 12 ** -0.5 + 1e-6


def test_level_dependent_noise_fill_scales_each_group_of_levels():
    from codec.models.latent_codecs import NoiseFill

    fill = NoiseFill(2, alpha=0.5, groups=4, levels=64)
    with torch.no_grad():
        fill.log_beta.copy_(torch.log(torch.tensor([3.0, 2.0, 1.0, 0.5])))
    zero = torch.ones(1, 2, 1, 4, dtype=torch.bool)
    scales = torch.full((1, 2, 1, 4), 0.3)
    noise = torch.ones(1, 2, 1, 4)
    levels = torch.tensor([0, 15, 16, 63]).view(1, 1, 1, 4).expand(1, 2, 1, 4)
    with torch.no_grad():
        out = fill(zero, scales, noise, 0.11, levels)
        plain = NoiseFill(2, alpha=0.5)(zero, scales, noise, 0.11)
    # level l is in group l * 4 // 64: 0, 0, 1, 3
    assert torch.allclose(out, plain * torch.tensor([3.0, 3.0, 2.0, 0.5]).view(1, 1, 1, 4))
    with pytest.raises(ValueError, match="groups"):
        NoiseFill(2, groups=65, levels=64)


def test_level_dependent_fill_is_used_when_decoding_and_survives_export():
    from codec.models.registry import _arch_kwargs, get_spec

    m = _small(1, fill_levels=8)
    x = torch.from_numpy(_signal(m.sample_rate, 0.05, 1).samples)
    p = m.compress(x, 2.0)
    ref = m.decompress(p, 2.0)
    with torch.no_grad():  # other betas: another decode of the same stream
        m.latent_codec.inner.fill.log_beta.copy_(torch.linspace(-1, 1, 8))
    a = m.decompress(p, 2.0)
    assert not torch.equal(a, ref)
    # the weights and frozen state in another model: the same decode
    m2 = AudioModel(wavelet_levels=5, N=64, E=32, hop=4096, context=256, loudness=1, fill_levels=8).eval()
    m2.load_state_dict({k: v for k, v in m.state_dict().items() if "h_s_int" not in k}, strict=False)
    m2.load_frozen(m.frozen_state())
    assert torch.equal(m2.decompress(p, 2.0), a)
    # the training path's level of a scale is the coding path's (the number of table scales below it)
    hp = m.latent_codec.inner
    mid = torch.sqrt(hp.scale_table[1:] * hp.scale_table[:-1])  # between two table scales
    assert torch.bucketize(mid, hp.scale_table[:-1]).tolist() == list(range(1, len(mid) + 1))
    assert _arch_kwargs(get_spec("wavelet-audio"), {"arch_kwargs": '{"fill_levels": 8}'})["fill_levels"] == 8
    with pytest.raises(ValueError, match="invalid arch_kwargs"):
        _arch_kwargs(get_spec("wavelet-audio"), {"arch_kwargs": '{"fill_levels": -1}'})


# ----------------------------------------------------------------------------- model and chunks
def test_decoded_samples_equal_the_synthesis_of_the_coded_latents(small):
    x = torch.from_numpy(_signal(small.sample_rate, 0.08, 1).samples)  # one chunk (3840 samples)
    q = 3.5
    payload = small.compress(x, q)
    rec = small.decompress(payload, q)
    n, P = x.shape[1], small.context
    coded = small.chunks(n)[0][2]
    seg = torch.nn.functional.pad(x, (P, coded - P - n))
    with torch.no_grad():
        y, g = small.analysis(seg[:, None]), 1.0
        if small.loudness:  # the encoder's rule (the loudest channel's index), and what the stream carries
            k = small.loud_index(seg).amin(0, keepdim=True)
            assert payload.sections[0].kind == "gains"
            assert torch.equal(small.decode_gains(payload.sections[0].data, coded // (4 * small.frame)), k)
            g = small.loud_gain(k)
        _, y_hat = small.latent_codec.compress(y * g, q)
        r, cell = None, 32
        if small.energy is not None:  # the encoder's rule, and what the stream carries
            cell = small.energy_cell(q)  # 32 frames with scheme 1, 8 with scheme 2 from quality 3
            assert cell == (32 if small.energy.scheme == 1 else 8)
            r = small.energy.indexes(small.packet(seg[:, None]), small.g_s((y_hat / g).squeeze(2)), None, cell,
                                     small.ENERGY_RDO)
            assert payload.sections[-1].kind == "energy"
            r2, cell2 = small.energy.decode(payload.sections[-1].data, 1, coded // small.frame)
            assert torch.equal(r2, r) and cell2 == cell
    assert torch.equal(rec, small.synthesize(y_hat / g, r, cell)[:, 0, P:P + n])


def test_loudness_index_follows_the_rms_of_each_block():
    m = _small(1)
    blk = 4 * m.frame
    t = torch.arange(blk, dtype=torch.float64)
    sine = np.sqrt(2) * torch.sin(0.3 * t)  # RMS 1 (to within a part in 1e4)
    x = torch.cat([0.05 * sine, 0.05 / 16 * sine, 0.5 * sine, 0 * sine, 1e-6 * sine])[None].float()
    # k = round(4 * 0.75 * log2(0.05 / rms)) in 0..16: 0 at the reference and above, 12 at -24 dB,
    # 16 (a gain of 16) for silence and anything below -32 dB
    assert m.loud_index(x).tolist() == [[0, 12, 0, 16, 16]]
    assert torch.equal(m.loud_gain(torch.tensor([[0, 8]])), torch.tensor([1.0] * 4 + [4.0] * 4).view(1, 1, 1, 8))


def test_loudness_steps_spend_more_on_quiet_passages_and_round_trip_their_gains():
    fixed, loud = _small(0), _small(1)
    t = torch.arange(12_000) / fixed.sample_rate
    quiet = (0.003 * torch.sin(2 * torch.pi * 300 * t))[None]
    pf, pl = fixed.compress(quiet, 4.0), loud.compress(quiet, 4.0)
    assert pl.kinds() == ("gains", "hyper-latent", "latent") * 3 and pf.kinds() == ("hyper-latent", "latent") * 3
    lat = lambda p: sum(len(s.data) for s in p.sections if s.kind == "latent")  # noqa: E731
    assert lat(pl) > 1.3 * lat(pf)  # finer steps where it is quiet
    err = lambda m, p: float((m.decompress(p, 4.0) - quiet).square().mean())  # noqa: E731
    assert err(loud, pl) < 0.5 * err(fixed, pf)
    k = torch.tensor([[0, 3, 3, 16, 0, 1]])
    assert torch.equal(loud.decode_gains(loud.encode_gains(k), 6), k)


def test_loudness_gains_survive_export_and_corrupt_gains_are_refused():
    from codec.models.payload import PayloadError

    m = _small(1)
    x = torch.from_numpy(_signal(m.sample_rate, 0.05, 1).samples)
    p = m.compress(x, 4.0)
    state = m.frozen_state()
    assert {"frozen.gains.cdf", "frozen.gains.lengths", "frozen.gains.offsets"} <= set(state)
    m2 = AudioModel(wavelet_levels=5, N=64, E=32, hop=4096, context=256, loudness=1).eval()
    m2.load_state_dict({k: v for k, v in m.state_dict().items() if "h_s_int" not in k}, strict=False)
    m2.load_frozen(state)
    assert torch.equal(m2.decompress(p, 4.0), m.decompress(p, 4.0))
    # differences 5, -9: the second index, -4, is out of range
    bad = codec.entropy.encode_sequential(np.array([5, -9]), np.zeros(2, dtype=np.int64), m.loud_tables)
    with pytest.raises(PayloadError, match="gain index"):
        m.decode_gains(bad, 2)
    with pytest.raises(ValueError, match="loudness scheme"):
        AudioModel(wavelet_levels=5, loudness=7)


def test_energy_groups_are_half_octaves_and_indexes_restore_each_cell():
    from codec.models.audio_energy import FRAMES, R, BandEnergy, group_of_rank

    # bands 0..3 (0-375 Hz at 256 bands of 93.75 Hz) then two groups an octave, 13 in all
    ranks = (0, 3, 4, 5, 6, 7, 8, 11, 12, 15, 16, 127, 128, 181, 182, 255)
    assert [group_of_rank(f) for f in ranks] == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 10, 11, 11, 12, 12]
    e = BandEnergy([gray_rank(c) for c in range(256)])
    T = 2 * FRAMES + 8  # two whole cells and a short one
    assert e.groups == 13 and e.cells(T) == 3
    g = torch.Generator().manual_seed(0)
    c = torch.randn(2, 256, T, generator=g, dtype=torch.float64)
    k = torch.randint(-8, 9, (2, 13, 3), generator=g)
    gain = torch.pow(2.0, k.double() / 4)  # whole 1.5 dB steps
    c_hat = c / torch.einsum("cgt,bg->cbt", gain, e.onehot).repeat_interleave(FRAMES, -1)[..., :T]
    r = e.indexes(c, c_hat)
    assert torch.equal(r, k)  # each cell's energy ratio found exactly
    assert torch.allclose(e.apply(c_hat, r), c)
    # a silent decoded cell is left alone; a silent input cell is pulled down as far as allowed
    c_hat[0, :, :FRAMES] = 0
    c[1, :, FRAMES:2 * FRAMES] = 0
    r = e.indexes(c, c_hat)
    assert (r[0, :, 0] == 0).all() and (r[1, :, 1] == -R).all()


def test_mel_energy_groups_follow_the_mel_scale_and_indexes_restore_each_cell():
    import math

    from codec.models.audio_energy import FRAMES, MEL_STARTS, SCHEMES, BandEnergy, mel_group_of_rank

    # the written-out starts are where floor(24 mel(centre) / mel(24 kHz)) changes
    mel = lambda h: 2595 * math.log10(1 + h / 700)  # noqa: E731
    g = [min(23, math.floor(24 * mel((f + 0.5) * 93.75) / mel(24000))) for f in range(256)]
    assert MEL_STARTS == tuple(f for f in range(256) if f == 0 or g[f] != g[f - 1])
    assert [mel_group_of_rank(f) for f in range(256)] == g
    e = BandEnergy([gray_rank(c) for c in range(256)], 2)
    assert e.groups == 24 and e.R == SCHEMES[2][0] == 24
    assert e.onehot[[gray_rank(c) for c in range(256)].index(255), 23] == 1  # the top band, the top group
    # a model with 32 bands: band f is band 8 f of 256; the groups left empty are dropped
    small = BandEnergy([gray_rank(c) for c in range(32)], 2)
    want = sorted({mel_group_of_rank(f, 32) for f in range(32)})
    assert small.groups == len(want) < 24 and (small.onehot.sum(0) > 0).all()
    T = FRAMES + 5
    gen = torch.Generator().manual_seed(1)
    c = torch.randn(1, 256, T, generator=gen, dtype=torch.float64)
    k = torch.randint(-20, 21, (1, 24, 2), generator=gen)  # beyond scheme 1's 12
    gain = torch.pow(2.0, k.double() / 4)
    c_hat = c / torch.einsum("cgt,bg->cbt", gain, e.onehot).repeat_interleave(FRAMES, -1)[..., :T]
    r = e.indexes(c, c_hat)
    assert torch.equal(r, k) and torch.allclose(e.apply(c_hat, r), c)
    # only the audible bands count: a change above them corrects nothing
    top = MEL_STARTS[20]
    ranks = torch.tensor([gray_rank(ch) for ch in range(256)])
    louder = c * torch.where(ranks >= top, 2.0, 1.0).double()[None, :, None]
    assert (e.indexes(louder, c)[:, 20:] == 4).all() and not e.indexes(louder, c)[:, :20].any()
    assert not e.indexes(louder, c, top).any()
    with pytest.raises(ValueError, match="band-energy scheme"):
        BandEnergy(range(8), 3)


def test_energy_rd_choice_trades_bits_for_level_error_in_coding_order():
    """Scheme 2's rate-distortion choice: with a huge weight it is the rounded correction;
    with a tiny one each index is, among the rounded one and its neighbours within 2, the
    cheapest under the row of its context (read back from the result: the contexts the
    decoder will see); a channel with a small share of the input energy (a quiet side) is
    chosen for bits alone; uncoded (silent decoded) cells stay 0; and the choice decodes."""
    from codec.models.audio_energy import BandEnergy, context_pmf, contexts

    e = BandEnergy([gray_rank(c) for c in range(256)], 2)
    e.freeze()
    gen = torch.Generator().manual_seed(4)
    x = 3 * torch.randn(2, 24, 9, generator=gen, dtype=torch.float64)
    r0 = torch.round(x).long().clamp(-24, 24)
    coded = torch.ones_like(x, dtype=torch.bool)
    coded[0, 3, 4] = False
    r0[0, 3, 4] = 0
    assert torch.equal(e.rd_choice(r0, x, torch.full_like(x, 1e6), coded), r0)
    r = e.rd_choice(r0, x, torch.full_like(x, 1e-9), coded)
    assert r[0, 3, 4] == 0 and (r - r0).abs().max() <= 2 and not torch.equal(r, r0)
    bits = -np.log2(context_pmf(e.pmf))
    rows = contexts(r).numpy()
    for c, g, t in zip(*np.nonzero(coded.numpy())):
        cands = [v for v in range(int(r0[c, g, t]) - 2, int(r0[c, g, t]) + 3) if -24 <= v <= 24]
        assert bits[rows[c, g, t], int(r[c, g, t]) + 24] <= min(bits[rows[c, g, t], v + 24] for v in cands) + 1e-12
    # through indexes(): the share of the input energy weighs each channel's error
    T = 8 * 9
    c = torch.randn(2, 256, T, generator=gen, dtype=torch.float64)
    c[1] *= 1e-3  # a side 60 dB below its mid
    c_hat = c * torch.exp(0.3 * torch.randn(2, 256, T, generator=gen, dtype=torch.float64))
    plain, chosen = e.indexes(c, c_hat, None, 8), e.indexes(c, c_hat, None, 8, rdo=4.0)
    ones = torch.ones(1, 24, 9, dtype=torch.bool)
    side_for_bits = e.rd_choice(plain[1:], plain[1:].double(), torch.full((1, 24, 9), 1e-9, dtype=torch.float64), ones)
    assert torch.equal(chosen[1:], side_for_bits)  # its weight is 4e-6: bits alone decide
    assert (chosen[1] != plain[1]).sum() > (chosen[0] != plain[0]).sum()
    r2, cell = e.decode(e.encode(chosen, None, 8), 2, T)
    assert torch.equal(r2, chosen) and cell == 8
    assert len(e.encode(chosen, None, 8)) < len(e.encode(plain, None, 8))


def test_mel_energy_codes_no_group_above_the_source_nyquist_frequency():
    m = _small(1, transform=1, energy=2)
    x = torch.from_numpy(_signal(m.sample_rate, 0.08, 1).samples)  # one chunk
    full = m.energy.groups
    # 32 bands of 750 Hz: a 16 kHz source's 8 kHz is band 10.67, a 44.1 kHz source's 22.05 kHz band 29.4
    assert m.energy_groups(None) == m.energy_groups(48000) == m.energy_groups(96000) == full
    assert [m.energy_groups(r) for r in (16000, 44100)] == [
        sum(1 for f in m.energy.starts if 750 * f < r / 2) for r in (16000, 44100)]
    lim = m.energy_groups(16000)
    assert 1 <= lim < full
    p_full, p_lim = m.compress(x, 4.0), m.compress(x, 4.0, source_rate=16000)
    e_full, e_lim = p_full.sections[-1].data, p_lim.sections[-1].data
    assert (e_full[0], e_lim[0]) == (full, lim) and len(e_lim) < len(e_full)
    assert p_full.sections[:-1] == p_lim.sections[:-1]  # the rest of the stream is the same
    n, P = x.shape[1], m.context
    coded = m.chunks(n)[0][2]
    (r_full, cell), (r_lim, _) = (m.energy.decode(e, 1, coded // m.frame) for e in (e_full, e_lim))
    assert cell == m.energy_cell(4.0) == 8 and m.energy_cell(2.99) == 16
    # the encoder's rule: the energies of the bands below 8 kHz only (11 of 32), the groups that hold them
    assert (m.audible_bands(16000), m.audible_bands(44100), m.audible_bands(None)) == (11, 30, 32)
    _, c, c_hat = m.code_chunk(torch.nn.functional.pad(x, (P, coded - P - n)), 4.0)
    rdo = m.ENERGY_RDO
    assert torch.equal(r_full, m.energy.indexes(c, c_hat, None, 8, rdo))
    assert torch.equal(r_lim[:, :lim], m.energy.indexes(c, c_hat, 11, 8, rdo)[:, :lim]) and not r_lim[:, lim:].any()
    # the streaming encoder takes the rate too, and the API's coding passes the file's on
    enc = m.encoder(1, 4.0, 16000)
    enc.push(x)
    assert enc.finish().sections == p_lim.sections
    from codec import audio_coding as ac
    from codec.models import registry

    spec = registry.get_spec("wavelet-audio")
    x16 = _signal(16000, 0.08, 1).samples
    assert ac.stream_payload(m, [x16], 16000, 1, 4.0).sections[-1].data[0] == lim
    segs, _ = ac.sample_segments(m, [x16], 16000, 1, x16.shape[1])
    q_lim, kbps_lim = ac.pick_quality(m, spec, segs, 8.0, 0.08, source_rate=16000)
    q_full, kbps_full = ac.pick_quality(m, spec, segs, 8.0, 0.08)
    assert kbps_lim < kbps_full or q_lim > q_full  # fewer energy bits at the same quality


def test_mel_energy_indexes_are_coded_under_their_neighbours_contexts():
    from codec.models.audio_energy import CLASSES, BandEnergy, context_class, contexts

    assert context_class([-9, -4, -3, -1, 0, 1, 2, 4, 5]).tolist() == [0, 0, 1, 1, 2, 2, 3, 3, 4]
    r = torch.tensor([[[0, 5, -2], [7, 1, -6]]])  # [1 channel, 2 groups, 3 cells]
    # row = CLASSES * class(the cell before) + class(the group below), 0 where there is none
    want = [[[2 * CLASSES + 2, 2 * CLASSES + 2, 4 * CLASSES + 2],
             [2 * CLASSES + 2, 4 * CLASSES + 4, 2 * CLASSES + 1]]]
    assert contexts(r).tolist() == want
    order = BandEnergy.order(2, 3, 4)  # each index after the one below it and the one before it
    rank = np.empty(24, dtype=np.int64)
    rank[order] = np.arange(24)
    rank = rank.reshape(2, 3, 4)
    assert (rank[:, 1:] > rank[:, :-1]).all() and (rank[..., 1:] > rank[..., :-1]).all()
    e = BandEnergy([gray_rank(c) for c in range(256)], 2)
    e.freeze()
    assert e.tables.num_rows == CLASSES * CLASSES
    g = torch.Generator().manual_seed(2)
    r = torch.randint(-24, 25, (2, 24, 7), generator=g)
    r[:, :, 3:] = torch.randint(-1, 2, (2, 24, 4), generator=g)  # smooth cells cost less
    for coded, cell in ((24, 32), (9, 4)):
        data = e.encode(r, coded, cell)
        want = r.clone()
        want[:, coded:] = 0
        got, cell2 = e.decode(data, 2, 7 * cell - 1)
        assert data[:2] == bytes([coded, cell]) and torch.equal(got, want) and cell2 == cell
    # the contexts pay: the same indexes in a smooth field cost less than shuffled
    smooth = torch.randint(-1, 2, (2, 24, 7), generator=g).cumsum(-1).clamp(-24, 24)
    shuffled = smooth.flatten()[torch.randperm(smooth.numel(), generator=g)].reshape(smooth.shape)
    assert len(e.encode(smooth)) < len(e.encode(shuffled))


@pytest.mark.parametrize("scheme", [1, 2])
def test_energy_indexes_survive_export_and_corrupt_ones_are_refused(scheme):
    from codec.models.audio_energy import FRAMES, contexts
    from codec.models.payload import PayloadError

    m = _small(1, transform=1, energy=scheme)
    x = torch.from_numpy(_signal(m.sample_rate, 0.05, 1).samples)
    p = m.compress(x, 4.0)
    assert p.kinds() == ("gains", "hyper-latent", "latent", "energy")
    state = m.frozen_state()
    assert {"frozen.energy.cdf", "frozen.energy.lengths", "frozen.energy.offsets"} <= set(state)
    m2 = AudioModel(wavelet_levels=5, N=64, E=32, hop=4096, context=256, loudness=1, transform=1,
                    energy=scheme).eval()
    m2.load_state_dict({k: v for k, v in m.state_dict().items() if "h_s_int" not in k}, strict=False)
    m2.load_frozen(state)
    assert torch.equal(m2.decompress(p, 4.0), m.decompress(p, 4.0))
    R, G = m.energy.R, m.energy.groups
    # one cell of one channel: the second group's index is out of range
    r = torch.zeros(1, G if scheme == 1 else 2, 1, dtype=torch.int64)
    r[0, :2, 0] = torch.tensor([3, R + 1])
    if scheme == 1:  # every group, one row, cells of 32 frames
        head, rows, frames = b"", np.zeros(r.numel(), dtype=np.int64), FRAMES
    else:  # the groups coded and the frames a cell first, then the indexes in order, under their contexts
        head, rows, frames = bytes([2, 8]), contexts(r).flatten().numpy()[m.energy.order(1, 2, 1)], 8
    bad = codec.entropy.encode_sequential(r.flatten().numpy(), rows, m.energy.tables)
    with pytest.raises(PayloadError, match="energy section"):
        m.energy.decode(head + bad, 1, frames)
    if scheme == 2:
        good = m.energy.encode(torch.tensor([[[3, -R]]]), 1, 8)
        r, cell = m.energy.decode(good, 1, 16)  # two cells of 8 frames
        assert good[:2] == bytes([1, 8]) and cell == 8
        assert r.shape == (1, G, 2) and r[0, 0].tolist() == [3, -R] and not r[0, 1:].any()
        for n, f in ((0, 8), (G + 1, 8), (1, 3), (1, 128)):  # 1..groups groups coded, cells of CELLS frames
            with pytest.raises(PayloadError, match="groups coded"):
                m.energy.decode(bytes([n, f]) + good[2:], 1, 16)
        with pytest.raises(PayloadError, match="energy section"):
            m.energy.decode(b"\x01", 1, 16)
    # the other scheme's table is refused on loading
    other = _small(1, transform=1, energy=3 - scheme).frozen_state()
    with pytest.raises(ValueError, match="energy table"):
        m2.load_frozen({**state, **{k: v for k, v in other.items() if k.startswith("frozen.energy.")}})
    with pytest.raises(ValueError, match="energy must be 0"):
        AudioModel(wavelet_levels=5, energy=3)


def test_streaming_encoder_writes_the_same_bytes_for_any_blocks(small):
    x = torch.from_numpy(_signal(small.sample_rate, 16000 / small.sample_rate, 2).samples)
    ref = small.compress(x, 4.0)
    assert len({s.index for s in ref.sections}) == len(small.chunks(x.shape[1])) == 4
    assert [s.flags for s in ref.sections][:2] == [1, 0]
    for bs in (1, 999, 4096, 100_000):
        enc = small.encoder(2, 4.0)
        for i in range(0, x.shape[1], bs):
            enc.push(x[:, i:i + bs])
        p = enc.finish()
        assert p.header == ref.header and [s.data for s in p.sections] == [s.data for s in ref.sections]


@pytest.mark.parametrize("t0, t1", [(0, 10), (4000, 4300), (3800, 4400), (8192, 8193), (5000, 16000), (0, 16000)])
def test_random_access_gives_the_samples_of_a_full_decode(small, t0, t1):
    x = torch.from_numpy(_signal(small.sample_rate, 0.5, 2).samples)
    p = small.compress(x, 4.0)
    full = small.decompress(p, 4.0)
    first, last = small.chunk_range(p.header, t0, t1)
    got = torch.full_like(full, float("nan"))
    for st, b in small.decode_chunks(p, 4.0, first=first, last=last):
        got[:, st:st + b.shape[1]] = b
    assert torch.equal(got[:, t0:t1], full[:, t0:t1])
    assert last - first + 1 <= 3 or t1 - t0 > 4096  # only the chunks it needs


def test_chunks_cross_fade_without_a_step(small):
    """Each chunk is decoded alone; across a boundary the output moves as smoothly as inside."""
    x = torch.from_numpy(_signal(small.sample_rate, 0.5, 1).samples)
    rec = small.decompress(small.compress(x, 8.0), 8.0)[0]
    d = (rec[1:] - rec[:-1]).abs()
    for b in (4096, 8192, 12288):
        assert float(d[b - 300:b + 300].max()) <= 2 * float(d.max()) + 1e-6
        assert float(d[b - 300:b + 300].max()) <= 3 * float(torch.quantile(d, 0.999)) + 1e-3


def test_stereo_is_mid_side_and_other_counts_independent(small):
    x = torch.from_numpy(_signal(small.sample_rate, 0.05, 2).samples)
    p = small.compress(x, 4.0)
    n, ch, mode, hop, ctx = small.parse_header(p.header)
    assert (n, ch, mode, hop, ctx) == (x.shape[1], 2, small.MID_SIDE, 4096, 256)
    x3 = torch.from_numpy(_signal(small.sample_rate, 0.05, 3).samples)
    p3 = small.compress(x3, 4.0)
    assert small.parse_header(p3.header)[2] == small.INDEPENDENT and small.decompress(p3, 4.0).shape == x3.shape
    # the same mono signal in both channels: the side is silent and costs (almost) nothing
    mono = x[:1].repeat(2, 1)
    assert small.compress(mono, 4.0).nbytes < 1.6 * small.compress(x[:1], 4.0).nbytes


@pytest.mark.parametrize("header", [b"", b"\0" * 19, None])
def test_bad_model_headers_are_refused(small, header):
    from codec.models.payload import PayloadError

    if header is None:  # 9 channels
        header = small._HEADER.pack(100, 9, 1, 4096, 256)
    with pytest.raises(PayloadError):
        small.parse_header(header)
    for bad in (small._HEADER.pack(100, 2, 1, 4096, 256), small._HEADER.pack(100, 1, 1, 4000, 256),
                small._HEADER.pack(100, 1, 1, 4096, 100), small._HEADER.pack(0, 1, 1, 4096, 256)):
        with pytest.raises(PayloadError):
            small.parse_header(bad)


# ----------------------------------------------------------------------------- API
@pytest.mark.parametrize("rate, channels", [(16000, 1), (22050, 2), (44100, 2), (48000, 1)])
def test_api_round_trip_keeps_rate_length_and_channels(rate, channels):
    a = _signal(rate, 1.3, channels)
    data = codec.encode(a, quality=4)
    info = codec.info(data)
    assert (info["modality"], info["model"], info["sample_rate"], info["channels"], info["samples"]) == \
        ("audio", MODEL, rate, channels, a.length)
    assert info["kbps"] == pytest.approx(8 * len(data) / a.duration / 1000)
    b = codec.decode(data)
    assert isinstance(b, A.Audio) and b.sample_rate == rate and b.samples.shape == a.samples.shape
    assert b.samples.dtype == np.float32 and float(np.abs(b.samples).max()) <= 1
    assert np.array_equal(codec.decode(data, output="numpy"), b.samples)
    # a time range: the samples of the full decode
    part = codec.decode(data, start=0.4, duration=0.5)
    i0 = round(0.4 * rate)
    assert part.length == round(0.5 * rate)
    assert np.abs(part.samples - b.samples[:, i0:i0 + part.length]).max() < 1e-6


def test_api_takes_arrays_with_a_sample_rate_and_refuses_mistakes():
    a = _signal(16000, 0.3, 1)
    assert codec.decode(codec.encode(a.samples[0], sample_rate=16000)).samples.shape == (1, a.length)
    with pytest.raises(InputError, match="sample_rate"):
        codec.encode(a.samples, model=MODEL)
    with pytest.raises(InputError, match="not both"):
        codec.encode(a, quality=3, bitrate=16)
    with pytest.raises(InputError, match="for audio"):
        codec.encode(np.zeros((64, 64, 3), np.uint8), bitrate=16)
    with pytest.raises(InputError, match="up to 8 channels"):
        codec.encode(A.Audio(np.zeros((9, 1000), np.float32), 16000))
    data = codec.encode(a)
    for kw, match in [({"start": 5.0}, "past the end"), ({"start": -1.0}, "start"), ({"duration": 0}, "duration"),
                      ({"output": "pil"}, "output must be")]:
        with pytest.raises(InputError, match=match):
            codec.decode(data, **kw)
    with pytest.raises(InputError, match="for audio"):
        codec.decode(codec.encode(np.zeros((64, 64, 3), np.uint8)), start=1.0)


def test_bitrate_picks_the_highest_quality_under_the_target():
    from codec.audio_coding import parse_bitrate

    assert parse_bitrate("16k") == parse_bitrate("16 kbps") == parse_bitrate(16) == parse_bitrate("16000") == 16
    with pytest.raises(InputError):
        parse_bitrate("fast")
    a = _signal(32000, 1.0, 1)
    lo = codec.info(codec.encode(a, quality=1))["kbps"]
    hi = codec.info(codec.encode(a, quality=8))["kbps"]
    target = (lo + hi) / 2 if hi > lo * 1.05 else hi
    d = codec.info(codec.encode(a, bitrate=target))
    # measured on the payload: the container's own bytes add a little
    assert d["kbps"] <= target * 1.02
    if d["quality"] < 8:
        assert codec.info(codec.encode(a, quality=d["quality"] + 0.01))["kbps"] > target * 0.98


def test_corrupt_audio_streams_are_clean_errors():
    data = bytearray(codec.encode(_signal(16000, 0.5, 1)))
    for i in range(60, len(data), max(1, len(data) // 40)):
        bad = bytearray(data)
        bad[i] ^= 0x5A
        try:
            codec.decode(bytes(bad))
        except CodecError:
            pass


# ----------------------------------------------------------------------------- CLI and files
def _cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "codec.cli", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, env={**os.environ, "PYTHONWARNINGS": "ignore"})


@pytest.mark.parametrize("rate, channels, ext", [(16000, 1, "wav"), (22050, 2, "flac"), (44100, 2, "wav"),
                                                 (48000, 1, "flac")])
def test_files_round_trip_through_the_cli(tmp_path, rate, channels, ext):
    a = _signal(rate, 1.1, channels)
    src = tmp_path / f"in.{ext}"
    A.write(src, a)
    r = _cli("encode", src, "-o", tmp_path / "s.nmc")
    assert r.returncode == 0, r.stderr
    assert "kbps" in r.stdout
    r = _cli("decode", tmp_path / "s.nmc", "-o", tmp_path / f"out.{ext}")
    assert r.returncode == 0, r.stderr
    b = A.read(tmp_path / f"out.{ext}")
    assert (b.sample_rate, b.channels, b.length) == (rate, channels, a.length)
    # the API's decode, written as 16-bit, is what the file holds
    dec = codec.decode((tmp_path / "s.nmc").read_bytes())
    assert np.array_equal(A.to_int16(dec.samples), A.to_int16(b.samples))
    r = _cli("info", tmp_path / "s.nmc")
    assert f"{rate} Hz" in r.stdout and ("mono" if channels == 1 else "stereo") in r.stdout and "kbps" in r.stdout


def test_cli_time_range_and_bitrate(tmp_path):
    src = tmp_path / "in.wav"
    A.write(src, _signal(44100, 2.0, 2))
    r = _cli("encode", src, "-o", tmp_path / "s.nmc", "--bitrate", "24k")
    assert r.returncode == 0, r.stderr
    assert "target 24 kbps" in r.stdout
    r = _cli("decode", tmp_path / "s.nmc", "-o", tmp_path / "part.wav", "--start", "0.5", "--duration", "1")
    assert r.returncode == 0, r.stderr
    assert A.read(tmp_path / "part.wav").length == 44100


def _bad_inputs(tmp_path):
    corrupt = tmp_path / "corrupt.wav"
    A.write(corrupt, _signal(16000, 0.5, 1))
    raw = bytearray(corrupt.read_bytes())
    corrupt.write_bytes(bytes(raw[:44]) + os.urandom(50))
    empty = tmp_path / "empty.wav"
    A.write(tmp_path / "one.wav", _signal(16000, 0.01, 1))
    head = bytearray((tmp_path / "one.wav").read_bytes()[:44])
    head[40:44] = (0).to_bytes(4, "little")
    head[4:8] = (36).to_bytes(4, "little")
    empty.write_bytes(bytes(head))
    zero_hz = tmp_path / "zero_hz.wav"
    h = bytearray(head)
    h[24:28] = (0).to_bytes(4, "little")
    zero_hz.write_bytes(bytes(h) + b"\0" * 100)
    many = tmp_path / "many.wav"
    A.write(many, A.Audio(np.zeros((64, 800), np.float32), 8000))
    video = tmp_path / "video.mp4"
    import av

    with av.open(str(video), "w") as out:
        s = out.add_stream("mpeg4", rate=5)
        s.width = s.height = 32
        for i in range(3):
            f = av.VideoFrame.from_ndarray(np.zeros((32, 32, 3), np.uint8), format="rgb24")
            for p in s.encode(f):
                out.mux(p)
        for p in s.encode(None):
            out.mux(p)
    return {"corrupt": corrupt, "zero-length": empty, "0 Hz": zero_hz, "64 channels": many, "video": video}


def test_bad_audio_inputs_get_one_line_and_no_output(tmp_path):
    for what, path in _bad_inputs(tmp_path).items():
        out = tmp_path / f"{what}.nmc"
        r = _cli("encode", path, "-o", out, "--model", MODEL)
        assert r.returncode != 0, what
        lines = [ln for ln in r.stderr.strip().splitlines() if ln]
        assert len(lines) == 1 and lines[0].startswith("codec: error:"), (what, r.stderr)
        assert "Traceback" not in r.stderr and not out.exists(), what
    with pytest.raises(InputError, match="finite"):
        codec.encode(np.array([[0.0, np.nan]], np.float32), sample_rate=16000)


def test_decode_refuses_to_overwrite_and_leaves_nothing_on_error(tmp_path):
    data = codec.encode(_signal(16000, 0.5, 1))
    (tmp_path / "s.nmc").write_bytes(data)
    (tmp_path / "out.wav").write_bytes(b"keep")
    r = _cli("decode", tmp_path / "s.nmc", "-o", tmp_path / "out.wav")
    assert r.returncode != 0 and "--force" in r.stderr and (tmp_path / "out.wav").read_bytes() == b"keep"
    bad = bytearray(data)
    bad[-5] ^= 0xFF
    (tmp_path / "bad.nmc").write_bytes(bytes(bad))
    r = _cli("decode", tmp_path / "bad.nmc", "-o", tmp_path / "new.wav")
    assert r.returncode != 0 and not (tmp_path / "new.wav").exists()
    assert len(r.stderr.strip().splitlines()) == 1


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_gpu_encoded_audio_decodes_on_the_cpu():
    a = _signal(44100, 3.0, 2)
    g = codec.encode(a, device="cuda")  # the CUDA analysis may round a latent otherwise than the CPU's:
    # the stream need not equal a CPU encode, but must decode on both (the index path is exact)
    assert np.abs(codec.decode(g, device="cpu").samples - codec.decode(g, device="cuda").samples).max() < 1e-3


# ----------------------------------------------------------------------------- hostile streams (review)
def _repacked(data, samples=None, rate=None, header=None):
    import dataclasses

    from codec import container as ct

    c = ct.unpack(data)
    info = dataclasses.replace(c.media, samples=samples or c.media.samples, sample_rate=rate or c.media.sample_rate)
    payload = dataclasses.replace(c.payload, header=header if header is not None else c.payload.header)
    return ct.pack(dataclasses.replace(c, media=info, payload=payload))


def test_a_small_stream_cannot_ask_for_much_work():
    import resource
    import time

    from codec.models import registry

    m = registry.load_model(MODEL)
    data = codec.encode(_signal(8000, 0.5, 1))
    n_model = A.resampled_length(5 * 10 ** 7, 8000, m.sample_rate)
    tiny_hop = _repacked(data, samples=5 * 10 ** 7, header=m._HEADER.pack(n_model, 1, 1, m.multiple, m.multiple // 2))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t = time.perf_counter()
    with pytest.raises(CodecError, match="sections"):
        codec.decode(tiny_hop)
    assert time.perf_counter() - t < 2 and resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 100_000
    # a stream at a rate no encoder writes, or whose length at the model's rate is over the limit
    with pytest.raises(InputError, match="Hz"):
        codec.decode(_repacked(data, rate=999))
    slow = _repacked(data, samples=4 * 10 ** 8, rate=1000,
                     header=m._HEADER.pack(A.resampled_length(4 * 10 ** 8, 1000, m.sample_rate), 1, 1, m.hop, m.context))
    with pytest.raises(CodecError, match="model's 48000 Hz"):
        codec.decode(slow)


def test_huge_or_odd_time_ranges_are_one_line_errors(tmp_path):
    data = codec.encode(_signal(16000, 1.0, 1))
    for kw in ({"start": 1e308}, {"duration": 1e308}, {"start": float("inf")}, {"duration": float("nan")},
               {"start": True}):
        try:
            r = codec.decode(data, **kw)
        except InputError:
            continue
        assert kw == {"duration": 1e308} and r.length == 16000  # to the end
    assert codec.decode(data, start=0.99999).length >= 1
    (tmp_path / "s.nmc").write_bytes(data)
    r = _cli("decode", tmp_path / "s.nmc", "-o", tmp_path / "p.wav", "--start", "1e308")
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and "past the end" in r.stderr


def test_too_short_to_code_is_an_input_error():
    with pytest.raises(InputError, match="too short"):
        codec.encode(np.zeros((1, 1), np.float32), sample_rate=192000)


def test_decoding_a_folder_names_each_output_by_its_medium(tmp_path):
    (tmp_path / "song.nmc").write_bytes(codec.encode(_signal(16000, 0.3, 1)))
    (tmp_path / "pic.nmc").write_bytes(codec.encode(np.zeros((16, 16, 3), np.uint8)))
    r = _cli("decode", tmp_path / "pic.nmc", tmp_path / "song.nmc", "-o", tmp_path / "out", "-q")
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["pic.png", "song.wav"]
    assert A.read(tmp_path / "out" / "song.wav").length == 4800


def test_the_bitrate_note_only_when_the_lowest_quality_is_too_much(tmp_path):
    src = tmp_path / "in.wav"
    A.write(src, _signal(16000, 0.5, 1))
    r = _cli("encode", src, "-o", tmp_path / "a.nmc", "--bitrate", "1000k")
    assert r.returncode == 0 and "note" not in r.stderr and "q8" in r.stdout
    r = _cli("encode", src, "-o", tmp_path / "b.nmc", "--bitrate", "0.5")
    assert r.returncode == 0 and "below this model's lowest quality" in r.stderr and "q1," in r.stdout


def test_spectrogram_tool_draws_the_original_and_each_decode(tmp_path, capsys):
    from codec.tools import audio_spectrogram

    src = tmp_path / "in.wav"
    A.write(src, _signal(16000, 1.0, 1))
    assert audio_spectrogram.main([str(src), "-o", str(tmp_path / "s.png"), "--quality", "2,7"]) == 0
    from PIL import Image

    im = Image.open(tmp_path / "s.png")
    assert im.size[1] > im.size[0] * 0.6  # three panels
    # user mistakes: one line on stderr and status 2, no traceback, the picture kept
    before = (tmp_path / "s.png").read_bytes()
    assert audio_spectrogram.main([str(src), "-o", str(tmp_path / "s.png")]) == 2
    assert audio_spectrogram.main([str(tmp_path / "missing.wav"), "-o", str(tmp_path / "t.png")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and "exists" in err[0] and "missing.wav" in err[1]
    assert (tmp_path / "s.png").read_bytes() == before and not (tmp_path / "t.png").exists()


def test_no_clicks_at_chunk_boundaries_with_the_shipped_weights():
    """A steady tone across two chunk boundaries (10 s chunks): the decoded signal's error
    near a boundary is no larger than elsewhere."""
    from codec.models import registry

    m = registry.load_model(MODEL)
    if not m.trained:
        pytest.skip("no trained weights")
    rate = m.sample_rate
    t = np.arange(int(2.2 * m.hop)) / rate
    x = torch.from_numpy((0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32))[None]
    y = m.decompress(m.compress(x, 6.0), 6.0)[0]
    err = (y - x[0]).abs()
    win = 2 * m.context
    local = [float(err[b - win:b + win].pow(2).mean().sqrt()) for b in (m.hop, 2 * m.hop)]
    inner = float(err[m.hop // 2: m.hop // 2 + 20 * win].pow(2).mean().sqrt())
    assert max(local) < 2 * inner + 1e-4, (local, inner)
    d = (y[1:] - y[:-1]).abs()  # no step: the sample-to-sample change there is what a tone has
    assert float(d[m.hop - win:m.hop + win].max()) < 1.5 * float(d[1000:m.hop // 2].max())


def test_eval_of_the_audio_model_in_a_process_pool_does_not_hang(tmp_path):
    """The pool forks its workers after the model's probe ran torch: with its thread pool started, they deadlocked."""
    (tmp_path / "in").mkdir()
    A.write(tmp_path / "in" / "a.wav", _signal(16000, 1.2, 1))
    r = subprocess.run([sys.executable, "-m", "codec.cli", "eval", str(tmp_path / "in"), "--codec",
                        f"ours:{MODEL}:2,6", "-o", str(tmp_path / "out"), "-j", "2", "--no-progress"],
                       capture_output=True, text=True, timeout=300, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert r.returncode == 0, r.stderr
    import json

    res = json.loads((tmp_path / "out" / f"ours-{MODEL}.json").read_text())
    assert len(res["results"]["kbps"]) == 2 and all(v > 0 for v in res["results"]["kbps"])


def test_fit_energy_pmf_counts_the_indexes_of_each_context(tmp_path, capsys):
    from codec.models import registry
    from codec.models.audio_energy import CONTEXTS, SCHEMES
    from codec.tools import fit_energy_pmf

    A.write(tmp_path / "a.wav", _signal(16000, 0.5, 1))
    assert fit_energy_pmf.main([str(tmp_path), "--scheme", "2", "--every", "1", "--qualities", "2,6"]) == 0
    assert torch.is_grad_enabled()  # the tool leaves the process's autograd as it found it
    out = capsys.readouterr().out
    rows = [line for line in out.split("COUNTS2 = (", 1)[1].splitlines() if line.strip().startswith("(")]
    counts = [[int(v) for v in row.strip(" (),").split(", ")] for row in rows]
    assert len(counts) == CONTEXTS and all(len(r) == 2 * SCHEMES[2][0] + 1 for r in counts)
    # one chunk of a 16 kHz mono file: the groups below 8 kHz, cells of 16 frames at quality 2, of 8 at 6
    m = registry.load_model("wavelet-audio")
    frames = m.chunks(24000)[0][2] // m.frame  # 0.5 s at 48 kHz
    want = m.energy_groups(16000) * (m.energy.cells(frames, 16) + m.energy.cells(frames, 8))
    assert sum(map(sum, counts)) == want and f"scheme 2: {want} indexes" in out


def test_training_forward_can_see_the_output_as_the_energy_correction_leaves_it():
    """``forward(x, q, energy=True)``: the output is the synthesis corrected by the indexes
    the encoder would choose (each group and cell then within half an index, 0.75 dB, of the
    input's energy), cells of the encoder's rule per excerpt, the indexes' likelihoods under
    the stored counts (their bits what the section spends, but for the rANS stream's own few
    bytes), and the gradient still reaches the synthesis."""
    from codec.models.audio_energy import contexts

    m = _small(1, transform=1, energy=2).train()
    torch.manual_seed(1)
    x = torch.from_numpy(np.stack([_signal(m.sample_rate, 0.2, 1, seed=s).samples for s in (1, 2)]))
    x = x[..., :x.shape[-1] // m.multiple * m.multiple]
    q = torch.tensor([2.0, 5.0])  # cells of 16 and 8 frames
    plain = m(x, q)
    out = m(x, q, energy=True)
    assert set(out["likelihoods"]) == set(plain["likelihoods"]) | {"energy8", "energy16"}
    assert out["x_plain"].shape == out["x_hat"].shape and not torch.equal(out["x_plain"], out["x_hat"])
    p8, p16 = out["likelihoods"]["energy8"], out["likelihoods"]["energy16"]
    assert torch.all(p8[0] == 1) and torch.all(p16[1] == 1)  # each excerpt is counted under its own cells
    assert bool(((p8[1] > 0) & (p8[1] < 1)).all()) and bool(((p16[0] > 0) & (p16[0] < 1)).all())
    c = m.packet(x)
    corrected = m.packet(out["x_hat"])
    for i, cell in ((0, 16), (1, 8)):
        e, e_hat = m.energy._energy(c[i:i + 1], None, cell), m.energy._energy(corrected[i:i + 1], None, cell)
        err = (2 * torch.log2(e / e_hat)).abs().detach()
        assert float(err.max()) < 0.5 + 1e-3  # rounded to the nearest quarter of log2: within half an index
    # the bits the likelihoods count are what the section spends (rANS: a few bytes more)
    with torch.no_grad():
        r = torch.randint(-3, 4, (1, m.energy.groups, 200))
        bits = -float(torch.log2(m.energy.likelihoods(r)).sum())
        coded = 8 * (len(m.energy.encode(r, None, 8)) - 2)  # the group count and cell size: 2 bytes
        assert 0 <= coded - bits < 0.01 * bits + 8 * 20  # the rANS stream's own few bytes
        assert m.energy.likelihoods(r).shape == r.shape and contexts(r).shape == r.shape
    loss = out["x_hat"].square().mean() + sum(-torch.log2(v).sum() for v in out["likelihoods"].values()) * 1e-6
    loss.backward()
    assert m.g_s.branch[-1].weight.grad is not None and float(m.g_s.branch[-1].weight.grad.abs().sum()) > 0
    m.eval()
