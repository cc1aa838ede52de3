-- plugin_pack_test.lua: the plugin's request packing for large messages (issue 14, item 12):
-- every class kept to max_class_bytes, the request cut to fit max_frame instead of not being sent.
--   rspamadm lua tests/support/plugin_pack_test.lua -a PLUGIN
-- Prints "plugin_pack: PASS" or fails with the first broken expectation.
regexd_test_exports = {}
dofile(arg[1])
local pack_scan = assert(regexd_test_exports.pack_scan, 'the plugin does not export pack_scan')

local function check(cond, what)
  if not cond then error('plugin_pack: FAIL: ' .. what, 2) end
end

-- The buffers a packed request holds, decoded back: {{cls, data}...} and the rule-set name.
local function unpack_request(pieces, body_len, n)
  local body = table.concat(pieces)
  check(#body == body_len, string.format('body_len %d, pieces hold %d bytes', body_len, #body))
  local pos = 1
  local function u32()
    local b1, b2, b3, b4 = body:byte(pos, pos + 3)
    pos = pos + 4
    return b1 + b2 * 256 + b3 * 65536 + b4 * 16777216
  end
  local function str()
    local len = u32()
    local s = body:sub(pos, pos + len - 1)
    pos = pos + len
    return s
  end
  local name = str()
  local count = u32()
  check(count == n, string.format('buffer count %d, n %d', count, n))
  local bufs = {}
  for _ = 1, count do
    local cls = str()
    bufs[#bufs + 1] = {cls, str()}
  end
  check(pos == #body + 1, 'trailing bytes in the packed request')
  return name, bufs
end

local function by_class(bufs)
  local res = {}
  for _, b in ipairs(bufs) do
    res[b[1]] = res[b[1]] or {}
    table.insert(res[b[1]], b[2])
  end
  return res
end

local full = 'From: a@example.org\nSubject: big\n\n' .. string.rep('0123456789abcdef', 3 * 65536) -- 3 MiB
local lines = {}
for i = 1, 3000 do lines[i] = string.format('line %04d of the body\n', i) end -- 22 bytes each
local groups = {
  {cls = 'full', bufs = {full}},
  {cls = 'body', bufs = lines},
  {cls = 'header:Subject', bufs = {'big\n'}},
}

-- 1. A small message is packed whole, buffers in order.
do
  local small = {{cls = 'body', bufs = {'a\n', 'b\n'}}, {cls = 'header:Subject', bufs = {'x\n'}}}
  local pieces, len, n, cut = pack_scan('rs', small, 1024 * 1024, 64 * 1024 * 1024)
  local name, bufs = unpack_request(pieces, len, n)
  check(name == 'rs' and n == 3 and cut == nil, 'small message changed')
  check(bufs[1][2] == 'a\n' and bufs[2][2] == 'b\n' and bufs[3][1] == 'header:Subject', 'small message order')
end

-- 2. max_class_bytes: full keeps its first MiB, the other classes are whole.
do
  local pieces, len, n, cut = pack_scan('rs', groups, 1024 * 1024, 64 * 1024 * 1024)
  local _, bufs = unpack_request(pieces, len, n)
  local c = by_class(bufs)
  check(#c.full == 1 and c.full[1] == full:sub(1, 1024 * 1024), 'full is not its first MiB')
  check(#c.body == 3000 and c.body[3000] == lines[3000], 'body lines were cut below the class cap')
  check(c['header:Subject'][1] == 'big\n', 'header changed')
  check(cut and #cut == 1 and cut[1] == 'full', 'cut classes reported wrong')
end

-- 3. max_frame smaller than the message: the request fits, every class keeps its start.
do
  local max_frame = 100000
  local pieces, len, n, cut = pack_scan('rs', groups, 1024 * 1024, max_frame)
  check(6 + len <= max_frame, string.format('request of %d bytes over max_frame %d', 6 + len, max_frame))
  local _, bufs = unpack_request(pieces, len, n)
  local c = by_class(bufs)
  check(c.full[1] == full:sub(1, #c.full[1]) and #c.full[1] > 10000, 'full lost its start')
  check(c.body[1] == lines[1] and #c.body > 100 and #c.body < 3000, 'body not cut line by line from its start')
  local body_bytes = 0
  for _, l in ipairs(c.body) do body_bytes = body_bytes + #l end
  check(body_bytes <= #c.full[1], 'a class kept more than the cap')
  check(c['header:Subject'][1] == 'big\n', 'the small header class was cut')
  check(cut and #cut == 2, 'cut classes reported wrong')
end

print('plugin_pack: PASS')
