#!/usr/bin/env bash
# Command 2 of the README (and what CI runs): install, start a throwaway PostgreSQL if one can be
# had, run the test suite. Extra arguments go to pytest (e.g. -m "not slow").
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
export LITELLM_LOCAL_MODEL_COST_MAP=True
# PostgreSQL: install it from the OS packages if it is missing, start a throwaway server on
# 127.0.0.1, and stop it when the tests end. Where that is impossible its tests skip, saying why.
if [ -z "${KSCOUT_TEST_PG_URL:-}" ]; then
  if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && ! command -v initdb >/dev/null; then
    if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
      echo "[test] installing PostgreSQL from the OS packages" >&2
      (apt-get install -y -q postgresql >/tmp/kscout-pg-install.log 2>&1 ||
        { apt-get update -q >>/tmp/kscout-pg-install.log 2>&1 &&
          apt-get install -y -q postgresql >>/tmp/kscout-pg-install.log 2>&1; }) ||
        echo "[test] could not install PostgreSQL (see /tmp/kscout-pg-install.log)" >&2
    fi
  fi
  if url=$(bash tests/memory/pg_server.sh 2>/tmp/kscout-pg.log); then
    export KSCOUT_TEST_PG_URL="$url"
    stop_cmd=$(sed -n 's/^pg_server.sh: stop with: //p' /tmp/kscout-pg.log)
    trap 'eval "$stop_cmd" >/dev/null 2>&1 || true' EXIT
    echo "[test] PostgreSQL at $url" >&2
  else
    echo "[test] PostgreSQL could not be started (see /tmp/kscout-pg.log); its tests will skip" >&2
  fi
fi
# Chromium: tests/cli/test_report.py opens `kscout report`'s HTML in headless Chromium. Install it
# from the OS packages if it is missing and we are root (or have passwordless sudo); where that is
# impossible the test skips, saying why, and CI goes on.
if ! command -v chromium >/dev/null && ! command -v chromium-browser >/dev/null &&
   ! command -v google-chrome >/dev/null; then
  sudo=""
  if [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null && sudo -n true 2>/dev/null; then sudo="sudo -n"; fi
  if { [ "$(id -u)" -eq 0 ] || [ -n "$sudo" ]; } && command -v apt-get >/dev/null; then
    echo "[test] installing Chromium from the OS packages" >&2
    ($sudo apt-get install -y -q chromium >/tmp/kscout-chromium-install.log 2>&1 ||
      { $sudo apt-get update -q >>/tmp/kscout-chromium-install.log 2>&1 &&
        $sudo apt-get install -y -q chromium >>/tmp/kscout-chromium-install.log 2>&1; }) ||
      echo "[test] could not install Chromium (see /tmp/kscout-chromium-install.log); the report's browser test will skip" >&2
  else
    echo "[test] Chromium missing and apt-get/root unavailable; the report's browser test will skip" >&2
  fi
fi
# Test modules run side by side on every core (pytest-xdist; KSCOUT_TEST_WORKERS=N picks N, 0 runs
# them in this process): much of the suite waits on compilers, child processes and Ray, so even 2
# cores finish it far sooner (29.5 -> 19.1 min here). --dist loadscope sends each module to one
# worker whole, so a module-scoped end-to-end search runs once, not once per worker (loadgroup
# would be finer, but its xdist_group marks are ignored under pytest 9.2: pytest-xdist#1386).
# Passing -n yourself, or -p no:xdist, overrides this.
par=(-n "${KSCOUT_TEST_WORKERS:-auto}" --dist loadscope)
for a in "$@"; do
  case "$a" in -n|-n*|--numprocesses*|no:xdist) par=() ;; esac
done
set +e
.venv/bin/python -m pytest "${par[@]}" "$@"
rc=$?
set -e
# pytest exit code 5 means "no tests collected" (e.g. a -k filter matched nothing): not a failure.
if [ $rc -eq 5 ]; then rc=0; fi
exit $rc
