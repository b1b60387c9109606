#!/usr/bin/env bash
# Create .venv and install kscout into it (idempotent: a stamp skips work when nothing changed).
# torch is installed first and pinned: any other version downloads a multi-GB CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if ! $PY -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)'; then
  echo "kscout needs Python >= 3.11 (found $($PY --version 2>&1)); set PYTHON=python3.11" >&2; exit 1
fi
command -v g++ >/dev/null || { echo "kscout's CPU backend needs g++ (apt-get install g++)" >&2; exit 1; }
[ -x .venv/bin/python ] || $PY -m venv .venv
stamp=.venv/.kscout-installed
want=$(cat pyproject.toml | sha256sum | cut -c1-16)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "[install] installing torch==2.13.0 and kscout into .venv (about 2 minutes the first time)" >&2
  .venv/bin/python -m pip install -q --disable-pip-version-check torch==2.13.0 2>&1 | grep -v '^WARNING: Location' >&2 || true
  .venv/bin/python -m pip install -q --disable-pip-version-check -e '.[test]' 2>&1 | grep -v '^WARNING: Location' >&2 || true
  .venv/bin/python -c 'import kscout, torch, ray, sqlalchemy' || { echo "[install] failed" >&2; exit 1; }
  echo "$want" > "$stamp"
fi
