"""Integer networks: the exact path from decoded hyper-latents to table indexes.

A float ``nn.Sequential`` of ``Conv2d`` / ``ConvTranspose2d`` / ``ReLU`` layers (any kernel
shape and strides, e.g. the ``(1, k)`` ones of audio models; the
hyper-synthesis ``h_s``) is *frozen* into integers: weights ``w_int = round(w * 2**s)``
(``|w_int| < 2**12``), biases at the accumulator scale, activations with
``ACT_BITS`` fractional bits.  Each layer computes

    acc = conv(a, w_int) + b_int          (float64, every value an integer)
    a'  = clamp(floor(acc / 2**s), ...)   (ReLU folded into the clamp)

in float64.  Every partial sum is an integer below 2**53 (checked at freeze time), so
the result does not depend on summation order: CPU and CUDA give identical integers
(see ``shared/notes/determinism.md``: measured bit-identical on an H100 vs the CPU).
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

ACT_BITS = 8  # fractional bits of activations: a real value v is carried as round(v * 2**8)
WEIGHT_LIMIT = (1 << 12) - 1
ACT_LIMIT = 1 << 20  # |activation| <= 2**20 (real value 4096)
EXACT_LIMIT = 1 << 53


class IntegerNet(nn.Module):
    """Frozen integer copy of a ``Sequential`` of convolutions and ReLUs.

    Input: integer-valued tensor in real units (e.g. decoded hyper-latents).
    Output: integer-valued float64 tensor in units of ``2**-ACT_BITS``.
    """

    def __init__(self, layers: list[dict]):
        super().__init__()
        self.specs = []
        for i, L in enumerate(layers):
            self.register_buffer(f"w{i}", L["weight"].to(torch.float64))
            self.register_buffer(f"b{i}", L["bias"].to(torch.float64))
            self.specs.append({k: L[k] for k in ("kind", "stride", "padding", "output_padding", "shift", "relu")})

    # -- building -----------------------------------------------------------------
    @staticmethod
    def layer_plan(seq: nn.Sequential) -> list[dict]:
        """(module, relu-after) pairs of a conv/ReLU sequence."""
        plan = []
        mods = list(seq)
        for i, m in enumerate(mods):
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
                relu = i + 1 < len(mods) and isinstance(mods[i + 1], nn.ReLU)
                plan.append({"module": m, "relu": relu})
            elif not isinstance(m, nn.ReLU):
                raise TypeError(f"integer networks support Conv2d, ConvTranspose2d and ReLU, not {type(m).__name__}")
        return plan

    @classmethod
    def freeze(cls, seq: nn.Sequential) -> "IntegerNet":
        layers = []
        in_bound = ACT_LIMIT
        for p in cls.layer_plan(seq):
            m = p["module"]
            w = m.weight.detach().to("cpu", torch.float64)
            b = (m.bias.detach().to("cpu", torch.float64) if m.bias is not None
                 else torch.zeros(m.out_channels, dtype=torch.float64))
            wmax = float(w.abs().max())
            shift = 0 if wmax == 0 else max(0, min(24, int(torch.floor(torch.log2(torch.tensor(WEIGHT_LIMIT / wmax))))))
            w_int = torch.round(w * 2.0 ** shift)
            b_int = torch.round(b * 2.0 ** (shift + ACT_BITS))
            # every partial sum of one output value: sum |w| * max|a| + |b| < 2**53
            per_out = w_int.abs().sum(dim=(0, 2, 3)) if isinstance(m, nn.ConvTranspose2d) else \
                w_int.abs().sum(dim=(1, 2, 3))
            bound = float(per_out.max()) * in_bound + float(b_int.abs().max())
            if bound >= EXACT_LIMIT:
                raise ValueError(f"integer layer would exceed 2**53 ({bound:.3g}); lower the precision")
            layers.append(dict(kind="deconv" if isinstance(m, nn.ConvTranspose2d) else "conv",
                               stride=tuple(m.stride), padding=tuple(m.padding),
                               output_padding=tuple(getattr(m, "output_padding", (0, 0))),
                               shift=shift, relu=p["relu"], weight=w_int, bias=b_int))
        return cls(layers)

    @classmethod
    def from_state(cls, seq: nn.Sequential, state: dict, prefix: str) -> "IntegerNet":
        """Rebuild from stored integers (shapes and layer kinds from ``seq``; shifts stored)."""
        layers = []
        shifts = state[prefix + "shifts"].tolist()
        for i, p in enumerate(cls.layer_plan(seq)):
            m = p["module"]
            w = state[prefix + f"w{i}"]
            if tuple(w.shape) != tuple(m.weight.shape):
                raise ValueError(f"stored integer weight {i} has shape {tuple(w.shape)}, expected {tuple(m.weight.shape)}")
            layers.append(dict(kind="deconv" if isinstance(m, nn.ConvTranspose2d) else "conv",
                               stride=tuple(m.stride), padding=tuple(m.padding),
                               output_padding=tuple(getattr(m, "output_padding", (0, 0))),
                               shift=int(shifts[i]), relu=p["relu"], weight=w, bias=state[prefix + f"b{i}"]))
        return cls(layers)

    def state(self, prefix: str) -> dict:
        out = {prefix + "shifts": torch.tensor([s["shift"] for s in self.specs], dtype=torch.int32)}
        for i in range(len(self.specs)):
            out[prefix + f"w{i}"] = getattr(self, f"w{i}").to(torch.int32)
            out[prefix + f"b{i}"] = getattr(self, f"b{i}").to(torch.int64)
        return out

    # -- evaluation ---------------------------------------------------------------
    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dev = x.device
        a = torch.clamp(x.to(torch.float64) * (1 << ACT_BITS), -ACT_LIMIT, ACT_LIMIT)
        for i, s in enumerate(self.specs):
            w = getattr(self, f"w{i}").to(dev)
            b = getattr(self, f"b{i}").to(dev)
            if s["kind"] == "conv":
                acc = F.conv2d(a, w, None, stride=s["stride"], padding=s["padding"])
            else:
                acc = F.conv_transpose2d(a, w, None, stride=s["stride"], padding=s["padding"],
                                         output_padding=s["output_padding"])
            acc = acc + b.view(1, -1, 1, 1)
            a = torch.floor(acc / float(1 << s["shift"]))
            a = torch.clamp(a, 0 if s["relu"] else -ACT_LIMIT, ACT_LIMIT)
        return a


def exact_mode():
    """Context that turns off TF32 (the float paths around the integer ones stay deterministic-ish)."""

    class _Ctx:
        def __enter__(self):
            self.saved = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
            torch.backends.cuda.matmul.allow_tf32 = False
            torch.backends.cudnn.allow_tf32 = False

        def __exit__(self, *exc):
            torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = self.saved

    return _Ctx()
