#!/usr/bin/env bash
# Reproduce the checked-in very-low-rate report (tools/reports/vq/):
#
#   bash tools/reports/vq/reproduce.sh /path/to/kodak
#
# Our VQ tokenizer (vq-f16, qualities 1..4: codebooks of 64..4096 entries) against the
# classical codecs at the same rates, reached fairly by coding a downscaled picture (1/2 and
# 1/4 size, bicubic) and upscaling it back, and against the lowest qualities of JPEG, WebP,
# AVIF and our default image model; then the report (BD-rates against the downscaled WebP
# and AVIF) and side-by-side crops of one picture at about 0.03 bpp.
set -euo pipefail
KODAK=${1:?usage: bash tools/reports/vq/reproduce.sh KODAK_DIR}
command -v codec >/dev/null || { echo "codec not on PATH: install the project (pip install -e .) and activate its environment" >&2; exit 2; }
cd "$(dirname "$0")/../../.."
OUT=tools/reports/vq
codec eval "$KODAK" --no-progress --codec ours:vq-f16:1,2,3,4 \
    --codec webp-down4:0,5,10,20,30,40,50,60,70,80,90 --codec webp-down2:0,5,10,20,30 \
    --codec avif-down4:2,5,10,15,20,30,40,50 --codec avif-down2:2,5,10,15 \
    --codec jpeg:2,3,5 --codec webp:0,2,5 --codec avif:2,5,10 -j ${JOBS:-2} -o $OUT/results
codec eval "$KODAK" --no-progress --codec ours:context-vr:1 --effort fast -j ${JOBS:-2} -o $OUT/results
codec report $OUT/results --reference webp-down4 --reference avif-down4 --xmax 0.15 \
    --title "Kodak (24 images) at very low rates: VQ tokenizer, downscaled classical codecs" -o $OUT --force
python -m codec.tools.crops $OUT/results --data "$KODAK" --image kodim23.png --bpp 0.03 --box 256,96,256,192 \
    -o $OUT/crops-kodim23-0.03bpp.png --force
python -m codec.tools.vq_usage "$KODAK" > $OUT/usage.txt
