"""Integer networks: exact paths from decoded integers to table indexes and to pixels.

A float ``nn.Sequential`` of ``Conv2d`` / ``ConvTranspose2d`` / ``ReLU`` layers (any kernel
shape and strides, e.g. the ``(1, k)`` ones of audio models; the hyper-synthesis ``h_s``),
and inverse GDN layers (``GDN(inverse=True)``: a synthesis transform ``g_s``), is *frozen*
into integers: weights ``w_int = round(w * 2**s)`` (``|w_int| < 2**12``), biases at the
accumulator scale, activations with ``act_bits`` fractional bits (8 by default).  Each
convolution computes

    acc = conv(a, w_int) + b_int          (float64, every value an integer)
    a'  = clamp(floor(acc / 2**s), ...)   (ReLU folded into the clamp)

and an inverse GDN ``x * sqrt(beta + sum_j gamma_ij x_j**2)`` computes

    q   = floor(a**2 / 2**p)                         (x**2 with 2 act_bits - p bits)
    n   = conv1x1(q, gamma_int) + beta_int           (norm**2 with e = g + 2 act_bits - p bits, e even)
    a'  = floor(a * isqrt(n) / 2**(e / 2))           (isqrt exact: float sqrt, then corrected)

in float64.  Every partial sum is an integer below 2**53 (checked at freeze time), so
the result does not depend on summation order: CPU and CUDA give identical integers
(see ``shared/notes/determinism.md``: measured bit-identical on an H100 vs the CPU).
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from codec.models.layers import GDN

ACT_BITS = 8  # fractional bits of activations: a real value v is carried as round(v * 2**8)
WEIGHT_LIMIT = (1 << 12) - 1
ACT_LIMIT = 1 << 20  # |activation| <= 2**20 (real value 4096 at 8 fractional bits)
EXACT_LIMIT = 1 << 53


def _shift_for(wmax: float) -> int:
    """The largest power-of-two scale (0..24) that keeps ``wmax * 2**s`` within WEIGHT_LIMIT."""
    if wmax == 0:
        return 0
    return max(0, min(24, int(torch.floor(torch.log2(torch.tensor(WEIGHT_LIMIT / wmax, dtype=torch.float64))))))


def isqrt(n: torch.Tensor) -> torch.Tensor:
    """``floor(sqrt(n))`` of non-negative integer-valued float64 ``n < 2**53``, exactly
    (the float square root is off by at most one here; one correction step each way)."""
    r = torch.floor(torch.sqrt(n))
    r = r - (r * r > n).to(n.dtype)
    return r + ((r + 1) * (r + 1) <= n).to(n.dtype)


class IntegerNet(nn.Module):
    """Frozen integer copy of a ``Sequential`` of convolutions, ReLUs and inverse GDNs.

    Input: integer-valued tensor in real units (e.g. decoded hyper-latents), or already in
    units of ``2**-act_bits`` (``forward(x, scaled=True)``).
    Output: integer-valued float64 tensor in units of ``2**-act_bits``.
    """

    def __init__(self, layers: list[dict], act_bits: int = ACT_BITS, store=torch.int32):
        super().__init__()
        self.act_bits = int(act_bits)
        self.store = store  # the dtype :meth:`state` writes the weights in (int16 or int32)
        self.act_limit = ACT_LIMIT << (self.act_bits - ACT_BITS)
        self.specs = []
        for i, L in enumerate(layers):
            self.register_buffer(f"w{i}", L["weight"].to(torch.float64))
            self.register_buffer(f"b{i}", L["bias"].to(torch.float64))
            self.specs.append({k: L.get(k) for k in ("kind", "stride", "padding", "output_padding", "shift",
                                                     "relu", "square_shift")})

    # -- building -----------------------------------------------------------------
    @staticmethod
    def layer_plan(seq: nn.Sequential) -> list[dict]:
        """(module, relu-after) pairs of a conv/ReLU/inverse-GDN sequence."""
        plan = []
        mods = list(seq)
        for i, m in enumerate(mods):
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
                relu = i + 1 < len(mods) and isinstance(mods[i + 1], nn.ReLU)
                plan.append({"module": m, "relu": relu})
            elif isinstance(m, GDN) and m.inverse:
                plan.append({"module": m, "relu": False})
            elif not isinstance(m, nn.ReLU):
                raise TypeError("integer networks support Conv2d, ConvTranspose2d, ReLU and inverse GDN, "
                                f"not {type(m).__name__}{' (forward GDN)' if isinstance(m, GDN) else ''}")
        return plan

    @staticmethod
    def _kind(m) -> str:
        return "igdn" if isinstance(m, GDN) else "deconv" if isinstance(m, nn.ConvTranspose2d) else "conv"

    @classmethod
    def freeze(cls, seq: nn.Sequential, act_bits: int = ACT_BITS, store=torch.int32) -> "IntegerNet":
        """``store``: the dtype the weights are stored in (:meth:`state`); every weight fits int16
        (``|w| < 2**12``), so int16 halves the file; int32 is what the first models shipped with."""
        if store not in (torch.int16, torch.int32):
            raise ValueError("integer weights are stored as int16 or int32")
        if not ACT_BITS <= act_bits <= 12:  # (a**2 of the largest activation stays below 2**53)
            raise ValueError(f"act_bits must lie in {ACT_BITS}..12")
        in_bound = float(ACT_LIMIT << (act_bits - ACT_BITS))
        layers = []
        for p in cls.layer_plan(seq):
            m = p["module"]
            if isinstance(m, GDN):
                layers.append(cls._freeze_igdn(m, act_bits, in_bound))
                continue
            w = m.weight.detach().to("cpu", torch.float64)
            b = (m.bias.detach().to("cpu", torch.float64) if m.bias is not None
                 else torch.zeros(m.out_channels, dtype=torch.float64))
            shift = _shift_for(float(w.abs().max()))
            w_int = torch.round(w * 2.0 ** shift)
            b_int = torch.round(b * 2.0 ** (shift + act_bits))
            # every partial sum of one output value: sum |w| * max|a| + |b| < 2**53
            per_out = w_int.abs().sum(dim=(0, 2, 3)) if isinstance(m, nn.ConvTranspose2d) else \
                w_int.abs().sum(dim=(1, 2, 3))
            bound = float(per_out.max()) * in_bound + float(b_int.abs().max())
            if bound >= EXACT_LIMIT:
                raise ValueError(f"integer layer would exceed 2**53 ({bound:.3g}); lower the precision")
            layers.append(dict(kind=cls._kind(m), stride=tuple(m.stride), padding=tuple(m.padding),
                               output_padding=tuple(getattr(m, "output_padding", (0, 0))),
                               shift=shift, relu=p["relu"], weight=w_int, bias=b_int, square_shift=0))
        return cls(layers, act_bits, store)

    @staticmethod
    def _freeze_igdn(m, act_bits: int, in_bound: float) -> dict:
        beta = m.beta_reparam(m.beta).detach().to("cpu", torch.float64)
        gamma = m.gamma_reparam(m.gamma).detach().to("cpu", torch.float64)  # [out i, in j]
        g = _shift_for(float(gamma.abs().max()))
        g_int = torch.round(gamma * 2.0 ** g)
        per_out = float(g_int.sum(dim=1).max())
        # the smallest p with sum_j gamma_ij * floor(a**2 / 2**p) + beta_i < 2**53 (and the
        # result a * isqrt(n) too), then e = g + 2 act_bits - p made even
        for p in range(0, 64):
            e = g + 2 * act_bits - p
            if e % 2:
                continue
            b_int = torch.round(beta * 2.0 ** e)
            n_max = per_out * float((in_bound * in_bound) // 2.0 ** p) + float(b_int.max())
            if n_max < EXACT_LIMIT and in_bound * (n_max ** 0.5 + 1) < EXACT_LIMIT and e >= 0:
                break
        else:  # pragma: no cover - needs absurd weights
            raise ValueError("inverse GDN layer cannot be made exact")
        if float(b_int.min()) < 1:
            raise ValueError("inverse GDN beta rounds to zero at this precision")
        return dict(kind="igdn", stride=(1, 1), padding=(0, 0), output_padding=(0, 0), shift=g, relu=False,
                    weight=g_int[:, :, None, None], bias=b_int, square_shift=p)

    @classmethod
    def from_state(cls, seq: nn.Sequential, state: dict, prefix: str) -> "IntegerNet":
        """Rebuild from stored integers (shapes and layer kinds from ``seq``; shifts stored)."""
        layers = []
        shifts = state[prefix + "shifts"].tolist()
        squares = state[prefix + "square_shifts"].tolist() if prefix + "square_shifts" in state else None
        act_bits = int(state[prefix + "act_bits"].reshape(-1)[0]) if prefix + "act_bits" in state else ACT_BITS
        plan = cls.layer_plan(seq)
        stores = {state[k].dtype for k in state if k.startswith(prefix + "w") and k[len(prefix) + 1:].isdigit()}
        if len(stores) > 1 or not stores <= {torch.int16, torch.int32}:
            raise ValueError(f"stored integer weights must all be int16 or all int32, not {sorted(map(str, stores))}")
        store = stores.pop() if stores else torch.int32
        if len(shifts) != len(plan) or (squares is not None and len(squares) != len(plan)):
            raise ValueError(f"stored integer network has {len(shifts)} layers, expected {len(plan)}")
        for i, p in enumerate(plan):
            m = p["module"]
            w = state[prefix + f"w{i}"]
            shape = (m.gamma.shape[0], m.gamma.shape[1], 1, 1) if isinstance(m, GDN) else tuple(m.weight.shape)
            if tuple(w.shape) != shape:
                raise ValueError(f"stored integer weight {i} has shape {tuple(w.shape)}, expected {shape}")
            if w.numel() and int(w.abs().max()) > WEIGHT_LIMIT:  # (the 2**53 bound of freeze assumes it)
                raise ValueError(f"stored integer weight {i} exceeds {WEIGHT_LIMIT}")
            if isinstance(m, GDN) and squares is None:
                raise ValueError("stored integer network lacks its inverse GDN square shifts")
            layers.append(dict(kind=cls._kind(m), stride=tuple(getattr(m, "stride", (1, 1))),
                               padding=tuple(getattr(m, "padding", (0, 0))),
                               output_padding=tuple(getattr(m, "output_padding", (0, 0))),
                               shift=int(shifts[i]), relu=p["relu"], weight=w, bias=state[prefix + f"b{i}"],
                               square_shift=int(squares[i]) if squares is not None else 0))
        return cls(layers, act_bits, store)

    def state(self, prefix: str) -> dict:
        out = {prefix + "shifts": torch.tensor([s["shift"] for s in self.specs], dtype=torch.int32)}
        if any(s["kind"] == "igdn" for s in self.specs):  # (networks without one store what they always did)
            out[prefix + "square_shifts"] = torch.tensor([s["square_shift"] for s in self.specs], dtype=torch.int32)
        if self.act_bits != ACT_BITS:
            out[prefix + "act_bits"] = torch.tensor([self.act_bits], dtype=torch.int32)
        for i in range(len(self.specs)):
            out[prefix + f"w{i}"] = getattr(self, f"w{i}").to(self.store)
            out[prefix + f"b{i}"] = getattr(self, f"b{i}").to(torch.int64)
        return out

    # -- evaluation ---------------------------------------------------------------
    @torch.no_grad()
    def forward(self, x: torch.Tensor, scaled: bool = False) -> torch.Tensor:
        dev = x.device
        lim = float(self.act_limit)
        a = x.to(torch.float64)
        a = torch.clamp(a if scaled else a * (1 << self.act_bits), -lim, lim)
        for i, s in enumerate(self.specs):
            w = getattr(self, f"w{i}").to(dev)
            b = getattr(self, f"b{i}").to(dev)
            if s["kind"] == "igdn":
                q = torch.floor(a * a / float(1 << s["square_shift"]))
                n = F.conv2d(q, w) + b.view(1, -1, 1, 1)
                e2 = (s["shift"] + 2 * self.act_bits - s["square_shift"]) // 2
                a = torch.clamp(torch.floor(a * isqrt(n) / float(1 << e2)), -lim, lim)
                continue
            if s["kind"] == "conv":
                acc = F.conv2d(a, w, None, stride=s["stride"], padding=s["padding"])
            else:
                acc = F.conv_transpose2d(a, w, None, stride=s["stride"], padding=s["padding"],
                                         output_padding=s["output_padding"])
            acc = acc + b.view(1, -1, 1, 1)
            a = torch.floor(acc / float(1 << s["shift"]))
            a = torch.clamp(a, 0 if s["relu"] else -lim, lim)
        return a


def exact_mode():
    """Context that turns off TF32 and picks cuDNN's deterministic algorithms (the float paths
    around the integer ones, the encoder's latent refinement among them, repeat on one device)."""

    class _Ctx:
        def __enter__(self):
            b = torch.backends
            self.saved = (b.cuda.matmul.allow_tf32, b.cudnn.allow_tf32, b.cudnn.deterministic, b.cudnn.benchmark)
            b.cuda.matmul.allow_tf32 = False
            b.cudnn.allow_tf32 = False
            b.cudnn.deterministic, b.cudnn.benchmark = True, False

        def __exit__(self, *exc):
            b = torch.backends
            (b.cuda.matmul.allow_tf32, b.cudnn.allow_tf32, b.cudnn.deterministic, b.cudnn.benchmark) = self.saved

    return _Ctx()
