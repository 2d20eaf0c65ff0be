#!/usr/bin/env bash
# Set up the environment and run every test: the pytest unit tests, then nbval over every
# notebook with small smoke parameters on fixture data written in the real file formats.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PYTHONHASHSEED=0
.venv/bin/python -m pytest tests
smoke=build/nbval
rm -rf "$smoke"
.venv/bin/python scripts/prepare_smoke_notebooks.py "$smoke"
# Collected in the order given: the training notebook writes the results the summary reads.
.venv/bin/python -m pytest --nbval-lax -p no:cacheprovider "$smoke/avmnist_train.ipynb" "$smoke/avmnist_summary.ipynb" \
    "$smoke/avmnist_comparison.ipynb" "$smoke/avmnist_analysis.ipynb" \
    "$smoke/avmnist_generated_weights.ipynb" "$smoke/avmnist_ablations.ipynb" \
    "$smoke/m3a_train.ipynb" "$smoke/m3a_comparison.ipynb" \
    "$smoke/sentiment_train.ipynb" "$smoke/sentiment_comparison.ipynb" \
    "$smoke/geo_train.ipynb" "$smoke/geo_comparison.ipynb"
