#!/usr/bin/env bash
# Pack what one GPU call of audio training needs into the git-ignored .data/gpu-audio/ (the
# audio folder of shared/, about 55 MB, under the 64 MiB a call can carry):
#
#   bash tools/gpu/pack-audio.sh ../shared/data
#
# The held-out files stay in it (training/configs/wavelet-audio-gpu.json names them in
# data.holdout, so they are left out of training as on the CPU).
set -euo pipefail
SHARED=${1:?usage: bash tools/gpu/pack-audio.sh SHARED_DATA_DIR}
cd "$(dirname "$0")/../.."
rm -rf .data/gpu-audio && mkdir -p .data
cp -r "$SHARED"/audio .data/gpu-audio
du -sh .data/gpu-audio
