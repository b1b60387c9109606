#!/usr/bin/env bash
# Command 2 of the README (and what CI runs): install, start a throwaway PostgreSQL if one can be
# had, run the test suite. Extra arguments go to pytest (e.g. -m "not slow").
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
export LITELLM_LOCAL_MODEL_COST_MAP=True
if [ -z "${KSCOUT_TEST_PG_URL:-}" ] && [ -f tests/memory/pg_server.sh ]; then
  if url=$(bash tests/memory/pg_server.sh 2>/tmp/kscout-pg.log); then
    export KSCOUT_TEST_PG_URL="$url"
    echo "[test] PostgreSQL at $url" >&2
  else
    echo "[test] PostgreSQL could not be started (see /tmp/kscout-pg.log); its tests will skip" >&2
  fi
fi
set +e
.venv/bin/python -m pytest "$@"
rc=$?
set -e
# pytest exit code 5 means "no tests collected" (e.g. a -k filter matched nothing): not a failure.
if [ $rc -eq 5 ]; then rc=0; fi
exit $rc
