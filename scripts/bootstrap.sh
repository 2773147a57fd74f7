#!/usr/bin/env bash
# Creates .venv and installs KeyWeb with its worker and test extras; re-runs only when pyproject.toml changes.
# Sourced by scripts/run.sh and scripts/test.sh.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PYTHON=${PYTHON:-python3}
VENV=${KEYWEB_VENV:-.venv}
stamp="$VENV/.keyweb-installed"
want=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ ! -x "$VENV/bin/python" ]; then
  echo "==> creating virtual environment $VENV"
  "$PYTHON" -m venv "$VENV"
fi
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "==> installing dependencies (first run takes a few minutes)"
  "$VENV/bin/pip" install -q --upgrade pip
  # The CPU wheel of torch 2.13.0 is on these machines; install it first so nothing pulls a CUDA build.
  "$VENV/bin/pip" install -q "torch==2.13.0"
  "$VENV/bin/pip" install -q -e ".[ml,embedded,dev]"
  echo "$want" > "$stamp"
fi
export PATH="$PWD/$VENV/bin:$PATH"
