#!/usr/bin/env bash
# Stop the private PostgreSQL and Redis servers that scripts/services.sh started.
#
# Usage: scripts/stop_services.sh [DATA_DIR ...]
# Without arguments: every private pair under $APOLO_DATA_DIR (default ./.data), the
# reliability suite's (.data/reliability) included. Servers given by DATABASE_URL / REDIS_URL
# are never touched. Env STOP_ONLY=pg or STOP_ONLY=redis stops just one kind.
set -euo pipefail
DATA_DIR=${APOLO_DATA_DIR:-$(pwd)/.data}
log() { echo "stop: $*" >&2; }

as_pg() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

pg_bin() {
  ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1
}

stop_pg() {  # $1 cluster directory
  local bin
  bin=$(pg_bin)
  [ -n "$bin" ] && [ -f "$1/postmaster.pid" ] || return 0
  if as_pg "$bin/pg_ctl" -D "$1" status >/dev/null 2>&1; then
    log "PostgreSQL in $1"
    as_pg "$bin/pg_ctl" -D "$1" -m fast -w -t 60 stop >/dev/null
  fi
}

stop_redis() {  # $1 redis directory holding redis.pid
  local pid
  [ -s "$1/redis.pid" ] || return 0
  pid=$(cat "$1/redis.pid")
  if kill -0 "$pid" 2>/dev/null; then
    log "Redis in $1 (pid $pid)"
    kill "$pid"
    for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
  fi
  rm -f "$1/redis.pid"
}

dirs=("$@")
if [ ${#dirs[@]} -eq 0 ]; then
  [ -d "$DATA_DIR" ] || exit 0
  mapfile -t dirs < <(find "$DATA_DIR" -maxdepth 3 \( -name PG_VERSION -o -name redis.pid \) \
    -printf '%h\n' | xargs -r -n1 dirname | sort -u)
fi
for d in "${dirs[@]}"; do
  [ "${STOP_ONLY:-pg}" = pg ] && [ -f "$d/pg/PG_VERSION" ] && stop_pg "$d/pg"
  [ "${STOP_ONLY:-redis}" = redis ] && [ -d "$d/redis" ] && stop_redis "$d/redis"
done
exit 0
