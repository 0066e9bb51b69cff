"""Benchmark: the Triton GPU rANS coder against our CPU coder (its compiled loops where the install
built them, else numpy) and CompressAI's ``compressai.ans``.

    python -m codec.tools.bench_gpu_rans [--repeat 10] [--batch-items 64] [--cpu-repeat 1]

Needs a CUDA device and Triton (without them it says so and exits 0).  Two cases, in
the same run for all three coders, on the same symbols and the same quantised tables
(Gaussian, 64 scale levels, table indexes uniform):

- one tensor of 1M symbols (one stream);
- a batch of 64M symbols: ``--batch-items`` tensors of 64M / items symbols each,
  consecutive slices of one device tensor, one stream each, all in one launch.

For the GPU coder it prints the end-to-end throughput and latency of the public calls
(tensors on the GPU in, ``bytes`` out and back: this includes the host's share -
headers, CRC-32 of every segment, the device<->host copies, the stream parsing) and,
separately, the device share (``code``: the lane loop and the body gather for
encoding, the lane loop for decoding) with the per-stage split.  CPU coders are timed
as a user calls them (CompressAI including its list conversions, as in
``bench_entropy``).  GPU times: best of ``--repeat`` after a warm-up, with
``torch.cuda.synchronize`` around every measured call.  The state overhead is the
share of the stream taken by the final lane states (``4 * L * S`` bytes).
"""
from __future__ import annotations

import argparse
import sys
import time

import numpy as np
import torch


def _best(fn, repeat, sync=None):
    best, out = float("inf"), None
    for _ in range(repeat):
        if sync:
            sync()
        t0 = time.perf_counter()
        out = fn()
        if sync:
            sync()
        best = min(best, time.perf_counter() - t0)
    return best, out


def _best_stages(fn, repeat):
    """Per-stage seconds of the fastest run (the coder's ``stages`` hook synchronises)."""
    best = None
    for _ in range(repeat):
        st = {}
        fn(st)
        if best is None or sum(st.values()) < sum(best.values()):
            best = st
    return best


def _fmt_rate(n, t):
    return f"{n / t / 1e9:8.3f} G sym/s  {t * 1e3:9.3f} ms"


def run(repeat: int = 10, batch_items: int = 64, batch_total: int = 64 << 20, cpu_repeat: int = 1,
        skip_cpu_batch: bool = False, single: int = 1 << 20, device: str = "cuda") -> int:
    """Run and print the benchmark (``device="cpu"`` only for a smoke test under TRITON_INTERPRET=1)."""
    try:
        from compressai.ans import RansDecoder, RansEncoder
    except ImportError:
        raise SystemExit("this benchmark compares with CompressAI's rANS: pip install -e '.[bench]'") from None

    from codec import entropy as E
    from codec.entropy import rans
    from codec.entropy import rans_triton as G
    from codec.tools.bench_entropy import compressai_tables

    dev = torch.device(device)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    tables = E.gaussian_tables()
    tables.coder_view().lut  # built once with the tables, as a model does at load time
    cdfs, sizes, offsets = compressai_tables(tables)
    cai_enc, cai_dec = RansEncoder(), RansDecoder()
    rng = np.random.default_rng(0)

    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu (Triton interpreter)"
    print(f"device {name}, torch {torch.__version__}, "
          f"triton {G.triton.__version__}, numpy {np.__version__}")
    cases = [(f"one tensor, {single} symbols", 1, single, True)]
    per = batch_total // batch_items
    cases.append((f"batch of {batch_items} x {per} = {batch_items * per} symbols", batch_items, per,
                  not skip_cpu_batch))
    for name, items_n, per_n, with_cpu in cases:
        n = items_n * per_n
        idx = torch.from_numpy(rng.integers(0, 64, (items_n, per_n)).astype(np.int32))
        sym = E.sample_symbols(tables, idx, seed=1)
        idx_d, sym_d = idx.to(dev), sym.to(dev)
        items_d = [(sym_d[k], idx_d[k]) for k in range(items_n)]
        idx_list = [idx_d[k] for k in range(items_n)]
        print(f"\n== {name}")
        # warm-up (compiles the kernels, uploads the tables and the decoder's lookup table)
        streams = G.encode_many_gpu(items_d, tables)
        G.decode_many_gpu(streams, idx_list, tables)
        t_enc, streams = _best(lambda: G.encode_many_gpu(items_d, tables), repeat, sync)
        t_dec, outs = _best(lambda: G.decode_many_gpu(streams, idx_list, tables), repeat, sync)
        assert all(torch.equal(o, sym_d[k]) for k, o in enumerate(outs)), "GPU decode mismatch"
        st_enc = _best_stages(lambda st: G.encode_many_gpu(items_d, tables, stages=st), repeat)
        st_dec = _best_stages(lambda st: G.decode_many_gpu(streams, idx_list, tables, stages=st), repeat)
        total_bytes = sum(len(s) for s in streams)
        state_bytes = 0
        for s in streams:
            h = E.parse_header(s)
            state_bytes += 4 * h["lanes"] * h["segments"]
        h0 = E.parse_header(streams[0])
        ideal = E.ideal_bits(sym, idx, tables) / 8
        print(f"  streams: {total_bytes} bytes ({8 * total_bytes / n:.3f} bit/sym, "
              f"+{100 * (total_bytes / ideal - 1):.2f}% over ideal); "
              f"layout of stream 0: L={h0['lanes']} T={h0['steps']} S={h0['segments']}")
        print(f"  state overhead: {100 * state_bytes / total_bytes:.2f}% of the stream bytes")
        print(f"  GPU encode, end to end   {_fmt_rate(n, t_enc)}")
        print(f"  GPU encode, device share {_fmt_rate(n, st_enc['code'])}   stages (ms): "
              + ", ".join(f"{k} {v * 1e3:.3f}" for k, v in st_enc.items()))
        print(f"  GPU decode, end to end   {_fmt_rate(n, t_dec)}")
        print(f"  GPU decode, device share {_fmt_rate(n, st_dec['code'])}   stages (ms): "
              + ", ".join(f"{k} {v * 1e3:.3f}" for k, v in st_dec.items()))
        if not with_cpu:
            print("  (CPU coders skipped)")
            continue
        cpu_items = [(sym[k], idx[k]) for k in range(items_n)]
        cpu = "CPU (C)    " if rans.native_available() else "CPU (numpy)"
        r = cpu_repeat if items_n > 1 else max(cpu_repeat, 3)
        n_enc, cpu_streams = _best(lambda: rans.encode_many(cpu_items, tables), r)
        assert cpu_streams == streams, "GPU and CPU bytes differ"
        n_dec, _ = _best(lambda: rans.decode_many(cpu_streams, [i for _, i in cpu_items], tables), r)
        print(f"  {cpu} encode    {_fmt_rate(n, n_enc)}   (bytes identical to the GPU coder's)")
        print(f"  {cpu} decode    {_fmt_rate(n, n_dec)}")
        flat_s, flat_i = sym.reshape(-1), idx.reshape(-1)

        def cai_encode():
            return [cai_enc.encode_with_indexes(flat_s[k * per_n:(k + 1) * per_n].tolist(),
                                                flat_i[k * per_n:(k + 1) * per_n].tolist(), cdfs, sizes, offsets)
                    for k in range(items_n)]

        def cai_decode():
            return [torch.tensor(cai_dec.decode_with_indexes(c, flat_i[k * per_n:(k + 1) * per_n].tolist(), cdfs,
                                                             sizes, offsets), dtype=torch.int32)
                    for k, c in enumerate(theirs)]

        c_enc, theirs = _best(cai_encode, r)
        c_dec, back = _best(cai_decode, r)
        assert torch.equal(torch.cat(back), flat_s), "CompressAI round trip failed"
        cai_bytes = sum(len(c) for c in theirs)
        print(f"  compressai encode        {_fmt_rate(n, c_enc)}   ({cai_bytes} bytes, "
              f"+{100 * (cai_bytes / ideal - 1):.2f}% over ideal)")
        print(f"  compressai decode        {_fmt_rate(n, c_dec)}")
        print(f"  GPU / CPU: encode x{n_enc / t_enc:.1f}, decode x{n_dec / t_dec:.1f};  "
              f"GPU / compressai: encode x{c_enc / t_enc:.1f}, decode x{c_dec / t_dec:.1f}")
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=10, help="GPU runs per measurement; the best is kept")
    ap.add_argument("--cpu-repeat", type=int, default=1, help="CPU runs per measurement on the batch")
    ap.add_argument("--batch-items", type=int, default=64, help="tensors in the 64M-symbol batch")
    ap.add_argument("--batch-symbols", type=int, default=64 << 20, help="symbols in the batch, all tensors")
    ap.add_argument("--single-symbols", type=int, default=1 << 20, help="symbols of the one-tensor case")
    ap.add_argument("--skip-cpu-batch", action="store_true", help="time only the GPU coder on the batch")
    args = ap.parse_args(argv)
    if not torch.cuda.is_available():
        print("bench_gpu_rans: no CUDA device here; the GPU coder cannot be measured (nothing to do).")
        return 0
    try:
        from codec.entropy import rans_triton  # noqa: F401  (imports Triton)
    except ImportError as exc:
        print(f"bench_gpu_rans: Triton is not installed ({exc}); the GPU coder needs it.")
        return 0
    return run(args.repeat, args.batch_items, args.batch_symbols, args.cpu_repeat, args.skip_cpu_batch,
               args.single_symbols)


if __name__ == "__main__":
    sys.exit(main())
