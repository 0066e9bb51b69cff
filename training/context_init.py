"""The starting weights of ``context-vr``'s training: ``mean-scale-vr``'s, latent channels reordered.

The context model codes its latent in uneven channel slices, the smallest first (ELIC).
ELIC's training packs the most informative channels into the first slices; a
``mean-scale-vr`` latent has no such order, so this script gives it one: it measures each
channel's rate (bits from the likelihoods, averaged over qualities 1, 4 and 8) on
training pictures and permutes the latent channels by decreasing rate, in every tensor
that indexes them (analysis output, synthesis input, hyper-analysis input, hyper-synthesis
scale and mean outputs, gains).  The permuted model codes exactly as the original does.

    python -m codec.training.context_init ../shared/data/train-images runs/context-init.safetensors

(``training/configs/context-vr-cpu.json`` starts from that file.)
"""
from __future__ import annotations

import sys
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from codec.models.registry import load_model, weights_path
from codec.training.data import list_images, load_rgb


def channel_bits(model, files, qualities=(1.0, 4.0, 8.0), crop=256) -> torch.Tensor:
    bits = torch.zeros(model.M, dtype=torch.float64)
    with torch.no_grad():
        for f in files:
            img = torch.from_numpy(load_rgb(f)).permute(2, 0, 1)[None].float() / 255
            img = img[..., :crop, :crop]
            img = img[..., : img.shape[-2] // 64 * 64, : img.shape[-1] // 64 * 64]
            for q in qualities:
                lik = model(img, q)["likelihoods"]["y"]
                bits += -torch.log2(lik).double().sum(dim=(0, 2, 3))
    return bits


def permute(state: dict, perm: torch.Tensor, M: int) -> dict:
    out = dict(state)
    both = torch.cat([perm, perm + M])
    out["g_a.6.weight"] = state["g_a.6.weight"][perm]
    out["g_a.6.bias"] = state["g_a.6.bias"][perm]
    out["g_s.0.weight"] = state["g_s.0.weight"][perm]
    out["latent_codec.inner.h_a.0.weight"] = state["latent_codec.inner.h_a.0.weight"][:, perm]
    out["latent_codec.inner.h_s.4.weight"] = state["latent_codec.inner.h_s.4.weight"][both]
    out["latent_codec.inner.h_s.4.bias"] = state["latent_codec.inner.h_s.4.bias"][both]
    out["latent_codec.log_gain"] = state["latent_codec.log_gain"][:, perm]
    out["latent_codec.log_inv_gain"] = state["latent_codec.log_inv_gain"][:, perm]
    return {k: v.contiguous() for k, v in out.items() if not k.startswith("frozen.")}


def main(data: str, out: str, n: int = 24) -> None:
    model = load_model("mean-scale-vr")
    files = list_images([data])[::max(1, len(list_images([data])) // n)][:n]
    bits = channel_bits(model, files)
    perm = torch.argsort(bits, descending=True)
    state = load_file(str(weights_path("mean-scale-vr")))
    save_file(permute(state, perm, model.M), out, metadata={"source": "mean-scale-vr, latent channels by rate"})
    share = bits[perm] / bits.sum()
    print(f"{len(files)} pictures; channel order {perm.tolist()}")
    print("share of the rate in the first slices (8, 8, 16, 24, 40 channels): "
          + ", ".join(f"{float(share[a:b].sum()):.1%}" for a, b in ((0, 8), (8, 16), (16, 32), (32, 56), (56, 96))))
    print(f"wrote {out}")


if __name__ == "__main__":
    main(*sys.argv[1:3])
