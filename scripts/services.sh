#!/usr/bin/env bash
# Make sure PostgreSQL and Redis are reachable and print `export` lines for them.
#
# DATABASE_URL / REDIS_URL given: they are used as they are, nothing is started.
# Not given: a private PostgreSQL cluster and a private Redis are started under
# $APOLO_DATA_DIR (default ./.data) on ports $APOLO_PG_PORT (55432) and
# $APOLO_REDIS_PORT (56379), installing Debian's packages first when missing.
# Usage: eval "$(scripts/services.sh)"
set -euo pipefail
shopt -s inherit_errexit  # a failure inside $(start_postgres) stops the script too
DATA_DIR=${APOLO_DATA_DIR:-$(pwd)/.data}
PG_PORT=${APOLO_PG_PORT:-55432}
REDIS_PORT=${APOLO_REDIS_PORT:-56379}
mkdir -p "$DATA_DIR"
log() { echo "services: $*" >&2; }

apt_install() {
  if [ "$(id -u)" -ne 0 ]; then log "please install: $*"; exit 1; fi
  log "installing $* from Debian's packages"
  apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >&2
}

port_busy() {  # a socket holds local port $1, so a server could not bind it
  # Not only listeners: a client connection, or one in TIME-WAIT (ports of 32768-60999 are
  # also the kernel's ephemeral range), blocks the bind too. Without ss, probe by connecting.
  if command -v ss >/dev/null; then
    [ -n "$(ss -Htan "sport = :$1")" ]
  else
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
  fi
}

pick_port() {  # $1 state file, $2 port asked for, [$3 first candidate]: the port recorded for
  local port asked  # that ask, else the first free one from $3 (default $2), then recorded
  if [ -s "$1" ]; then
    read -r asked port < "$1" || true
    if [ -z "$port" ]; then echo "$asked"; return; fi  # an older record: the port alone
    if [ "$asked" = "$2" ]; then echo "$port"; return; fi
  fi
  port=${3:-$2}
  while port_busy "$port"; do port=$((port + 1)); done
  echo "$2 $port" > "$1"
  echo "$port"
}

pg_bin() {
  local d
  d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
  [ -n "$d" ] && [ -x "$d/pg_ctl" ] && echo "$d"
}

as_pg() {  # PostgreSQL refuses to run as root
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

start_postgres() {
  local bin pgdata sock
  bin=$(pg_bin || true)
  if [ -z "$bin" ]; then apt_install postgresql; bin=$(pg_bin); fi
  pgdata="$DATA_DIR/pg"
  sock="$DATA_DIR/pg-run"
  mkdir -p "$pgdata" "$sock"
  if [ "$(id -u)" -eq 0 ]; then chown postgres "$pgdata" "$sock"; chmod 700 "$pgdata"; fi
  if [ ! -f "$pgdata/PG_VERSION" ]; then
    log "initialising a private PostgreSQL cluster in $pgdata"
    as_pg "$bin/initdb" -D "$pgdata" -U postgres --auth=trust -E UTF8 >/dev/null
  fi
  if ! as_pg "$bin/pg_ctl" -D "$pgdata" status >/dev/null 2>&1; then
    local attempt asked=$PG_PORT
    # A restart takes its recorded port again (clients know it; its own TIME-WAIT sockets do
    # not stop a server from binding it). Only when that bind fails is another picked.
    PG_PORT=$(pick_port "$DATA_DIR/pg.port" "$asked")
    for attempt in 1 2 3 4 5; do  # a port free when picked can be taken before the bind
      log "starting PostgreSQL on 127.0.0.1:$PG_PORT"
      if as_pg "$bin/pg_ctl" -D "$pgdata" -l "$pgdata/server.log" -w -t 120 -o \
        "-p $PG_PORT -k $sock -c listen_addresses=127.0.0.1 -c max_connections=300 -c fsync=on" \
        start >/dev/null; then
        break
      fi
      log "PostgreSQL in $pgdata did not start (attempt $attempt); the end of its log:"
      tail -n 15 "$pgdata/server.log" >&2 || true
      [ "$attempt" -lt 5 ] || exit 1
      as_pg "$bin/pg_ctl" -D "$pgdata" -m immediate stop >/dev/null 2>&1 || true
      rm -f "$DATA_DIR/pg.port"
      PG_PORT=$(pick_port "$DATA_DIR/pg.port" "$asked" "$((PG_PORT + 1))")
      sleep 1
    done
  fi
  PG_PORT=$(sed -n 4p "$pgdata/postmaster.pid")  # the port the running server listens on
  [ -n "$PG_PORT" ] || { log "PostgreSQL in $pgdata did not start (see $pgdata/server.log)"; exit 1; }
  for _ in $(seq 1 60); do
    "$bin/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT" && break
    sleep 0.5
  done
  "$bin/psql" -q -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres -tAc \
    "SELECT 1 FROM pg_database WHERE datname='apolo'" | grep -q 1 ||
    "$bin/createdb" -h 127.0.0.1 -p "$PG_PORT" -U postgres apolo
  echo "postgresql://postgres@127.0.0.1:$PG_PORT/apolo"
}

start_redis() {
  command -v redis-server >/dev/null || apt_install redis-server
  mkdir -p "$DATA_DIR/redis"
  local asked=$REDIS_PORT
  if [ -s "$DATA_DIR/redis.port" ] && [ -s "$DATA_DIR/redis/redis.pid" ] &&
     kill -0 "$(cat "$DATA_DIR/redis/redis.pid")" 2>/dev/null; then  # running: the port it was started on, whatever is asked now
    REDIS_PORT=$(awk '{print $NF}' "$DATA_DIR/redis.port")
  else  # restarted: its recorded port (see start_postgres); else a free one
    REDIS_PORT=$(pick_port "$DATA_DIR/redis.port" "$asked")
  fi
  local attempt up=""
  for attempt in 1 2 3 4 5; do  # a port free when picked can be taken before the bind
    if redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping >/dev/null 2>&1; then up=1; break; fi
    log "starting Redis on 127.0.0.1:$REDIS_PORT"
    redis-server --daemonize yes --bind 127.0.0.1 --port "$REDIS_PORT" --save "" \
      --appendonly no --dir "$DATA_DIR/redis" --pidfile "$DATA_DIR/redis/redis.pid" \
      --logfile "$DATA_DIR/redis/redis.log" >&2
    for _ in $(seq 1 40); do
      if redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping >/dev/null 2>&1; then up=1; break; fi
      sleep 0.25
    done
    [ -z "$up" ] || break
    log "Redis did not start on $REDIS_PORT (attempt $attempt); the end of its log:"
    tail -n 5 "$DATA_DIR/redis/redis.log" >&2 || true
    rm -f "$DATA_DIR/redis.port"
    REDIS_PORT=$(pick_port "$DATA_DIR/redis.port" "$asked" "$((REDIS_PORT + 1))")
  done
  [ -n "$up" ] || { log "Redis did not start (see $DATA_DIR/redis/redis.log)"; exit 1; }
  echo "redis://127.0.0.1:$REDIS_PORT/0"
}

db_url=${DATABASE_URL:-}
[ -n "$db_url" ] || db_url=$(start_postgres)
redis_url=${REDIS_URL:-}
[ -n "$redis_url" ] || redis_url=$(start_redis)
echo "export DATABASE_URL='$db_url'"
echo "export REDIS_URL='$redis_url'"
