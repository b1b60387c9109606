#!/usr/bin/env bash
# Command 1 of the README: install, then run a real search on the default workload
# (local Ray, SQLite under runs/, CPU backend, offline proposer, no API key).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
export LITELLM_LOCAL_MODEL_COST_MAP=True
exec .venv/bin/kscout search "${@:-bias_gelu}"
