#!/usr/bin/env bash
# Reproduce the checked-in McMaster report (tools/reports/mcmaster/):
#
#   bash tools/reports/mcmaster/reproduce.sh /path/to/mcmaster
#
# /path/to/mcmaster holds the 18 McMaster PNGs (500x500; ../shared/data/train-images/mcmaster).
# They were held out of context-vr's training (the transforms it started from, mean-scale-vr's,
# had seen them). JPEG, WebP and AVIF are measured in the same run as our models (about 15
# minutes on 2 cores), resuming if interrupted. No published curves exist for this set.
set -euo pipefail
DATA=${1:?usage: bash tools/reports/mcmaster/reproduce.sh MCMASTER_DIR}
command -v codec >/dev/null || { echo "codec not on PATH: install the project (pip install -e .) and activate its environment" >&2; exit 2; }
cd "$(dirname "$0")/../../.."
codec eval "$DATA" --codec jpeg --codec webp --codec avif --codec ours:context-vr -o tools/reports/mcmaster/results
# our models without latent refinement (--effort fast)
codec eval "$DATA" --codec ours:context-vr --codec ours:mean-scale-vr --effort fast -o tools/reports/mcmaster/results
codec report tools/reports/mcmaster/results --reference jpeg --reference webp --reference avif \
    --title "McMaster (18 images): classical codecs and our models" -o tools/reports/mcmaster --force
