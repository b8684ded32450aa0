--[[
Apolo call authorization for mod_lua: <action application="lua" data="apolo_authorize.lua"/>.
The twin of apolo_authorize.py / apolo_fs.py for installs without mod_python3: same environment
variables, same channel variables, same apolo_error codes, same time budget, fails closed. It
never chooses who pays: it sends the channel variables that say who is calling
(IDENTITY_VARIABLES) and the sidecar decides.

Requirements (checked against FreeSWITCH 1.10's mod_lua, which offers no HTTP client of its own;
dialplan/README.md says how to install them):
  * mod_lua, and one HTTP transport; every log line names the one used ("via luasocket"):
    - LuaSocket (socket.http) built for the Lua version mod_lua embeds (Debian 12: lua-socket,
      for Lua 5.3), used for http URLs. APOLO_TIMEOUT_MS bounds the whole request to the
      millisecond (each socket call waits only for what is left of it; a name lookup is not
      bounded: use an address). https would need LuaSec: https URLs go to mod_curl.
    - or mod_curl (<load module="mod_curl"/>), for https or when LuaSocket is missing, called as
      freeswitch.API():execute("curl", "<url> json ... post <body>"); its `json` output carries
      the HTTP status code. Credentials travel in the URL (user:password@host); its timeouts are
      whole seconds: APOLO_TIMEOUT_MS rounded down, at least 1 s.
    mod_lua runs every call in a fresh Lua state, so each call opens its own connection (no
    keep-alive, unlike the Python hook).
  * Works on Lua 5.1 to 5.4 (no goto, no bit operators, no integer division).

Environment (read from the FreeSWITCH process, per call): APOLO_SIDECAR_URL (http://127.0.0.1:8080),
APOLO_FS_USER, APOLO_FS_PASSWORD, APOLO_TIMEOUT_MS (1500), APOLO_FAIL_OPEN (false),
APOLO_FAIL_OPEN_MAX_SECONDS (300), APOLO_REJECT_CAUSE (CALL_REJECTED),
APOLO_HANGUP_CAUSE (ALLOTTED_TIMEOUT).

Channel variables set: apolo_result (authorized | denied | error), apolo_reason, apolo_account,
apolo_max_duration, apolo_rate, apolo_reservation_id, apolo_error, and for authorized calls
execute_on_answer = "sched_hangup +N <cause>". Denied and failed-closed calls are hung up.
apolo_error codes (as the Python hook's): bad_url, no_http_transport (this hook only),
connection_refused, timeout, connection_error (any other failure to get an answer; all mod_curl
can report besides timeout), http_<status>, bad_json, bad_answer, uuid_mismatch, no_duration.
]]

local VAR_UUID, VAR_CALLER, VAR_CALLEE = "uuid", "caller_id_number", "destination_number"
local VAR_EXECUTE_ON_ANSWER = "execute_on_answer"
-- sent as they are; the sidecar knows which of them a caller can forge
local IDENTITY_VARIABLES = { "accountcode", "sip_authorized", "sip_auth_username",
  "sip_auth_realm", "domain_name", "sip_network_ip", "sip_received_ip",
  "sip_h_X-Billing-Account" }
local AUTHORIZE_PATH = "/v1/authorize"

local function log(level, msg)
  freeswitch.consoleLog(level, "[apolo] " .. msg .. "\n")
end

-- seconds, to the millisecond with LuaSocket, else whole seconds
local function clock()
  local ok, socket = pcall(require, "socket")
  if ok and socket.gettime then return socket.gettime() end
  return os.time()
end

-- ------------------------------------------------------------------ settings

local function env(name, default)
  local v = os.getenv(name)
  if v == nil or v:match("^%s*$") then return default end
  return (v:gsub("^%s+", ""):gsub("%s+$", ""))
end

local function positive(name, default)
  local n = tonumber(env(name, ""))
  if n == nil or n ~= math.floor(n) then return default end
  return math.max(1, n)
end

local function settings()
  local fail_open = env("APOLO_FAIL_OPEN", "false"):lower()
  return {
    url = env("APOLO_SIDECAR_URL", "http://127.0.0.1:8080"):gsub("/+$", ""),
    user = os.getenv("APOLO_FS_USER") or "",
    password = os.getenv("APOLO_FS_PASSWORD") or "",
    timeout_ms = positive("APOLO_TIMEOUT_MS", 1500),
    fail_open = fail_open == "1" or fail_open == "true" or fail_open == "yes" or fail_open == "on",
    fail_open_max_seconds = positive("APOLO_FAIL_OPEN_MAX_SECONDS", 300),
    reject_cause = env("APOLO_REJECT_CAUSE", "CALL_REJECTED"),
    hangup_cause = env("APOLO_HANGUP_CAUSE", "ALLOTTED_TIMEOUT"),
  }
end

-- ------------------------------------------------------------------ JSON (just what is needed)

local function json_string(s)
  return '"' .. s:gsub('[%c"\\]', function(c)
    return string.format("\\u%04x", c:byte())
  end) .. '"'
end

local function utf8_char(cp)
  if cp < 0x80 then return string.char(cp) end
  if cp < 0x800 then return string.char(0xC0 + math.floor(cp / 0x40), 0x80 + cp % 0x40) end
  if cp < 0x10000 then
    return string.char(0xE0 + math.floor(cp / 0x1000), 0x80 + math.floor(cp / 0x40) % 0x40,
      0x80 + cp % 0x40)
  end
  return string.char(0xF0 + math.floor(cp / 0x40000), 0x80 + math.floor(cp / 0x1000) % 0x40,
    0x80 + math.floor(cp / 0x40) % 0x40, 0x80 + cp % 0x40)
end

local ESCAPES = { ['"'] = '"', ["\\"] = "\\", ["/"] = "/", b = "\b", f = "\f", n = "\n",
  r = "\r", t = "\t" }

-- Decodes a JSON text; null becomes nil. Raises an error string on malformed input.
local function json_decode(text)
  local pos = 1
  local function fail(what) error("json: " .. what .. " at " .. pos, 0) end
  local function skip() pos = text:find("[^ \t\r\n]", pos) or (#text + 1) end
  local value

  local function str()
    local out = {}
    pos = pos + 1
    while true do
      local i = text:find('["\\]', pos)
      if not i then fail("unterminated string") end
      out[#out + 1] = text:sub(pos, i - 1)
      if text:sub(i, i) == '"' then pos = i + 1; return table.concat(out) end
      local c = text:sub(i + 1, i + 1)
      if c == "u" then
        local cp = tonumber(text:sub(i + 2, i + 5):match("^%x%x%x%x$") or "", 16)
        if not cp then fail("bad \\u escape") end
        pos = i + 6
        local lo = text:sub(pos, pos + 1) == "\\u" and tonumber(text:sub(pos + 2, pos + 5), 16)
        if cp >= 0xD800 and cp < 0xDC00 and lo and lo >= 0xDC00 and lo < 0xE000 then
          cp, pos = 0x10000 + (cp - 0xD800) * 0x400 + (lo - 0xDC00), pos + 6
        end
        out[#out + 1] = utf8_char(cp)
      elseif ESCAPES[c] then
        out[#out + 1], pos = ESCAPES[c], i + 2
      else
        fail("bad escape")
      end
    end
  end

  local function object()
    local obj = {}
    pos = pos + 1
    skip()
    if text:sub(pos, pos) == "}" then pos = pos + 1; return obj end
    while true do
      skip()
      if text:sub(pos, pos) ~= '"' then fail("expected a key") end
      local key = str()
      skip()
      if text:sub(pos, pos) ~= ":" then fail("expected ':'") end
      pos = pos + 1
      obj[key] = value()
      skip()
      local c = text:sub(pos, pos)
      pos = pos + 1
      if c == "}" then return obj end
      if c ~= "," then fail("expected ',' or '}'") end
    end
  end

  local function array()
    local arr, n = {}, 0
    pos = pos + 1
    skip()
    if text:sub(pos, pos) == "]" then pos = pos + 1; return arr end
    while true do
      n = n + 1
      arr[n] = value()
      skip()
      local c = text:sub(pos, pos)
      pos = pos + 1
      if c == "]" then return arr end
      if c ~= "," then fail("expected ',' or ']'") end
    end
  end

  local LITERALS = { ["true"] = true, ["false"] = false }
  function value()
    skip()
    local c = text:sub(pos, pos)
    if c == "{" then return object() end
    if c == "[" then return array() end
    if c == '"' then return str() end
    for word, v in pairs(LITERALS) do
      if text:sub(pos, pos + #word - 1) == word then pos = pos + #word; return v end
    end
    if text:sub(pos, pos + 3) == "null" then pos = pos + 4; return nil end
    local num = text:match("^-?%d+%.?%d*[eE]?[-+]?%d*", pos)
    if num and tonumber(num) then pos = pos + #num; return tonumber(num) end
    fail("unexpected '" .. c .. "'")
  end

  local result = value()
  skip()
  if pos <= #text then fail("trailing data") end
  return result
end

-- ------------------------------------------------------------------ HTTP transports

local function url_encode(s)
  return (s:gsub("[^%w%-%._~]", function(c) return string.format("%%%02X", c:byte()) end))
end

-- "http" or "https" for a URL with a host (and a valid port, if any); nil for anything else
local function url_scheme(url)
  local scheme, authority = url:match("^(https?)://([^/]+)")
  if not scheme then return nil end
  local host, port = authority:match("^([^:@%[%]]+):(%d+)$")
  if not host then host, port = authority:match("^(%[[%x:.]+%]):(%d+)$") end  -- [IPv6]:port
  if not host then
    host = authority:match("^[^:@%[%]]+$") or authority:match("^%[[%x:.]+%]$")
    port = "80"
  end
  port = tonumber(port)
  if not host or not port or port < 1 or port > 65535 then return nil end
  return scheme
end

-- LuaSocket's socket errors as apolo_error codes
local function socket_error(err)
  err = tostring(err)
  if err == "timeout" then return "timeout" end
  if err:find("refused") then return "connection_refused" end
  return "connection_error"
end

-- A LuaSocket TCP object whose every blocking call waits at most until `deadline`: the budget
-- bounds the whole request (connect, send, status line, headers, body), not each operation.
local function budgeted_tcp(socket, deadline)
  local sock = socket.tcp()
  local proxy = {}
  local function bounded(method)
    return function(_, ...)
      local left = deadline - socket.gettime()
      if left <= 0 then return nil, "timeout" end
      sock:settimeout(left)
      return sock[method](sock, ...)
    end
  end
  for _, method in ipairs({ "connect", "send", "receive" }) do proxy[method] = bounded(method) end
  function proxy.settimeout() return 1 end  -- socket.http sets its own; the deadline rules
  function proxy.close() return sock:close() end
  function proxy.getfd() return sock:getfd() end
  function proxy.dirty() return sock:dirty() end
  function proxy.setoption(_, ...) return sock:setoption(...) end
  return proxy
end

-- Plain http through LuaSocket, within cfg.timeout_ms in all. nil, code when it failed.
local function post_luasocket(cfg, body, http, url)
  local socket, ltn12, mime = require("socket"), require("ltn12"), require("mime")
  local headers = { ["content-type"] = "application/json", ["accept"] = "application/json",
    ["content-length"] = tostring(#body) }
  if cfg.user ~= "" or cfg.password ~= "" then
    headers["authorization"] = "Basic " .. mime.b64(cfg.user .. ":" .. cfg.password)
  end
  local deadline = socket.gettime() + cfg.timeout_ms / 1000
  local chunks = {}
  local res, code = http.request({ url = url .. AUTHORIZE_PATH, method = "POST",
    headers = headers, source = ltn12.source.string(body), sink = ltn12.sink.table(chunks),
    create = function() return budgeted_tcp(socket, deadline) end })
  -- socket.http turns a timed-out status line into a made-up 408: the clock says what it was
  if socket.gettime() >= deadline and (not res or code == 408) then return nil, "timeout" end
  if not res then return nil, socket_error(code) end
  return tonumber(code) or 0, table.concat(chunks)
end

-- mod_curl: `curl <url> json ... post <body>`; its `json` output carries the status code.
-- Its timeouts are whole seconds: the budget rounded down, so never longer than the budget
-- (but at least 1 s). It cannot tell why it got no answer.
local function post_mod_curl(cfg, body, url)
  local scheme, rest = url:match("^(https?://)(.+)$")
  local userinfo = ""
  if cfg.user ~= "" or cfg.password ~= "" then
    userinfo = url_encode(cfg.user) .. ":" .. url_encode(cfg.password) .. "@"
  end
  local seconds = math.max(1, math.floor(cfg.timeout_ms / 1000))
  local started = os.time()
  -- mod_curl splits its arguments on spaces and url-decodes the post data: encode it whole.
  local out = freeswitch.API():execute("curl", table.concat({
    scheme .. userinfo .. rest .. AUTHORIZE_PATH, "json", "content-type",
    "application/json", "connect-timeout", tostring(seconds), "timeout", tostring(seconds),
    "post", url_encode(body) }, " "))
  if out == nil or out == "" or out:find("^%-ERR") or out:find("^INVALID COMMAND") then
    return nil, "no_mod_curl"
  end
  local ok, reply = pcall(json_decode, out)
  if not ok or type(reply) ~= "table" then return nil, "connection_error" end
  local status = tonumber(reply.status_code) or 0
  if status == 0 then  -- refused, timed out, unresolvable: mod_curl does not say which
    return nil, os.difftime(os.time(), started) >= seconds and "timeout" or "connection_error"
  end
  return status, reply.body or ""
end

-- status, body or nil, code; and the transport used ("luasocket", "mod_curl" or "none").
-- LuaSocket first for http (it keeps the budget to the millisecond), mod_curl for https or
-- when LuaSocket is missing.
local function post(cfg, body)
  local scheme = url_scheme(cfg.url)
  if not scheme then return nil, "bad_url", "none" end
  if scheme == "http" then
    local ok, http = pcall(require, "socket.http")
    if ok then
      local status, result = post_luasocket(cfg, body, http, cfg.url)
      return status, result, "luasocket"
    end
  end
  local status, result = post_mod_curl(cfg, body, cfg.url)
  if status == nil and result == "no_mod_curl" then return nil, "no_http_transport", "none" end
  return status, result, "mod_curl"
end

-- ------------------------------------------------------------------ the decision

local function is_int(v) return type(v) == "number" and v == math.floor(v) end
local function int_str(v) return string.format("%d", v) end

local function decide(req, status, body)
  if status ~= 200 then return nil, "http_" .. tostring(status) end
  local ok, data = pcall(json_decode, body)
  if not ok then return nil, "bad_json" end
  if type(data) ~= "table" or type(data.authorized) ~= "boolean" then return nil, "bad_answer" end
  if data.uuid ~= nil and data.uuid ~= req.uuid then return nil, "uuid_mismatch" end
  local max_duration = is_int(data.max_duration) and data.max_duration or nil
  local seconds = is_int(data.sched_hangup_seconds) and data.sched_hangup_seconds or nil
  if seconds == nil and max_duration ~= nil then seconds = max_duration - 1 end
  if data.authorized and seconds == nil then return nil, "no_duration" end
  local rate = type(data.rate) == "table" and data.rate.rate_per_minute or nil
  return {
    authorized = data.authorized,
    reason = type(data.reason) == "string" and data.reason
      or (data.authorized and "authorized" or "denied"),
    account = type(data.account) == "string" and data.account or nil,
    max_duration = max_duration,
    rate = rate ~= nil and tostring(rate) or nil,
    reservation_id = is_int(data.reservation_id) and data.reservation_id or nil,
    seconds = seconds and math.max(1, seconds) or nil,  -- "+0" would hang up at once
  }
end

local function set(name, value)
  if value ~= nil then
    session:setVariable(name, is_int(value) and int_str(value) or tostring(value))
  end
end

local function schedule_cutoff(seconds, cause)
  if session:answered() then  -- execute_on_answer would never fire now
    session:execute("sched_hangup", "+" .. int_str(seconds) .. " " .. cause)
  else
    session:setVariable(VAR_EXECUTE_ON_ANSWER, "sched_hangup +" .. int_str(seconds) .. " " .. cause)
  end
end

local function var(name)
  local v = session:getVariable(name)
  if v == nil or v == "" then return nil end
  return v
end

-- A 4xx is the sidecar answering that the request itself is wrong (credentials, a malformed
-- call): a configuration error, never "the sidecar cannot answer", so it never fails open.
local function may_fail_open(err)
  return string.match(err, "^http_4%d%d$") == nil
end

local function sidecar_failed(cfg, req, err, how)
  set("apolo_error", err)
  if cfg.fail_open and may_fail_open(err) then
    log("warning", req.uuid .. ": sidecar unavailable (" .. err .. how .. "); fail-open, cut off"
      .. " after " .. int_str(cfg.fail_open_max_seconds) .. "s")
    set("apolo_result", "authorized")
    set("apolo_reason", "fail_open")
    set("apolo_max_duration", cfg.fail_open_max_seconds)
    schedule_cutoff(cfg.fail_open_max_seconds, cfg.hangup_cause)
    return
  end
  log("err", req.uuid .. ": sidecar unavailable (" .. err .. how .. "); rejecting")
  set("apolo_result", "error")
  set("apolo_reason", "sidecar_unavailable")
  session:hangup(cfg.reject_cause)
end

local function identity_json()
  local parts = {}
  for _, name in ipairs(IDENTITY_VARIABLES) do
    local value = var(name)
    if value ~= nil then parts[#parts + 1] = json_string(name) .. ":" .. json_string(value) end
  end
  return "{" .. table.concat(parts, ",") .. "}"
end

local function authorize(cfg)
  local req = {
    uuid = var(VAR_UUID) or session:get_uuid(),
    caller = var(VAR_CALLER) or "",
    callee = var(VAR_CALLEE) or "",
    switch = var("switchname") or var("hostname"),
  }
  for _, arg in ipairs(argv or {}) do
    if tostring(arg):match("^account=") then
      log("warning", req.uuid .. ": 'account=' is ignored; the sidecar decides who pays")
    end
  end
  local body = "{\"uuid\":" .. json_string(req.uuid) .. ",\"caller\":" .. json_string(req.caller)
    .. ",\"callee\":" .. json_string(req.callee) .. ",\"switch\":"
    .. (req.switch and json_string(req.switch) or "null") .. ",\"variables\":" .. identity_json()
    .. "}"
  local started = clock()
  local status, result, transport = post(cfg, body)
  -- the transport in every line: an operator must see which HTTP client the calls depend on
  local how = string.format(" via %s in %.1f ms", transport, (clock() - started) * 1000)
  local d, err
  if status == nil then err = result else d, err = decide(req, status, result) end
  if d == nil then return sidecar_failed(cfg, req, err, how) end
  local outcome = d.authorized and "authorized" or "denied"
  set("apolo_result", outcome)
  set("apolo_reason", d.reason)
  set("apolo_account", d.account)
  set("apolo_max_duration", d.max_duration)
  set("apolo_rate", d.rate)
  set("apolo_reservation_id", d.reservation_id)
  log("info", req.uuid .. " " .. req.caller .. " -> " .. req.callee .. ": " .. outcome
    .. " (" .. d.reason .. ", " .. (d.seconds and int_str(d.seconds) .. "s" or "-") .. ")" .. how)
  if d.authorized then
    schedule_cutoff(d.seconds, cfg.hangup_cause)
  else
    session:hangup(cfg.reject_cause)
  end
end

if session == nil then
  log("err", "apolo_authorize.lua needs a channel (run it from the dialplan)")
else
  local cfg = settings()
  local ok, problem = pcall(authorize, cfg)
  if not ok then  -- a bug here must not let a call through unbilled
    log("err", "internal error: " .. tostring(problem) .. "; rejecting")
    session:setVariable("apolo_result", "error")
    session:setVariable("apolo_reason", "internal_error")
    session:hangup(cfg.reject_cause)
  end
end
