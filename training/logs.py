"""Logs of a run: messages on stderr, CSV files and (when installed) TensorBoard, written by rank 0.

A resumed run rewrites its CSV files without the rows logged after its checkpoint, so
that they read as if the run had never stopped; TensorBoard purges those steps too.
"""
from __future__ import annotations

import csv
import sys
from pathlib import Path


def log(msg: str, rank: int = 0, quiet: bool = False):
    if rank == 0 and not quiet:
        print(msg, file=sys.stderr, flush=True)


class Logs:
    """``OUT/NAME.csv`` for each ``NAME -> columns`` of ``files`` (and ``OUT/tb``)."""

    def __init__(self, out: Path | None, files: dict, start_step: int, enabled: bool, tensorboard: bool,
                 quiet: bool):
        self.enabled = enabled and out is not None
        self.tb = None
        if not self.enabled:
            return
        self.files = {}
        for name, fields in files.items():
            path = out / f"{name}.csv"
            rows = []
            if start_step > 0 and path.is_file():  # drop rows written after the checkpoint
                with open(path, newline="") as f:
                    rows = [r for r in csv.DictReader(f) if int(r["step"]) <= start_step]
            f = open(path, "w", newline="")
            w = csv.DictWriter(f, fieldnames=list(fields), extrasaction="ignore")
            w.writeheader()
            w.writerows(rows)
            f.flush()
            self.files[name] = (f, w)
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.tb = SummaryWriter(str(out / "tb"), purge_step=start_step + 1 if start_step else None)
            except ImportError:
                log("note: the tensorboard package is not installed; logging to CSV only", quiet=quiet)

    def row(self, name: str, values: dict, tag: str | None = None):
        """A CSV row of file ``name`` (and TensorBoard scalars under ``tag``, default ``name``)."""
        if not self.enabled:
            return
        f, w = self.files[name]
        w.writerow({k: ("" if v is None else (f"{v:.6g}" if isinstance(v, float) else v)) for k, v in values.items()})
        f.flush()
        if self.tb is not None:
            for k, v in values.items():
                if k != "step" and isinstance(v, (int, float)) and v is not None:
                    self.tb.add_scalar(f"{tag or name}/{k}", v, values["step"])

    def close(self):
        if not self.enabled:
            return
        for f, _ in self.files.values():
            f.close()
        if self.tb is not None:
            self.tb.close()
