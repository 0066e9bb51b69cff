#!/usr/bin/env bash
# One GPU call (on the device machine, from the repository root, with .data/gpu-audio carried;
# see pack-audio.sh): continue wavelet-audio's training from the shipped weights for 8.5
# minutes (SIGTERM at the end writes last.pt), then export fp16 weights into $OUT.
#
#   run(command="bash tools/gpu/wavelet-audio.sh", carry=[".data/gpu-audio"], timeout_s=600)
#
# Back here: validate $OUT/wavelet-audio.safetensors as the shipped weights were (README,
# 'Training'), run tools/reports/audio/reproduce.sh with it installed, and ship it only if
# codec bdrate says it is better.
set -uo pipefail
OUT=${OUT:?OUT must name the folder whose files come back}
pip install -q --no-deps --no-build-isolation -e . || exit 3
python -c "import codec.models.audio" || { echo "codec does not import"; exit 3; }
nvidia-smi --query-gpu=name,memory.used --format=csv
timeout -s TERM 510 python -m codec.training --config training/configs/wavelet-audio-gpu.json 2>&1 | tail -40
cp runs/wavelet-audio-gpu/train.csv "$OUT"/ 2>/dev/null
codec export runs/wavelet-audio-gpu/last.pt --half -o "$OUT"/wavelet-audio.safetensors --force
