#!/usr/bin/env bash
# Reproduce the checked-in audio report (tools/reports/audio/):
#
#   bash tools/reports/audio/reproduce.sh /path/to/shared/data/audio
#
# The items are the files held out of wavelet-audio's training (data.holdout of
# training/configs/wavelet-audio-cpu-2.json), by class (the folder under the audio root:
# speech, music, environment), linked into one temporary folder per class.  Each class
# is evaluated on its own (PESQ-WB and STOI exist for speech only), with Opus, AAC and MP3
# measured in the same run as our model, then a report per class is written.
set -euo pipefail
AUDIO=${1:?usage: bash tools/reports/audio/reproduce.sh AUDIO_DIR}
command -v codec >/dev/null || { echo "codec not on PATH: install the project (pip install -e .) and activate its environment" >&2; exit 2; }
cd "$(dirname "$0")/../../.."
OUT=tools/reports/audio
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
python - "$AUDIO" "$TMP" <<'PY'
import json, os, sys
audio, tmp = os.path.abspath(sys.argv[1]), sys.argv[2]
cfg = json.load(open("training/configs/wavelet-audio-cpu-2.json"))
for p in cfg["data"]["holdout"]:
    rel = p.split("data/audio/", 1)[1]
    cls = rel.split("/")[0]
    os.makedirs(os.path.join(tmp, cls), exist_ok=True)
    os.symlink(os.path.join(audio, rel), os.path.join(tmp, cls, os.path.basename(rel)))
PY
for CLASS in speech music environment; do
  codec eval "$TMP/$CLASS" --codec ours:wavelet-audio:1,2,3,4,5,6,7,8 \
      --codec opus:6,8,12,16,24,32,48,64 --codec aac:8,12,16,24,32,48,64 --codec mp3:8,16,24,32,48,64 \
      -o "$OUT/results/$CLASS" ${JOBS:+-j $JOBS}
  codec report "$OUT/results/$CLASS" --reference mp3 --reference aac --reference opus --rate-range 12:32 \
      --title "Audio, $CLASS (files held out of training): Opus, AAC, MP3 and wavelet-audio" -o "$OUT/$CLASS" --force
done
