"""The INR image codec (inr-image) and the sequential rANS streams it codes with."""
import json
import subprocess
import sys

import numpy as np
import pytest
import torch

import codec
from codec import entropy
from codec.entropy.errors import CorruptStreamError, StreamError, TableMismatchError
from codec.models.inr import arch, exact
from codec.models.inr.image import InrImageModel
from codec.models.payload import Payload, PayloadError
from codec.models.registry import load_model

EFFORT = 150  # fitting iterations in these tests: enough to code something, a few seconds on a CPU


def picture(h=40, w=56, seed=0):
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.stack([xx * 200 / w, yy * 200 / h, (xx + yy) * 90 / (w + h)], -1)
    return np.clip(img + np.random.default_rng(seed).normal(30, 8, img.shape), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def coded():
    """(picture, stream, the encoder's own reconstruction) of one short fit."""
    img = picture(64, 96)
    data = codec.encode(img, model="inr-image", quality=8, effort=EFFORT, device="cpu")
    return img, data, codec.load_model("inr-image").last_fit["pixels"]


# -- sequential rANS -------------------------------------------------------------------------
def laplace():
    return entropy.laplace_tables(2.0 ** (np.arange(12) / 2 - 2), 1e-6)


def test_sequential_streams_round_trip_in_any_batches_with_escapes():
    t = laplace()
    rng = np.random.default_rng(1)
    rows = rng.integers(0, t.num_rows, 5000)
    v = np.round(rng.laplace(0, 2.0 ** (rows / 2 - 2))).astype(np.int64)
    v[[3, 70, 4000]] = [1 << 30, -(1 << 31), 12345]  # escapes, both ends of int32
    data = entropy.encode_sequential(v, rows, t)
    assert abs(len(data) - entropy.ideal_bits(v, rows, t) / 8) < 40  # the ideal cost and a small header
    dec = entropy.SequentialDecoder(data, t, v.size)
    out = np.concatenate([dec.decode(rows[a:b]) for a, b in ((0, 1), (1, 999), (999, 999), (999, 5000))])
    dec.finish()
    assert np.array_equal(out, v)
    assert entropy.decode_sequential(entropy.encode_sequential([], [], t), [], t).size == 0


def test_a_sequential_stream_is_pinned_byte_for_byte():
    """FORMAT.md section 8 by example: version, table id, N = 10, one escape of one byte, the
    final state, two words, then the escape: 40 in row 2 (offset -7, 15 values) is
    2 * (40 + 7 - 15) + 1 = 65 (section 2)."""
    t = laplace()
    v, r = [0, 1, -1, 3, 0, 0, 40, -2, 0, 5], [0, 3, 3, 5, 1, 1, 2, 6, 11, 4]
    data = entropy.encode_sequential(v, r, t)
    assert data.hex() == "0116a574ff405d68340a0101f33d5e0ab426528041"
    assert data[1:9] == t.id and list(data[9:12]) == [10, 1, 1] and data[-1] == 65
    assert entropy.decode_sequential(data, r, t).tolist() == v


def test_bad_sequential_streams_are_refused():
    t = laplace()
    v, rows = np.arange(-20, 20), np.full(40, 5)
    data = entropy.encode_sequential(v, rows, t)
    with pytest.raises(TableMismatchError):
        entropy.SequentialDecoder(data, entropy.laplace_tables(np.array([1.0]), 1e-6), 40)
    for bad in (data[:-1], data + b"\0", data[:5], data[:9] + b"\xff" * 7):
        with pytest.raises(CorruptStreamError):
            entropy.decode_sequential(bad, rows, t)
    with pytest.raises(CorruptStreamError):
        entropy.decode_sequential(data, rows[:39], t)  # another symbol count
    dec = entropy.SequentialDecoder(data, t, 40)
    dec.decode(rows[:10])
    with pytest.raises(StreamError):
        dec.finish()  # not every symbol decoded
    with pytest.raises(StreamError):
        dec.decode(rows)  # more than the stream holds
    flipped = bytearray(data)
    flipped[-3] ^= 0x55
    with pytest.raises(CorruptStreamError):
        entropy.decode_sequential(bytes(flipped), rows, t)


def test_laplace_rows_with_a_mean_hold_the_right_masses():
    t = entropy.laplace_tables(np.array([1.0, 0.125]), 1e-6, means=np.array([0.25, 0.5]))
    p = t.freq() / 65536
    zero = -t.offsets  # the column of value 0 in each row
    # Laplace(0.25, 1): mass of [-0.5, 0.5] = 1 - 0.5 e^-0.75 - 0.5 e^-0.25
    assert p[0, zero[0]] == pytest.approx(1 - 0.5 * np.exp(-0.75) - 0.5 * np.exp(-0.25), abs=2e-4)
    assert p[1, zero[1]] == pytest.approx(0.5, abs=2e-4) and p[1, zero[1] + 1] == pytest.approx(0.5, abs=2e-4)


# -- the integer arithmetic ------------------------------------------------------------------
def test_the_decoders_dense_layers_give_the_convolutions_integers():
    g = torch.Generator().manual_seed(0)
    a = torch.randint(-(1 << 20), 1 << 20, (1, 7, 5, 6), generator=g).double()
    w = torch.randint(-9000, 9000, (4, 7, 1, 1), generator=g).double()
    b = torch.randint(-9000, 9000, (4,), generator=g).double()
    conv = exact.int_layer(a, w, b, 9, True, False)
    dense = exact.int_dense(a[0].flatten(1), w, b, 9, True)
    assert torch.equal(conv[0].flatten(1), dense)


def test_wavefronts_visit_every_latent_once_after_its_context():
    h, w = 5, 7
    seen = torch.full((h, w), -1)
    for t, (i, j) in enumerate(exact.wavefronts(h, w)):
        assert (seen[i, j] == -1).all()
        seen[i, j] = t
        for dy, dx in exact.CONTEXT:
            for ii, jj in zip((i + dy).tolist(), (j + dx).tolist()):
                if 0 <= ii < h and 0 <= jj < w:
                    assert 0 <= seen[ii, jj] < t
    assert (seen >= 0).all()
    assert sorted(exact.order(h, w).tolist()) == list(range(h * w))


# -- the codec --------------------------------------------------------------------------------
def test_round_trip_equals_the_encoders_quantised_forward_pass(coded):
    img, data, encoder_pixels = coded
    out = codec.decode(data)
    assert out.shape == img.shape
    assert np.array_equal(out, encoder_pixels.permute(1, 2, 0).numpy())
    psnr = lambda y: 10 * np.log10(255 ** 2 / ((y.astype(float) - img) ** 2).mean())
    assert psnr(out) > psnr(img.reshape(-1, 3).mean(0)) + 6  # far better than the picture's mean colour


def test_the_stream_holds_all_the_bits(coded):
    _, data, _ = coded
    d = codec.info(data)
    assert [s["kind"] for s in d["sections"]] == ["network", "latent"]
    assert d["bytes"] == len(data) == d["header_bytes"] + sum(s["bytes"] for s in d["sections"])
    dims = arch.Dims(**d["decoder"]["architecture"])
    assert d["decoder"]["parameters"] == sum(L.params for L in arch.layers(dims))
    assert 100 < d["decoder"]["macs_per_pixel"]["total"] < 3000
    # the tables are the model's only stored state, and building them again gives the shipped integers
    fresh = InrImageModel()
    fresh.freeze()
    shipped = load_model("inr-image")
    assert fresh.latent_tables.id == shipped.latent_tables.id and fresh.param_tables.id == shipped.param_tables.id


def test_decoding_does_not_depend_on_the_summation_order(coded, monkeypatch):
    """Every float64 sum of the decoder is exact: splitting each convolution and matrix product
    over its input channels (another order of additions) must give the same pixels."""
    img, data, _ = coded
    ref = codec.decode(data)
    conv, mm = torch.nn.functional.conv2d, torch.Tensor.__matmul__

    def split_conv(x, w, b=None, *a, **k):
        if x.dtype != torch.float64 or w.shape[1] < 2:
            return conv(x, w, b, *a, **k)
        h = w.shape[1] // 2
        return conv(x[:, h:], w[:, h:], None, *a, **k) + conv(x[:, :h], w[:, :h], b, *a, **k)

    def split_mm(a, b):
        if a.dtype != torch.float64 or a.dim() != 2 or a.shape[1] < 2:
            return mm(a, b)
        h = a.shape[1] // 2
        return mm(a[:, h:], b[h:]) + mm(a[:, :h], b[:h])

    monkeypatch.setattr(torch.nn.functional, "conv2d", split_conv)
    monkeypatch.setattr(torch.Tensor, "__matmul__", split_mm)
    assert np.array_equal(codec.decode(data), ref)


def test_efforts_and_their_errors():
    iters = InrImageModel.iterations
    assert iters("fast") < iters("medium") < iters("slow")
    assert iters(None) == iters("medium") and iters("250") == 250
    for bad in ("fastest", "0", "1.5", -3, True):
        with pytest.raises(ValueError, match="effort must be"):
            iters(bad)
    with pytest.raises(codec.CodecError, match="effort must be"):
        codec.encode(picture(), model="inr-image", effort="forever")


def _with_header(data, header):
    c = codec.container.unpack(data)
    c.payload = Payload(c.payload.sections, header)
    return codec.container.pack(c)


def test_hostile_headers_are_refused_before_any_allocation(coded):
    _, data, _ = coded
    head = codec.container.unpack(data).payload.header
    W, H, v, *dims = arch.HEADER.unpack_from(head)
    for fields, msg in (((W, H, v, 7, 255, 1, 1, 8, 2), "out of bounds"),  # a 255-unit synthesis
                        ((W, H, v, 99, 16, 1, 1, 8, 2), "out of bounds"),  # 99 latent levels
                        ((W * 2, H, v, *dims), "picture"),  # latent grids for a larger picture
                        ((W, H, 9, *dims), "version")):
        bad = _with_header(data, arch.HEADER.pack(*fields) + head[arch.HEADER.size:])
        with pytest.raises(codec.CodecError, match=msg):
            codec.decode(bad)
    with pytest.raises(codec.CodecError, match="bytes"):
        codec.decode(_with_header(data, head[:-2]))  # one layer's fields missing
    with pytest.raises(PayloadError):
        arch.parse_header(head[:-2] + b"\x30\x00", 19)  # a shift beyond the largest


def test_corrupt_sections_give_clear_errors(coded):
    _, data, _ = coded
    c = codec.container.unpack(data)
    for k in range(2):
        secs = list(c.payload.sections)
        secs[k] = type(secs[k])(secs[k].kind, secs[k].data[:-2])
        c2 = codec.container.unpack(data)
        c2.payload = Payload(secs, c.payload.header)
        with pytest.raises(codec.CodecError):
            codec.decode(codec.container.pack(c2))


def test_cli_encodes_with_an_effort_and_info_prints_the_decoder_cost(tmp_path):
    from PIL import Image

    src = tmp_path / "p.png"
    Image.fromarray(picture(24, 32)).save(src)
    run = lambda *a: subprocess.run([sys.executable, "-m", "codec.cli", *a], capture_output=True, text=True, timeout=300)
    r = run("encode", str(src), "-o", str(tmp_path / "p.nmc"), "--model", "inr-image", "--effort", "15")
    assert r.returncode == 0, r.stderr
    assert "inr-image q4, effort 15" in r.stdout
    r = run("info", str(tmp_path / "p.nmc"))
    assert "MACs per pixel" in r.stdout and "network" in r.stdout
    r = run("decode", str(tmp_path / "p.nmc"), "-o", str(tmp_path / "d.png"))
    assert r.returncode == 0, r.stderr


# -- the INR video codec ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def clip():
    """(frames, stream, the encoder's decoded frames): 5 frames of a moving picture, groups of 3."""
    from codec.api import load_model as api_load

    big = picture(48, 80, seed=3)
    frames = np.stack([big[i:i + 40, 3 * i:3 * i + 56] for i in range(5)])
    m = api_load("inr-video")
    enc = list(m.compress_frames(list(frames), 5.0, gop=3, effort=15))
    data = codec.encode(frames, fps=25, model="inr-video", quality=5, gop=3, effort=15, device="cpu")
    return frames, data, np.stack([d for _, d in enc])


def test_inr_video_round_trip_is_the_encoders_forward_pass_and_any_frame_decodes_alone(clip):
    frames, data, enc = clip
    out = codec.decode(data, output="numpy")
    assert out.shape == frames.shape and np.array_equal(out, enc)
    assert np.array_equal(codec.decode(data, output="numpy", frames="4-4"), out[4:5])
    assert np.array_equal(codec.decode(data, output="numpy", frames="1-3"), out[1:4])
    d = codec.info(data)
    kinds = [(s["kind"], s["index"], s["flags"]) for s in d["sections"]]
    assert kinds == [("network", 0, 1), ("latent", 0, 0), ("latent", 1, 0), ("latent", 2, 0),
                     ("network", 3, 1), ("latent", 3, 0), ("latent", 4, 0)]
    assert d["bytes"] == len(data)
    assert d["decoder"]["parameters"] > 1000 and d["decoder"]["macs_per_pixel"]["total"] > 100


def test_inr_video_refuses_hostile_headers_and_misplaced_sections(clip):
    from codec.models.inr import video as V

    _, data, _ = clip
    c = codec.container.unpack(data)
    head = c.payload.header
    W, H, v, c_e, k = V.HEADER.unpack_from(head)
    for bad in (V.HEADER.pack(W, H, v, 200, k) + head[V.HEADER.size:],  # 200 embedding channels
                V.HEADER.pack(W, H, v, c_e, k + 1) + head[V.HEADER.size:],  # a block missing its width
                head[:V.HEADER.size] + bytes([255] + list(head[V.HEADER.size + 1:]))):  # a 255-channel block
        with pytest.raises(codec.CodecError):
            codec.decode(_with_header(data, bad), output="numpy")
    c2 = codec.container.unpack(data)
    c2.payload = Payload(c2.payload.sections[1:], head)  # frames before any network
    with pytest.raises(codec.CodecError, match="corrupt"):
        codec.decode(codec.container.pack(c2), output="numpy")


def test_the_registry_knows_which_models_are_fitted():
    from codec.models.registry import MODELS

    for spec in MODELS.values():
        assert spec.fitted == getattr(spec.arch_class(), "fitted", False), spec.name
    assert {n for n, s in MODELS.items() if s.fitted} == {"inr-image", "inr-video"}


def test_eval_records_the_effort_and_refuses_it_for_trained_models(tmp_path):
    from PIL import Image

    from codec.tools.evaluate import evaluate, load_results
    from codec.tools.ours import Ours

    o = Ours("inr-image")
    assert o.key == "ours-inr-image" and o.effort is None
    o.effort = "12"
    assert o.key == "ours-inr-image-effort-12" and o.iterations == 12 and "12 fitting iterations" in o.info()["effort"]
    with pytest.raises(codec.CodecError, match="effort must be"):
        o.effort = "lots"
    with pytest.raises(AttributeError):
        Ours("video-ip").effort  # (image models refine their latent: they take an effort)
    r = Ours("mean-scale-vr")
    assert r.effort is None and r.iterations == 20
    r.effort = "slow"
    assert r.key == "ours-mean-scale-vr-effort-slow" and "50 latent refinement iterations" in r.info()["effort"]
    v = Ours("inr-video")
    v.gop, v.effort = 4, "fast"
    assert v.key == "ours-inr-video-gop4-effort-fast"
    (tmp_path / "in").mkdir()
    Image.fromarray(picture(32, 48)).save(tmp_path / "in" / "a.png")
    with pytest.raises(codec.CodecError, match="--effort"):
        evaluate(tmp_path / "in", ["ours:mean-scale-vr:4", "jpeg"], tmp_path / "out", jobs=1, progress=False,
                 log=lambda m: None, effort="fast")  # (JPEG has no effort setting)
    paths = evaluate(tmp_path / "in", ["ours:inr-image:4"], tmp_path / "out", jobs=1, progress=False,
                     log=lambda m: None, effort="12")
    res = load_results(paths["ours-inr-image-effort-12"])
    assert "12 fitting iterations" in json.dumps(res) and res["results"]["encoding_time"][0] > 0


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_inr_streams_fitted_on_a_gpu_decode_identically_on_both_devices():
    img = picture(64, 96)
    frames = np.stack([picture(48, 80, seed=3)[:40, 3 * i:3 * i + 56] for i in range(4)])
    for enc in ("cuda", "cpu"):  # (the float fit may give other bytes on each device; the decode may not)
        data = codec.encode(img, model="inr-image", quality=6, effort=60, device=enc)
        assert np.array_equal(codec.decode(data, device="cpu"), codec.decode(data, device="cuda")), enc
        data = codec.encode(frames, fps=25, model="inr-video", gop=2, effort=10, device=enc)
        assert np.array_equal(codec.decode(data, device="cpu", output="numpy"),
                              codec.decode(data, device="cuda", output="numpy")), enc


def test_inr_video_streams_of_other_architectures_decode_side_by_side(clip):
    """The architecture is the stream's: decoding one never changes the shared model, so two
    streams' frames can be decoded in turn, and later encodes are unchanged."""
    from codec import video_coding as vc
    from codec.models.inr.video import InrVideoModel

    frames, data, _ = clip
    shipped = codec.load_model("inr-video")
    other = InrVideoModel(embed=2, blocks=(8, 6))
    other.load_frozen(shipped.frozen_state())
    payload, n = vc.stream_payload(other, list(frames), 56, 40, 5.0, 3, effort=3)
    c = codec.container.unpack(data)
    c.payload = payload
    data2 = codec.container.pack(c)
    a, b = codec.decode(data, output="numpy"), codec.decode(data2, output="numpy")
    va, vb = codec.decode(data).frames, codec.decode(data2).frames
    for i, (fa, fb) in enumerate(zip(va, vb)):  # interleaved, lazily
        assert np.array_equal(fa, a[i]) and np.array_equal(fb, b[i])
    assert (shipped.embed, shipped.widths) == (4, (24, 16, 12))


def test_a_network_too_big_for_the_memory_limit_is_refused_before_decoding(coded):
    _, data, _ = coded
    head = codec.container.unpack(data).payload.header
    W, H, v, *dims = arch.HEADER.unpack_from(head)
    big = arch.Dims(7, 64, 4, 4, 64, 4)
    n = len(arch.layers(big))
    bad = _with_header(data, arch.HEADER.pack(W, H, v, *big.__dict__.values()) + bytes([8, 0] * n))
    with pytest.raises(codec.CodecError, match="bytes per pixel"):
        codec.decode(bad, max_pixels=W * H)  # the limit at exactly this picture: its 350 bytes a pixel


def test_abandoned_frame_iterators_leave_gradients_on(clip):
    """A lazily decoded video left half-read must not switch autograd off for the caller."""
    _, data, _ = clip
    frames = iter(codec.decode(data).frames)
    next(frames)
    assert torch.is_grad_enabled()
    del frames
    import gc

    gc.collect()
    assert torch.is_grad_enabled()
    enc = codec.load_model("inr-video").compress_frames([picture(40, 56)] * 2, 4.0, gop=2, effort=2)
    next(enc)
    assert torch.is_grad_enabled()
