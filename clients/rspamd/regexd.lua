--[[
regexd.lua: Rspamd (3.4+) plugin that scans messages with the regexd sidecar.

On every message it builds the buffers of the configured classes (by default every class of the
rule set) the way SpamAssassin 4.0 builds what its rules see (rendered body lines, decoded body,
the whole message, the URI list, header values; docs/rules.md, "Buffers as SpamAssassin builds
them"), sends them to regexd in one SCAN request over its Unix socket (docs/protocol.md, version 1;
with the MESSAGE flag when regexd offers it) and inserts one symbol per matched rule. With
`spamassassin_rules` the public rules and meta rules of SpamAssassin's .cf files are registered as
symbols with SpamAssassin's scores; other matched rules are options of `other_symbol`.
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
  classes = ["*"];
  spamassassin_rules = ["/usr/share/spamassassin/*.cf", "/etc/spamassassin/*.cf"];
  symbols { FREE_MONEY = 2.0; }
}
]])
  return
end

local rspamd_logger = require "rspamd_logger"
local rspamd_tcp = require "rspamd_tcp"
local rspamd_util = require "rspamd_util"
local rspamd_url = require "rspamd_url"
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
local FLAG_MESSAGE = 0x02 -- SCAN: the buffers are one whole message (absent header = no buffer)
local CAP_MESSAGE = 0x04 -- greeting capability: SCAN accepts FLAG_MESSAGE
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
  classes = {'*'}, -- every class of the rule set
  symbol_prefix = '', -- symbol of a listed rule = symbol_prefix .. rule id (or its `name`)
  symbols = {}, -- rule id -> score, or {score = ..., description = ..., name = ...}
  -- SpamAssassin .cf files (globs) whose public rules and metas become symbols with their scores
  spamassassin_rules = nil,
  score_set = 0, -- SpamAssassin score set: 0 no Bayes, no network tests; 1 network; 2 Bayes; 3 both
  -- Rules without a symbol of their own (`__` rules, rules not listed; Rspamd cannot register
  -- symbols at run time, so a rule pushed later has none): reported as options of this symbol,
  -- continued in other_symbol_2 ... other_symbol_N (N = other_symbols) past Rspamd's per-symbol limit.
  other_symbol = 'REGEXD_OTHER',
  other_symbols = 32,
  other_score = 0.0,
  group = 'regexd',
  check_symbol = 'REGEXD_CHECK',
  fail_symbol = 'REGEXD_FAIL',
  max_frame = 64 * 1024 * 1024, -- regexd's default maximum frame; larger requests are cut to fit
  -- Bytes of one class sent at most (the `full` class of a 20 MB message...); the rest is cut off.
  max_class_bytes = 1024 * 1024,
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

-- Capabilities of the last greeting received (docs/protocol.md); nil until one was read.
local server_caps

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
  local gr = reader(s, g.body_pos, g.body_end)
  local version = gr.u32()
  if version ~= PROTOCOL_VERSION then
    return nil, string.format('unsupported protocol version %s', tostring(version))
  end
  gr.u32() -- max_frame
  server_caps = gr.u32() or 0
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
-- Extraction: class name -> function(task, out, memo) appending rspamd_text/string buffers to out.
--
-- Every class is built the way SpamAssassin 4.0 builds what its rules of that type see
-- (docs/rules.md, "Buffers as SpamAssassin builds them"): Message.pm's rendered and decoded body
-- text arrays, PerMsgStatus.pm's get() for header rules and get_uri_list() for uri rules.
-- `memo` is a table shared by the classes of one message (the rendered body feeds body and url).

local MAX_BODY_LINE_LENGTH = 2048 -- Mail::SpamAssassin::Constants
local BODY_PART_SCAN_SIZE = 50000 -- body_part_scan_size default
local RAWBODY_PART_SCAN_SIZE = 500000 -- rawbody_part_scan_size default
local MAX_URI_LENGTH = 8192

-- Whether s has a byte >= 0x80. An anchored run over the ASCII class is one call to the pattern
-- matcher; find('[\128-\255]') restarts it at every position and takes twice as long.
local function has_high_byte(s)
  return not s:find('^[%z\1-\127]*$')
end

local function add(out, v)
  if v ~= nil then out[#out + 1] = v end
end

-- Length of the Unicode white-space character (Perl's \s on character strings) starting at byte
-- i of the UTF-8 string s, or 0.
local function ws_len(s, i)
  local b = s:byte(i)
  if b == 32 or (b and b >= 9 and b <= 13) then return 1 end
  if b == 0xC2 then
    local c = s:byte(i + 1)
    if c == 0x85 or c == 0xA0 then return 2 end
  elseif b == 0xE1 then
    local c, d = s:byte(i + 1, i + 2)
    if c == 0x9A and d == 0x80 then return 3 end
  elseif b == 0xE2 then
    local c, d = s:byte(i + 1, i + 2)
    if c == 0x80 and d and ((d >= 0x80 and d <= 0x8A) or d == 0xA8 or d == 0xA9 or d == 0xAF) then return 3 end
    if c == 0x81 and d == 0x9F then return 3 end
  elseif b == 0xE3 then
    local c, d = s:byte(i + 1, i + 2)
    if c == 0x80 and d == 0x80 then return 3 end
  end
  return 0
end

-- Message.pm get_body_text_array_common's white-space handling:
--   s/\n+\s*\n+/\x00/gs; s/\s+/ /gs; tr/\x00/\n/
-- (a white-space run holding two or more newlines becomes one newline, with one space for the
-- white space before its first and after its last newline; any other run becomes one space).
local function collapse_ws(text)
  if text:find('^[^\194\225\226\227]*$') then -- (anchored: see has_high_byte)
    -- No byte that can start a non-ASCII white-space character: Perl's three substitutions
    -- verbatim, in C. Lua's %s is Perl's ASCII \s ([ \t\n\v\f\r]) and its + and * backtrack as
    -- Perl's do, so '\n+%s*\n+' matches exactly the runs of s/\n+\s*\n+/ (an equivalence; the
    -- loop below gives the same result ~10x slower, one white-space run at a time).
    return (text:gsub('\n+%s*\n+', '\0'):gsub('%s+', ' '):gsub('%z', '\n'))
  end
  local out, pos, len = {}, 1, #text
  while pos <= len do
    local s = text:find('[%s\194\225\226\227]', pos)
    if not s then
      out[#out + 1] = text:sub(pos)
      break
    end
    if ws_len(text, s) == 0 then -- a lead byte of a non-space character
      out[#out + 1] = text:sub(pos, s)
      pos = s + 1
    else
      if s > pos then out[#out + 1] = text:sub(pos, s - 1) end
      local i, nl, first_nl, last_nl = s, 0, nil, nil
      while i <= len do
        local w = ws_len(text, i)
        if w == 0 then break end
        if w == 1 and text:byte(i) == 10 then
          nl = nl + 1
          first_nl = first_nl or i
          last_nl = i
        end
        i = i + w
      end
      if nl >= 2 then
        out[#out + 1] = (first_nl > s and ' ' or '') .. '\n' .. (last_nl < i - 1 and ' ' or '')
      else
        out[#out + 1] = ' '
      end
      pos = i
    end
  end
  return (table.concat(out):gsub('%z', '\n'))
end

-- Message.pm split_into_array_of_short_lines: one element per line (newline kept), lines longer
-- than MAX_BODY_LINE_LENGTH cut after their last space within that length (or at it).
local function split_short_lines(text, out)
  local pos, len = 1, #text
  while pos <= len do
    local e = text:find('\n', pos, true) or len
    local line = text:sub(pos, e)
    while #line > MAX_BODY_LINE_LENGTH do
      local cut = line:sub(1, MAX_BODY_LINE_LENGTH + 1):match('.*() ') or MAX_BODY_LINE_LENGTH
      out[#out + 1] = line:sub(1, cut)
      line = line:sub(cut + 1)
    end
    out[#out + 1] = line
    pos = e + 1
  end
end

-- Message.pm split_into_array_of_short_paragraphs (rawbody): pieces of 1-2 x MAX_BODY_LINE_LENGTH,
-- cut after a newline, else after a '>', else after a space, else at MAX_BODY_LINE_LENGTH.
local function split_short_paragraphs(text, out)
  local len, M = #text, MAX_BODY_LINE_LENGTH
  if len <= M then
    out[#out + 1] = text
    return
  end
  local ofs = 0 -- 0-based, as in Perl
  while len - ofs > 2 * M do
    local j
    for _, ch in ipairs({'\n', '>', ' '}) do
      local f = text:find(ch, ofs + M + 1, true)
      if f and (f - 1) - ofs + 1 <= 2 * M then
        j = f - 1
        break
      end
    end
    j = j or (ofs + M)
    out[#out + 1] = text:sub(ofs + 1, j + 1)
    ofs = j + 1
  end
  if ofs < len then out[#out + 1] = text:sub(ofs + 1) end
end

-- body_part_scan_size / rawbody_part_scan_size truncation: at the first of `seps` found within
-- 1 KiB after `size` bytes (kept), else at `size`.
-- With `chars` (SpamAssassin holds the text as characters: valid UTF-8 with 8-bit bytes) the size
-- counts characters.
local function truncate_part(text, size, seps, chars)
  if #text <= size then return text end
  if chars then
    local n, pos = 0, 1
    while n < size and pos <= #text do
      local _, e = text:find('^[\192-\255][\128-\191]*', pos)
      pos = (e or pos) + 1
      n = n + 1
    end
    if pos > #text then return text end
    size = pos - 1
  end
  for _, ch in ipairs(seps) do
    local f = text:find(ch, size + 1, true)
    if f and (f - 1) - size <= 1024 then return text:sub(1, f) end
  end
  return text:sub(1, size)
end

-- HTML rendering as Mail::SpamAssassin::HTML does it on top of HTML::Parser: the text of the
-- document (entities decoded, white-space runs as one space) without <script> and <style>
-- contents; <br> and <div> add "\n", <li> <td> <th> <dd> <dt> <embed> <hN> a space, and <p> <hr>
-- <blockquote> <pre> <listing> <plaintext> <xmp> <title> "\n\n" (start and end tags alike).
local HTML_WS = {br = '\n', div = '\n', li = ' ', th = ' ', td = ' ', dd = ' ', dt = ' ', embed = ' ',
                 h1 = ' ', h2 = ' ', h3 = ' ', h4 = ' ', h5 = ' ', h6 = ' ', p = '\n\n', hr = '\n\n',
                 blockquote = '\n\n', pre = '\n\n', listing = '\n\n', plaintext = '\n\n', xmp = '\n\n',
                 title = '\n\n'}
local HTML_TEXT_STYLE = {body = true, font = true, table = true, tr = true, th = true, td = true, big = true,
  small = true, basefont = true, marquee = true, span = true, p = true, div = true, a = true}
local HTML_STYLE_ATTR = {table = true, td = true, tr = true, span = true, p = true, div = true, a = true}
-- HTML::Parser reads the content of these up to their end tag as text (literal mode)
local HTML_LITERAL = {script = true, style = true, xmp = true, iframe = true, textarea = true, title = true}
local ENTITIES = { -- code points
  amp = 38, lt = 60, gt = 62, quot = 34, apos = 39, nbsp = 0xA0, copy = 0xA9, reg = 0xAE,
  trade = 0x2122, hellip = 0x2026, mdash = 0x2014, ndash = 0x2013, lsquo = 0x2018, rsquo = 0x2019,
  ldquo = 0x201C, rdquo = 0x201D, bull = 0x2022, middot = 0xB7, laquo = 0xAB, raquo = 0xBB,
  euro = 0x20AC, pound = 0xA3, yen = 0xA5, cent = 0xA2, sect = 0xA7, deg = 0xB0, times = 0xD7,
  divide = 0xF7, shy = 0xAD, iexcl = 0xA1, iquest = 0xBF, auml = 0xE4, ouml = 0xF6, uuml = 0xFC,
  Auml = 0xC4, Ouml = 0xD6, Uuml = 0xDC, szlig = 0xDF, eacute = 0xE9, egrave = 0xE8, aacute = 0xE1,
  agrave = 0xE0, ccedil = 0xE7, Eacute = 0xC9, ntilde = 0xF1, oacute = 0xF3, iacute = 0xED,
  uacute = 0xFA, ecirc = 0xEA,
}
local function utf8_char(cp)
  if cp < 0 or cp > 0x10FFFF then return nil end
  if cp < 0x80 then return string.char(cp) end
  if cp < 0x800 then return string.char(0xC0 + math.floor(cp / 64), 0x80 + cp % 64) end
  if cp < 0x10000 then
    return string.char(0xE0 + math.floor(cp / 4096), 0x80 + math.floor(cp / 64) % 64, 0x80 + cp % 64)
  end
  return string.char(0xF0 + math.floor(cp / 262144), 0x80 + math.floor(cp / 4096) % 64,
      0x80 + math.floor(cp / 64) % 64, 0x80 + cp % 64)
end
-- Windows-1252, which SpamAssassin uses for ISO-8859-1 (and for 8-bit text that is not UTF-8 and
-- declares no better charset): 0x80-0x9F as cp1252's characters, the rest as Latin-1.
local CP1252 = {[0x80] = 0x20AC, [0x82] = 0x201A, [0x83] = 0x0192, [0x84] = 0x201E, [0x85] = 0x2026,
  [0x86] = 0x2020, [0x87] = 0x2021, [0x88] = 0x02C6, [0x89] = 0x2030, [0x8A] = 0x0160, [0x8B] = 0x2039,
  [0x8C] = 0x0152, [0x8E] = 0x017D, [0x91] = 0x2018, [0x92] = 0x2019, [0x93] = 0x201C, [0x94] = 0x201D,
  [0x95] = 0x2022, [0x96] = 0x2013, [0x97] = 0x2014, [0x98] = 0x02DC, [0x99] = 0x2122, [0x9A] = 0x0161,
  [0x9B] = 0x203A, [0x9C] = 0x0153, [0x9E] = 0x017E, [0x9F] = 0x0178}
local function cp1252_to_utf8(s)
  return (s:gsub('[\128-\255]', function(c)
    local b = c:byte()
    return utf8_char(CP1252[b] or b)
  end))
end

-- The code point of an entity (HTML::Parser decodes named entities without ';' for a few only).
local function entity_cp(hash, name, semi)
  if hash == '#' then
    local n = name:match('^[xX](%x+)$')
    return n and tonumber(n, 16) or tonumber(name)
  elseif semi == ';' or name == 'amp' or name == 'lt' or name == 'gt' or name == 'quot' then
    return ENTITIES[name]
  end
end
-- Entities decoded to UTF-8, or with `bytes` those below 256 to one byte: SpamAssassin hands
-- HTML::Parser an undecoded (all-ASCII) part as octets, and its entities then stay Latin-1 octets.
local function decode_entities(t, bytes)
  if not t:find('&', 1, true) then return t end
  return (t:gsub('&(#?)([%w]+)(;?)', function(hash, name, semi)
    local cp = entity_cp(hash, name, semi)
    if not cp then return nil end
    if bytes and cp < 256 then return string.char(cp) end
    return utf8_char(cp)
  end))
end
-- Whether SpamAssassin's rendered text of this HTML is octets: the part is all ASCII and no entity
-- gives a character above U+00FF (which would make Perl upgrade the whole text to UTF-8).
local function html_octets(html)
  if has_high_byte(html) then return false end
  for hash, name, semi in html:gmatch('&(#?)([%w]+)(;?)') do
    local cp = entity_cp(hash, name, semi)
    if cp and cp > 255 then return false end
  end
  return true
end

-- Attributes of a start tag (text after its name) as HTML::Parser gives them: names lowercased,
-- values unquoted with entities decoded, a bare attribute's value is its name.
local function html_attrs(s, bytes)
  local attrs, pos = {}, 1
  while true do
    local ns, ne = s:find('[^%s=/>"\']+', pos)
    if not ns then break end
    local name = s:sub(ns, ne):lower()
    local vs = s:match('^%s*=%s*()', ne + 1)
    local value
    if vs then
      local q = s:sub(vs, vs)
      if q == '"' or q == "'" then
        local ve = s:find(q, vs + 1, true) or #s + 1
        value, pos = s:sub(vs + 1, ve - 1), ve + 1
      else
        local ve = s:find('[%s>]', vs) or #s + 1
        value, pos = s:sub(vs, ve - 1), ve
      end
      value = decode_entities(value, bytes)
    else
      value, pos = name, ne + 1
    end
    if attrs[name] == nil then attrs[name] = value end
  end
  return attrs
end

-- The attributes Mail::SpamAssassin::HTML's html_uri takes URIs from, per tag.
local HTML_URI_ATTRS = {body = {'background'}, table = {'background'}, tr = {'background'},
  td = {'background'}, a = {'href', 'data-saferedirecturl'}, area = {'href', 'data-saferedirecturl'},
  link = {'href', 'data-saferedirecturl'}, img = {'src'}, frame = {'src'}, iframe = {'src'},
  embed = {'src'}, script = {'src'}, bgsound = {'src'}, form = {'action'}, base = {'href'}}

-- HTML.pm target_uri, simplified: a relative URI resolved against <base href>, if any.
local function html_target(base, uri)
  if base == '' or uri:find('^[%a][%w+.-]*:') then return uri end
  local scheme, authority = base:match('^([%a][%w+.-]*:)(//[^/?#]*)')
  if uri:find('^//') then return (scheme or '') .. uri end
  if uri:find('^/') then return (scheme or '') .. (authority or '') .. uri end
  return base:gsub('[^/]*$', '') .. uri
end

-- Renders `html` (see above); also returns the URIs of its tags as SpamAssassin's HTML parser
-- collects them (href, src, background, action...; <base href> applied).
local function html_render(html)
  local bytes = html_octets(html)
  if html:find('&nbsp;', 1, true) then html = html:gsub('&nbsp;', ' ') end
  if html:find('/>', 1, true) then html = html:gsub('<([%w_]+)%s*/>', '<%1>') end
  if html:find('\226\128[\156\157]') then html = html:gsub('\226\128[\156\157]', '"') end
  local uris, base_href = {}, ''
  local function canon(u) -- HTML.pm canon_uri
    return (u:gsub('^[%s]+', ''):gsub('^\194\160', ''):gsub('[%s]+$', ''):gsub('\194\160$', ''))
  end
  local function push_uri(u)
    u = canon(u)
    if u == '' then return end
    if u:lower():find('^data:') or u:lower():find('^mailto:') or u:lower():find('^file:') or
        u:lower():find('^cid:') or u:lower():find('^tel:') then
      uris[#uris + 1] = u
    else
      uris[#uris + 1] = html_target(base_href, u)
    end
  end
  local texts, ws, invisible = {}, {}, {}
  local inside_script, inside_style = 0, 0
  -- HTML.pm's text style stack, for its html_font_invisible as far as the renderer needs it (the
  -- white space around invisible text is kept): font size, display:none, visibility:hidden.
  -- Colours (text as its background colour) are not followed.
  local styles, basefont = {{tag = 'default', size = 3}}, 3
  local function display(t, is_ws, invis)
    local n = #texts
    if is_ws then
      if n > 0 and not ws[n] and not invisible[n] then texts[n] = texts[n]:gsub(' $', '') end
    else
      t = t:gsub('[ \t\n\r\f\v]+', ' ')
      if n > 0 and ws[n] and not invis then t = t:gsub('^ ', '') end
    end
    texts[n + 1] = t
    ws[n + 1] = is_ws
    invisible[n + 1] = invis
  end
  local function text(t)
    if t == '' or inside_script > 0 or inside_style > 0 then return end
    local top = styles[#styles]
    local invis = t:find('[^ \t\n\r\f\v]') and (top.size <= 1 or top.display == 'none' or
        top.visibility == 'hidden') or false
    display(decode_entities(t, bytes), false, invis)
  end
  local function close_style(name, table_tag)
    local found = false
    for _, st in ipairs(styles) do
      if st.tag == name then found = true end
    end
    if not found then return end
    if table_tag then -- close_table_tag: the fonts and cells inside the cell or row
      while #styles > 0 do
        local top = styles[#styles].tag
        if (name == 'td' and (top == 'font' or top == 'td')) or
            (name == 'tr' and (top == 'font' or top == 'td' or top == 'tr')) then
          styles[#styles] = nil
        else
          break
        end
      end
    else
      while #styles > 0 do
        local top = table.remove(styles)
        if top.tag == name then break end
      end
    end
    if #styles == 0 then styles[1] = {tag = 'default', size = 3} end
  end
  local last_text, last_attrs
  local function attrs(attr_text) -- parsed once per tag
    if attr_text ~= last_text then last_text, last_attrs = attr_text, html_attrs(attr_text, bytes) end
    return last_attrs
  end
  local function text_style(name, num, attr_text)
    if name == 'th' then name = 'td' end
    if num < 0 then
      if name ~= 'body' then close_style(name) end
      return
    end
    local has_attrs = attr_text:find('[SsZz][TtEe]') ~= nil -- size=, style= (cheap pre-test)
    if name == 'basefont' and has_attrs then
      local n = (attrs(attr_text).size or ''):match('^%s*(%d+)')
      if n then basefont = tonumber(n); return end
    end
    if name == 'td' or name == 'tr' then close_style(name, true) end
    local top = styles[#styles]
    local new = {tag = name, size = top.size, display = top.display, visibility = top.visibility}
    if name == 'big' then
      new.size = new.size + 1
    elseif name == 'small' then
      new.size = new.size - 1
    elseif has_attrs then
      local a = attrs(attr_text)
      if (name == 'font' or name == 'basefont') and a.size then
        local rel = a.size:match('^%s*([+-]%d+)')
        local abs = a.size:match('^%s*(%d+)')
        if rel then new.size = basefont + tonumber(rel) elseif abs then new.size = tonumber(abs) end
      end
      if a.style and HTML_STYLE_ATTR[name] then
        for part in a.style:gmatch('[^;]+') do
          local k, v = part:match('^%s*([%a_-]+)%s*:%s*(%S.-)%s*$')
          if k then
            k = k:lower()
            if k == 'display' or k == 'visibility' then new[k] = v:lower() end
          end
        end
      end
    end
    styles[#styles + 1] = new
  end
  local function tag(name, num, attr_text)
    if HTML_TEXT_STYLE[name] then text_style(name, num, attr_text) end
    if HTML_WS[name] then display(HTML_WS[name], true) end
    if name == 'script' then
      inside_script = math.max(0, inside_script + num)
    elseif name == 'style' then
      inside_style = math.max(0, inside_style + num)
    end
  end
  local pos, len = 1, #html
  local lower_html
  while pos <= len do
    local lt = html:find('<', pos, true)
    if not lt then
      text(html:sub(pos))
      break
    end
    local c = html:sub(lt + 1, lt + 1)
    local stop -- last byte of the markup at lt, or nil if it is text
    if c:match('%a') or (c == '/' and html:sub(lt + 2, lt + 2):match('%a')) then
      -- a tag: up to the first '>' outside quoted attribute values
      local i, q = lt + 1, nil
      while true do
        if q then
          local e = html:find(q, i, true)
          if not e then break end
          q, i = nil, e + 1
        else
          local e = html:find('[>"\']', i)
          if not e then break end
          local ch = html:sub(e, e)
          if ch == '>' then
            stop = e
            break
          end
          if html:sub(e - 1, e - 1):match('[=%s]') then q = ch end
          i = e + 1
        end
      end
      if not stop and q then stop = html:find('>', lt, true) end
    elseif html:sub(lt, lt + 3) == '<!--' then
      local e = html:find('-->', lt + 4, true)
      stop = e and e + 2
    elseif c == '!' or c == '?' then
      stop = html:find('>', lt, true)
    end
    if not stop then -- not markup (or markup unterminated at the end: HTML::Parser reports it as text)
      local nxt = c:match('[%a/!?]') and len + 1 or lt + 1
      if nxt > len then
        text(html:sub(pos))
        break
      end
      text(html:sub(pos, lt))
      pos = lt + 1
    else
      text(html:sub(pos, lt - 1))
      local closing, name, after = html:sub(lt + 1, stop):match('^(/?)([%a][%w._:-]*)()')
      if name then
        name = name:lower()
        local attr_text = html:sub(lt + after, stop - 1)
        tag(name, closing == '/' and -1 or 1, attr_text)
        if closing == '' and HTML_URI_ATTRS[name] then
          local attrs = attrs(attr_text)
          for _, an in ipairs(HTML_URI_ATTRS[name]) do
            if attrs[an] then push_uri(attrs[an]) end
          end
          if name == 'a' then
            -- html_tests also keys every <a> by its href as written, or '' without one (an
            -- anchor's text is collected under it): SpamAssassin's URI list has these keys too
            uris[#uris + 1] = attrs.href and canon(attrs.href) or ''
          end
          if name == 'base' and attrs.href and attrs.href:lower():find('^https?:') or
              (name == 'base' and attrs.href and attrs.href:lower():find('^ftp:')) then
            base_href = attrs.href:gsub('^([%a]+:/?/?[^/]+/.-)[^/.]+%.[^/.][^/.]%w?%w?$', '%1')
            if not base_href:find('/$') then base_href = base_href .. '/' end
          end
        end
        pos = stop + 1
        if closing == '' and HTML_LITERAL[name] then
          lower_html = lower_html or html:lower()
          local e = lower_html:find('</' .. name, pos, true)
          local body = html:sub(pos, (e or len + 1) - 1)
          text(body)
          if not e then break end
          pos = e
        elseif closing == '' and name == 'plaintext' then
          text(html:sub(pos))
          break
        end
      else
        pos = stop + 1
      end
    end
  end
  return table.concat(texts), uris
end

------------------------------------------------------------------------------
-- Headers, as PerMsgStatus::get() gives them (SpamAssassin 4.0)

-- SpamAssassin does not decode RFC 2047 words in these (Message/Node.pm _decode_header).
local function sa_no_mime_decode(name)
  local l = name:lower()
  return l == 'received' or l == 'message-id' or l == 'resent-message-id' or l == 'date' or
      l == 'resent-date' or l == 'mime-version' or l == 'references' or l == 'in-reply-to' or
      l:find('^list%-') ~= nil
end

-- The raw value of header h as SpamAssassin keeps it: everything after the colon, folding and
-- final newline included.
local function raw_value(h)
  local raw = h.raw and tostring(h.raw)
  if raw then
    local colon = raw:find(':', 1, true)
    if colon then return raw:sub(colon + 1) end
  end
  return ' ' .. tostring(h.value or '') .. '\n'
end

-- The message's headers by lowercased name, each list in message order. One task:get_headers()
-- per message instead of one task:get_header_full() per header class: SpamAssassin's rules ask
-- for ~100 header classes, most of them absent from any given message, and each C call builds
-- tables and strings for every field of every match (measured: 0.9 ms of the 2.4 ms the plugin
-- spent building a message's buffers went to header classes).
local function header_index(task, memo)
  local idx = memo.header_index
  if idx then return idx end
  idx = {}
  memo.header_array = task:get_headers() or {}
  for _, h in ipairs(memo.header_array) do
    local l = h.name:lower()
    local list = idx[l]
    if not list then
      list = {}
      idx[l] = list
    end
    list[#list + 1] = h
  end
  memo.header_index = idx
  return idx
end

-- Values of every `name` header in message order: decoded (get_header) or raw (raw_header, with
-- `unfold` as get_header(name, 1) does), each with its final newline. The list is shared by every
-- caller for this message (memo): callers must not modify it.
local function sa_header_list(task, memo, name, raw, unfold)
  local key = name:lower() .. (raw and (unfold and '\0ru' or '\0r') or '\0d')
  local lists = memo.header_lists
  if not lists then
    lists = {}
    memo.header_lists = lists
  end
  local cached = lists[key]
  if cached then return cached end
  local res = {}
  lists[key] = res
  for _, h in ipairs(header_index(task, memo)[name:lower()] or {}) do
    local v = raw_value(h)
    if raw then
      if unfold then v = v:gsub('\r?\n%s+', ' ') end
    else
      -- unfold, trim, drop the newlines left; (the plain finds and the anchored trim cost a
      -- fraction of unanchored gsubs, which restart the matcher at every byte)
      if v:find('\n', 1, true) then v = v:gsub('\n[ \t]+', ' ') end
      v = v:match('^%s*(.-)%s*$')
      if v:find('\n', 1, true) then v = v:gsub('\r?\n', '') end
      if has_high_byte(v) and not rspamd_util.is_valid_utf8(v) then
        v = cp1252_to_utf8(v) -- 8-bit header text that is not UTF-8: SpamAssassin's guess
      end
      if v:find('=?', 1, true) and not sa_no_mime_decode(name) then
        v = tostring(h.decoded or v):gsub('\r?\n[ \t]*', ' ')
      end
      v = v .. '\n'
    end
    res[#res + 1] = v
  end
  return res
end

local function strip_nl(v) return (v:gsub('\n$', '')) end

-- PerMsgStatus::get_envelope_from: the SMTP sender the MTA gave, else SpamAssassin's fallback
-- headers (the relays' envelope sender it prefers is not available from Rspamd).
local function sa_envelope_from(task, memo, sa_get)
  local res = {}
  local from = task:get_from('smtp')
  local rp = sa_get(task, memo, 'Return-Path:first:addr')[1]
  -- (without an envelope from the MTA, Rspamd takes the Return-Path header's address)
  if from and from[1] and from[1].addr and from[1].addr ~= '' and
      (not rp or rp:lower() ~= from[1].addr:lower()) then
    res[1] = from[1].addr
    return res
  end
  -- no SMTP envelope: the headers SpamAssassin falls back on (get_envelope_from), in its order.
  -- SpamAssassin tests get("ALL") =~ /^Received:.*^Name:/smi: is there a `Name` header after some
  -- Received header. ALL has one line per header (values unfolded and decoded, so no newline
  -- inside), so that is the same question asked of the header order.
  local function after_received(lname)
    local received = false
    for _, h in ipairs(header_index(task, memo) and memo.header_array) do
      local l = h.name:lower()
      if l == 'received' then
        received = true
      elseif received and l == lname then
        return true
      end
    end
    return false
  end
  local xs = sa_get(task, memo, 'X-Sender:first:addr')[1]
  if xs and xs:find('@', 1, true) then
    for _, r in ipairs(sa_header_list(task, memo, 'Received', false)) do
      if r:find('(fetchmail', 1, true) then return res end
    end
  end
  for _, hn in ipairs({'X-Envelope-From', 'Envelope-Sender', 'Return-Path'}) do
    local v = sa_get(task, memo, hn .. ':first:addr')[1]
    if v then
      if not after_received(hn:lower()) then
        res[1] = v
        return res
      elseif hn == 'X-Envelope-From' then
        return res
      end
    end
  end
  return res
end

-- Display names of an address header as Util::_parse_header_addresses gives them: per address
-- (split at commas outside quotes, angle brackets and comments), the text before '<' with quoted
-- strings unquoted and comments of the unquoted text removed (trailing white space kept); the
-- comment after the address when there is no such phrase.
local function raw_phrases(line)
  line = line:gsub('%s+$', ''):gsub('\\\\', '')
  local elems, cur, quote, angle, paren = {}, {}, false, false, 0
  local i, n = 1, #line
  while i <= n do
    local c = line:sub(i, i)
    if quote then
      if c == '\\' then
        cur[#cur + 1] = line:sub(i, i + 1)
        i = i + 1
      else
        if c == '"' then quote = false end
        cur[#cur + 1] = c
      end
    elseif c == '"' then quote = true; cur[#cur + 1] = c
    elseif c == '(' then paren = paren + 1; cur[#cur + 1] = c
    elseif c == ')' and paren > 0 then paren = paren - 1; cur[#cur + 1] = c
    elseif c == '<' and paren == 0 then angle = true; cur[#cur + 1] = c
    elseif c == '>' and paren == 0 then angle = false; cur[#cur + 1] = c
    elseif (c == ',' or c == ';') and not angle and paren == 0 then
      elems[#elems + 1] = table.concat(cur); cur = {}
    else
      cur[#cur + 1] = c
    end
    i = i + 1
  end
  elems[#elems + 1] = table.concat(cur)
  local res = {}
  for _, e in ipairs(elems) do
    e = e:gsub('^%s+', '')
    local phrase, comment
    local lt = e:find('<', 1, true)
    if lt then
      phrase = e:sub(1, lt - 1)
      comment = e:match('>%s*%(([^()]*)%)%s*$')
    else
      comment = e:match('%(([^()]*)%)%s*$')
      if not e:find('@', 1, true) then phrase = e:gsub('%s*%([^()]*%)%s*$', '') end
    end
    if phrase then
      local np = {}
      local pos = 1
      while pos <= #phrase do
        local qs, qe = phrase:find('^"', pos)
        if qs then
          local close = pos + 1
          while close <= #phrase and phrase:sub(close, close) ~= '"' do
            if phrase:sub(close, close) == '\\' then close = close + 1 end
            close = close + 1
          end
          np[#np + 1] = phrase:sub(pos + 1, close - 1):gsub('\\(.)', '%1')
          pos = close + 1
        else
          local nxt = phrase:find('"', pos, true) or #phrase + 1
          np[#np + 1] = phrase:sub(pos, nxt - 1):gsub('%([^()]*%)', '')
          pos = nxt
        end
      end
      phrase = table.concat(np)
      if phrase == '' then phrase = nil end
    end
    phrase = phrase or comment
    if phrase then res[#res + 1] = phrase end
  end
  return res
end

-- PerMsgStatus::_get for one header request (`Name[:raw][:addr|:name][:first|:last]`, `ALL`,
-- `ToCc`, `MESSAGEID`, `EnvelopeFrom`): the list of values, empty when the header is absent.
local parsed_requests = {} -- request -> {base, mods}: the same few hundred requests for every message

local function sa_get(task, memo, req)
  local parsed = parsed_requests[req]
  if not parsed then
    local mods = {}
    local base = req:gsub(':([^:]*)', function(m) mods[m] = true; return '' end)
    parsed = {base, mods}
    parsed_requests[req] = parsed
  end
  local base, mods = parsed[1], parsed[2]
  local raw, want_addr, want_name = mods.raw, mods.addr, mods.name
  local needraw = raw or want_addr or want_name
  local res
  if base == 'ALL' then
    res = {}
    if raw then
      local hdrs = tostring(task:get_raw_headers() or '')
      for line in hdrs:gmatch('[^\n]*\n') do
        if line:find('^[ \t]') and #res > 0 then
          res[#res] = res[#res] .. line
        elseif line:find('%S') then
          res[#res + 1] = line
        end
      end
    else
      local lists, seen = {}, {}
      header_index(task, memo)
      for _, h in ipairs(memo.header_array) do
        local lname = h.name:lower()
        lists[lname] = lists[lname] or sa_header_list(task, memo, h.name, false)
        seen[lname] = (seen[lname] or 0) + 1
        res[#res + 1] = h.name .. ':' .. ' ' .. (lists[lname][seen[lname]] or '\n')
      end
    end
    return res
  elseif base == 'EnvelopeFrom' then
    res = sa_envelope_from(task, memo, sa_get)
  elseif base == 'ToCc' then
    res = {}
    for _, v in ipairs(sa_header_list(task, memo, 'To', raw, true)) do res[#res + 1] = v end
    for _, v in ipairs(sa_header_list(task, memo, 'Cc', raw, true)) do res[#res + 1] = v end
  elseif base == 'MESSAGEID' then
    res = {}
    for _, hn in ipairs({'X-Message-Id', 'Resent-Message-Id', 'X-Original-Message-ID', 'Message-Id'}) do
      local l = sa_header_list(task, memo, hn, raw, true)
      if #l > 0 and l[#l] ~= '' then res[#res + 1] = l[#l] end -- get_header in list context: the last one
    end
  else
    -- (raw_header: folding kept; only ToCc and MESSAGEID go through get_header, which unfolds)
    res = sa_header_list(task, memo, base, needraw, false) -- shared: not modified below
  end
  if #res == 0 then return res end
  if mods.first then
    res = {res[1]}
  elseif mods.last then
    res = {res[#res]}
  end
  if want_name and raw then
    -- :name:raw, the phrases as SpamAssassin's own parser leaves them: quotes removed, comments
    -- of the unquoted text removed, trailing white space kept, nothing decoded
    local out = {}
    for _, line in ipairs(res) do
      for _, ph in ipairs(raw_phrases(line)) do out[#out + 1] = ph end
    end
    return out
  end
  if want_addr or want_name then
    local out = {}
    local parsed_lines = memo.parsed_addresses
    if not parsed_lines then
      parsed_lines = {}
      memo.parsed_addresses = parsed_lines -- :addr and :name of one header parse the same lines
    end
    for _, line in ipairs(res) do
      local addrs = parsed_lines[line]
      if not addrs then
        addrs = rspamd_util.parse_mail_address(line, task:get_mempool()) or {}
        parsed_lines[line] = addrs
      end
      for _, a in ipairs(addrs) do
        local name = a.name
        if (not name or name == '') and #addrs == 1 then
          -- no phrase: SpamAssassin takes the comment, "addr (Full Name)"
          name = line:match('%(([^()]*)%)%s*$')
        end
        if want_addr then
          -- SpamAssassin's parser refuses what Rspamd repairs ("Undisclosed Recipients" -> an address)
          if a.addr and a.addr ~= '' and not a.addr:find('%s') then out[#out + 1] = a.addr end
        elseif name and name ~= '' then
          local n = name
          if not raw then
            n = n:gsub('%s+', ' '):gsub('^ ', ''):gsub(' $', ''):gsub("^'(.-)'$", '%1')
          end
          out[#out + 1] = n
        end
      end
    end
    res = out
  end
  return res
end

-- The value a SpamAssassin 4.0 header rule matches (Plugin/Check.pm do_head_tests): the values
-- joined with "" when they end with a newline, else with "\n"; nil when get() found nothing.
local function sa_header_value(task, memo, req)
  local vals = sa_get(task, memo, req)
  if #vals == 0 then return nil end
  return table.concat(vals, vals[1]:find('\n$') and '' or '\n')
end

------------------------------------------------------------------------------
-- Body

-- Leaf MIME parts in message order, with SpamAssassin's effective type.
local function leaf_parts(task, memo)
  if memo.leaf_parts then return memo.leaf_parts end
  local res = {}
  memo.leaf_parts = res
  for _, p in ipairs(task:get_parts() or {}) do
    if not p:is_multipart() and not p:is_message() then
      local t, st = p:get_type()
      local ctype = string.format('%s/%s', tostring(t or 'text'), tostring(st or 'plain')):lower()
      -- Util::parse_content_type: every text/* but text/html, text/calendar, text/x-vcard is text/plain
      if ctype:find('^text/') and ctype ~= 'text/html' and ctype ~= 'text/calendar' and
          ctype ~= 'text/x-vcard' then
        ctype = 'text/plain'
      end
      local fname = p.get_filename and p:get_filename()
      local eff = (fname and fname:lower():find('%.s?html?$')) and 'text/html' or ctype
      res[#res + 1] = {part = p, type = ctype, effective = eff}
    end
  end
  -- In a multipart message a part followed by a boundary loses the line break before it; a last
  -- part that runs to the end of the message (no closing boundary) keeps it.
  if #(task:get_parts() or {}) > 1 then
    local full = tostring(task:get_content() or '')
    for _, lp in ipairs(res) do
      local raw = tostring(lp.part:get_raw_content() or '')
      lp.in_multipart = not (#raw > 0 and #raw <= #full and full:sub(-#raw) == raw)
    end
  end
  return res
end

-- Util.pm qp_decode: trailing white space of lines dropped, soft breaks joined, =XX decoded
-- (Rspamd's decoder keeps the white space and reads a run of '=' before a line end differently).
local function sa_qp_decode(s)
  -- (the plain finds cost a tenth of the pattern's scan, which most parts need anyway)
  if s:find(' \n', 1, true) or s:find('\t\n', 1, true) or s:find(' \r\n', 1, true) or s:find('\t\r\n', 1, true) then
    s = s:gsub('[ \t]+(\r?\n)', '%1')
  end
  s = s:gsub('=\r?\n', '')
  return (s:gsub('=(%x%x)', function(h) return string.char(tonumber(h, 16)) end))
end

-- Message.pm new(): a run of more than 20 blank (white-space only) body lines keeps its first line
-- and its last 19.
-- 21 blank lines after a newline; the same with the last one at the end of the text, without a
-- newline. Both start with a literal newline: Lua tries a pattern at every position, and one that
-- fails on its first byte costs little (0.06 ms per message, 0.2 ms starting with a class).
local BLANK_LINES_21 = '\n' .. string.rep('[ \t\r\f\v]*\n', 21)
local BLANK_LINES_20_LAST = '\n' .. string.rep('[ \t\r\f\v]*\n', 20) .. '[ \t\r\f\v]+$'

local function squeeze_blank_lines(s)
  -- Only a run of 21 or more blank lines changes anything. On '\n' .. s one of the patterns
  -- matches wherever such a run is (ending in a newline, or last and without one), and sometimes
  -- where none is (a match may start after text on its first line): a superset, so the exact line
  -- loop below still decides, but only for the rare message with a long run of blank lines.
  local t = '\n' .. s
  local last = s:byte(-1) -- (not s:find('[ \t\r\f\v]$'): an unanchored class tries every position)
  local ends_blank = last == 32 or (last and last >= 9 and last <= 13 and last ~= 10)
  if not t:find(BLANK_LINES_21) and not (ends_blank and t:find(BLANK_LINES_20_LAST)) then
    return s
  end
  local out, run = {}, {}
  local function flush()
    if #run > 20 then
      out[#out + 1] = run[1]
      for i = #run - 18, #run do out[#out + 1] = run[i] end
    else
      for _, l in ipairs(run) do out[#out + 1] = l end
    end
    run = {}
  end
  for line in s:gmatch('[^\n]*\n?') do
    if line == '' then break end
    if line:find('^%s*$') then
      run[#run + 1] = line
    else
      flush()
      out[#out + 1] = line
    end
  end
  flush()
  return table.concat(out)
end

-- A part's body decoded from its transfer encoding (SpamAssassin's Node::decode), bytes. The line
-- break before a MIME boundary belongs to the boundary (SpamAssassin drops it, Rspamd keeps it in
-- the part): `in_multipart` says a boundary follows.
local function part_decoded_uncached(p, in_multipart)
  local cte = tostring(p.get_cte and p:get_cte() or ''):lower()
  if cte == 'base64' then
    local d = tostring(p:get_content() or '')
    local t = tostring((p:get_type()) or ''):lower()
    if t == 'text' or t == 'message' then d = d:gsub('\r\n', '\n') end -- as Node::decode does
    return d
  end
  local raw = tostring((cte == 'quoted-printable' and p:get_raw_content() or p:get_content()) or '')
  if in_multipart then raw = raw:gsub('\r?\n$', '') end
  raw = squeeze_blank_lines(raw)
  if cte == 'quoted-printable' then return (sa_qp_decode(raw):gsub('\r\n', '\n')) end
  return raw
end

-- Text of a part as SpamAssassin's normalize_charset gives it, UTF-8: transfer-decoded bytes
-- kept when they are ASCII or valid UTF-8 (SpamAssassin tries UTF-8 first whatever the declared
-- charset), Windows-1252 for ISO-8859-1/Windows-1252/US-ASCII/none, else Rspamd's conversion.
-- Charsets whose all-ASCII text SpamAssassin leaves undecoded (_normalize); ISO-2022-JP, UTF-7 and
-- the like are 7-bit and must be decoded.
local function ascii_compatible(cs)
  return cs == '' or cs == 'us-ascii' or cs == 'ascii' or cs:find('^iso[ -]?8859') or
      cs:find('^windows%-%d%d%d%d$') or cs:find('^utf%-?8$') or cs:find('^koi8%-') or cs:find('^euc%-') or
      cs == 'big5' or cs == 'gbk' or cs:find('^gb[ -]?18030') or cs:find('^ansi[_ ]?x3%.4') or cs == 'iso646-us'
end

-- (body and rawbody both decode every text part: once per message)
local function part_decoded(lp)
  if not lp.decoded then lp.decoded = part_decoded_uncached(lp.part, lp.in_multipart) end
  return lp.decoded
end

local function part_utf8(lp)
  local p = lp.part
  local b = part_decoded(lp)
  local ct = tostring(p.get_header and p:get_header('Content-Type') or '')
  local cs = (ct:match('[Cc][Hh][Aa][Rr][Ss][Ee][Tt]%s*=%s*"?([^";%s]+)') or ''):lower()
  if not has_high_byte(b) then
    if ascii_compatible(cs) then return b end
  elseif rspamd_util.is_valid_utf8(b) then
    return b
  elseif cs == '' or cs:find('^iso%-?8859%-1$') or cs == 'windows-1252' or cs == 'cp1252' or
      cs == 'us-ascii' or cs == 'ascii' then
    return cp1252_to_utf8(b)
  end
  if p:is_text() then
    local tp = p:get_text()
    local c = tp and tp:get_content('raw_utf')
    if c then return tostring(c) end
  end
  return b
end

-- Message.pm get_rendered_body_text_array: Subject first, then every text/plain and text/html
-- part rendered, a newline between parts, white space collapsed, split into lines.
local function rendered_body(task, memo)
  if memo.body then return memo.body end
  local subjects = sa_header_list(task, memo, 'Subject', false)
  local subject = subjects[#subjects] or '\n'
  local text, html_uris = {}, {}
  local nonempty = false
  for _, lp in ipairs(leaf_parts(task, memo)) do
    if nonempty then text[#text + 1] = '\n' end
    local r
    if lp.effective == 'text/plain' then
      r = part_utf8(lp)
    elseif lp.effective == 'text/html' then
      r = part_utf8(lp)
      if r ~= '' then
        local uris
        r, uris = html_render(r)
        for _, u in ipairs(uris) do html_uris[#html_uris + 1] = u end
      end
    end
    if r then
      r = truncate_part(r, BODY_PART_SCAN_SIZE, {'\n', ' '},
          has_high_byte(r) and rspamd_util.is_valid_utf8(r))
      text[#text + 1] = r
    end
    if #text > 0 and (nonempty or text[#text] ~= '') then nonempty = true end
  end
  local lines = {}
  split_short_lines(subject .. collapse_ws(table.concat(text)), lines)
  memo.body, memo.html_uris = lines, html_uris
  return lines
end

-- Message.pm get_decoded_body_text_array: every text/* and message/* leaf part (not
-- text/calendar) decoded from its transfer encoding, charset untouched, in pieces of 2-4 KiB.
local function decoded_body(task, out, memo)
  for _, lp in ipairs(leaf_parts(task, memo)) do
    if (lp.effective:find('^text%f[%W]') or lp.effective:find('^message%f[%W]')) and lp.type ~= 'text/calendar' then
      local c = part_decoded(lp)
      split_short_paragraphs(truncate_part(c, RAWBODY_PART_SCAN_SIZE, {'\n', '>', ' '}), out)
    end
  end
end

------------------------------------------------------------------------------
-- URIs (PerMsgStatus get_uri_list; Util uri_list_canonicalize)

local function url_decode(s)
  return (s:gsub('%%(%x%x)', function(h) return string.char(tonumber(h, 16)) end))
end

-- The forms uri_list_canonicalize gives SpamAssassin's uri rules for one URI (the URI itself
-- included). Not done: redirector_patterns other than the generic one, IDN to ASCII.
local function sa_uri_forms(uri, add_form)
  if #uri > MAX_URI_LENGTH then uri = uri:sub(1, MAX_URI_LENGTH) end
  -- (SpamAssassin cleans the URI in place: the cleaned URI is the one always in the list)
  uri = uri:gsub('\n', ''):gsub('^%s+', ''):gsub('%s+$', ''):gsub('\r', '')
  add_form(uri)
  if #uri <= 1 or uri:find('^[#?&]') or (uri:find('^/') and not uri:find('^//')) then return end
  if uri:lower():find('^mailto:') or uri:find('^[^:]*@') then
    local m = uri:match('^([^@]+@[^?]+)%?')
    if m then add_form(m) end
    m = uri:match('^([^@]+@[^?&]+)&')
    if m then add_form(m) end
    if uri:find('%20', 1, true) then
      m = uri:gsub('^[Mm][Aa][Ii][Ll][Tt][Oo]:', ''):gsub('^(%%20)+', ''):match('^([^@]+@[^?&%%]+)')
      if m then add_form('mailto:' .. m) end
    end
    m = uri:match('^[^?&]*<([^@>]+@[^>]+)>')
    if m then add_form('mailto:' .. m) end
    return
  end
  local nuri = uri:gsub('\\', '/')
  nuri = nuri:gsub('^([Hh][Tt][Tt][Pp][Ss]?:)/?/?', '%1//')
  if nuri:find('%%%x%x') then nuri = url_decode(nuri) end
  if not nuri:find('^[%-_%w]+:') then
    nuri = (nuri:find('^ftp%.') and 'ftp://' or 'http://') .. nuri
  end
  nuri = nuri:gsub('^([Hh][Tt][Tt][Pp][Ss]?://[^/?#]+)([?#])', '%1/%2')
  nuri = nuri:gsub('&#0*(%d+);', function(d)
    d = tonumber(d)
    if d >= 33 and d <= 126 then return string.char(d) end
  end)
  nuri = nuri:gsub('&#[xX]0*(%x+);', function(h)
    local d = tonumber(h, 16)
    if d >= 0x21 and d <= 0x7e then return string.char(d) end
  end)
  if nuri ~= uri then add_form(nuri) end
  local host, rest
  local proto, auth, after = nuri:match('^([Hh][Tt][Tt][Pp][Ss]?://)([^@/?#]*@)()')
  if proto then
    host = nuri:sub(after):match('^[^/?#:]+')
    if host then rest = nuri:sub(after + #host) end
  else
    proto, host, rest = nuri:match('^([Hh][Tt][Tt][Pp][Ss]?://)([^/?#:]+)(.*)$')
    auth = ''
  end
  if not (proto and host) then return end
  local port = rest:match('^:(%d*)')
  if port and port ~= '' then
    local noport
    if proto:lower() == 'http://' then noport = rest:gsub('^:80%f[%D]', '', 1) else noport = rest:gsub('^:443%f[%D]', '', 1) end
    if noport ~= rest then add_form(proto .. host .. noport) end
  end
  if host:find('[%z\1- ]') then
    host = host:gsub('[%z\1- ]', '')
    add_form(proto .. host .. rest)
  end
  local target = rest:match('([Hh][Tt][Tt][Pp][Ss]?:/?/?[^&#]+)')
  if target and target:find('.', 1, true) then sa_uri_forms(target, add_form) end
  local stripped = host:gsub('[^0-9A-Za-z]+$', '')
  if stripped ~= host then
    host = stripped
    add_form(proto .. host .. rest)
  end
  local a, b, c, d = host:match('^(%d+)%.(%d+)%.(%d+)%.(%d+)$')
  if a then
    local function octet(x) -- leading zeros: octal, as SpamAssassin reads them
      local o = x:match('^0+([1-3][0-7]?[0-7]?)$') or x:match('^0+([4-7][0-7]?)$')
      if o then return tostring(tonumber(o, 8)) end
      return (x:gsub('^0+', ''))
    end
    add_form(proto .. table.concat({octet(a), octet(b), octet(c), octet(d)}, '.') .. rest)
  elseif host:find('^%d+$') then
    local n = tonumber(host) % 4294967296
    add_form(string.format('%s%d.%d.%d.%d%s', proto, math.floor(n / 16777216), math.floor(n / 65536) % 256,
        math.floor(n / 256) % 256, n % 256, rest))
  elseif proto:lower() == 'http://' and auth == '' and not port and host:lower() ~= 'localhost' then
    -- http://foobar -> http://www.foobar.com, as Firefox does (SpamAssassin bug 6596)
    local label = host:match('^[Ww][Ww][Ww]%.([^.]+)$') or host:match('^([^.]+)$')
    if label then add_form(proto .. 'www.' .. label .. '.com' .. rest) end
  end
end

-- The URI list of SpamAssassin's uri rules: the URIs found in the rendered body text (whose first
-- line is the Subject; mail addresses as mailto: URIs) and those of HTML tags, each with its
-- canonicalized forms. Sorted, unique.
local function sa_uri_list(task, memo)
  if memo.uris then return memo.uris end
  local set, list = {}, {}
  local function add_form(f)
    if not set[f] then
      set[f] = true
      list[#list + 1] = f
    end
  end
  -- URIs in the rendered body text (Subject included): those starting with a scheme, www. or ftp.
  -- found as SpamAssassin's _tbirdurire does; addresses and schemeless host names found by Rspamd's
  -- URL finder (rspamd_url.all: no max_lua_urls cap, unlike task:get_urls). SpamAssassin's text
  -- parser cuts at a ')' without '(' and drops trailing punctuation.
  local text = table.concat(rendered_body(task, memo))
  local pool = task:get_mempool()
  local valid_host = {}
  local function has_valid_domain(form)
    local host = form:match('^[Mm][Aa][Ii][Ll][Tt][Oo]:[^@]*@([^?&>]*)') or
        form:match('^%a[%w+.-]*://([^/?#]*)')
    if not host then return false end
    host = host:gsub('^.*@', ''):gsub(':%d*$', '')
    if host:find('^%d+%.%d+%.%d+%.%d+$') then return true end
    local tld = host:match('%.([^.]+)%.?$')
    if not tld or not host:find('^[%w_-]') or not host:find('^[%w._\128-\255-]+$') then return false end
    tld = tld:lower()
    if valid_host[tld] == nil then -- one URL parse per top-level label
      local u = rspamd_url.create(pool, 'http://example.' .. tld .. '/')
      valid_host[tld] = (u and u:get_tld()) and true or false
    end
    return valid_host[tld]
  end
  local function add_text_uri(raw)
    raw = raw:gsub('^([^(]*)%).*$', '%1'):gsub("[-~!@#^&*()_+=:;'?,.]+$", '')
    if raw:find('^[Ff][Tt][Pp]%.') then
      raw = 'ftp://' .. raw
    elseif raw:find('^[Ww][Ww][Ww]%d?%d?%.') then
      raw = 'http://' .. raw
    end
    -- a URI parsed from text counts only when one of its forms has a valid domain
    -- (add_uri_detail_list with valid_domain; Rspamd's public suffix list stands in for SA's TLDs)
    local forms, valid = {}, false
    sa_uri_forms(raw, function(f)
      forms[#forms + 1] = f
      valid = valid or has_valid_domain(f)
    end)
    if valid then
      for _, f in ipairs(forms) do add_form(f) end
    end
  end
  local pos = 1
  while true do
    local s, e = text:find('[HhFfWw][TtWw][TtWwPp]', pos)
    if not s then break end
    pos = s + 1
    local prev = s > 1 and text:sub(s - 1, s - 1) or ''
    if not prev:find('[%w_]') then
      local head = text:match('^[Hh][Tt][Tt][Pp][Ss]?://', s) or text:match('^[Ff][Tt][Pp]://', s) or
          text:match('^[Ww][Ww][Ww]%d?%d?%.', s) or text:match('^[Ff][Tt][Pp]%.', s)
      if head then
        local stop = text:find('[][><"`}{|%s\27]', s + #head) or #text + 1
        local nb = text:find('\194\160', s + #head, true)
        if nb and nb < stop then stop = nb end
        if stop > s + #head and stop - (s + #head) <= 2048 then
          add_text_uri(text:sub(s, stop - 1))
          pos = stop
        end
      end
    end
  end
  for _, u in ipairs(rspamd_url.all(task:get_mempool(), text) or {}) do
    local raw = tostring(u:get_raw() or u:get_text())
    if u:get_protocol() == 'mailto' then
      add_text_uri((raw:gsub('^[Mm][Aa][Ii][Ll][Tt][Oo]://', 'mailto:')))
    elseif not raw:lower():find('^%a+://') or (u:get_flags() or {}).schemaless then
      if not raw:lower():find('^https?://www%d?%d?%.') and not raw:lower():find('^ftp://ftp%.') then
        add_text_uri(raw) -- schemeless host names (Rspamd gives them an http:// prefix, as SpamAssassin)
      end
    end
  end
  -- URIs of HTML tags, as SpamAssassin's HTML parser collects them
  for _, u in ipairs(memo.html_uris or {}) do sa_uri_forms(u, add_form) end
  table.sort(list)
  memo.uris = list
  return list
end

------------------------------------------------------------------------------

-- Pseudo-headers that SpamAssassin computes from its relay trust path, which Rspamd has not.
local TRUST_PATH_HEADERS = {
  ['ALL-TRUSTED'] = true, ['ALL-UNTRUSTED'] = true, ['ALL-INTERNAL'] = true, ['ALL-EXTERNAL'] = true,
  ['X-Spam-Relays-Trusted'] = true, ['X-Spam-Relays-Untrusted'] = true,
  ['X-Spam-Relays-Internal'] = true, ['X-Spam-Relays-External'] = true,
}
local HEADER_MODIFIERS = {raw = true, addr = true, name = true, first = true, last = true}

local KNOWN_CLASSES = 'body, rawbody, full, url, header:NAME[:raw][:addr|:name][:first|:last] ' ..
    '(NAME also ALL, ToCc, MESSAGEID, EnvelopeFrom), rawheader:NAME'

-- Returns the extractor for `cls`, or nil and a reason. Header extractors add one buffer when
-- the header is present (SpamAssassin's get() finds a value), none when it is absent.
local function make_extractor(cls)
  if cls == 'body' then
    -- SpamAssassin `body`: one buffer per element of the rendered body text array
    return function(task, out, memo)
      for _, l in ipairs(rendered_body(task, memo)) do out[#out + 1] = l end
    end
  elseif cls == 'rawbody' then
    return function(task, out, memo) decoded_body(task, out, memo) end
  elseif cls == 'full' then
    return function(task, out) add(out, task:get_content()) end
  elseif cls == 'url' then
    return function(task, out, memo)
      for _, u in ipairs(sa_uri_list(task, memo)) do out[#out + 1] = u end
    end
  end
  local kind, hdr, rest = cls:match('^(%a+):([^:]+)(.*)$')
  if kind ~= 'header' and kind ~= 'rawheader' then
    return nil, 'unknown class (known: ' .. KNOWN_CLASSES .. ')'
  end
  -- (:addrlist and :namelist, from before :addr and :name gave every address as SpamAssassin does)
  rest = rest:gsub(':addrlist', ':addr'):gsub(':namelist', ':name')
  local seen_mod = {}
  for mod in rest:gmatch(':([^:]*)') do
    if not HEADER_MODIFIERS[mod] or seen_mod[mod] then
      return nil, string.format('unsupported header modifier ":%s" (known: ' .. KNOWN_CLASSES .. ')', mod)
    end
    seen_mod[mod] = true
  end
  if TRUST_PATH_HEADERS[hdr] then
    return nil, 'a SpamAssassin pseudo-header computed from its relay trust path, which Rspamd does not have'
  end
  local req = hdr .. rest
  if kind == 'rawheader' and not seen_mod.raw then req = req .. ':raw' end
  return function(task, out, memo) add(out, sa_header_value(task, memo, req)) end
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
local function request(ctx, opcode, pieces, body_len, timeout, cb, flags)
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
    data = make_frame(id, opcode, FLAG_CLOSE + (flags or 0), pieces, body_len),
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
-- Keeps the buffers of one class to `cap` bytes in all: the first ones whole, the one that
-- crosses the cap cut at it, the rest dropped. Returns the kept buffers and their bytes.
local function cap_class(bufs, cap)
  local out, used = {}, 0
  for _, b in ipairs(bufs) do
    if used >= cap then break end
    if used + #b > cap then b = tostring(b):sub(1, cap - used) end
    out[#out + 1] = b
    used = used + #b
  end
  return out, used
end

-- Packs a SCAN body from `groups` ({cls = name, bufs = {...}} in order) for rule set `ruleset`.
-- Each class is kept to `max_class_bytes`; if the request would still exceed `max_frame` (regexd
-- refuses larger frames, and the plugin sent nothing at all for such a message before, so a big
-- enough spam escaped every rule), the per-class cap is halved until it fits. Truncating keeps
-- what every class starts with, as SpamAssassin's own body_part_scan_size does for parts.
-- Returns pieces, body length, number of buffers, and the classes that were cut (or nil).
local function pack_scan(ruleset, groups, max_class_bytes, max_frame)
  local name = str4(ruleset)
  local function pack_with(cap)
    local pieces, body_len, n, cut = {name, ''}, #name + 4, 0, nil
    for _, g in ipairs(groups) do
      local bufs, total = g.bufs, 0
      for _, b in ipairs(bufs) do total = total + #b end
      if total > cap then
        bufs = cap_class(bufs, cap)
        cut = cut or {}
        cut[#cut + 1] = g.cls
      end
      local cls = str4(g.cls)
      for _, b in ipairs(bufs) do
        pieces[#pieces + 1] = cls
        pieces[#pieces + 1] = pack('<I4', #b)
        pieces[#pieces + 1] = b
        body_len = body_len + #cls + 4 + #b
        n = n + 1
      end
    end
    pieces[2] = pack('<I4', n)
    return pieces, body_len, n, cut
  end
  local cap = max_class_bytes
  local pieces, body_len, n, cut = pack_with(cap)
  -- (6: the frame header; the class names and lengths alone never come near max_frame)
  while 6 + body_len > max_frame and cap > 1 do
    cap = math.floor(cap / 2)
    pieces, body_len, n, cut = pack_with(cap)
  end
  return pieces, body_len, n, cut
end

-- Builds the SCAN body for `task` from the extractors whose class passes `want(cls)`.
-- Returns pieces, body length, number of buffers and the set of classes sent.
local function build_scan(task, want)
  local groups, sent = {}, {}
  local memo = {}
  for _, e in ipairs(current_extractors()) do
    if want(e.cls) then
      sent[e.cls] = true
      local bufs = {}
      local ok, err = pcall(e.fn, task, bufs, memo)
      if not ok then
        -- a message the buffer building cannot handle: scan it without this class
        rspamd_logger.errx(task, 'regexd: building class %s failed: %s', e.cls, err)
        bufs = {}
      end
      if #bufs > 0 then groups[#groups + 1] = {cls = e.cls, bufs = bufs} end
    end
  end
  local pieces, body_len, n, cut = pack_scan(settings.ruleset, groups, settings.max_class_bytes, settings.max_frame)
  if cut then
    rspamd_logger.infox(task, 'regexd: large message: classes %s cut to fit max_class_bytes %s and max_frame %s',
        table.concat(cut, ', '), settings.max_class_bytes, settings.max_frame)
  end
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

-- One log line per failure reason per FAIL_LOG_INTERVAL seconds: a daemon that is down or
-- answers garbage fails every message, and one error line per message would flood the log
-- (the fail symbol still marks every message).
local FAIL_LOG_INTERVAL = 60
local fail_log = {} -- reason -> {last = time, suppressed = count}
local function fail(task, reason, detail)
  local now = rspamd_util.get_time()
  local st = fail_log[reason]
  if not st or now - st.last >= FAIL_LOG_INTERVAL then
    local more = (st and st.suppressed > 0) and
        string.format(' (and %d more %s failures in the last %.0f s)', st.suppressed, reason, now - st.last) or ''
    rspamd_logger.errx(task, 'regexd: %s: %s%s', reason, detail, more)
    fail_log[reason] = {last = now, suppressed = 0}
  else
    st.suppressed = st.suppressed + 1
  end
  if settings.fail_symbol and settings.fail_symbol ~= '' then
    task:insert_result(settings.fail_symbol, 1.0, reason)
  end
end

local scan -- forward

-- Options of one other_symbol: Rspamd keeps fewer than `default_max_shots` (100) options and
-- `max_opts_len` (4096) bytes of options per symbol and drops the rest.
local OTHER_CHUNK_OPTIONS, OTHER_CHUNK_BYTES = 90, 3500
local function other_symbol_name(k)
  return k == 1 and settings.other_symbol or string.format('%s_%d', settings.other_symbol, k)
end

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
    -- Rspamd keeps fewer than default_max_shots (100) options per symbol and at most max_opts_len
    -- (4096) bytes of them: the rules go into other_symbol, other_symbol_2, ... in chunks below both
    local chunk, bytes, k = {}, 0, 1
    local function flush()
      if #chunk == 0 then return end
      if k > settings.other_symbols then
        rspamd_logger.warnx(task, 'regexd: %s more rules matched than %s x %s symbols hold: %s', #chunk,
            settings.other_symbol, settings.other_symbols, chunk)
      else
        task:insert_result(other_symbol_name(k), 1.0, chunk)
      end
      chunk, bytes, k = {}, 0, k + 1
    end
    for _, rule in ipairs(others) do
      if #chunk >= OTHER_CHUNK_OPTIONS or bytes + #rule > OTHER_CHUNK_BYTES then flush() end
      chunk[#chunk + 1] = rule
      bytes = bytes + #rule
    end
    flush()
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
  -- MESSAGE: the buffers are the whole message, so regexd treats a header class without a buffer
  -- as an absent header ([if-unset: ...], exists:, !~ rules). Only sent to a regexd that announced
  -- it in its greeting (an older one rejects unknown flag bits).
  local message_flag = server_caps and (server_caps % (2 * CAP_MESSAGE) >= CAP_MESSAGE)
  if n == 0 and not message_flag then
    lua_util.debugm(N, task, 'nothing to scan')
    return
  end
  request({task = task}, OP_SCAN, pieces, body_len, settings.timeout, function(r, why, kind)
    local res
    if r then res, why = parse_scan_reply(r) end
    if not res then
      if not retried and message_flag and why:find('^error 1 ') and
          not (server_caps and server_caps % (2 * CAP_MESSAGE) >= CAP_MESSAGE) then
        -- regexd was replaced by one without MESSAGE since the last greeting: scan again without it
        rspamd_logger.infox(task, 'regexd: %s; scanning again without the MESSAGE flag', why)
        scan(task, want, true)
        return
      end
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
      -- (with MESSAGE the whole message again: the buffers of one request are the whole message,
      -- and a request with some classes only would read the others as absent headers)
      fetch_classes({task = task}, function(ok)
        if not ok then return end
        local added = false
        for c in pairs(ruleset_info.classes) do
          if not sent[c] then added = true end
        end
        if not added then return end
        scan(task, function(c)
          return ruleset_info.classes[c] and (message_flag or not sent[c])
        end, true)
      end)
    end
  end, message_flag and FLAG_MESSAGE or 0)
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
-- Symbols and scores from SpamAssassin .cf files (option spamassassin_rules)

-- Rule types whose rules regexd runs (and SpamAssassin meta rules, which it evaluates);
-- `eval:` rules of these types are not regexd's.
local SA_RULE_TYPES = {body = true, rawbody = true, full = true, uri = true, header = true, meta = true}

-- Reads the .cf files that `globs` name (each glob's files in sorted order, as SpamAssassin reads
-- a rule directory) as one configuration and returns {NAME = {score = S, description = D}} for
-- every public rule (name not starting with "__", score non-zero in score set `set`, 0-3).
-- Scores follow SpamAssassin: one value is all four sets, "(x)" is relative to the set before,
-- a rule without a score line gets 1.0 (T_ rules 0.01), negated for `tflags nice`.
-- Conditionals (if, ifplugin) are not evaluated: every rule of every file counts.
-- Returns the table, the number of files read and a list of problems.
local function load_sa_rules(globs, set)
  local defs, scores, descs, tflags = {}, {}, {}, {}
  local problems, files = {}, 0
  if type(globs) == 'string' then globs = {globs} end
  for _, g in ipairs(globs or {}) do
    local list = rspamd_util.glob(g) or {}
    table.sort(list)
    if #list == 0 and not g:find('[*?%[]') then problems[#problems + 1] = g .. ': no such file' end
    for _, path in ipairs(list) do
      local f = io.open(path, 'r')
      if not f then
        problems[#problems + 1] = path .. ': cannot be read'
      else
        files = files + 1
        for line in f:lines() do
          line = line:gsub('^%s+', '')
          local hash = line:find('#', 1, true)
          while hash and hash > 1 and line:sub(hash - 1, hash - 1) == '\\' do
            hash = line:find('#', hash + 1, true)
          end
          if hash then line = line:sub(1, hash - 1) end
          local kw, name, rest = line:match('^(%S+)%s+(%S+)%s*(.*)$')
          if kw then
            rest = rest:gsub('%s+$', '')
            if SA_RULE_TYPES[kw] then
              defs[name] = (not rest:find('^eval:')) or nil -- a later definition replaces an earlier one
            elseif kw == 'score' then
              local vals, relative = {}, false
              for v in rest:gmatch('%S+') do
                local inner = v:match('^%((%-?[%d.]+)%)$')
                if inner then relative = true; v = inner end
                vals[#vals + 1] = tonumber(v)
              end
              if (#vals == 1 or #vals == 4) and vals[#vals] then
                if #vals == 1 then vals = {vals[1], vals[1], vals[1], vals[1]} end
                local old = scores[name]
                if relative and old then
                  for i = 1, 4 do vals[i] = old[i] + vals[i] end
                end
                if not relative or old then scores[name] = vals end
              end
            elseif kw == 'describe' then
              descs[name] = rest
            elseif kw == 'tflags' then
              tflags[name] = rest
            end
          end
        end
        f:close()
      end
    end
  end
  local res = {}
  for name in pairs(defs) do
    if not name:find('^__') then
      local score
      if scores[name] then
        score = scores[name][set + 1]
      else
        score = name:find('^T_') and 0.01 or 1.0
        if tflags[name] and (' ' .. tflags[name] .. ' '):find('%snice%s') then score = -score end
      end
      if score and score ~= 0 then res[name] = {score = score, description = descs[name]} end
    end
  end
  return res, files, problems
end

-- Under `rspamadm lua` (tests, the SpamAssassin referee harness): hand the buffer building to the
-- caller instead of configuring the module.
local test_exports = rawget(_G, 'regexd_test_exports')
if type(test_exports) == 'table' then
  test_exports.make_extractor = make_extractor
  test_exports.html_render = html_render
  test_exports.collapse_ws = collapse_ws
  test_exports.load_sa_rules = load_sa_rules
  test_exports.pack_scan = pack_scan
  return
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
if opts.spamassassin_rules ~= nil then settings.spamassassin_rules = opts.spamassassin_rules end
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
settings.max_class_bytes = tonumber(settings.max_class_bytes) or 1024 * 1024
settings.other_score = tonumber(settings.other_score) or 0.0
settings.other_symbols = math.max(1, math.floor(tonumber(settings.other_symbols) or 32))
settings.score_set = tonumber(settings.score_set) or 0
if settings.score_set ~= 0 and settings.score_set ~= 1 and settings.score_set ~= 2 and settings.score_set ~= 3 then
  config_error('option score_set must be 0, 1, 2 or 3; using 0')
  settings.score_set = 0
end

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
  for k = 1, settings.other_symbols do
    rspamd_config:register_symbol({
      name = other_symbol_name(k),
      type = 'virtual',
      parent = id,
      score = settings.other_score,
      group = settings.group,
      description = 'regexd rules without a symbol of their own (listed in the options)' ..
          (k > 1 and string.format(', continued (%d)', k) or ''),
    })
  end
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

-- rule id -> {score, description, name}: SpamAssassin's public rules, then `symbols` over them
local rule_defs = {}
if settings.spamassassin_rules then
  local t0 = os.clock()
  local sa, files, problems = load_sa_rules(settings.spamassassin_rules, settings.score_set)
  for _, p in ipairs(problems) do config_error('spamassassin_rules: %s', p) end
  local count = 0
  for rule_id, d in pairs(sa) do
    rule_defs[rule_id] = {score = d.score, description = d.description}
    count = count + 1
  end
  rspamd_logger.infox(rspamd_config, 'regexd: %s SpamAssassin rules with a score in set %s from %s files ' ..
      '(%s ms)', count, settings.score_set, files, math.floor((os.clock() - t0) * 1000))
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
    local d = rule_defs[rule_id] or {}
    rule_defs[rule_id] = {score = score, description = description or d.description, name = name}
  end
end
for rule_id, d in pairs(rule_defs) do
  local name = d.name or (settings.symbol_prefix .. rule_id)
  rule_symbols[rule_id] = name
  rspamd_config:register_symbol({
    name = name,
    type = 'virtual',
    parent = id,
    score = d.score,
    group = settings.group,
    description = d.description or ('regexd rule ' .. rule_id),
  })
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
