"""codec: a neural media codec with bit-exact, cross-device bitstreams.

Sub-packages (one import package, mapped from the repository's top-level folders):

- ``codec.entropy``  – CDF tables and the lane-interleaved rANS coder (imports nothing else of ours)
- ``codec.models``   – learned transforms and latent codecs (uses ``codec.entropy``)
- ``codec``          – public API, container format, CLI (uses ``codec.models``)
- ``codec.tools``    – evaluation, BD-rate, reports, benchmarks (uses ``codec``)
- ``codec.training`` – rate-distortion training (uses ``codec.models`` and ``codec.entropy``)
"""
__version__ = "0.1.0"

from codec.errors import CodecError  # noqa: E402

__all__ = ["CodecError", "__version__"]
