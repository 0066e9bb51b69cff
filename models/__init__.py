"""Learned image models, their latent codecs and the registry of shipped weights."""
import warnings as _warnings

# CompressAI scripts a few functions with torch.jit.script when imported, which newer
# torch versions answer with a FutureWarning on every run of the CLI: import it once here,
# quietly (only that warning, only during this import).
with _warnings.catch_warnings():
    _warnings.filterwarnings("ignore", message=".*torch.jit.script.*", category=FutureWarning)
    import compressai.entropy_models  # noqa: F401
    import compressai.layers  # noqa: F401
