"""Synthetic test pictures the project generates itself (no external data)."""
import numpy as np


def smooth_image(h: int, w: int, seed: int = 0) -> np.ndarray:
    """A natural-looking test image: gradients, a few blobs and mild noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    img = np.stack([xx / w, yy / h, (xx + yy) / (w + h)], axis=-1) * 200 + 20
    for _ in range(6):
        cy, cx, r = rng.uniform(0, h), rng.uniform(0, w), rng.uniform(5, 40)
        img += rng.uniform(-60, 60, 3) * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * r * r))[..., None]
    img += rng.normal(0, 3, img.shape)
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)
