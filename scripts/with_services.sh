#!/usr/bin/env bash
# Run a command with DATABASE_URL / REDIS_URL from scripts/services.sh, then stop the private
# servers that this run had to start (servers already running, or given by URL, stay up).
# Usage: scripts/with_services.sh COMMAND [ARG ...]
set -euo pipefail
DATA_DIR=${APOLO_DATA_DIR:-$(pwd)/.data}

pg_running() {
  local bin
  bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
  [ -n "$bin" ] && [ -f "$DATA_DIR/pg/postmaster.pid" ] || return 1
  if [ "$(id -u)" -eq 0 ]; then
    runuser -u postgres -- "$bin/pg_ctl" -D "$DATA_DIR/pg" status >/dev/null 2>&1
  else
    "$bin/pg_ctl" -D "$DATA_DIR/pg" status >/dev/null 2>&1
  fi
}

redis_running() {
  [ -s "$DATA_DIR/redis/redis.pid" ] && kill -0 "$(cat "$DATA_DIR/redis/redis.pid")" 2>/dev/null
}

started=()
[ -n "${DATABASE_URL:-}" ] || pg_running || started+=(pg)
[ -n "${REDIS_URL:-}" ] || redis_running || started+=(redis)
cleanup() {
  local kind
  for kind in "${started[@]}"; do STOP_ONLY=$kind scripts/stop_services.sh "$DATA_DIR"; done
}
trap cleanup EXIT
eval "$(scripts/services.sh)"
"$@"
