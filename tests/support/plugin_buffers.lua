-- plugin_buffers.lua: the buffers the Rspamd plugin (clients/rspamd/regexd.lua) builds for each
-- message, in sa_buffers.pl's format, for tests/integration/sa_buffers.sh.
--   rspamadm lua tests/support/plugin_buffers.lua -a "PLUGIN OUTDIR LISTFILE"
-- LISTFILE holds one message path a line; header requests come from $SA_BUFFERS_HEADERS.
local rspamd_task = require "rspamd_task"
require("rspamd_url").init(os.getenv('RSPAMD_TLD_FILE') or '/usr/share/rspamd/effective_tld_names.dat')

local args = {}
for w in arg[1]:gmatch('%S+') do args[#args + 1] = w end
local plugin, outdir, listfile = args[1], args[2], args[3]

regexd_test_exports = {} -- the plugin hands its buffer building over instead of configuring itself
dofile(plugin)
local make_extractor = regexd_test_exports.make_extractor

local headers = {}
for w in (os.getenv('SA_BUFFERS_HEADERS') or ''):gmatch('%S+') do headers[#headers + 1] = w end

local function esc(s)
  return (s:gsub('\\', '\\\\'):gsub('\n', '\\n'):gsub('\r', '\\r'):gsub('\t', '\\t'))
end

for file in io.lines(listfile) do
  local f = assert(io.open(file, 'rb'))
  local content = f:read('*a')
  f:close()
  local ok, task = rspamd_task.load_from_string(content, rspamd_config)
  assert(ok, 'cannot load ' .. file)
  task:process_message()
  local base = file:gsub('^.*/([^/]+)/([^/]+)$', '%1_%2')
  local o = assert(io.open(outdir .. '/' .. base .. '.rx', 'w'))
  local memo = {}
  local function build(cls)
    local out = {}
    make_extractor(cls)(task, out, memo)
    return out
  end
  for _, cls in ipairs({'body', 'rawbody'}) do
    for _, b in ipairs(build(cls)) do o:write(cls, '\t', esc(tostring(b)), '\n') end
  end
  local uris, seen = {}, {}
  for _, u in ipairs(build('url')) do
    u = esc(u)
    if not seen[u] then seen[u] = true; uris[#uris + 1] = u end
  end
  table.sort(uris)
  for _, u in ipairs(uris) do o:write('url\t', u, '\n') end
  for _, h in ipairs(headers) do
    local v = build('header:' .. h)[1]
    o:write('header:', h, '\t', v and esc(tostring(v)) or 'ABSENT', '\n')
  end
  o:close()
  task:destroy()
end
