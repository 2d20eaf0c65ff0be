#!/usr/bin/env bash
# Create .venv (if missing) and install hfcore with its pinned dependencies into it.
# Usage: bash scripts/setup.sh        (idempotent; a second run only checks the installation)
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    echo "setup: creating .venv with $($python --version)"
    "$python" -m venv .venv
fi
# pip prints a warning for every index location it cannot use; keep errors, drop those lines.
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".[dev,lint]" 2>&1 \
    | { grep -v "is ignored: it is neither a file nor a directory" || true; }
test "${PIPESTATUS[0]}" -eq 0
echo "setup: .venv ready ($(.venv/bin/python -c 'import torch; print("torch", torch.__version__)'))"
