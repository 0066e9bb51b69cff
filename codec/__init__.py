"""codec: a neural media codec with bit-exact, cross-device bitstreams.

>>> import codec
>>> data = codec.encode(image)                 # PIL image, numpy array or torch tensor -> bytes
>>> image = codec.decode(data)                 # -> uint8 numpy array (output="torch"/"pil" too)
>>> codec.info(data)["bpp"]

Sub-packages (one import package, mapped from the repository's top-level folders):

- ``codec.entropy``  - CDF tables, rANS coders, the root error (imports nothing else of ours)
- ``codec.models``   - models owning their bitstreams, latent codecs, registry (uses ``codec.entropy``)
- ``codec``          - API, container, media layer (``codec.media``), CLI (uses ``codec.models``)
- ``codec.tools``    - evaluation, BD-rate, reports, benchmarks, fuzzing (uses ``codec`` and below)
- ``codec.training`` - the training loop and its tasks (uses ``codec`` and below)
"""
__version__ = "0.1.0"

from codec.errors import CodecError  # noqa: E402

_API = ("encode", "decode", "info", "load_model", "list_models", "UntrainedModelWarning")
__all__ = ["CodecError", "__version__", *_API]


def __getattr__(name):  # the API pulls in torch and the models: load it on first use
    if name in _API:
        from codec import api

        return getattr(api, name)
    raise AttributeError(f"module 'codec' has no attribute {name!r}")
