"""The container, version 2 (and version 1 streams): exact round trips, strict parsing, old streams."""
import hashlib
import json
import pathlib
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

import codec
from codec import container as ct
from codec.models.payload import KINDS, Payload, PayloadError, Section

from pictures import smooth_image

pytestmark = pytest.mark.filterwarnings("ignore::codec.api.UntrainedModelWarning")
ROOT = pathlib.Path(__file__).resolve().parents[1]
GOLDEN = ROOT / "tests" / "golden"
KODAK = ROOT.parent / "shared" / "data" / "kodak"


def _stream(model="factorized", h=24, w=40):
    return codec.encode(smooth_image(h, w, 5), model=model, device="cpu")


def _repack_v2(c: ct.Container, **fields) -> bytes:
    """A v2 stream with raw field values (bypassing the descriptor checks of pack)."""
    name = fields.get("name", c.model).encode()
    desc = fields.get("desc", c.media.pack())
    header = fields.get("header", c.payload.header)
    head = (struct.pack("<4sBBHB", ct.MAGIC, fields.get("version", 2), fields.get("modality", 0),
                        fields.get("flags", 0), len(name)) + name
            + struct.pack("<8sH", c.weights_id, fields.get("quality", c.quality))
            + struct.pack("<H", len(desc)) + desc + struct.pack("<H", len(header)) + header)
    secs = fields.get("sections", [(KINDS[s.kind], s.flags, 0, s.index, s.data) for s in c.sections])
    head += struct.pack("<I", len(secs))
    table = b"".join(struct.pack("<BBHIII", k, f, r, i, len(d), zlib.crc32(d)) for k, f, r, i, d in secs)
    return head + table + struct.pack("<I", zlib.crc32(head + table)) + b"".join(d for *_, d in secs)


def test_pack_unpack_are_inverse_for_every_medium():
    for media in [ct.ImageInfo(7, 5, "gray"), ct.AudioInfo(48000, 2, 123456, 16),
                  ct.VideoInfo(64, 48, 10, (30000, 1001), "yuv420", 10)]:
        key = 0 if media.modality == "image" else 1  # a picture's sections carry no flags
        payload = Payload([Section("hyper-latent", b"ab", 0, key), Section("latent", b"", 2, 0)][: 1 + key]
                          + [Section("latent", b"xyz")] * (1 - key), b"\x01\x02")
        c = ct.Container("some-model", b"12345678", 321, media, payload)
        data = ct.pack(c)
        back = ct.unpack(data)
        assert back == c and ct.pack(back) == data
        assert back.modality == media.modality


def test_a_real_stream_round_trips_and_matches_its_raw_form():
    data = _stream("hyperprior")
    c = ct.unpack(data)
    assert c.version == 2 and ct.pack(c) == data
    assert c.payload.kinds() == ("hyper-latent", "latent")
    assert _repack_v2(c) == data  # the layout in CONTAINER.md, written independently of pack()


def test_truncation_trailing_bytes_and_bit_flips_are_errors():
    data = _stream("hyperprior")
    for cut in [0, 3, 10, 30, len(data) // 2, len(data) - 1]:
        with pytest.raises(ct.ContainerError):
            ct.unpack(data[:cut])
    with pytest.raises(ct.ContainerError):
        ct.unpack(data + b"x")
    rng = np.random.default_rng(0)
    for p in sorted(set(rng.integers(0, len(data), 60).tolist()) | set(range(0, 60))):
        bad = bytearray(data)
        bad[p] ^= 0x10
        with pytest.raises(codec.CodecError):
            codec.decode(bytes(bad))


@pytest.mark.parametrize("fields, match", [
    (dict(version=3), "version 3"),
    (dict(modality=7), "unknown modality"),
    (dict(flags=1), "header flags"),
    (dict(desc=struct.pack("<IIBB", 40, 24, 2, 8)), "colour format 2"),  # yuv420 is not an image colour
    (dict(desc=struct.pack("<IIBB", 40, 24, 0, 16)), "bit depth 16"),
    (dict(desc=struct.pack("<IIBB", 0, 24, 0, 8)), "picture size"),
    (dict(desc=struct.pack("<IIBB", 40, 24, 0, 8) + b"\0"), "descriptor has 10 bytes"),
    (dict(sections=[(9, 0, 0, 0, b"xx")]), "unknown kind 9"),
    (dict(sections=[(1, 4, 0, 0, b"xx")]), "unknown flags"),
    (dict(sections=[(1, 1, 0, 0, b"xx")]), "an image's sections have none"),
    (dict(sections=[(1, 0, 7, 0, b"xx")]), "reserved"),
    (dict(sections=[(1, 0, 0, 3, b"xx")]), "index 3"),
])
def test_unknown_field_values_are_refused(fields, match):
    c = ct.unpack(_stream())
    with pytest.raises(ct.ContainerError, match=match):
        ct.unpack(_repack_v2(c, **fields))


def test_audio_and_video_descriptor_fields_are_checked():
    payload = Payload([Section("latent", b"x")])
    for media in [ct.AudioInfo(0, 2, 10), ct.AudioInfo(48000, 0, 10), ct.AudioInfo(48000, 2, 0),
                  ct.AudioInfo(48000, 2, 10, 12), ct.VideoInfo(64, 48, 0), ct.VideoInfo(63, 48, 1),
                  ct.VideoInfo(64, 48, 1, (0, 1)), ct.VideoInfo(64, 48, 1, bit_depth=12)]:
        with pytest.raises(ct.ContainerError):
            ct.pack(ct.Container("m", b"12345678", 1, media, payload))


def test_section_kinds_are_checked_against_the_model():
    c = ct.unpack(_stream("hyperprior"))
    swapped = [(KINDS[k], 0, 0, 0, s.data) for k, s in zip(("latent", "hyper-latent"), c.sections)]
    with pytest.raises(codec.CodecError, match="writes sections hyper-latent, latent"):
        codec.decode(_repack_v2(c, sections=swapped))
    one = [(KINDS["latent"], 0, 0, 0, c.sections[1].data)]
    with pytest.raises(codec.CodecError, match="writes sections"):
        codec.decode(_repack_v2(c, sections=one))
    with pytest.raises(PayloadError):
        Section("nonsense", b"")


def test_model_header_must_fit_the_picture():
    c = ct.unpack(_stream("hyperprior"))
    for header in [b"", struct.pack("<II", 1000, 1000), c.payload.header + b"\0"]:
        with pytest.raises(codec.CodecError, match="model header"):
            codec.decode(_repack_v2(c, header=header))


def test_a_stream_of_another_medium_for_an_image_model_is_refused():
    c = ct.unpack(_stream())
    bad = ct.Container(c.model, c.weights_id, c.quality, ct.AudioInfo(48000, 1, 1000), c.payload)
    with pytest.raises(codec.CodecError, match="codes image"):
        codec.decode(ct.pack(bad))


#: the weights the version 1 golden data was made with (commit e1ebc1d); mean-scale-vr has
#: been retrained since, so its version 1 streams now meet "other weights" (as any stream of
#: replaced weights does), and only mean-scale-small still decodes them
V1_WEIGHTS = {"mean-scale-small": "d5b529a5bc0829e6", "mean-scale-vr": "4cab7f492b5f8319"}


def _unchanged(model: str) -> bool:
    return codec.load_model(model).weights_id.hex() == V1_WEIGHTS[model]


def test_version_1_stream_of_replaced_weights_is_refused_clearly():
    data = (GOLDEN / "v1-vr-q3.25-rgb.nmc").read_bytes()
    c = ct.unpack(data)
    assert c.version == 1 and c.weights_id.hex() == V1_WEIGHTS["mean-scale-vr"]
    if _unchanged("mean-scale-vr"):
        assert codec.decode(data).shape == (75, 100, 3)
    else:
        with pytest.raises(codec.CodecError, match="other weights for model 'mean-scale-vr'"):
            codec.decode(data)


@pytest.mark.parametrize("name", ["v1-vr-q3.25-rgb", "v1-small-q4-gray"])
def test_version_1_streams_still_decode_exactly(name, monkeypatch):
    want = json.loads((GOLDEN / "v1_golden.json").read_text())[name]
    data = (GOLDEN / f"{name}.nmc").read_bytes()
    if not _unchanged(ct.unpack(data).model):
        pytest.skip("its model's weights were replaced after version 1 (see the test above)")
    assert hashlib.sha256(data).hexdigest() == want["stream_sha256"]
    c = ct.unpack(data)
    assert c.version == 1 and c.payload.header == b""
    out = codec.decode(data)
    assert list(out.shape) == want["shape"]
    assert hashlib.sha256(out.tobytes()).hexdigest() == want["decoded_sha256"]
    # the same picture and quality coded today: with the rANS streams of version 1 (as the
    # coder still writes them when asked), the same sections, only the envelope differs
    src = Image.open(ROOT / "codec" / "assets" / "kodim23.png").convert("RGB").crop((300, 200, 400, 275))
    if c.media.colour == "gray":
        src = src.convert("L")
    q = codec.api.stream_quality(c)
    today = codec.encode(src, model=c.model, quality=q, effort="fast")  # rANS version 2: smaller, the same picture
    from codec.entropy import format as rans_format
    monkeypatch.setattr(rans_format, "WRITE_VERSION", 1)
    monkeypatch.setattr(rans_format, "LAYOUT_RULE", 2)
    new = ct.unpack(codec.encode(src, model=c.model, quality=q, effort="fast"))
    assert [s.data for s in new.sections] == [s.data for s in c.sections]
    assert new.version == 2 and codec.info(data)["version"] == 1
    assert sum(len(s.data) for s in ct.unpack(today).sections) < sum(len(s.data) for s in c.sections)
    assert np.array_equal(codec.decode(today), out)


def test_version_1_fields_are_checked():
    data = bytearray((GOLDEN / "v1-vr-q3.25-rgb.nmc").read_bytes())
    nlen = data[8]
    colour_at = 9 + nlen + 8 + 2 + 4 + 4 + 4  # weights id, quality, width, height, frames
    for at, value in [(colour_at, 2), (colour_at + 1, 16), (colour_at - 4, 2)]:
        bad = bytearray(data)
        bad[at] = value
        table_end = 9 + nlen + struct.calcsize("<8sHIIIBBIIH") + 4 + 16 * 2
        bad[table_end: table_end + 4] = struct.pack("<I", zlib.crc32(bytes(bad[:table_end])))
        with pytest.raises(ct.ContainerError):
            ct.unpack(bytes(bad))


@pytest.mark.slow
@pytest.mark.skipif(not KODAK.is_dir(), reason="needs ../shared/data/kodak")
def test_kodak_sections_are_byte_identical_to_version_1(monkeypatch):
    """The shipped models code all 24 Kodak images to exactly the sections the version 1
    codec wrote (recorded at commit e1ebc1d by tests/golden/make_v1_golden.py): every model
    whose weights are still those of e1ebc1d (all 120 cases passed before mean-scale-vr
    was retrained).  Those streams were laid out by revision 1 of the rANS layout rule
    (four times today's lanes, entropy/FORMAT.md), which this test pins: with it, the
    same symbols must give the same bytes."""
    from codec.entropy import format as rans_format

    monkeypatch.setattr(rans_format, "LAYOUT_RULE", 1)
    monkeypatch.setattr(rans_format, "WRITE_VERSION", 1)
    want = json.loads((GOLDEN / "kodak_sections_v1.json").read_text())
    want = {k: v for k, v in want.items() if _unchanged(k.split("|")[1])}  # models retrained since: not comparable
    assert len(want) >= 24  # mean-scale-small at least
    got = {}
    for key in want:
        fname, model, q = key.split("|")
        img = Image.open(KODAK / fname)
        c = ct.unpack(codec.encode(img, model=model, quality=float(q), device="cpu", effort="fast"))  # (v1 had no refinement)
        got[key] = [hashlib.sha256(s.data).hexdigest()[:16] for s in c.sections]
    assert got == want
