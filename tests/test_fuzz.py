"""A short fuzz run of the container and every decoder (the long run: ``python -m codec.tools.fuzz``).

Real streams are mutated (byte mutations, and structure-aware ones whose CRCs are fixed up
so that they reach the parsers behind the checksums); every bad stream must raise a
CodecError.  A mutated stream that decodes is reported (``--hypothesis-show-statistics``)
and fails the test when its CRCs were not fixed: then a corruption went undetected.
"""
import functools
import json
import os
import struct
import time

import pytest
from hypothesis import event, given, note, settings
from hypothesis import strategies as st

from codec.tools import fuzz

pytestmark = pytest.mark.filterwarnings("ignore::codec.api.UntrainedModelWarning")
MODELS = ("factorized", "mean-scale-vr", "context-vr", "wavelet-audio", "video-ip", "inr-image")  # the fastest model, the
# default image, audio and video models, and the INR (a 20-iteration fit: its decoder is what is fuzzed)


def ci(n):
    return settings(max_examples=n, deadline=None, derandomize=True, database=None)


@functools.lru_cache(maxsize=None)
def corpus():
    return fuzz.build_corpus(fuzz.TARGETS, MODELS, pictures=2)


def seeds(kind, model=None):
    return [s for s in corpus()[kind] if model is None or s["model"].startswith(model + " ")]


def check(target, rnd, pool):
    """Mutate a seed of ``pool`` and run ``target`` on it: only CodecError may escape, and only
    a stream whose CRCs were fixed up may decode."""
    s = rnd.choice(pool)
    kind = "rans" if target == "rans" else "nmc"
    avoid = {x["data"] for x in corpus()[kind]}
    data, how, fixed = fuzz.mutate(rnd, s["data"], rnd.choice(pool)["data"], kind, MODELS, target == "decode", avoid)
    note(f"{'crc-fixed' if fixed else 'raw'} mutation {how} of {s['model']}: {data.hex()}")
    outcome, detail, digest, tb, _ = fuzz.run_case(target, data, s["extra"])
    assert outcome != "crash", f"{target} raised {detail} (not a CodecError) on a mutated stream\n{tb}"
    if outcome == "ok":
        outcome = "silent identical" if digest == s["ref"][target] else "silent different"
        assert fixed, f"{target} accepted a corrupt stream ({outcome} result after the raw mutation {how})"
    event(f"{target}: {outcome if outcome != 'error' else 'clean error'}{'' if outcome == 'error' else f' ({how})'}")
    return outcome


@ci(150)
@given(st.randoms(use_true_random=False))
def test_unpack_raises_only_codec_errors(rnd):
    check("container", rnd, seeds("nmc"))


@ci(150)
@given(st.randoms(use_true_random=False))
def test_info_raises_only_codec_errors(rnd):
    check("info", rnd, seeds("nmc"))


@ci(150)
@given(st.randoms(use_true_random=False))
def test_decode_factorized_raises_only_codec_errors(rnd):
    check("decode", rnd, seeds("nmc", "factorized"))


@ci(150)
@given(st.randoms(use_true_random=False))
def test_decode_default_model_raises_only_codec_errors(rnd):
    check("decode", rnd, seeds("nmc", "mean-scale-vr"))  # (its golden version 1 stream while its weights are those)


@ci(100)
@given(st.randoms(use_true_random=False))
def test_decode_context_model_raises_only_codec_errors(rnd):
    check("decode", rnd, seeds("nmc", "context-vr"))


@ci(100)
@given(st.randoms(use_true_random=False))
def test_decode_audio_model_raises_only_codec_errors(rnd):
    check("decode", rnd, seeds("nmc", "wavelet-audio"))


@ci(100)
@given(st.randoms(use_true_random=False))
def test_decode_inr_raises_only_codec_errors(rnd):
    check("decode", rnd, seeds("nmc", "inr-image"))


@ci(150)
@given(st.randoms(use_true_random=False))
def test_rans_decode_raises_only_codec_errors(rnd):
    check("rans", rnd, seeds("rans"))


def test_crc_fix_ups_let_mutations_reach_the_parsers_behind_the_checksums():
    import codec
    from codec import container

    s = seeds("nmc", "mean-scale-vr")[0]
    data = s["data"]
    (_, off, _), = [f for f in fuzz.container_fields(data)[0] if f[0] == "quality"]
    other = bytearray(data)
    other[off: off + 2] = struct.pack("<H", 300)
    with pytest.raises(codec.CodecError, match="checksum"):
        container.unpack(bytes(other))
    fixed = fuzz.fix_container(other)
    assert container.unpack(fixed).quality == 300 and container.unpack(data).quality != 300
    assert fuzz.run_case("decode", fixed)[0] == "ok"  # a re-signed stream at another quality
    # a lane state of the latent's rANS stream changed, both CRC levels fixed: the rANS decoder must see it
    _, pos, length = fuzz.container_fields(data)[1][-1]
    body = bytearray(data[pos: pos + length])
    body[fuzz.rans_fields(bytes(body))[1][0][1]] ^= 0x5A
    outcome, detail, *_ = fuzz.run_case("decode", fuzz.fix_container(data[:pos] + fuzz.fix_rans(body) + data[pos + length:]))
    assert outcome == "error" and "checksum" not in detail, detail
    r = seeds("rans")[3]  # a multi-segment stream
    assert len(fuzz.rans_fields(r["data"])[1]) == 5 and fuzz.fix_rans(r["data"]) == r["data"]
    bad = bytearray(r["data"])
    bad[fuzz.rans_fields(r["data"])[1][2][1] + 2] ^= 1  # a state of segment 2
    assert "checksum" in fuzz.run_case("rans", bytes(bad), r["extra"])[1]
    outcome, detail, *_ = fuzz.run_case("rans", fuzz.fix_rans(bad), r["extra"])
    assert outcome == "error" and "checksum" not in detail, detail


def test_a_broken_decoder_fails_these_tests(monkeypatch):
    from codec import container

    real = container.unpack

    def crashes(data):
        real(data)
        raise IndexError("index out of range")  # a bounds bug behind the checksums

    monkeypatch.setattr(container, "unpack", crashes)
    with pytest.raises(AssertionError, match="IndexError"):
        test_unpack_raises_only_codec_errors()
    some = seeds("nmc")[0]["data"]
    monkeypatch.setattr(container, "unpack", lambda data: real(some))  # accepts anything
    with pytest.raises(AssertionError, match="accepted a corrupt stream"):
        test_unpack_raises_only_codec_errors()


def _toy_serve(conn, mem_gb):
    """A worker for the watchdog test: "sleep" hangs, "die" kills the process, anything else answers."""
    while True:
        op, target, *_ = conn.recv()
        if target == "sleep":
            time.sleep(60)
        if target == "die":
            os._exit(3)
        conn.send(("ok", "", "x", None, None))


def test_the_watchdog_reports_hangs_and_dead_workers():
    w = fuzz.Worker(0, target=_toy_serve)
    try:
        assert w.call(("case", "sleep", b""), 1.0)[:2] == ("hang", "no result within 1 s")
        assert w.call(("case", "die", b""), 30)[:2] == ("crash", "worker died (exit code 3)")
        assert w.call(("case", "fine", b""), 30)[0] == "ok" and w.restarts == 2
    finally:
        w.close()


def test_the_fuzz_tool_runs_and_reports(tmp_path):
    out = tmp_path / "report.json"
    rep = fuzz.main(["--cases", "200", "--models", "factorized", "--pictures", "1", "--timeout-s", "60",
                     "--json", str(out), "--out", str(tmp_path / "found"), "--no-progress"])
    assert json.loads(out.read_text()) == json.loads(json.dumps(rep))
    assert set(rep["targets"]) == set(fuzz.TARGETS) and rep["cases"] == 200
    for t, r in rep["targets"].items():
        assert r["cases"] == 50 == r["raw"]["cases"] + r["fixed"]["cases"] == sum(r[o] for o in fuzz.OUTCOMES)
        assert r["crash"] == 0 and r["hang"] == 0, (t, r["by_kind"])
        assert r["raw"]["silent_identical"] == r["raw"]["silent_different"] == 0, (t, r["by_kind"])
        assert r["error"] > 0 and r["by_kind"]["error"] and r["cases_per_s"] > 0
    assert rep["worker_restarts"] == 0 and rep["corpus"]["nmc"] == 2 and rep["corpus"]["rans"] == 6
