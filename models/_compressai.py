"""CompressAI, imported quietly.

CompressAI scripts a few functions with ``torch.jit.script`` when imported, which newer
torch versions answer with a FutureWarning on every run of the CLI: import it here, once,
with only that warning silenced, and only during this import.
"""
import warnings

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message=".*torch.jit.script.*", category=FutureWarning)
    from compressai.entropy_models import EntropyBottleneck, GaussianConditional  # noqa: F401
    from compressai.layers import GDN  # noqa: F401
    from compressai.models.utils import conv, deconv  # noqa: F401
