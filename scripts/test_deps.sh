#!/usr/bin/env bash
# System packages some tests need besides PostgreSQL and Redis: Lua with LuaSocket (the Lua
# twin of the hook), curl (stands in for mod_curl), a C compiler and Python headers (the
# mod_python3 embedding test), Chromium and its driver (dashboard browser tests), Redis
# Sentinel, HAProxy and Patroni (HA reconnect tests, deploy/ example checks), and for the
# real-FreeSWITCH tier what ../shared/freeswitch/install-runtime.sh installs.
# Installed from Debian's packages when missing and root; otherwise those tests skip and
# say why.
set -euo pipefail
# The real-FreeSWITCH tier (tests/e2e): the build beside the repository comes with the
# installer of what it needs (Debian runtime libraries, sipp, LuaSocket); idempotent.
fs_dir=${APOLO_FREESWITCH_DIR:-$(cd "$(dirname "$0")/.." && pwd)/../shared/freeswitch}
if [ -x "$fs_dir/install-runtime.sh" ]; then
  if [ "$(id -u)" -eq 0 ]; then
    "$fs_dir/install-runtime.sh" >&2 ||
      echo "test_deps: $fs_dir/install-runtime.sh failed (the real-FreeSWITCH tier will skip)" >&2
  else
    echo "test_deps: not root, $fs_dir/install-runtime.sh not run (the real-FreeSWITCH tier" \
      "skips if its libraries or sipp are missing)" >&2
  fi
fi
missing=()
command -v lua5.4 >/dev/null || missing+=(lua5.4)
command -v lua5.2 >/dev/null || missing+=(lua5.2)
[ -e /usr/share/lua/5.4/socket.lua ] || [ -e /usr/share/lua/5.2/socket.lua ] || missing+=(lua-socket)
command -v curl >/dev/null || missing+=(curl)
command -v cc >/dev/null || missing+=(gcc)
[ -x /usr/bin/chromium ] || missing+=(chromium)
[ -x /usr/bin/chromedriver ] || missing+=(chromium-driver)
# the HA reconnect tests (Sentinel) and the checks of deploy/'s HAProxy and Patroni examples
command -v redis-sentinel >/dev/null || missing+=(redis-sentinel)
[ -x /usr/sbin/haproxy ] || missing+=(haproxy)
command -v patroni >/dev/null || missing+=(patroni)
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
  echo "test_deps: missing ${missing[*]} (tests needing them will skip)" >&2
  exit 0
fi
echo "test_deps: installing ${missing[*]} from Debian's packages" >&2
{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"; } >&2 ||
  echo "test_deps: could not install ${missing[*]} (tests needing them will skip)" >&2
