#!/usr/bin/env bash
# Reproduce the checked-in Kodak report (tools/reports/kodak/):
#
#   bash tools/reports/kodak/reproduce.sh /path/to/kodak
#
# /path/to/kodak holds the 24 Kodak PNGs (kodim01.png ... kodim24.png, 768x512).
# Runs the six classical codecs over their default quality grids and our default model at its
# default effort in a process pool (one worker per CPU), then our models without latent
# refinement, resuming if interrupted, then rewrites the report
# with the published CompressAI / VTM / HM / BPG anchors from tools/reports/kodak/anchors/.
set -euo pipefail
KODAK=${1:?usage: bash tools/reports/kodak/reproduce.sh KODAK_DIR}
command -v codec >/dev/null || { echo "codec not on PATH: install the project (pip install -e .) and activate its environment" >&2; exit 2; }
cd "$(dirname "$0")/../../.."
codec eval "$KODAK" --codec jpeg --codec webp --codec avif --codec jpeg2000 --codec hevc-intra --codec av1-intra \
    --codec ours:context-vr:1,2,3,4,5,6,7,8 -o tools/reports/kodak/results
# our models without latent refinement (--effort fast: g_a's latent, the codec as it was before refinement)
codec eval "$KODAK" --codec ours:context-vr:1,2,3,4,5,6,7,8 --codec ours:mean-scale-vr:1,2,3,4,5,6,7,8 \
    --codec ours:mean-scale-small:4 --effort fast -o tools/reports/kodak/results
codec report tools/reports/kodak/results --anchor tools/reports/kodak/anchors --reference jpeg --reference webp --reference avif --reference bmshj2018-hyperprior --reference mbt2018-mean --reference vtm \
    --title "Kodak (24 images): classical codecs, our models and published anchors" -o tools/reports/kodak --force
