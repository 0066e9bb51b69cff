#!/usr/bin/env bash
# Reproduce the checked-in video report (tools/reports/video/):
#
#   bash tools/reports/video/reproduce.sh /path/to/shared/data/video [FRAMES] [FRAMES_720P]
#
# Each clip of the folder (the 4 shared clips: akiyo CIF, Big Buck Bunny 720p, bikes
# 640x272, carphone QCIF) on its own (BD-rates are per sequence, as video reports give
# them), the first FRAMES frames of each (default 32; FRAMES_720P, default 16, for clips
# of 720 lines or more: the learned codec runs on 2 CPU cores here, about 10 s a 720p
# frame), a key frame every 32 frames for every codec.  In one run per clip: our
# video model, x264 (medium and veryslow), x265, SVT-AV1 and VP9; then our model with
# every frame a key frame (--gop 1: what the image codec alone gives, the reference for
# "P-frames earn their keep"); then a report per clip with BD-rates against x264 medium
# and against the all-intra run.
set -euo pipefail
VIDEO=${1:?usage: bash tools/reports/video/reproduce.sh VIDEO_DIR [FRAMES]}
FRAMES=${2:-32}
FRAMES_720P=${3:-16}
command -v codec >/dev/null || { echo "codec not on PATH: install the project (pip install -e .) and activate its environment" >&2; exit 2; }
cd "$(dirname "$0")/../../.."
OUT=tools/reports/video
OURS=ours:video-ip:1,2,4,6,8
for CLIP in "$VIDEO"/*.mp4; do
  NAME=$(basename "$CLIP" .mp4)
  N=$FRAMES
  if [ "$(python -c "import av,sys; print(av.open(sys.argv[1]).streams.video[0].height)" "$CLIP")" -ge 720 ]; then
    N=$FRAMES_720P
  fi
  codec eval "$CLIP" --codec "$OURS" --codec x264 --codec x264-veryslow --codec x265 --codec svt-av1 \
      --codec vp9 --frames "$N" -o "$OUT/results/$NAME" ${JOBS:+-j $JOBS}
  codec eval "$CLIP" --codec "$OURS" --gop 1 --frames "$N" -o "$OUT/results/$NAME" ${JOBS:+-j $JOBS}
  codec report "$OUT/results/$NAME" --reference x264 --reference ours-video-ip-gop1 \
      --title "Video, $NAME (first $N frames, key frame every 32): video-ip vs x264, x265, SVT-AV1, VP9" \
      -o "$OUT/$NAME" --force
done
