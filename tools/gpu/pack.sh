#!/usr/bin/env bash
# Pack what one GPU training call needs into the git-ignored .data/gpu/ (under 50 MB, so that
# it can be carried to the device machine, which has no ../shared):
#
#   bash tools/gpu/pack.sh ../shared/data
#
# train/: Urban100 (half size) and the first 200 BSDS500 training pictures (McMaster stays
# out: it is the held-out photo set); kodak/: kodim01-03 for the run's validation.
# (Training and coding no longer import CompressAI, so the device needs no wheel of it; a
# wheel put in .whl/ is still installed first by context-vr.sh.)
set -euo pipefail
SHARED=${1:?usage: bash tools/gpu/pack.sh SHARED_DATA_DIR}
cd "$(dirname "$0")/../.."
rm -rf .data/gpu && mkdir -p .data/gpu/train .data/gpu/kodak
cp "$SHARED"/train-images/urban100/* .data/gpu/train/
find "$SHARED"/train-images/bsds500/train -type f | sort | head -200 | xargs -I{} cp {} .data/gpu/train/
cp "$SHARED"/kodak/kodim0[1-3].png .data/gpu/kodak/
du -sh .data/gpu
