"""Training data: any folders of images, random square crops and flips.

Every crop is a pure function of ``(seed, position)``: the training sample at global
position ``p = (step * processes + rank) * batch + i`` is image ``perm_e[p % n]`` of
epoch ``e = p // n`` (``perm_e`` a seeded permutation), cropped and flipped with a
generator seeded by ``(seed, p)``.  So a run resumed at step ``s`` sees exactly the
batches it would have seen, whatever the number of loader workers, and the processes of
a distributed run see disjoint samples.

Three ways to hold the data (``data.resident``): ``"disk"`` decodes an image for every
crop (in loader workers), ``"memory"`` decodes every image once and holds it in RAM,
``"device"`` holds the decoded images (uint8) on the training device and crops there,
so a fast GPU never waits for a loader.  All three give identical batches.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from codec.media.image import EXTENSIONS as IMAGE_EXTS


def list_images(folders, what="data.train") -> list[Path]:
    """Image files under ``folders`` (recursively, sorted), or ValueError."""
    if isinstance(folders, (str, Path)):
        folders = [folders]
    files = []
    for f in folders:
        p = Path(f)
        if p.is_file() and p.suffix.lower() in IMAGE_EXTS:
            files.append(p)
            continue
        if not p.is_dir():
            raise ValueError(f"{what}: folder not found: {p} (resolved: {p.resolve()}; "
                             "relative paths are taken from the current directory)")
        found = sorted(q for q in p.rglob("*") if q.suffix.lower() in IMAGE_EXTS and q.is_file())
        if not found:
            raise ValueError(f"{what}: no images ({', '.join(IMAGE_EXTS)}) in {p}")
        files.extend(found)
    return files


def load_rgb(path, min_side: int = 0) -> np.ndarray:
    """uint8 ``H x W x 3`` (read by :func:`codec.media.image.read`, the codec's image loader);
    training's own rule on top: images with a side below ``min_side`` are scaled up (bicubic)."""
    from codec.errors import CodecError
    from codec.media.image import read

    try:
        rgb = read(path).rgb
    except CodecError as exc:  # InputError, LimitError: one ValueError for the training CLI
        raise ValueError(str(exc)) from None
    h, w = rgb.shape[:2]
    if min(w, h) >= min_side:
        return np.array(rgb)
    from PIL import Image

    s = min_side / min(w, h)
    im = Image.fromarray(rgb).resize((max(min_side, round(w * s)), max(min_side, round(h * s))), Image.BICUBIC)
    return np.asarray(im).copy()


# ----------------------------------------------------------------------------- sampling
def sample_positions(step: int, rank: int, world: int, batch: int) -> range:
    first = (step * world + rank) * batch
    return range(first, first + batch)


class EpochPermutations:
    """``index(p)``: the image at global sample position ``p`` (a new permutation each epoch)."""

    def __init__(self, n: int, seed: int):
        self.n, self.seed = n, seed
        self._cache: dict[int, np.ndarray] = {}

    def index(self, p: int) -> int:
        e = p // self.n
        perm = self._cache.get(e)
        if perm is None:
            if len(self._cache) > 4:
                self._cache.clear()
            perm = self._cache[e] = np.random.default_rng([self.seed, 0x5EED, e]).permutation(self.n)
        return int(perm[p % self.n])


def crop_box(seed: int, p: int, h: int, w: int, crop: int) -> tuple[int, int, bool, bool]:
    """(top, left, flip left-right, flip up-down) of sample ``p``."""
    g = np.random.default_rng([seed, p])
    top = int(g.integers(0, h - crop + 1))
    left = int(g.integers(0, w - crop + 1))
    fh, fv = (bool(b) for b in g.integers(0, 2, size=2))
    return top, left, fh, fv


def crop_array(img: np.ndarray, seed: int, p: int, crop: int) -> np.ndarray:
    top, left, fh, fv = crop_box(seed, p, img.shape[0], img.shape[1], crop)
    a = img[top:top + crop, left:left + crop]
    if fh:
        a = a[:, ::-1]
    if fv:
        a = a[::-1]
    return np.ascontiguousarray(a)


class StepBatches(torch.utils.data.Sampler):
    """Batch sampler: for each step in ``[start, stop)`` the ``(image, position)`` pairs of one process."""

    def __init__(self, n_images, seed, start, stop, rank=0, world=1, batch=16):
        self.perm = EpochPermutations(n_images, seed)
        self.start, self.stop, self.rank, self.world, self.batch = start, stop, rank, world, batch

    def plan(self, step: int) -> list[tuple[int, int]]:
        return [(self.perm.index(p), p) for p in sample_positions(step, self.rank, self.world, self.batch)]

    def __iter__(self):
        for step in range(self.start, self.stop):
            yield self.plan(step)

    def __len__(self):
        return max(0, self.stop - self.start)


class FolderCrops(torch.utils.data.Dataset):
    """``dataset[(image, position)]`` -> uint8 ``[3, crop, crop]``."""

    def __init__(self, files, crop: int, seed: int, preload: bool = False):
        self.files, self.crop, self.seed = list(files), crop, seed
        self.images = [load_rgb(f, crop) for f in self.files] if preload else None

    def __len__(self):
        return len(self.files)

    def __getitem__(self, item):
        idx, p = item
        img = self.images[idx] if self.images is not None else load_rgb(self.files[idx], self.crop)
        return torch.from_numpy(crop_array(img, self.seed, p, self.crop)).permute(2, 0, 1)


class DeviceCrops:
    """The decoded images held on ``device``; iterating gives uint8 batches ``[B, 3, crop, crop]``."""

    def __init__(self, files, crop: int, seed: int, device, sampler: StepBatches):
        self.crop, self.seed, self.sampler = crop, seed, sampler
        self.images = [torch.from_numpy(load_rgb(f, crop)).to(device).permute(2, 0, 1) for f in files]

    def batch(self, plan):
        out = []
        for idx, p in plan:
            img = self.images[idx]
            top, left, fh, fv = crop_box(self.seed, p, img.shape[1], img.shape[2], self.crop)
            a = img[:, top:top + self.crop, left:left + self.crop]
            dims = ([2] if fh else []) + ([1] if fv else [])
            out.append(torch.flip(a, dims) if dims else a)
        return torch.stack(out)

    def __iter__(self):
        for plan in self.sampler:
            yield self.batch(plan)


def make_batches(files, crop, batch, seed, start, stop, rank=0, world=1, resident="disk", workers=0,
                 device="cpu"):
    """An iterable of uint8 batches ``[batch, 3, crop, crop]`` for steps ``start..stop-1``."""
    sampler = StepBatches(len(files), seed, start, stop, rank, world, batch)
    device = torch.device(device)
    if resident == "device":
        return DeviceCrops(files, crop, seed, device, sampler)
    ds = FolderCrops(files, crop, seed, preload=resident == "memory")
    g = torch.Generator()
    g.manual_seed(seed)  # the loader draws worker seeds from this, not from the global RNG
    return torch.utils.data.DataLoader(ds, batch_sampler=sampler, num_workers=workers,
                                       pin_memory=device.type == "cuda", generator=g,
                                       prefetch_factor=4 if workers else None)
