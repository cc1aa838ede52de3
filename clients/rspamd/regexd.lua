--[[
regexd.lua: Rspamd (3.4+) plugin that scans messages with the regexd sidecar.

On every message it collects the buffers that the configured classes name (decoded text parts,
raw text parts, the whole message, URLs, headers), sends them to regexd in one SCAN request over
its Unix socket (docs/protocol.md, version 1) and inserts one symbol per matched rule.
If regexd is down, slow or answers with an error, the message is processed without regexd's
symbols and `fail_symbol` (score 0) is inserted with the reason. Every socket operation is bounded
by `timeout`; a message waits for at most two round trips (a second one only right after the rule
set changed, to learn its classes).

Optionally (`rules_file`) the plugin owns the rule set: the primary controller sends the file to
regexd with LOAD_RULES at start-up and whenever the file changes (it is watched as an Rspamd map),
retrying every `push_retry` seconds while regexd is unreachable. regexd keeps pushed rule sets in
memory only, so the controller also checks every `push_retry` seconds (LIST_RULESETS) that regexd
still has it as pushed, and pushes it again after a regexd restart or configuration reload.

Configuration: local.d/regexd.conf (see clients/rspamd/local.d/regexd.conf for every option).
Install: copy this file to /etc/rspamd/plugins.d/regexd.lua (Debian's `modules.try_path`), or add
its directory to `modules { path = ... }`.
]]--

local N = 'regexd'

if confighelp then
  rspamd_config:add_example(nil, N,
    'Scan messages with the regexd regex sidecar (Hyperscan + PCRE2 over a Unix socket)',
    [[
regexd {
  socket = "/run/regexd/regexd.sock";
  ruleset = "default";
  timeout = 1s;
  classes = ["body", "url", "header:Subject"];
  symbols { FREE_MONEY = 2.0; }
}
]])
  return
end

local rspamd_logger = require "rspamd_logger"
local rspamd_tcp = require "rspamd_tcp"
local rspamd_util = require "rspamd_util"
local lua_util = require "lua_util"
local ucl = require "ucl"

local pack, unpack = rspamd_util.pack, rspamd_util.unpack

-- Protocol constants (docs/protocol.md).
local PROTOCOL_VERSION = 1
local OP_GREETING = 0x40
local OP_ERROR = 0x7f
local OP_LOAD_RULES = 0x02
local OP_SCAN = 0x03
local OP_LIST_RULESETS = 0x05
local OP_REPLY = 0x80
local FLAG_CLOSE = 0x01
local HEADER_LEN = 10 -- u32 length + u32 id + u8 opcode + u8 flags
local ERROR_NAMES = {
  [1] = 'MALFORMED', [2] = 'TOO_LARGE', [3] = 'UNKNOWN_OPCODE', [4] = 'UNKNOWN_RULESET',
  [5] = 'UNKNOWN_CLASS', [6] = 'BAD_RULES', [7] = 'BUSY', [8] = 'INTERNAL',
}

local settings = {
  enabled = true,
  socket = '/run/regexd/regexd.sock',
  ruleset = 'default',
  timeout = 1.0, -- seconds, for each socket operation (connect, write, each read)
  classes = {'body', 'rawbody', 'url', 'header:Subject'},
  symbol_prefix = '', -- symbol of a listed rule = symbol_prefix .. rule id (or its `name`)
  symbols = {}, -- rule id -> score, or {score = ..., description = ..., name = ...}
  -- Rules not listed in `symbols` (Rspamd cannot register symbols at run time, so a rule pushed
  -- later has no symbol of its own): they are reported as options of this one symbol.
  other_symbol = 'REGEXD_OTHER',
  other_score = 0.0,
  group = 'regexd',
  check_symbol = 'REGEXD_CHECK',
  fail_symbol = 'REGEXD_FAIL',
  max_frame = 64 * 1024 * 1024, -- regexd's default maximum frame; larger requests are not sent
  rules_file = nil, -- push this file with LOAD_RULES (from the primary controller)
  rules_format = 'native', -- native, spamassassin, rspamd-map
  rules_class = '', -- class for rspamd-map rules / forced class for SpamAssassin body rules
  push_retry = 10.0, -- seconds between LOAD_RULES attempts while regexd is unreachable
}

------------------------------------------------------------------------------
-- Frame codec

local function str4(s)
  return pack('<I4', #s) .. s
end

-- Serializes a frame; `pieces` is a list of strings and rspamd_text objects (sent without copying)
-- of total length `body_len`. Returns the list to give to rspamd_tcp as `data`.
local function make_frame(id, opcode, flags, pieces, body_len)
  local out = {pack('<I4I4BB', 6 + body_len, id, opcode, flags)}
  for _, p in ipairs(pieces) do
    out[#out + 1] = p
  end
  return out
end

-- A cursor over a reply body with bounds-checked reads; every read returns nil on short input.
local function reader(s, pos, limit)
  local r = {s = s, pos = pos, limit = limit}
  function r.u32()
    if r.pos + 4 > r.limit + 1 then return nil end
    local v = unpack('<I4', r.s, r.pos)
    r.pos = r.pos + 4
    return v
  end
  function r.str()
    local n = r.u32()
    if n == nil or r.pos + n > r.limit + 1 then return nil end
    local v = r.s:sub(r.pos, r.pos + n - 1)
    r.pos = r.pos + n
    return v
  end
  function r.done()
    return r.pos == r.limit + 1
  end
  return r
end

-- Splits `s` (the bytes received so far) into whole frames {id, opcode, flags, body_pos, body_end}.
-- A trailing partial frame is left for later. Returns frames, or nil and a reason if a length
-- field is out of bounds (no amount of further reading can repair that).
local function split_frames(s, max_frame)
  local frames = {}
  local pos, total = 1, #s
  while pos + 3 <= total do
    local len = unpack('<I4', s, pos)
    if len < 6 or len > max_frame then
      return nil, string.format('bad frame length %d at byte %d', len, pos - 1)
    end
    local body_end = pos + 4 + len - 1
    if body_end > total then break end
    local id, opcode, flags = unpack('<I4BB', s, pos + 4)
    frames[#frames + 1] = {id = id, opcode = opcode, flags = flags,
                           body_pos = pos + HEADER_LEN, body_end = body_end}
    pos = body_end + 1
  end
  return frames
end

local function error_text(s, f)
  local r = reader(s, f.body_pos, f.body_end)
  local code, msg = r.u32(), r.str()
  if not code or not msg then return 'malformed error frame' end
  return string.format('error %d %s: %s', code, ERROR_NAMES[code] or '?', msg)
end

-- Checks the greeting and finds the reply to request `id` in the bytes received so far.
-- Returns a reader over the reply body; or nil and a reason (an error frame's code and message
-- become the reason, starting with "error N"); or nil, nil, true when more bytes are needed.
local function find_reply(s, id, request_opcode)
  local frames, err = split_frames(s, settings.max_frame)
  if not frames then return nil, err end
  if #frames == 0 then return nil, nil, true end
  local g = frames[1]
  if g.opcode == OP_ERROR then return nil, error_text(s, g) end
  if g.opcode ~= OP_GREETING then
    return nil, string.format('expected a greeting, got opcode 0x%02x', g.opcode)
  end
  local version = reader(s, g.body_pos, g.body_end).u32()
  if version ~= PROTOCOL_VERSION then
    return nil, string.format('unsupported protocol version %s', tostring(version))
  end
  for i = 2, #frames do
    local f = frames[i]
    if f.id == id then
      if f.opcode == request_opcode + OP_REPLY then -- LuaJIT has no `|`; opcodes are < 0x80
        return reader(s, f.body_pos, f.body_end)
      elseif f.opcode == OP_ERROR then
        return nil, error_text(s, f)
      end
      return nil, string.format('unexpected opcode 0x%02x in reply to 0x%02x', f.opcode, request_opcode)
    elseif f.opcode == OP_ERROR and f.id == 0 then
      return nil, error_text(s, f) -- the server could not read our request
    end
  end
  return nil, nil, true
end

------------------------------------------------------------------------------
-- Extraction: class name -> function(task, out) appending rspamd_text/string buffers to out.

local function add(out, v)
  if v ~= nil then out[#out + 1] = v end
end

-- Text parts' content of the given rspamd `get_content` type.
local function text_parts(content_type)
  return function(task, out)
    for _, tp in ipairs(task:get_text_parts() or {}) do
      if not tp:is_empty() then add(out, tp:get_content(content_type)) end
    end
  end
end

-- Header values of `names` in message order: decoded (or undecoded with `raw`), or the first
-- address / display name of each (`addr`, `name`), or all of them (`addrlist`, `namelist`).
local function header_extractor(names, raw, part)
  return function(task, out)
    for _, name in ipairs(names) do
      for _, h in ipairs(task:get_header_full(name) or {}) do
        local value = raw and h.value or h.decoded
        if not part then
          add(out, value)
        else
          local addrs = rspamd_util.parse_mail_address(value or '', task:get_mempool()) or {}
          local field = (part == 'addr' or part == 'addrlist') and 'addr' or 'name'
          for i, a in ipairs(addrs) do
            if a[field] and a[field] ~= '' then add(out, a[field]) end
            if (part == 'addr' or part == 'name') and i == 1 then break end
          end
        end
      end
    end
  end
end

-- SpamAssassin pseudo-headers.
local HEADER_ALIASES = {
  ToCc = {'To', 'Cc'},
  MESSAGEID = {'Message-Id', 'Resent-Message-Id', 'X-Message-Id'},
}
-- Pseudo-headers that SpamAssassin computes from its relay trust path, which Rspamd has not.
local TRUST_PATH_HEADERS = {
  ['ALL-TRUSTED'] = true, ['ALL-UNTRUSTED'] = true, ['ALL-INTERNAL'] = true, ['ALL-EXTERNAL'] = true,
  ['X-Spam-Relays-Trusted'] = true, ['X-Spam-Relays-Untrusted'] = true,
  ['X-Spam-Relays-Internal'] = true, ['X-Spam-Relays-External'] = true,
}
local ADDRESS_PARTS = {addr = true, name = true, addrlist = true, namelist = true}

local KNOWN_CLASSES = 'body, rawbody, full, url, header:NAME[:raw][:addr|:name|:addrlist|:namelist], ' ..
    'rawheader:NAME'

-- Returns the extractor for `cls`, or nil and a reason.
local function make_extractor(cls)
  if cls == 'body' then
    -- SpamAssassin `body` as Rspamd's own SpamAssassin support builds it (re_cache's SABODY):
    -- the decoded Subject first ("considered part of the body and becomes the first paragraph",
    -- SpamAssassin's docs), then each text part decoded to UTF-8, HTML tags and line breaks removed.
    local parts = text_parts('content_oneline')
    return function(task, out)
      add(out, task:get_header('Subject'))
      parts(task, out)
    end
  elseif cls == 'rawbody' then
    -- Text parts decoded from base64/quoted-printable, HTML kept, charset untouched (SA `rawbody`).
    -- (text_part:get_raw_content() would be the undecoded transfer encoding.)
    return text_parts('raw_parsed')
  elseif cls == 'full' then
    return function(task, out) add(out, task:get_content()) end
  elseif cls == 'url' then
    return function(task, out)
      for _, u in ipairs(task:get_urls() or {}) do add(out, u:get_text()) end
    end
  end
  local kind, hdr, rest = cls:match('^(%a+):([^:]+)(.*)$')
  if kind ~= 'header' and kind ~= 'rawheader' then
    return nil, 'unknown class (known: ' .. KNOWN_CLASSES .. ')'
  end
  local raw, part = kind == 'rawheader', nil
  for mod in rest:gmatch(':([^:]*)') do
    if mod == 'raw' and not raw then
      raw = true
    elseif ADDRESS_PARTS[mod] and not part then
      part = mod
    else
      return nil, string.format('unsupported header modifier ":%s" (known: ' .. KNOWN_CLASSES .. ')', mod)
    end
  end
  if TRUST_PATH_HEADERS[hdr] then
    return nil, 'a SpamAssassin pseudo-header computed from its relay trust path, which Rspamd does not have'
  end
  if hdr == 'ALL' then
    if part then return nil, 'header:ALL takes no address modifier' end
    return function(task, out) add(out, task:get_raw_headers()) end
  end
  if hdr == 'EnvelopeFrom' then
    return function(task, out)
      local from = task:get_from('smtp')
      if from and from[1] and from[1].addr ~= '' then add(out, from[1].addr) end
    end
  end
  return header_extractor(HEADER_ALIASES[hdr] or {hdr}, raw, part)
end

------------------------------------------------------------------------------
-- Requests

local request_id = 0

local function next_id()
  request_id = request_id % 0x7fffffff + 1
  return request_id
end

-- Sends one request with the CLOSE flag and reads the greeting and the reply. `ctx` is
-- {task = task} or {ev_base = ev_base}. `pieces` are strings or rspamd_text objects (sent without
-- copying) of total length `body_len`. Calls cb(reader) on a reply, or cb(nil, reason, kind) with
-- kind 'io' (connect, timeout, early close), 'protocol' (bad bytes or an error frame from regexd)
-- or 'too_large' (the request was not sent).
--
-- rspamd_tcp's "complete" mode hands the callback whatever the first read() returned (not
-- everything up to EOF), so the reply is reassembled here: while the frames are incomplete
-- another read is queued on the connection with conn:add_read().
local function request(ctx, opcode, pieces, body_len, timeout, cb)
  if 6 + body_len > settings.max_frame then
    cb(nil, string.format('request of %d bytes exceeds max_frame %d', 6 + body_len, settings.max_frame),
        'too_large')
    return
  end
  local id = next_id()
  local received = ''
  local finished = false
  local function finish(...)
    if finished then return end -- rspamd_tcp may report a failed connect twice
    finished = true
    cb(...)
  end
  local function on_read(err, data, conn)
    if finished then return end
    if err then
      finish(nil, string.format('%s (socket %s)', err, settings.socket), 'io')
      return
    end
    received = received .. tostring(data)
    local r, why, more = find_reply(received, id, opcode)
    if more then
      if conn then
        conn:add_read(on_read)
      else
        finish(nil, 'connection closed before the reply', 'io')
      end
      return
    end
    finish(r, why, 'protocol')
  end
  local ok = rspamd_tcp.request({
    task = ctx.task,
    ev_base = ctx.ev_base,
    config = rspamd_config,
    host = settings.socket,
    timeout = timeout,
    data = make_frame(id, opcode, FLAG_CLOSE, pieces, body_len),
    callback = on_read,
  })
  if not ok then
    finish(nil, 'cannot connect to ' .. settings.socket, 'io')
  end
end

------------------------------------------------------------------------------
-- Classes of the rule set (LIST_RULESETS)
--
-- SCAN answers UNKNOWN_CLASS for a class the rule set does not have, and a rule set may change at
-- run time. Each worker therefore keeps the class list of its rule set and sends only buffers of
-- classes that the rule set has: it asks at start-up, again when a SCAN reply names another rule
-- set version, and on UNKNOWN_CLASS (then the message is scanned again with the new list).

local ruleset_info -- {version = V, classes = {cls = true}} once known

-- Asks regexd for its rule sets (LIST_RULESETS) and calls cb(entry, why): entry is the JSON
-- object of the configured rule set, or nil with why (not loaded, or the request failed; kind is
-- the request's failure kind, nil when regexd answered).
local function find_ruleset(ctx, cb)
  request(ctx, OP_LIST_RULESETS, {}, 0, settings.timeout, function(r, why, kind)
    local json = r and r.str()
    if r and not json then why = 'truncated LIST_RULESETS reply' end
    if json then
      local parser = ucl.parser()
      local ok, perr = parser:parse_string(json)
      if not ok then
        why = 'LIST_RULESETS reply is not JSON: ' .. tostring(perr)
      else
        local list = parser:get_object()
        for _, rs in ipairs(type(list) == 'table' and list or {}) do
          if type(rs) == 'table' and rs.name == settings.ruleset and type(rs.classes) == 'table' then
            cb(rs)
            return
          end
        end
        cb(nil, string.format('rule set "%s" is not loaded in regexd', settings.ruleset))
        return
      end
    end
    cb(nil, why, kind or 'protocol')
  end)
end

local function fetch_classes(ctx, cb)
  find_ruleset(ctx, function(rs, why)
    if rs then
      local set = {}
      for _, c in ipairs(rs.classes) do set[tostring(c)] = true end
      ruleset_info = {version = tonumber(rs.version), classes = set}
    end
    if why then
      rspamd_logger.errx(ctx.task or rspamd_config, 'regexd: cannot learn the classes of rule set %s: %s',
          settings.ruleset, why)
    else
      lua_util.debugm(N, ctx.task or rspamd_config, 'rule set %s version %s has classes %s',
          settings.ruleset, ruleset_info.version, ruleset_info.classes)
    end
    if cb then cb(why == nil, why) end
  end)
end

------------------------------------------------------------------------------
-- SCAN

local extractors = {} -- list of {cls = ..., fn = ...} from option classes
local all_classes = false -- classes = ["*"]: every class of the rule set that can be extracted
local unsupported_logged = {}
local rule_symbols = {} -- rule id -> symbol name (configured rules)

-- The extractors to use now: the configured ones, or (classes = ["*"]) one per class of the
-- rule set, built once per rule set version.
local function current_extractors()
  if not all_classes then return extractors end
  if not ruleset_info then return {} end
  if not ruleset_info.extractors then
    local list, names = {}, {}
    for cls in pairs(ruleset_info.classes) do names[#names + 1] = cls end
    table.sort(names)
    for _, cls in ipairs(names) do
      local fn, why = make_extractor(cls)
      if fn then
        list[#list + 1] = {cls = cls, fn = fn}
      elseif not unsupported_logged[cls] then
        unsupported_logged[cls] = true
        rspamd_logger.warnx(rspamd_config, 'regexd: rule set %s has class "%s", which is not scanned: %s',
            settings.ruleset, cls, why)
      end
    end
    ruleset_info.extractors = list
  end
  return ruleset_info.extractors
end


-- Builds the SCAN body for `task` from the extractors whose class passes `want(cls)`.
-- Returns pieces, body length, number of buffers and the set of classes sent.
local function build_scan(task, want)
  local name = str4(settings.ruleset)
  local pieces, body_len, n, sent = {name, ''}, #name + 4, 0, {}
  for _, e in ipairs(current_extractors()) do
    if want(e.cls) then
      sent[e.cls] = true
      local bufs = {}
      e.fn(task, bufs)
      for _, b in ipairs(bufs) do
        local cls = str4(e.cls)
        pieces[#pieces + 1] = cls
        pieces[#pieces + 1] = pack('<I4', #b)
        pieces[#pieces + 1] = b
        body_len = body_len + #cls + 4 + #b
        n = n + 1
      end
    end
  end
  pieces[2] = pack('<I4', n)
  return pieces, body_len, n, sent
end

-- Parses a SCAN reply: returns {version, state, hits = {{rule, n}}, limited = {rule}} or nil, reason.
local function parse_scan_reply(r)
  local res = {hits = {}, limited = {}}
  res.version, res.state = r.u32(), r.str()
  local count = r.u32()
  if not count then return nil, 'truncated SCAN reply' end
  for _ = 1, count do
    local rule, h = r.str(), r.u32()
    if not h then return nil, 'truncated SCAN reply (hits)' end
    res.hits[#res.hits + 1] = {rule, h}
  end
  local m = r.u32()
  if not m then return nil, 'truncated SCAN reply (limited)' end
  for _ = 1, m do
    local rule = r.str()
    if not rule then return nil, 'truncated SCAN reply (limited)' end
    res.limited[#res.limited + 1] = rule
  end
  if not r.done() then return nil, 'trailing bytes after SCAN reply' end
  return res
end

local function fail(task, reason, detail)
  rspamd_logger.errx(task, 'regexd: %s: %s', reason, detail)
  if settings.fail_symbol and settings.fail_symbol ~= '' then
    task:insert_result(settings.fail_symbol, 1.0, reason)
  end
end

local scan -- forward

local function apply(task, res, nbufs)
  local others = {}
  for _, rh in ipairs(res.hits) do
    local sym = rule_symbols[rh[1]]
    if sym then
      task:insert_result(sym, 1.0, tostring(rh[2])) -- option: the hit count
    else
      others[#others + 1] = rh[1]
    end
  end
  if #others > 0 and settings.other_symbol ~= '' then
    task:insert_result(settings.other_symbol, 1.0, others)
  end
  if #res.limited > 0 then
    rspamd_logger.infox(task, 'regexd: rules stopped at a PCRE2 resource limit (answer unknown): %s',
        res.limited)
  end
  lua_util.debugm(N, task, 'rule set %s version %s (%s): %s buffers, %s rules matched',
      settings.ruleset, res.version, res.state, nbufs, #res.hits)
end

-- Scans `task` with the classes that pass `want`. `retried` marks a second request for the same
-- message (after UNKNOWN_CLASS, or for the classes a new rule set version added), which never
-- triggers another one.
scan = function(task, want, retried)
  local pieces, body_len, n, sent = build_scan(task, want)
  if n == 0 then
    lua_util.debugm(N, task, 'nothing to scan')
    return
  end
  request({task = task}, OP_SCAN, pieces, body_len, settings.timeout, function(r, why, kind)
    local res
    if r then res, why = parse_scan_reply(r) end
    if not res then
      if not retried and why:find('^error 5 ') then
        -- the rule set lost a class: learn the new list and scan again once
        rspamd_logger.infox(task, 'regexd: %s; refreshing the classes of rule set %s and scanning again',
            why, settings.ruleset)
        fetch_classes({task = task}, function(ok, fetch_why)
          if ok then
            scan(task, function(c) return ruleset_info.classes[c] end, true)
          else
            fail(task, 'protocol', fetch_why)
          end
        end)
        return
      end
      fail(task, kind or 'protocol', why)
      return
    end
    apply(task, res, n)
    if not retried and (not ruleset_info or ruleset_info.version ~= res.version) then
      -- another rule set version answered: refresh the class list, and scan the classes it added
      fetch_classes({task = task}, function(ok)
        if not ok then return end
        scan(task, function(c) return ruleset_info.classes[c] and not sent[c] end, true)
      end)
    end
  end)
end

local function regexd_check(task)
  if ruleset_info then
    scan(task, function(c) return ruleset_info.classes[c] end, false)
  elseif all_classes then
    -- regexd was not reachable when this worker started: learn the classes first
    fetch_classes({task = task}, function(ok, why)
      if ok then
        scan(task, function(c) return ruleset_info.classes[c] end, false)
      else
        fail(task, why:find('^error') and 'protocol' or 'io', why)
      end
    end)
  else
    scan(task, function() return true end, false)
  end
end

------------------------------------------------------------------------------
-- LOAD_RULES (optional)

local push_ctx -- {ev_base = ...} in the primary controller once it runs
local pending_text -- rules text waiting to be pushed
local pushed_text -- the text regexd last accepted
local push_in_flight = false

local function push_rules()
  if not push_ctx or not pending_text or push_in_flight then return end
  local text = pending_text
  local pieces = {str4(settings.ruleset), str4(settings.rules_format), str4(settings.rules_class or ''),
                  pack('<I4', #text), text}
  local body_len = 0
  for _, p in ipairs(pieces) do body_len = body_len + #p end
  push_in_flight = true
  -- a rule set that misses the cache is answered by PCRE2 at once (docs/protocol.md), but parsing
  -- a big set takes a moment: give LOAD_RULES more time than a scan
  request(push_ctx, OP_LOAD_RULES, pieces, body_len, math.max(settings.timeout, 30.0), function(r, why, kind)
    push_in_flight = false
    local version, rules, rejected, state, report
    if r then
      version, rules, rejected, state, report = r.u32(), r.u32(), r.u32(), r.str(), r.str()
      if not report then why = 'truncated LOAD_RULES reply' end
    end
    if why then
      if kind ~= 'io' and not why:find('^error 7 ') then -- BUSY: the server is stopping, retry
        -- the server refused this text: retrying cannot help, wait for the file to change
        if pending_text == text then pending_text = nil end
        rspamd_logger.errx(rspamd_config, 'regexd: LOAD_RULES %s from %s refused: %s',
            settings.ruleset, settings.rules_file, why)
      else
        rspamd_logger.errx(rspamd_config, 'regexd: LOAD_RULES %s from %s failed: %s; retry in %s s',
            settings.ruleset, settings.rules_file, why, settings.push_retry)
      end
      return
    end
    if pending_text == text then pending_text = nil end
    pushed_text = text
    rspamd_logger.infox(rspamd_config,
        'regexd: pushed rule set %s version %s from %s: %s rules, %s rejected, state %s',
        settings.ruleset, version, settings.rules_file, rules, rejected, state)
    for line in report:gmatch('[^\n]+') do
      rspamd_logger.warnx(rspamd_config, 'regexd: rejected: %s', line)
    end
    push_rules() -- the file may have changed while this request was in flight
  end)
end

-- regexd keeps pushed rule sets in memory only (docs/protocol.md): after it restarts, or reloads
-- its configuration for the same name, the rule set is gone or installed by its configuration
-- ("origin": "config"). Checked every push_retry seconds; the text is then pushed again.
local check_in_flight = false
local function check_pushed()
  if not push_ctx or not pushed_text or pending_text or push_in_flight or check_in_flight then return end
  check_in_flight = true
  find_ruleset(push_ctx, function(rs, why, kind)
    check_in_flight = false
    if kind then return end -- regexd unreachable or confused: the next round tries again
    -- (a regexd that predates "origin" is only checked for presence)
    if rs and (rs.origin == nil or rs.origin == 'load_rules') then return end
    rspamd_logger.infox(rspamd_config, 'regexd: %s; pushing %s again',
        rs and string.format('rule set %s version %s was installed by regexd\'s %s', settings.ruleset,
            rs.version, rs.origin) or why, settings.rules_file)
    if not pending_text then pending_text = pushed_text end
    push_rules()
  end)
end

local function setup_rules_push()
  local map = rspamd_config:add_map({
    type = 'callback',
    url = settings.rules_file,
    description = 'regexd rules pushed with LOAD_RULES',
    callback = function(text)
      pending_text = tostring(text)
      push_rules()
    end,
  })
  if not map then
    rspamd_logger.errx(rspamd_config, 'regexd: cannot watch rules_file %s', settings.rules_file)
    return false
  end
  rspamd_config:add_on_load(function(_, ev_base, worker)
    if not worker:is_primary_controller() then return end
    push_ctx = {ev_base = ev_base}
    push_rules()
    rspamd_config:add_periodic(ev_base, settings.push_retry, function()
      if pending_text then push_rules() else check_pushed() end
      return true
    end)
  end)
  return true
end

------------------------------------------------------------------------------
-- Configuration

local opts = rspamd_config:get_all_opt(N)
if not opts then
  lua_util.disable_module(N, 'config')
  return
end
settings = lua_util.override_defaults(settings, opts)
-- override_defaults merges arrays index by index: a configured list replaces the default one
if opts.classes ~= nil then settings.classes = opts.classes end
if not settings.enabled then
  lua_util.disable_module(N, 'config')
  return
end

local config_errors = 0
local function config_error(fmt, ...)
  rspamd_logger.errx(rspamd_config, 'regexd: ' .. fmt, ...)
  config_errors = config_errors + 1
end

if type(settings.socket) ~= 'string' or settings.socket == '' then
  config_error('option socket must be a path')
end
settings.timeout = tonumber(settings.timeout)
if not settings.timeout or settings.timeout <= 0 then
  config_error('option timeout must be a positive duration')
  settings.timeout = 1.0
end
settings.max_frame = tonumber(settings.max_frame) or 64 * 1024 * 1024
settings.other_score = tonumber(settings.other_score) or 0.0

if type(settings.classes) == 'string' then settings.classes = {settings.classes} end
local seen = {}
for _, cls in ipairs(settings.classes or {}) do
  local fn, why
  if cls == '*' then
    all_classes, fn = true, true
  else
    fn, why = make_extractor(cls)
  end
  if not fn then
    config_error('class "%s": %s; it is not scanned', cls, why)
  elseif not seen[cls] and cls ~= '*' then
    seen[cls] = true
    extractors[#extractors + 1] = {cls = cls, fn = fn}
  end
end
if all_classes and #extractors > 0 then
  config_error('classes = ["*"] takes no other class; using every class of the rule set')
end
if #extractors == 0 and not all_classes then
  config_error('no usable class in option classes; module disabled')
  lua_util.disable_module(N, 'config')
  return
end

local id = rspamd_config:register_symbol({
  name = settings.check_symbol,
  type = 'callback',
  callback = regexd_check,
  group = settings.group,
})
if settings.other_symbol ~= '' then
  rspamd_config:register_symbol({
    name = settings.other_symbol,
    type = 'virtual',
    parent = id,
    score = settings.other_score,
    group = settings.group,
    description = 'regexd rules without a symbol of their own (listed in the options)',
  })
end
if settings.fail_symbol and settings.fail_symbol ~= '' then
  rspamd_config:register_symbol({
    name = settings.fail_symbol,
    type = 'virtual',
    parent = id,
    score = 0.0,
    group = settings.group,
    description = 'regexd was not reachable or did not answer; its rules were not applied',
  })
end

for rule_id, v in pairs(settings.symbols or {}) do
  local score, description, name
  if type(v) == 'table' then
    score, description, name = tonumber(v.score), v.description, v.name
  else
    score = tonumber(v)
  end
  if score == nil then
    config_error('symbols.%s: a score (number) or {score = N; description = "..."} is required', rule_id)
  else
    name = name or (settings.symbol_prefix .. rule_id)
    rule_symbols[rule_id] = name
    rspamd_config:register_symbol({
      name = name,
      type = 'virtual',
      parent = id,
      score = score,
      group = settings.group,
      description = description or ('regexd rule ' .. rule_id),
    })
  end
end

rspamd_config:add_on_load(function(_, ev_base, worker)
  if worker:is_scanner() then fetch_classes({ev_base = ev_base}) end
end)

if settings.rules_file then
  if not setup_rules_push() then config_errors = config_errors + 1 end
end

local class_names = {}
for _, e in ipairs(extractors) do class_names[#class_names + 1] = e.cls end
if all_classes then class_names = {'* (every class of the rule set)'} end
rspamd_logger.infox(rspamd_config, 'regexd: socket %s, rule set %s, classes %s, timeout %s s%s',
    settings.socket, settings.ruleset, table.concat(class_names, ','), settings.timeout,
    config_errors > 0 and string.format(', %d configuration errors', config_errors) or '')
