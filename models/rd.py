"""Rate-distortion settings shared by the encoders that optimise while they encode.

- :data:`LAMBDAS` and :func:`lam_of`: the lambda of a quality (bits/pixel + lambda *
  255**2 * MSE), those the image models were trained with, log-linear between levels;
- :func:`effort_iterations`: an encoder's effort, a preset name or a number of iterations
  (the INR fits of :mod:`codec.models.inr`, the latent refinement of
  :meth:`codec.models.image.ImageModel.refine`).
"""
from __future__ import annotations

import math

#: lambdas of qualities 1..8 (bits/pixel + lambda * 255**2 * MSE), those of the image models
LAMBDAS = (0.0018, 0.0035, 0.0067, 0.013, 0.025, 0.0483, 0.0932, 0.18)


def lam_of(quality: float, lambdas=LAMBDAS) -> float:
    """The lambda of ``quality`` in ``[1, len(lambdas)]``: ``lambdas[q - 1]`` at a whole
    quality, log-linear in between (clamped to the range)."""
    q = min(max(float(quality), 1.0), float(len(lambdas)))
    i = min(int(math.floor(q)), len(lambdas) - 1)
    t = q - i
    lo, hi = math.log(lambdas[i - 1]), math.log(lambdas[min(i, len(lambdas) - 1)])
    return math.exp(lo + (hi - lo) * t)


def effort_iterations(effort, presets: dict, default: str = "medium", least: int = 1) -> int:
    """Iterations of an effort: a name of ``presets`` (``None``: ``default``) or a whole
    number in ``least..1000000``."""
    if effort is None:
        effort = default
    if isinstance(effort, str) and effort in presets:
        return presets[effort]
    try:
        n = int(effort)
    except (TypeError, ValueError):
        n = None
    if n is None or isinstance(effort, bool) or str(n) != str(effort).strip() or not least <= n <= 10 ** 6:
        raise ValueError(f"effort must be one of {', '.join(presets)} or a number of iterations "
                         f"({least}..1000000), not {effort!r}")
    return n
