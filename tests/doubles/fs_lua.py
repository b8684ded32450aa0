"""Runs fs_scripts/apolo_authorize.lua outside FreeSWITCH, under a stand-in for what mod_lua
provides: the ``session`` global (getVariable/setVariable/get_uuid/execute/hangup/answered), the
``argv`` table, and the ``freeswitch`` table (consoleLog, API():execute).

``API():execute("curl", args)`` answers in one of three ways: ``canned`` returns a fixed string
(as mod_curl would print it); ``cli`` does what mod_curl does with the same arguments through the
curl command line tool (libcurl underneath, like mod_curl) and prints mod_curl's ``json`` shape;
``missing`` answers like FreeSWITCH does for an unknown API command, so the script falls back to
LuaSocket.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from doubles.fs_session import FS_SCRIPTS_DIR

LUA_SCRIPT = FS_SCRIPTS_DIR / "apolo_authorize.lua"
LUA_NAMES = ("lua5.1", "lua5.2", "lua5.3", "lua5.4", "luajit", "lua")


def lua_interpreters() -> list[str]:
    found: dict[str, str] = {}
    for name in LUA_NAMES:
        path = shutil.which(name)
        if path and os.path.realpath(path) not in found.values():
            found[name] = os.path.realpath(path)
    return list(found)


def lua_literal(value: object) -> str:
    if value is None:
        return "nil"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return (
            "{"
            + ", ".join(f"[{lua_literal(k)}] = {lua_literal(v)}" for k, v in value.items())
            + "}"
        )
    text = str(value).encode()
    return (
        '"'
        + "".join(chr(b) if 32 <= b < 127 and b not in b'"\\' else f"\\{b:03d}" for b in text)
        + '"'
    )


RUNNER = r"""
local function emit(...) io.write(table.concat({...}, "\t"), "\n") end
local vars = @@VARS@@
local answered = @@ANSWERED@@
session = {}
function session:getVariable(n) return vars[n] end
function session:setVariable(n, v)
  emit("SET", n, v or "")
  if v == nil or v == "" then vars[n] = nil else vars[n] = v end
end
function session:get_uuid() return @@UUID@@ end
function session:execute(app, data) emit("EXECUTE", app, data or "") end
function session:hangup(cause) emit("HANGUP", cause or "normal_clearing") end
function session:answered() return answered end
function session:ready() return true end
argv = @@ARGV@@
freeswitch = {}
function freeswitch.consoleLog(level, msg) emit("LOG", level, (msg:gsub("\n$", ""))) end

local function shq(s) return "'" .. s:gsub("'", "'\\''") .. "'" end
local function jstr(s)
  return '"' .. s:gsub('[%c"\\/]', function(c) return string.format("\\u%04x", c:byte()) end) .. '"'
end
local function mod_curl_cli(args)
  local w = {}
  for word in args:gmatch("%S+") do w[#w + 1] = word end
  local url, timeout, ctype, data, i = w[1], "0", "application/x-www-form-urlencoded", nil, 2
  while i <= #w do
    if w[i] == "timeout" or w[i] == "connect-timeout" then
      if w[i] == "timeout" then timeout = w[i + 1] end
      i = i + 1
    elseif w[i] == "content-type" then ctype, i = w[i + 1], i + 1
    elseif w[i] == "post" then
      data = (w[i + 1] or ""):gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end)
      i = i + 1
    end
    i = i + 1
  end
  local req, resp = os.tmpname(), os.tmpname()
  local f = assert(io.open(req, "wb")); f:write(data or ""); f:close()
  local p = io.popen("curl -s -o " .. shq(resp) .. " -w '%{http_code}' --max-time " .. timeout
    .. " -H " .. shq("Content-Type: " .. ctype) .. " --data-binary @" .. shq(req)
    .. " " .. shq(url))
  local code = tonumber(p:read("*a")) or 0
  p:close()
  local rf = io.open(resp, "rb")
  local body = rf and rf:read("*a") or ""
  if rf then rf:close() end
  os.remove(req); os.remove(resp)
  local out = '{ "status_code": ' .. code
  if body ~= "" then out = out .. ', "body": ' .. jstr(body) end
  return out .. ', "headers": [ ] }'
end

local mode, canned = @@MODE@@, @@CANNED@@
function freeswitch.API()
  return { execute = function(self, cmd, args)
    emit("API", cmd, args)
    if mode == "missing" then return "-ERR " .. cmd .. " Command not found!\n" end
    if mode == "canned" then return canned end
    return mod_curl_cli(args)
  end }
end
if @@NO_LUASOCKET@@ then package.preload["socket.http"] = function() error("no LuaSocket") end end
dofile(@@SCRIPT@@)
"""


@dataclass
class LuaRun:
    variables: dict[str, str]
    sets: list[tuple[str, str]] = field(default_factory=list)
    hangups: list[str] = field(default_factory=list)
    executed: list[tuple[str, str]] = field(default_factory=list)
    api_calls: list[tuple[str, str]] = field(default_factory=list)
    logs: list[tuple[str, str]] = field(default_factory=list)
    stderr: str = ""


def run_lua(
    interpreter: str,
    variables: dict[str, str],
    *,
    args: list[str] | None = None,
    mode: str = "canned",
    canned: str = "",
    env: dict[str, str] | None = None,
    answered: bool = False,
    uuid: str | None = "00000000-0000-4000-8000-000000000000",
    luasocket: bool = True,
    tmp_dir: Path,
) -> LuaRun:
    runner = RUNNER
    for name, value in {
        "VARS": lua_literal(dict(variables)),
        "ANSWERED": lua_literal(answered),
        "UUID": lua_literal(uuid),
        "ARGV": "{[0] = " + lua_literal("apolo_authorize.lua")
        + "".join(", " + lua_literal(a) for a in args or []) + "}",
        "MODE": lua_literal(mode),
        "CANNED": lua_literal(canned),
        "NO_LUASOCKET": lua_literal(not luasocket),
        "SCRIPT": lua_literal(str(LUA_SCRIPT)),
    }.items():  # fmt: skip
        runner = runner.replace(f"@@{name}@@", value)
    path = tmp_dir / "runner.lua"
    path.write_text(runner)
    clean_env = {k: v for k, v in os.environ.items() if not k.startswith("APOLO_")}
    proc = subprocess.run(
        [interpreter, str(path)], capture_output=True, env={**clean_env, **(env or {})},
        timeout=30, check=False,
    )  # fmt: skip
    run = LuaRun(variables=dict(variables), stderr=proc.stderr.decode(errors="replace"))
    assert proc.returncode == 0, run.stderr
    for line in proc.stdout.decode().splitlines():
        kind, *rest = line.split("\t")
        if kind == "SET":
            name, value = rest[0], "\t".join(rest[1:])
            run.sets.append((name, value))
            if value:
                run.variables[name] = value
            else:
                run.variables.pop(name, None)
        elif kind == "HANGUP":
            run.hangups.append(rest[0])
        elif kind == "EXECUTE":
            run.executed.append((rest[0], rest[1]))
        elif kind == "API":
            run.api_calls.append((rest[0], "\t".join(rest[1:])))
        elif kind == "LOG":
            run.logs.append((rest[0], "\t".join(rest[1:])))
    return run
