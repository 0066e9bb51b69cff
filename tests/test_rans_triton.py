"""The Triton rANS coder writes the numpy coder's bytes and decodes them exactly.

Two ways the kernels run here:

- on CUDA (``test_cuda_*``; skipped without a GPU): the compiled kernels, small cases
  and sizes where the layout rule gives several segments;
- in Triton's CPU interpreter (``test_interpreter``): one subprocess with
  ``TRITON_INTERPRET=1`` set before Triton is imported runs every case of ``CASES``
  on CPU tensors (tiny sizes: the interpreter executes each kernel step in numpy).

The same case functions serve both; each compares the Triton bytes with the numpy
coder's (and the checked-in golden streams) and decodes them back.
"""
from __future__ import annotations

import json
import os
import pathlib
import struct
import subprocess
import sys
import time
import traceback
import zlib

import numpy as np
import pytest
import torch

from codec import entropy as E
from codec.entropy import format as fmt
from codec.entropy import rans

GOLDEN = pathlib.Path(__file__).parent / "golden"
GOLDEN_CASES = {"gaussian": "gaussian", "laplace_3_segments": "laplace", "categorical": "categorical",
                "empty": "gaussian"}


def _gpu():
    from codec.entropy import rans_triton

    return rans_triton


def _dev(items, device):
    return [(torch.as_tensor(s).to(device), torch.as_tensor(i).to(device)) for s, i in items]


def _same_as_numpy(items, tables, device, layouts=None):
    """Triton bytes == numpy bytes; decoding them (Triton) gives the symbols back."""
    G = _gpu()
    want = rans.encode_many(items, tables, layouts)
    ditems = _dev(items, device)
    got = G.encode_many_gpu(ditems, tables, layouts)
    assert got == want
    outs = G.decode_many_gpu(got, [i for _, i in ditems], tables)
    for o, (s, _) in zip(outs, ditems):
        assert o.dtype == torch.int32 and o.device == s.device
        assert torch.equal(o.cpu(), torch.as_tensor(s).reshape(-1).int().cpu())
    return got


def _golden(name):
    tables = E.CDFTables.load(GOLDEN / f"tables_{GOLDEN_CASES[name]}.safetensors")
    arrs = np.load(GOLDEN / f"{name}.npz")
    return tables, arrs["symbols"], arrs["table_index"], (GOLDEN / f"{name}.rans").read_bytes()


def _small_gaussian():
    return E.gaussian_tables(E.default_scale_table(max_scale=24.0, levels=12))


# ======================================================================================
# cases: each runs on ``device`` ("cpu" under the interpreter, "cuda" on a GPU)
# ======================================================================================
def case_golden(device):
    G = _gpu()
    for name in GOLDEN_CASES:
        tables, sym, idx, data = _golden(name)
        h = E.parse_header(data)
        layout = rans.Layout(h["lanes"], h["steps"], h["segments"])
        s, i = torch.from_numpy(sym).to(device), torch.from_numpy(idx).to(device)
        assert G.encode_many_gpu([(s, i)], tables, [layout])[0] == data, name
        if name != "laplace_3_segments":  # the others follow the layout rule
            assert G.encode_many_gpu([(s, i)], tables)[0] == data, name
        out = G.decode_many_gpu([data], [i], tables)[0]
        np.testing.assert_array_equal(out.cpu().numpy(), sym.reshape(-1))
        old = (GOLDEN / f"{name}_v1.rans").read_bytes()  # version 1 streams still decode
        np.testing.assert_array_equal(G.decode_many_gpu([old], [i], tables)[0].cpu().numpy(), sym.reshape(-1))


def case_escapes_extreme(device):
    lap = E.laplace_tables()
    rng = np.random.default_rng(3)
    idx = torch.from_numpy(rng.integers(0, 64, 400))
    sym = E.sample_symbols(lap, idx, seed=3).long()
    sym[::23] = 2**31 - 1  # extreme escapes, both sides (varints of 5 bytes)
    sym[1::23] = -(2**31)
    sym[2::23] += 3  # near misses just above and below the ranges
    sym[3::23] -= 200
    data = _same_as_numpy([(sym, idx)], lap, device)[0]
    assert E.parse_header(data)["escapes"] >= 35


def case_multi_segment_and_lane_classes(device):
    g = _small_gaussian()
    rng = np.random.default_rng(5)
    items, layouts = [], []
    for n, lay in [(0, None), (1, None), (33, rans.Layout(32, 1, 2)), (700, rans.Layout(96, 3, 3)),
                   (650, rans.Layout(64, 4, 3)), (257, None), (599, rans.Layout(5, 40, 3)),
                   (400, rans.Layout(1, 400, 1)), (300, rans.Layout(17, 9, 2))]:  # version 2's lane counts
        idx = rng.integers(0, g.num_rows, n)
        sym = E.sample_symbols(g, idx, seed=n).numpy()
        sym[::41] += 300
        items.append((sym, idx))
        layouts.append(lay)
    # items over one preparation block (4096 symbols), coded with wide lanes (1024: T=1, cheap here)
    for n, lay in [(4500, rans.Layout(1024, 1, 5)), (9000, rans.Layout(1024, 2, 5))]:
        idx = rng.integers(0, g.num_rows, n)
        sym = E.sample_symbols(g, idx, seed=n).numpy()
        sym[::301] -= 300
        items.append((sym, idx))
        layouts.append(lay)
    # the layout rule sees the same exact integers (cost sum, escape bytes) in both coders
    seen = []
    rule = fmt.layout_for

    def spy(n, cost, escape_bytes):
        seen.append((n, cost, escape_bytes))
        return rule(n, cost, escape_bytes)

    fmt.layout_for = spy
    try:
        streams = _same_as_numpy(items, g, device, layouts)
    finally:
        fmt.layout_for = rule
    seen = [c for c in seen if c[0]]  # (the numpy coder skips the rule for empty items)
    nonempty = sum(1 for s, _ in items if np.size(s))
    assert len(seen) == 2 * nonempty and seen[:nonempty] == seen[nonempty:]
    # the batch gives each stream exactly the bytes it has alone
    G = _gpu()
    for (s, i), lay, data in zip(_dev(items, device), layouts, streams):
        assert G.encode_many_gpu([(s, i)], g, [lay])[0] == data


def case_families(device):
    rng = np.random.default_rng(7)

    def logistic_cdf(x):
        return 1 / (1 + np.exp(-x / np.array([[1.0], [3.0], [0.4]])))

    fac = E.factorized_tables(logistic_cdf, [-10, -20, -3], [10, 25, 4])
    idx = rng.integers(0, 3, 300)
    sym = E.sample_symbols(fac, idx, seed=1).numpy()
    sym[::29] -= 40
    _same_as_numpy([(sym, idx)], fac, device)
    cat = E.categorical_tables(rng.dirichlet(np.ones(512) * 0.5, size=4))
    idx = rng.integers(0, 4, 300)
    _same_as_numpy([(rng.integers(-3, 600, 300), idx)], cat, device)  # categorical with escapes
    lap = E.laplace_tables(E.default_scale_table(max_scale=8.0, levels=6))
    idx = rng.integers(0, 6, (5, 7, 9)).astype(np.int16)  # other dtypes and shapes
    _same_as_numpy([(E.sample_symbols(lap, idx, seed=2).numpy().astype(np.int16), idx)], lap, device)


def case_dispatch_and_views(device):
    g = _small_gaussian()
    rng = np.random.default_rng(9)
    idx = torch.from_numpy(rng.integers(0, g.num_rows, (3, 5, 40))).to(device)
    sym = E.sample_symbols(g, idx.cpu(), seed=9).to(device)
    want = [rans.encode_many([(sym[k].cpu(), idx[k].cpu())], g)[0] for k in range(3)]
    # slices of one tensor (consecutive in memory) go in without a copy
    assert E.encode_batch([(sym[k], idx[k]) for k in range(3)], g, backend="triton") == want
    assert E.encode(sym[1], idx[1], g, backend="triton") == want[1]
    outs = E.decode_batch(want, [idx[k] for k in range(3)], g, backend="triton")
    for k in range(3):
        assert outs[k].shape == (5, 40) and outs[k].device == idx.device and torch.equal(outs[k], sym[k])
    # non-contiguous inputs are copied, not misread
    t_sym, t_idx = sym.transpose(1, 2), idx.transpose(1, 2)
    assert E.encode(t_sym, t_idx, g, backend="triton") == rans.encode_many([(t_sym.cpu(), t_idx.cpu())], g)[0]


def case_bad_input(device):
    g = _small_gaussian()
    G = _gpu()
    rng = np.random.default_rng(11)
    idx = torch.from_numpy(rng.integers(0, g.num_rows, 500)).to(device)
    sym = E.sample_symbols(g, idx.cpu(), seed=11).to(device)
    sym[::97] += 1000
    with pytest.raises(ValueError):
        G.encode_many_gpu([(sym[:-1], idx)], g)
    with pytest.raises(TypeError):
        G.encode_many_gpu([(sym.float(), idx)], g)
    with pytest.raises(ValueError):
        G.encode_many_gpu([(sym, idx + g.num_rows)], g)
    with pytest.raises(ValueError):
        G.encode_many_gpu([(sym.long() + 2**40, idx)], g)
    data = G.encode_many_gpu([(sym, idx)], g)[0]
    with pytest.raises(ValueError):
        G.decode_many_gpu([data], [idx - 1], g)  # an index out of range
    with pytest.raises(E.TableMismatchError):
        G.decode_many_gpu([data], [idx], E.laplace_tables())
    with pytest.raises(E.CorruptStreamError):
        G.decode_many_gpu([data[:-1]], [idx], g)
    for p in [50, 60, 200, len(data) // 2, len(data) - 3]:  # bit flips: every CRC catches them
        bad = bytearray(data)
        bad[p] ^= 0x10
        with pytest.raises(E.StreamError):
            G.decode_many_gpu([bytes(bad)], [idx], g)
    # wrong words or states behind valid CRCs: the kernel's own checks must catch them
    h = E.parse_header(data)
    body = fmt.regions(data)["segments"][0][0]
    words = body + 4 * h["lanes"]
    cases = [words + 2 * 5, words + 2 * 40 + 1, body + 4 * 3 + 1, body + 4 * 7 + 3]
    n_checked = 0
    for p in cases:
        bad = bytearray(data)
        bad[p] ^= 0x24
        bad = fmt.resign(bytes(bad))
        with pytest.raises(E.CorruptStreamError):  # the reference decoder rejects it...
            rans.decode_many([bad], [idx.cpu()], g)
        with pytest.raises(E.CorruptStreamError):  # ...and so does the kernel
            G.decode_many_gpu([bad], [idx], g)
        n_checked += 1
    assert n_checked == len(cases)


def case_empty_and_single(device):
    g = _small_gaussian()
    empty = (np.zeros((0, 3), np.int32), np.zeros((0, 3), np.int32))
    one = (np.array([5000]), np.array([2]))  # a lone escape
    _same_as_numpy([empty], g, device)
    _same_as_numpy([one, empty, one], g, device)
    assert _gpu().encode_many_gpu([], g) == [] and _gpu().decode_many_gpu([], [], g) == []


def case_image_codec(device):
    """The image codec's streams do not depend on the coder: mean-scale-small on a 64x128
    picture, encoded and decoded by the numpy coder and by the Triton coder (forced on CPU
    tensors in the interpreter; chosen automatically, after its self-check, on CUDA)."""
    from codec.entropy import coder
    from codec.models import registry
    from pictures import smooth_image

    m = registry.load_model("mean-scale-small", 4, device=device)
    x = torch.from_numpy(smooth_image(64, 128, 5)).permute(2, 0, 1)[None].float().div(255).to(device)
    old = os.environ.get(coder.BACKEND_ENV)
    try:
        os.environ[coder.BACKEND_ENV] = "numpy"
        p_np = m.compress(x, effort="fast")  # a Payload: named sections and the model's header
        x_np = m.decompress(p_np, device=device)
        os.environ[coder.BACKEND_ENV] = "triton" if device == "cpu" else "auto"
        p_gpu = m.compress(x, effort="fast")
        x_gpu = m.decompress(p_np, device=device)
    finally:
        if old is None:
            os.environ.pop(coder.BACKEND_ENV, None)
        else:
            os.environ[coder.BACKEND_ENV] = old
    assert [(sec.kind, sec.data) for sec in p_gpu.sections] == [(sec.kind, sec.data) for sec in p_np.sections]
    assert p_gpu.header == p_np.header and torch.equal(x_gpu, x_np)
    if device != "cpu":
        assert coder._gpu_checked.get(str(torch.device(device))) is True  # the automatic choice was the GPU


CASES = {name[5:]: fn for name, fn in sorted(globals().items()) if name.startswith("case_")}


# ======================================================================================
# the interpreter run (a subprocess: TRITON_INTERPRET must be set before Triton loads)
# ======================================================================================
def _interpreter_main() -> None:
    G = _gpu()
    assert G.interpreting(), "TRITON_INTERPRET=1 was not in effect"
    results = {}
    for name, fn in CASES.items():
        t0 = time.perf_counter()
        try:
            fn("cpu")
            results[name] = {"ok": True, "seconds": time.perf_counter() - t0}
        except BaseException:  # noqa: BLE001 - reported to the parent test
            results[name] = {"ok": False, "error": traceback.format_exc()}
    print("RESULTS " + json.dumps(results))


@pytest.fixture(scope="module")
def interpreter_results():
    pytest.importorskip("triton")
    env = dict(os.environ, TRITON_INTERPRET="1")
    env.pop("CODEC_RANS_BACKEND", None)
    proc = subprocess.run([sys.executable, __file__], env=env, capture_output=True, text=True, timeout=600,
                          cwd=pathlib.Path(__file__).parent.parent)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULTS ")]
    assert proc.returncode == 0 and lines, f"interpreter run failed:\n{proc.stdout}\n{proc.stderr[-4000:]}"
    return json.loads(lines[-1][len("RESULTS "):])


@pytest.mark.parametrize("case", sorted(CASES))
def test_interpreter(interpreter_results, case):
    r = interpreter_results[case]
    assert r["ok"], r.get("error")


# ======================================================================================
# structure (no Triton needed): the GPU coder shares the format module, not the numpy coder's internals
# ======================================================================================
def test_triton_coder_uses_no_private_names_of_the_numpy_coder():
    """rans_triton.py takes the format's host-side parts from codec.entropy.format (public
    names) and does not import the numpy coder, nor reach into private attributes of the
    tables or their coder view."""
    import ast

    path = pathlib.Path(rans.__file__).with_name("rans_triton.py")
    tree = ast.parse(path.read_text())
    problems = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 1 and node.module in (None, "rans"):
            names = [a.name for a in node.names]
            if node.module == "rans" or "rans" in names:
                problems.append(f"{path.name}:{node.lineno}: imports the numpy coder ({names})")
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            problems += [f"{path.name}:{node.lineno}: imports private {a.name} from .{node.module}"
                         for a in node.names if a.name.startswith("_")]
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) \
                and node.value.id in ("fmt", "rans", "tables", "view") and node.attr.startswith("_"):
            problems.append(f"{path.name}:{node.lineno}: uses {node.value.id}.{node.attr}")
        if isinstance(node, ast.Attribute) and node.attr in ("_cache", "_freq"):
            problems.append(f"{path.name}:{node.lineno}: uses private attribute .{node.attr}")
    assert not problems, "\n".join(problems)


def test_both_coders_share_the_format_module():
    assert rans.Layout is fmt.Layout and rans.HEADER is fmt.HEADER and rans.parse_header is fmt.parse_header
    assert E.parse_header is fmt.parse_header and rans.CorruptStreamError is E.CorruptStreamError


# ======================================================================================
# compile mode without a GPU: every kernel through Triton's full pipeline to an sm_90 cubin
# ======================================================================================
def test_kernels_compile_for_h100():
    """The interpreter does not type-check like the compiler: build each kernel for sm_90
    (Triton IR -> LLVM -> PTX -> ptxas) with the argument types the host wrappers pass."""
    triton = pytest.importorskip("triton")
    try:
        from triton.backends.compiler import GPUTarget
        from triton.compiler import ASTSource
        from triton.backends import backends
    except ImportError as exc:  # pragma: no cover - another Triton layout
        pytest.skip(f"this Triton has no ASTSource/GPUTarget: {exc}")
    if "nvidia" not in backends:  # pragma: no cover
        pytest.skip("this Triton has no NVIDIA backend")
    G = _gpu()
    p = {t: "*" + t for t in ("i16", "i32", "i64")}
    kernels = [
        (G._prep_kernel, dict(sym_ptr=p["i32"], row_ptr=p["i64"], blk_ptr=p["i64"], off_ptr=p["i32"],
                              len_ptr=p["i32"], cost_ptr=p["i32"], pos_ptr=p["i32"], stats_ptr=p["i64"], R="i32",
                              STRIDE="i32", BLOCK="constexpr"), dict(BLOCK=G.PREP_BLOCK), 8),
        (G._encode_kernel, dict(pos_ptr=p["i32"], sf_ptr=p["i32"], seg_ids_ptr=p["i32"], meta_ptr=p["i64"],
                                states_ptr=p["i32"], words_ptr=p["i16"], counts_ptr=p["i64"], IDENT="i32",
                                META_W="constexpr", BLOCK_L="constexpr"), dict(META_W=G.META_W, BLOCK_L=1024),
         G._warps(1024)),
        (G._body_kernel, dict(words_ptr=p["i16"], states_ptr=p["i32"], counts_ptr=p["i64"], body_off_ptr=p["i64"],
                              meta_ptr=p["i64"], body_ptr=p["i16"], META_W="constexpr", BLOCK="constexpr"),
         dict(META_W=G.META_W, BLOCK=G.BODY_BLOCK), 8),
        (G._decode_kernel, dict(row_ptr=p["i16"], words_ptr=p["i16"], states_ptr=p["i64"], lut_ptr=p["i16"],
                                sf_ptr=p["i32"], off_ptr=p["i32"], len_ptr=p["i32"], seg_ids_ptr=p["i32"],
                                meta_ptr=p["i64"], out_ptr=p["i32"], res_ptr=p["i64"], R="i32", STRIDE="i32",
                                META_W="constexpr", BLOCK_L="constexpr"), dict(META_W=G.META_W, BLOCK_L=32), 1),
    ]
    for fn, sig, const, warps in kernels:
        k = triton.compile(ASTSource(fn, sig, const), target=GPUTarget("cuda", 90, 32),
                           options=dict(num_warps=warps))
        ptx = k.asm["ptx"]
        assert k.asm.get("cubin"), fn.__name__
        assert "div.s64" not in ptx and "div.u64" not in ptx, f"{fn.__name__}: 64-bit division in the lane loop"


# ======================================================================================
# compiled kernels on CUDA
# ======================================================================================
@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_cases(case):
    CASES[case]("cuda")


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_large_streams_and_batch():
    gauss, lap = E.gaussian_tables(), E.laplace_tables()
    rng = np.random.default_rng(1)
    idx = torch.from_numpy(rng.integers(0, 64, 1_000_000).astype(np.int32))
    sym = E.sample_symbols(gauss, idx, seed=1)
    data = _same_as_numpy([(sym, idx)], gauss, "cuda")[0]
    assert E.parse_header(data)["segments"] >= 2  # the layout rule's own multi-segment layout
    idx = torch.from_numpy(rng.integers(0, 64, 3_000_000))
    sym = E.sample_symbols(lap, idx, seed=2)
    sym[::1000] = 2**31 - 1
    _same_as_numpy([(sym, idx)], lap, "cuda")
    items = []
    for k, n in enumerate([0, 17, 5000, 300_000, 300_000, 1_200_000]):
        i = torch.from_numpy(rng.integers(0, 64, n))
        items.append((E.sample_symbols(gauss, i, seed=k), i))
    _same_as_numpy(items, gauss, "cuda")


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_automatic_dispatch(monkeypatch):
    tables, sym, idx, data = _golden("gaussian")
    s, i = torch.from_numpy(sym).cuda(), torch.from_numpy(idx).cuda()

    def no_numpy(*a, **k):
        raise AssertionError("the numpy coder ran on CUDA tensors")

    monkeypatch.delenv("CODEC_RANS_BACKEND", raising=False)
    from codec.entropy import coder

    assert coder.gpu_coder_ok(s.device, tables)  # the self-check (it runs the numpy coder) passes first
    monkeypatch.setattr(rans, "encode_many", no_numpy)
    monkeypatch.setattr(rans, "decode_many", no_numpy)
    assert E.encode(s, i, tables) == data
    out = E.decode(data, i, tables)
    assert out.is_cuda and torch.equal(out.cpu(), torch.from_numpy(sym))
    monkeypatch.undo()
    assert E.encode(s, i, tables, backend="numpy") == data  # forcing the CPU coder still works


if __name__ == "__main__":
    _interpreter_main()
