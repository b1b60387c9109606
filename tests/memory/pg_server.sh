#!/usr/bin/env bash
# Start a throwaway PostgreSQL server for the memory tests and print its URL on stdout:
#
#   export KSCOUT_TEST_PG_URL=$(tests/memory/pg_server.sh)
#   .venv/bin/pytest tests/memory
#
# The cluster lives in a fresh temp dir, trusts local TCP connections, listens only on
# 127.0.0.1 on a free port, and has a database "kscout_test". Run as root, the server runs
# as the "postgres" user (PostgreSQL refuses to run as root). Set PG_BIN to override the
# binaries directory (default: the newest /usr/lib/postgresql/*/bin, else PATH).
# Stop it with: pg_ctl -D <dir> stop   (printed on stderr), then remove <dir>.
# PG_FSYNC=on keeps fsync (for benchmarks); tests default to off, which is faster and changes nothing they check.
set -euo pipefail

if [[ -z "${PG_BIN:-}" ]]; then
  PG_BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1 || true)
fi
if [[ -n "${PG_BIN:-}" ]]; then PATH="$PG_BIN:$PATH"; fi
command -v initdb >/dev/null || { echo "pg_server.sh: initdb not found (apt-get install -y postgresql)" >&2; exit 1; }

DIR=$(mktemp -d "${TMPDIR:-/tmp}/kscout-pg.XXXXXX")
PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')

as_owner() {
  if [[ $(id -u) -eq 0 ]]; then runuser -u postgres -- env PATH="$PATH" "$@"; else "$@"; fi
}
if [[ $(id -u) -eq 0 ]]; then chown postgres: "$DIR"; fi
chmod 700 "$DIR"

as_owner initdb -D "$DIR/data" -U postgres -A trust -E UTF8 --no-locale >"$DIR/initdb.log" 2>&1 \
  || { cat "$DIR/initdb.log" >&2; exit 1; }
as_owner pg_ctl -D "$DIR/data" -l "$DIR/server.log" -w -t 60 \
  -o "-c listen_addresses=127.0.0.1 -p $PORT -k $DIR -c fsync=${PG_FSYNC:-off} -c max_connections=200" start >/dev/null \
  || { cat "$DIR/server.log" >&2; exit 1; }
as_owner createdb -h 127.0.0.1 -p "$PORT" -U postgres kscout_test

echo "pg_server.sh: stop with: $( [[ $(id -u) -eq 0 ]] && echo 'runuser -u postgres -- ')$PG_BIN/pg_ctl -D $DIR/data stop && rm -rf $DIR" >&2
echo "postgresql+psycopg://postgres@127.0.0.1:$PORT/kscout_test"
