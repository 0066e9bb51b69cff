#!/usr/bin/env bash
# One GPU call (on the device machine, from the repository root, with .data/gpu carried; see
# pack.sh): continue context-vr's training from the shipped weights for 8.5 minutes
# (SIGTERM at the end writes last.pt), then export fp16 weights into $OUT.
#
#   run(command="bash tools/gpu/context-vr.sh", carry=[".data/gpu", ".whl"], timeout_s=600)
#
# Back here: evaluate $OUT/context-vr.safetensors on Kodak against the shipped weights
# (codec eval ... --codec ours:context-vr with each installed, then codec bdrate) and ship
# it only if it is better.
set -uo pipefail
OUT=${OUT:?OUT must name the folder whose files come back}
ls .whl/*.whl >/dev/null 2>&1 && pip install -q --no-deps .whl/*.whl
pip install -q --no-deps --no-build-isolation -e . || exit 3
python -c "import codec.models.image" || { echo "codec does not import"; exit 3; }
nvidia-smi --query-gpu=name,memory.used --format=csv
timeout -s TERM 510 python -m codec.training --config training/configs/context-vr-gpu.json 2>&1 | tail -40
cp runs/context-vr-gpu/train.csv runs/context-vr-gpu/val.csv "$OUT"/ 2>/dev/null
codec export runs/context-vr-gpu/last.pt --half -o "$OUT"/context-vr.safetensors --force
