#!/usr/bin/env bash
# One GPU call for the entropy coder and the end-to-end times (the speed issue's GPU part), within
# 9 minutes, from the repository root on the device machine, with .data/gpu carried (pack.sh):
#
#   run(command="bash tools/gpu/entropy.sh", carry=[".data/gpu"], timeout_s=600)
#
# Writes into $OUT: the CUDA tests' verdict (the Triton coder's byte identity with the CPU
# coder and the golden streams on hardware, cross-device decodes), bench_gpu_rans (1M symbols
# and a 64M-symbol batch against the CPU coders) and bench_image_e2e (kodim01-03 per device
# and coder).  Each step has its own time bound, so a hang in one leaves the others' figures.
set -uo pipefail
OUT=${OUT:?OUT must name the folder whose files come back}
pip install -q --no-deps --no-build-isolation -e . || exit 3
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$OUT"/gpu.txt 2>&1
python -c "import torch, triton; print(torch.__version__, triton.__version__, torch.cuda.get_device_name())" >> "$OUT"/gpu.txt 2>&1
timeout 240 python -m pytest -q -p no:cacheprovider -m cuda tests/ > "$OUT"/cuda-tests.txt 2>&1
tail -3 "$OUT"/cuda-tests.txt
timeout 150 python -m codec.tools.bench_gpu_rans --cpu-repeat 1 > "$OUT"/bench_gpu_rans.txt 2>&1
tail -25 "$OUT"/bench_gpu_rans.txt
timeout 120 python -m codec.tools.bench_image_e2e .data/gpu/kodak/kodim0{1,2,3}.png --model context-vr@fast \
    --model mean-scale-vr@fast --repeat 3 > "$OUT"/bench_image_e2e.txt 2>&1
tail -15 "$OUT"/bench_image_e2e.txt
