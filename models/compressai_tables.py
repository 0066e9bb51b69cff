"""Quantised CDF tables from the factorized density (`codec.models.layers.EntropyBottleneck`, or
CompressAI's of the same name: the same parameters).

``codec.entropy`` knows nothing of the networks; the models train with the learned
density and code with integer tables, and this module turns the one into the other.
"""
from __future__ import annotations

import copy

import numpy as np
import torch

from codec import entropy


def factorized_tables_from_bottleneck(bottleneck) -> entropy.CDFTables:
    """Tables for a CompressAI ``EntropyBottleneck`` (one row per channel).

    Symbols are the integers ``round(z)`` themselves (no median subtraction), so the
    decoded values are exact on every device.  Row ``c`` covers
    ``floor(lower quantile) .. ceil(upper quantile)`` of channel ``c`` (widened to
    include 0 and the median +- 1); the density is evaluated in float64 on the CPU.

    **Not bit-reproducible across installs**: the learned density is evaluated by torch
    (``softplus``, ``tanh``, ``sigmoid``, matrix products), whose last bits may differ
    between torch versions and CPUs, so the integer tables (and their id) may too.  That
    is acceptable because these tables are built once, when a model is frozen for export,
    and stored with its weights (``frozen.*.tables.*``); decoders load the stored
    integers and never rebuild them.  (The fixed families, ``entropy.gaussian_tables``
    and the like, are deterministic everywhere.)
    """
    eb = copy.deepcopy(bottleneck).to(device="cpu", dtype=torch.float64)
    with torch.no_grad():
        q = eb.quantiles[:, 0, :].numpy()  # [C, 3]: lower, median, upper
        med = np.round(q[:, 1])
        lower = np.minimum(np.floor(q[:, 0]), np.minimum(med - 1, 0)).astype(np.int64)
        upper = np.maximum(np.ceil(q[:, 2]), np.maximum(med + 1, 0)).astype(np.int64)

        def cdf_fn(x):
            C, K = x.shape
            logits = eb._logits_cumulative(torch.from_numpy(x).view(C, 1, K), stop_gradient=True)
            return torch.sigmoid(logits).view(C, K).numpy()

        return entropy.factorized_tables(cdf_fn, lower, upper, family="factorized")
