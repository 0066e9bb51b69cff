#!/usr/bin/env bash
# Reproduce the checked-in very-low-rate reports (tools/reports/vq/kodak/ and tools/reports/vq/mcmaster/):
#
#   bash tools/reports/vq/reproduce.sh /path/to/kodak /path/to/mcmaster
#
# Our VQ tokenizer (vq-f16, qualities 1..4: codebooks of 64..2048 entries) against the
# classical codecs at the same rates, reached fairly by coding a downscaled picture (1/2 and
# 1/4 size, bicubic) and upscaling it back, and against the lowest qualities of JPEG, WebP,
# AVIF and our default image model; then each report (BD-rates against the downscaled WebP
# and AVIF), side-by-side crops of one picture at about 0.03 bpp, and the codebooks'
# utilisation and what the prior saves (usage.txt). McMaster (18 pictures, 500x500) was held
# out of vq-f16's training. JOBS=2 (the default) runs two processes; resumes if interrupted.
set -euo pipefail
KODAK=${1:?usage: bash tools/reports/vq/reproduce.sh KODAK_DIR MCMASTER_DIR}
MCMASTER=${2:?usage: bash tools/reports/vq/reproduce.sh KODAK_DIR MCMASTER_DIR}
command -v codec >/dev/null || { echo "codec not on PATH: install the project (pip install -e .) and activate its environment" >&2; exit 2; }
cd "$(dirname "$0")/../../.."
run() {  # DATA OUT TITLE CROP_IMAGE CROP_BOX
    codec eval "$1" --no-progress --codec ours:vq-f16:1,2,3,4 \
        --codec webp-down4:0,5,10,20,30,40,50,60,70,80,90 --codec webp-down2:0,5,10,20,30 \
        --codec avif-down4:2,5,10,15,20,30,40,50 --codec avif-down2:2,5,10,15 \
        --codec jpeg:2,3,5 --codec webp:0,2,5 --codec avif:2,5,10 -j "${JOBS:-2}" -o "$2/results"
    codec eval "$1" --no-progress --codec ours:context-vr:1 --effort fast -j "${JOBS:-2}" -o "$2/results"
    codec report "$2/results" --reference webp-down4 --reference avif-down4 --xmax 0.15 --title "$3" -o "$2" --force
    python -m codec.tools.crops "$2/results" --data "$1" --image "$4" --bpp 0.03 --box "$5" \
        -o "$2/crops-${4%.png}-0.03bpp.png" --force
    python -m codec.tools.vq_usage "$1" > "$2/usage.txt"
}
run "$KODAK" tools/reports/vq/kodak \
    "Kodak (24 images) at very low rates: VQ tokenizer, downscaled classical codecs" kodim23.png 256,96,256,192
run "$MCMASTER" tools/reports/vq/mcmaster \
    "McMaster (18 images, held out) at very low rates: VQ tokenizer, downscaled classical codecs" mcmaster_01.png 122,122,256,256
