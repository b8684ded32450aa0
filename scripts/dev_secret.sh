#!/usr/bin/env bash
# A random secret kept under .data/ for local runs (never in the repo): prints it.
set -euo pipefail
dir=${APOLO_DATA_DIR:-$(pwd)/.data}
mkdir -p "$dir/secrets"
file="$dir/secrets/$1"
[ -s "$file" ] || (umask 077 && head -c 24 /dev/urandom | base64 | tr -d '/+=' > "$file")
cat "$file"
