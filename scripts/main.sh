#!/usr/bin/env bash
# Set up the environment and run the main job: image-only, audio-only, LF and HyperFuse on
# real AV-MNIST over 3 seeds, writing results/avmnist/default/ and figures/avmnist_default.png.
# Usage: bash scripts/main.sh [--profile default|paper|smoke] [--data-dir DIR] [--force]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python -m hfcore main "$@"
