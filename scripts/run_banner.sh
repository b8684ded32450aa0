#!/usr/bin/env bash
# What `make run` tells the operator before the sidecar takes over the terminal.
set -euo pipefail
bind=${APOLO_BIND:-127.0.0.1:8080}
cat >&2 <<MSG

Apolo sidecar starting on http://$bind (Ctrl-C stops it).
  DATABASE_URL=$DATABASE_URL
  REDIS_URL=$REDIS_URL
  FreeSWITCH basic auth: user ${APOLO_FS_USER:-freeswitch}, password in .data/secrets/fs_password

In another terminal, play calls against it with the simulator:
  eval "\$(scripts/services.sh)"; export APOLO_FS_PASSWORD=\$(cat .data/secrets/fs_password)
  .venv/bin/apolo simulate --url http://$bind --calls 50 --concurrency 10 --duration 2
Make an admin token for the API:
  .venv/bin/apolo tokens create ops --role admin
Make a dashboard user, then open http://$bind/dashboard/ (plain http on loopback: the session
cookie is not marked Secure here, APOLO_SESSION_COOKIE_SECURE=false):
  .venv/bin/apolo users create admin --role admin
The private PostgreSQL and Redis under .data/ keep running after Ctrl-C; stop them with:
  make stop

MSG
