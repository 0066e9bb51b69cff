"""The video model: exact integer synthesis, motion compensation, the section table, round trips."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from codec.models import registry
from codec.models.integer import IntegerNet, isqrt
from codec.models.payload import FLAG_KEY, Payload, PayloadError, Section

from pictures import smooth_image


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return registry.load_model("video-ip")


def _moving_clip(frames=5, size=(72, 88), seed=0):
    """A textured picture moving by (1, 2) pixels a frame, with a little noise."""
    H, W = size
    big = smooth_image(H + 4 * frames, W + 4 * frames, seed=seed).astype(np.int32)
    rng = np.random.default_rng(seed)
    return [np.clip(big[i:i + H, 2 * i:2 * i + W] + rng.integers(-2, 3, (H, W, 3)), 0, 255).astype(np.uint8)
            for i in range(frames)]


# ------------------------------------------------------------------------ integer synthesis
def test_isqrt_is_exact():
    rng = np.random.default_rng(0)
    vals = [int(v) for v in rng.integers(0, 2 ** 52, 2000)] + [k * k for k in range(0, 3000, 7)] + \
        [k * k - 1 for k in range(1, 3000, 7)] + [2 ** 52 - 1, (2 ** 26) ** 2]
    got = isqrt(torch.tensor(vals, dtype=torch.float64))
    assert [int(g) for g in got] == [math.isqrt(v) for v in vals]


def test_integer_synthesis_is_close_to_the_float_one(model):
    """The integer synthesis (inverse GDN included) costs almost nothing: within 0.05 dB and
    one grey level of the float synthesis on a picture coded at two qualities.  (The shipped
    float weights are fp16, while the integer networks were frozen from the full-precision
    ones: most of the difference is the fp16 rounding of the float copy; with both from the
    same weights it is about 0.006 dB on Kodak, README.)"""
    sub = model.intra
    x = torch.from_numpy(smooth_image(160, 128, seed=4)).permute(2, 0, 1)[None].float() / 255
    H, W = x.shape[-2:]
    for q in (2.0, 7.0):
        with torch.no_grad():
            y = sub.g_a(sub.pad(x))
            g, gi = sub.latent_codec.gains(q, 1, "cpu")
            _, y_inner = sub.latent_codec.inner.compress(y * g)
            ref = torch.clamp(torch.round(sub.g_s(y_inner * gi) * 255), 0, 255)[0, :, :H, :W]
            got = model._pixels(model._synthesize("intra", y_inner, q))[:, :H, :W]
        orig = torch.round(x[0] * 255)
        psnr = lambda a: 10 * math.log10(255 ** 2 / float(((a.float() - orig) ** 2).mean()))  # noqa: E731
        assert abs(psnr(got) - psnr(ref)) < 0.05
        assert int((got.float() - ref).abs().max()) <= 1


def test_integer_network_state_round_trips(model):
    net = model.synth_int["inter"]
    state = net.state("p.")
    assert "p.square_shifts" in state and "p.act_bits" in state
    again = IntegerNet.from_state(model.inter.g_s, state, "p.")
    a = torch.randint(-5000, 5000, (1, model.M, 3, 4)).double()
    assert torch.equal(net(a, scaled=True), again(a, scaled=True))
    with pytest.raises(ValueError, match="square shifts"):
        IntegerNet.from_state(model.inter.g_s, {k: v for k, v in state.items() if k != "p.square_shifts"}, "p.")


def test_decoding_does_not_drift_when_the_library_sums_in_another_order(model, monkeypatch):
    """What another device does differently: the order of a convolution's sums.  Every partial
    sum of the integer path is an exact integer, so splitting each convolution over its input
    channels (another summation order) decodes the very same frames; the float synthesis does
    not stay the same under that change."""
    clip = _moving_clip(4)
    secs, recs = [], []
    for s, r in model.compress_frames(clip, 4.0, gop=4):
        secs += s
        recs.append(r)
    payload = Payload(secs, model.header_for(88, 72))
    conv2d, deconv = F.conv2d, F.conv_transpose2d

    def split(fn):
        def run(a, w, b=None, *args, **kw):
            if a.dtype != torch.float64 or a.shape[1] < 2:
                return fn(a, w, b, *args, **kw)
            h = a.shape[1] // 2
            wa, wb = (w[:, :h], w[:, h:]) if fn is conv2d else (w[:h], w[h:])
            out = fn(a[:, h:], wb, None, *args, **kw) + fn(a[:, :h], wa, None, *args, **kw)
            return out if b is None else out + b.view(1, -1, 1, 1)
        return run

    monkeypatch.setattr(F, "conv2d", split(conv2d))
    monkeypatch.setattr(F, "conv_transpose2d", split(deconv))
    again = list(model.decode_frames(payload, 4.0, len(clip)))
    assert all(np.array_equal(a, b) for a, b in zip(again, recs))


# ------------------------------------------------------------------------------- motion
def test_compensation_is_exact_half_pel_averaging(model):
    ref = torch.from_numpy(smooth_image(40, 36, seed=1)).permute(2, 0, 1).to(torch.int32)
    bh, bw = model.blocks_of(40, 36)
    zero = torch.zeros((2, bh, bw), dtype=torch.int32)
    assert torch.equal(model.compensate(ref, zero), ref)
    mv = zero.clone()
    mv[1] = 2  # one whole pixel to the right: x + 1, the last column replicated
    want = torch.cat([ref[:, :, 1:], ref[:, :, -1:]], 2)
    assert torch.equal(model.compensate(ref, mv), want)
    mv[1] = 1  # half a pixel: (a + b + 1) >> 1
    assert torch.equal(model.compensate(ref, mv), (ref + want + 1) >> 1)


def test_overlapped_compensation_blends_neighbouring_vectors(model):
    ref = torch.from_numpy(smooth_image(48, 64, seed=2)).permute(2, 0, 1).to(torch.int32)
    bh, bw = model.blocks_of(64, 48)
    zero = torch.zeros((2, bh, bw), dtype=torch.int32)
    shift = zero.clone()
    shift[1] = 6  # three pixels right
    mixed = zero.clone()
    mixed[:, :, 2:] = shift[:, :, 2:]  # the right half of the blocks moves
    p0, p1 = model.compensate(ref, zero, overlap=False), model.compensate(ref, shift, overlap=False)
    got = model.compensate(ref, mixed)
    assert torch.all(got >= torch.minimum(p0, p1)) and torch.all(got <= torch.maximum(p0, p1))
    B = model.BLOCK
    assert torch.equal(got[:, :, :B + B // 4], p0[:, :, :B + B // 4])  # far from the edge: one vector
    assert torch.equal(got[:, :, 3 * B - B // 4:], p1[:, :, 3 * B - B // 4:])
    edge = got[:, :, 2 * B - 2:2 * B + 2]
    assert not torch.equal(edge, p0[:, :, 2 * B - 2:2 * B + 2]) and not torch.equal(edge, p1[:, :, 2 * B - 2:2 * B + 2])
    a = model.obmc_weights()
    assert int(a.max()) == 64 and torch.equal(a, a.flip(0))  # symmetric, one block's own weight at its centre
    r = np.arange(model.BLOCK)
    assert a.tolist() == np.round(64 * np.sin(np.pi * (r + 8.5) / 32) ** 2).astype(int).tolist()


@pytest.mark.parametrize("dy,dx", [(1, 2), (0, 0), (-3, 5), (7, -6)])
def test_search_finds_a_shift(model, dy, dx):
    g = torch.Generator().manual_seed(0)
    big = torch.round(F.avg_pool2d(torch.rand(1, 3, 160, 240, generator=g) * 255, 2, stride=1)[0]).to(torch.int32)
    ref = big[:, 10:74, 20:116].contiguous()
    cur = big[:, 10 + dy:74 + dy, 20 + dx:116 + dx].contiguous()  # ref moved by (dy, dx)
    mv = model.search(cur, ref)
    # the blocks whose content is inside the reference point there (in half pixels)
    assert int(((mv[0] == 2 * dy) & (mv[1] == 2 * dx)).sum()) >= 0.6 * mv[0].numel()
    pred = model.compensate(ref, mv)
    assert float((pred - cur).abs().float().mean()) <= 0.5 * float((ref - cur).abs().float().mean()) + 1e-9


def test_motion_vectors_round_trip_and_bad_ones_are_refused(model):
    g = torch.Generator().manual_seed(0)
    mv = torch.randint(-12, 13, (2, 5, 7), generator=g, dtype=torch.int32)
    rows, d = model.motion_symbols(mv)
    assert all(0 <= r < len(model.MV_SCALES) for r in rows)
    assert torch.equal(model.vectors(d), mv)
    big = torch.full((2, 1, 1), 2 * model.SEARCH + 1, dtype=torch.int32)
    with pytest.raises(PayloadError, match="outside"):
        model.vectors(model.motion_symbols(big)[1])


def test_p_frame_side_stream_is_checked(model, coded):
    clip, payload, _ = coded
    side = payload.sections[2].data  # frame 1: a P-frame
    latent = payload.sections[3].data
    mv, _ = model._decode_inter([side, latent], 72, 88, 3.0, "cpu")
    assert mv.shape == (2, *model.blocks_of(88, 72))
    with pytest.raises(PayloadError, match="table rows"):
        model._decode_inter([bytes([99, 0]) + side[2:], latent], 72, 88, 3.0, "cpu")


# ------------------------------------------------------------------------ frames, sections
@pytest.fixture(scope="module")
def coded(model):
    clip = _moving_clip(7)
    secs, recs = [], []
    for s, r in model.compress_frames(clip, 3.0, gop=3):
        secs += s
        recs.append(r)
    return clip, Payload(secs, model.header_for(88, 72)), recs


def test_round_trip_decodes_the_encoders_reconstruction(model, coded):
    clip, payload, recs = coded
    assert model.key_frames(payload) == [0, 3, 6]
    kinds = [(s.index, s.kind, s.flags) for s in payload.sections[:8]]
    assert kinds == [(0, "hyper-latent", FLAG_KEY), (0, "latent", 0), (1, "hyper-latent", 0), (1, "latent", 0),
                     (2, "hyper-latent", 0), (2, "latent", 0), (3, "hyper-latent", FLAG_KEY), (3, "latent", 0)]
    out = list(model.decode_frames(payload, 3.0, len(clip)))
    assert len(out) == len(clip) and all(o.shape == (72, 88, 3) and o.dtype == np.uint8 for o in out)
    assert all(np.array_equal(a, b) for a, b in zip(out, recs))


@pytest.mark.parametrize("start,stop", [(0, 1), (2, 5), (3, 4), (4, 7), (6, 7)])
def test_random_access_gives_the_frames_of_a_full_decode(model, coded, start, stop):
    clip, payload, recs = coded
    got = list(model.decode_frames(payload, 3.0, len(clip), start, stop))
    assert len(got) == stop - start
    assert all(np.array_equal(a, b) for a, b in zip(got, recs[start:stop]))


def _mutated(payload, fn):
    secs = [Section(s.kind, s.data, s.index, s.flags) for s in payload.sections]
    return Payload(fn(secs), payload.header)


@pytest.mark.parametrize("mutate,msg", [
    (lambda s: s[:-1], "sections"),
    (lambda s: s + [Section("latent", b"", 7), Section("latent", b"", 7)], "sections"),
    (lambda s: [Section(x.kind, x.data, x.index, 0) for x in s], "not a key frame"),
    (lambda s: s[:2] + s[3:4] + s[2:3] + s[4:], "needs a hyper-latent"),
    (lambda s: s[:2] + [Section(x.kind, x.data, x.index, FLAG_KEY) for x in s[2:4]] + s[4:], "needs a hyper-latent"),
    (lambda s: s[:2] + [Section(x.kind, x.data, x.index + 1, x.flags) for x in s[2:]], "belong to frames"),
])
def test_bad_section_tables_are_refused_before_decoding(model, coded, mutate, msg):
    clip, payload, _ = coded
    with pytest.raises(PayloadError, match=msg):
        model.check_sections(_mutated(payload, mutate), len(clip))


def test_header_is_checked(model):
    with pytest.raises(PayloadError, match="bytes"):
        model.parse_header(b"\0" * 3)
    with pytest.raises(PayloadError, match="not this model"):
        model.parse_header(model._HEADER.pack(10, 10, 8, 16))
    with pytest.raises(PayloadError, match="out of range"):
        model.parse_header(model._HEADER.pack(0, 10, model.BLOCK, model.SEARCH))


def test_p_frames_earn_their_keep(model):
    """At equal PSNR, a group of pictures with P-frames takes at least 30% fewer bytes than
    coding every frame as a key frame (the first 12 frames of the bundled clip; the
    all-intra rate at the P-frame stream's PSNR is interpolated, log-linearly, between its
    qualities)."""
    if not model.trained:
        pytest.skip("no shipped video weights")
    from importlib import resources

    from codec.media import video as V

    with resources.as_file(resources.files("codec").joinpath("assets", "bbb-320x180.mp4")) as p:
        with V.Reader(p) as r:
            clip = list(r.frames(0, 12))

    def run(gop, q):
        total, mse = 0, []
        for (secs, rec), f in zip(model.compress_frames(clip, q, gop=gop), clip):
            total += sum(len(s.data) for s in secs)
            mse.append(((rec.astype(float) - f) ** 2).mean())
        return total, 10 * math.log10(255 ** 2 / np.mean(mse))

    intra = sorted((run(1, q)[::-1] for q in (2.0, 3.0, 4.0, 5.0, 6.0)))  # (psnr, bytes), by psnr
    inter_bytes, inter_psnr = run(12, 4.0)
    assert intra[0][0] <= inter_psnr <= intra[-1][0], (intra, inter_psnr)
    want = math.exp(np.interp(inter_psnr, [p for p, _ in intra], [math.log(b) for _, b in intra]))
    print(f"P-frames: {inter_bytes} bytes at {inter_psnr:.2f} dB; all key frames: {want:.0f} bytes there")
    assert inter_bytes <= 0.7 * want, (inter_bytes, want, inter_psnr, intra)
