#!/usr/bin/env bash
# Reproduce the checked-in INR report (tools/reports/inr/):
#
#   bash tools/reports/inr/reproduce.sh /path/to/kodak [EFFORT]
#
# The 24 Kodak PNGs, each cut to its central 256x256 pixels (the crops are written to
# tools/reports/inr/crops-256/, not checked in), coded by our INR codec (inr-image) at
# qualities 1, 3, 5, 8 and the given fitting effort (default medium: 1000 iterations, about
# a minute a crop on one CPU core), and, in a second run, JPEG, WebP and our amortised
# default model (mean-scale-vr) over their default grids; then one report with BD-rates
# against JPEG, WebP and mean-scale-vr, and the encode seconds per crop in the results.
# JOBS=N runs N worker processes (default: one per CPU).
set -euo pipefail
KODAK=${1:?usage: bash tools/reports/inr/reproduce.sh KODAK_DIR [EFFORT]}
EFFORT=${2:-medium}
command -v codec >/dev/null || { echo "codec not on PATH: install the project (pip install -e .) and activate its environment" >&2; exit 2; }
cd "$(dirname "$0")/../../.."
OUT=tools/reports/inr
python - "$KODAK" "$OUT/crops-256" <<'PY'
import pathlib, sys
from PIL import Image
src, dst = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
dst.mkdir(parents=True, exist_ok=True)
for p in sorted(src.glob("*.png")):
    im = Image.open(p).convert("RGB")
    x, y = (im.width - 256) // 2, (im.height - 256) // 2
    im.crop((x, y, x + 256, y + 256)).save(dst / p.name)
PY
codec eval "$OUT/crops-256" --codec ours:inr-image:1,3,5,8 --effort "$EFFORT" -o "$OUT/results" ${JOBS:+-j $JOBS}
codec eval "$OUT/crops-256" --codec jpeg --codec webp -o "$OUT/results" ${JOBS:+-j $JOBS}
# (mean-scale-vr without latent refinement: the checked-in report predates refinement, and its
# ours-mean-scale-vr is the codec that --effort fast gives now)
codec eval "$OUT/crops-256" --codec ours:mean-scale-vr --effort fast -o "$OUT/results" ${JOBS:+-j $JOBS}
codec report "$OUT/results" --reference jpeg --reference webp --reference ours-mean-scale-vr-effort-fast \
    --title "Kodak, central 256x256 crops (24): the INR codec at effort $EFFORT, JPEG, WebP and our amortised model" \
    -o "$OUT" --force
