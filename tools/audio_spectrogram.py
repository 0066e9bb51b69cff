"""Spectrograms of an audio file and of its decodes: where a codec loses or adds energy.

    python -m codec.tools.audio_spectrogram song.flac -o song.png                   # the default model, q1 and q8
    python -m codec.tools.audio_spectrogram song.flac --quality 2,6 --seconds 4 --model wavelet-audio -o s.png

The file is coded with ``codec.encode`` and decoded with ``codec.decode`` at each quality
(the stream's kbps from its bytes, and the mel distance and SI-SDR of the decode, in each
panel's title); the panels share one colour scale (dB), over the first ``--seconds`` of the
first channel.
"""
from __future__ import annotations

import argparse
import sys
import warnings


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m codec.tools.audio_spectrogram", description=__doc__.split("\n\n")[0])
    p.add_argument("input")
    p.add_argument("-o", "--output", required=True, help="PNG to write")
    p.add_argument("--model", default=None)
    p.add_argument("--quality", default="1,8", help="comma-separated qualities (default 1,8)")
    p.add_argument("--seconds", type=float, default=4.0)
    p.add_argument("--force", action="store_true")
    a = p.parse_args(argv)
    from codec.errors import CodecError

    try:
        return _run(a)
    except CodecError as exc:  # a missing or unreadable input, an existing output without --force
        print(f"audio_spectrogram: error: {exc}", file=sys.stderr)
        return 2


def _run(a) -> int:
    from codec.fileio import check_output

    check_output(a.output, a.force)  # before the coding, not after
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import codec
    from codec.fileio import atomic_path
    from codec.media import audio as A
    from codec.media.audio_metrics import mel_distance, si_sdr

    src = A.read(a.input)
    qs = [float(q) for q in a.quality.split(",") if q.strip()]
    n = min(src.length, int(a.seconds * src.sample_rate))
    fig, axs = plt.subplots(len(qs) + 1, 1, figsize=(10, 2.6 * (len(qs) + 1)), sharex=True)
    kw = dict(NFFT=1024, Fs=src.sample_rate, noverlap=768, vmin=-130, vmax=-20, cmap="magma")
    axs[0].specgram(src.samples[0, :n], **kw)
    axs[0].set_title(f"{a.input.split('/')[-1]}: original, {src.sample_rate} Hz")
    for ax, q in zip(axs[1:], qs):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", codec.UntrainedModelWarning)
            data = codec.encode(src, model=a.model, quality=q)
            dec = codec.decode(data)
        info = codec.info(data)
        ax.specgram(dec.samples[0, :n], **kw)
        ax.set_title(f"{info['model']} q{q:g}: {info['kbps']:.1f} kbps, mel distance {mel_distance(src, dec):.3f}, "
                     f"SI-SDR {si_sdr(src, dec):.1f} dB")
    for ax in axs:
        ax.set_ylabel("Hz")
    axs[-1].set_xlabel("s")
    fig.tight_layout()
    with atomic_path(a.output, a.force) as tmp:
        fig.savefig(tmp, dpi=70, format="png")
    print(f"wrote {a.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
