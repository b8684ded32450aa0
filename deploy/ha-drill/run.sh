#!/usr/bin/env bash
# make ha-drill: install the HA engines from Debian's packages when missing, then run the drill.
# Usage: deploy/ha-drill/run.sh [drill.py options]   (see deploy/ha-drill/README.md)
set -euo pipefail
cd "$(dirname "$0")/../.."
missing=()
command -v patroni >/dev/null || missing+=(patroni)
command -v etcd >/dev/null || missing+=(etcd-server)
command -v redis-sentinel >/dev/null || missing+=(redis-sentinel)
command -v redis-server >/dev/null || missing+=(redis-server)
[ -x /usr/sbin/haproxy ] || command -v haproxy >/dev/null || missing+=(haproxy)
ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 || missing+=(postgresql)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then echo "ha-drill: please install: ${missing[*]}" >&2; exit 2; fi
  echo "ha-drill: installing ${missing[*]} from Debian's packages" >&2
  # Debian starts a package's service at install; the drill runs its own on its own ports
  apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >&2
fi
# the real FreeSWITCH of ../shared, when there, drives apolo control (its runtime libraries)
fs_runtime=../shared/freeswitch/install-runtime.sh
if [ -x "$fs_runtime" ] && [ "$(id -u)" -eq 0 ]; then "$fs_runtime" || true; fi
export PATH="$PATH:/usr/sbin"
exec .venv/bin/python deploy/ha-drill/drill.py "$@"
