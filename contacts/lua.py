"""Lua scripts that write a record and every index it belongs to in one atomic step."""

from __future__ import annotations

# The hash keeps `_idx` (the recipe of the index sets it is in, see keys.CONTACT_INDEX), `_geo` (its GEO
# key or "") and `_uniq` (its value in the unique hash), so a later write leaves exactly the old indexes
# whatever changed meanwhile.
_EXPAND = r"""
local function expand(recipe, templates)
  local out, region, role, position, active = {}, nil, nil, nil, false
  for token in string.gmatch(recipe, '%S+') do
    local letter, value = string.sub(token, 1, 1), string.sub(token, 2)
    local base = templates[letter]
    if letter == 'R' then
      region = value
      for _, n in ipairs({2, 4, 6, 9}) do
        if n < #value then out[#out + 1] = base .. string.sub(value, 1, n) end
      end
    elseif letter == 'L' then
      role = value
    elseif letter == 'P' then
      position = value
    elseif letter == 'A' then
      active = true
    end
    out[#out + 1] = base .. value
  end
  if active and region then
    for _, n in ipairs({2, 4, 6, 9, 12}) do
      if n <= #region then
        if role and templates['Q'] then out[#out + 1] = templates['Q'] .. string.sub(region, 1, n) .. ':' .. role end
        if position and templates['J'] then
          out[#out + 1] = templates['J'] .. string.sub(region, 1, n) .. ':' .. position
        end
      end
    end
  end
  return out
end
"""

# ARGV: 1 hash prefix, 2 id zset, 3 unique hash ("" none), 4 unique value, 5 id, 6 mode, 7 fields JSON,
#       8 index recipe, 9 geo key ("" none), 10 lon, 11 lat, 12 now (ISO), 13 index templates JSON,
#       14 routes hash (contacts only; "" or absent for devices and sites): id → what a fan-out needs
# A recipe token `P?<position>` (contacts) keeps the stored position: the old record's `P` token and `position`
# field, or `<position>` for a new record (an import sheet without a 职务 column leaves positions as they are).
# mode: upsert  - the id is the unique value's owner when there is one, else ARGV[5] (new record)
#       create  - ARGV[5] is new; refused when the unique value is taken
#       update  - ARGV[5] must exist; refused when the unique value belongs to another record
# Fields not given are kept. Returns {status, id}: created | updated | unchanged | conflict | missing.
UPSERT = _EXPAND + r"""
local templates = cjson.decode(ARGV[13])
local prefix, ids, uhash, uval, id, mode = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
if mode == 'upsert' then
  local owner = redis.call('HGET', uhash, uval)
  if owner then id = owner end
elseif uhash ~= '' then
  local owner = redis.call('HGET', uhash, uval)
  if owner and owner ~= id then return {'conflict', owner} end
end
local key = prefix .. id
local old = redis.call('HGETALL', key)
if mode == 'update' and #old == 0 then return {'missing', id} end
local fields = cjson.decode(ARGV[7])
local oldmap = {}
for i = 1, #old, 2 do oldmap[old[i]] = old[i + 1] end
local isnew = (#old == 0)
local recipe = ARGV[8]
local kept = string.match(' ' .. recipe .. ' ', ' P%?(%S*) ')
if kept then
  local pos = kept
  if not isnew then pos = string.match(' ' .. (oldmap['_idx'] or '') .. ' ', ' P(%S+) ') or '' end
  fields['position'] = pos
  local tokens = {}
  for token in string.gmatch(recipe, '%S+') do
    if string.sub(token, 1, 2) == 'P?' then
      if pos ~= '' then tokens[#tokens + 1] = 'P' .. pos end
    else
      tokens[#tokens + 1] = token
    end
  end
  recipe = table.concat(tokens, ' ')
end
if not isnew then
  local same = (oldmap['_idx'] == recipe) and (oldmap['_geo'] or '') == ARGV[9]
  for k, v in pairs(fields) do
    if oldmap[k] ~= v then same = false end
  end
  if same then return {'unchanged', id} end
  for _, k in ipairs(expand(oldmap['_idx'] or '', templates)) do redis.call('SREM', k, id) end
  if (oldmap['_geo'] or '') ~= '' then redis.call('ZREM', oldmap['_geo'], id) end
  local olduniq = oldmap['_uniq'] or ''
  if uhash ~= '' and olduniq ~= '' and olduniq ~= uval and redis.call('HGET', uhash, olduniq) == id then
    redis.call('HDEL', uhash, olduniq)
  end
end
local args = {}
for k, v in pairs(fields) do
  args[#args + 1] = k
  args[#args + 1] = v
end
args[#args + 1] = '_idx'; args[#args + 1] = recipe
args[#args + 1] = '_geo'; args[#args + 1] = ARGV[9]
args[#args + 1] = '_uniq'; args[#args + 1] = uval
args[#args + 1] = 'updated'; args[#args + 1] = ARGV[12]
if isnew then args[#args + 1] = 'created'; args[#args + 1] = ARGV[12] end
redis.call('HSET', key, unpack(args))
for _, k in ipairs(expand(recipe, templates)) do redis.call('SADD', k, id) end
if ARGV[9] ~= '' then redis.call('GEOADD', ARGV[9], ARGV[10], ARGV[11], id) end
redis.call('ZADD', ids, 0, id)
if uhash ~= '' then redis.call('HSET', uhash, uval, id) end
if ARGV[14] and ARGV[14] ~= '' then
  local v = redis.call('HMGET', key, 'phone', 'phone_kind', 'role', 'region', 'channels', 'lang', 'active', 'name')
  redis.call('HSET', ARGV[14], id, table.concat({id, v[1] or '', v[2] or 'mobile', v[3] or '', v[4] or '', v[5] or '',
                                                v[6] or 'zh-CN', v[7] or '1', v[8] or ''}, '\31'))
end
if isnew then return {'created', id} end
return {'updated', id}
"""

# ARGV: 1 hash prefix, 2 id zset, 3 unique hash ("" none), 4 id, 5 index templates JSON, 6 routes hash ("" none),
# 7.. sets kept apart from the index recipe that the record leaves too (contacts: the needs_check set).
# Returns 1 when removed, 0 when absent.
DELETE = _EXPAND + r"""
local key = ARGV[1] .. ARGV[4]
local h = redis.call('HMGET', key, '_idx', '_geo', '_uniq')
if redis.call('EXISTS', key) == 0 then return 0 end
for _, k in ipairs(expand(h[1] or '', cjson.decode(ARGV[5]))) do redis.call('SREM', k, ARGV[4]) end
if h[2] and h[2] ~= '' then redis.call('ZREM', h[2], ARGV[4]) end
if ARGV[3] ~= '' and h[3] and h[3] ~= '' and redis.call('HGET', ARGV[3], h[3]) == ARGV[4] then
  redis.call('HDEL', ARGV[3], h[3])
end
redis.call('ZREM', ARGV[2], ARGV[4])
if ARGV[6] and ARGV[6] ~= '' then redis.call('HDEL', ARGV[6], ARGV[4]) end
for i = 7, #ARGV do redis.call('SREM', ARGV[i], ARGV[4]) end
redis.call('DEL', key)
return 1
"""

# ARGV: 1 key, 2 now, then field/value pairs. Sets them only when the record still exists.
# Returns 1 when a value changed, 0 when all were already so, -1 when the record is gone.
SET_FIELDS = r"""
if redis.call('EXISTS', ARGV[1]) == 0 then return -1 end
local changed = 0
for i = 3, #ARGV, 2 do
  if redis.call('HGET', ARGV[1], ARGV[i]) ~= ARGV[i + 1] then
    redis.call('HSET', ARGV[1], ARGV[i], ARGV[i + 1])
    changed = 1
  end
end
if changed == 1 then redis.call('HSET', ARGV[1], 'updated', ARGV[2]) end
return changed
"""


# Contact ids in lexical order after a start, kept when they are in every set given and (optionally) in none of some,
# read only: listing never needs a scratch key, so it works on a replica and on a Redis out of memory.
# ARGV: 1 id zset, 2 start ("-" or "(" .. id), 3 how many to find, 4 how many ids to look at at most,
#       5 sets the ids must not be in, separated by spaces ("" none), 6.. sets the ids must be in.
# Returns {status, last id looked at, found ids...}: status "end" when the id set is exhausted, else "more"
# (found enough, or looked at the most it may: the caller goes on from the last id looked at).
WALK = """
local ids, start, want, budget = ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
local notin = {}
for name in string.gmatch(ARGV[5], '%S+') do notin[#notin + 1] = name end
local found, seen, last = {}, 0, ''
while seen < budget do
  local chunk = redis.call('ZRANGEBYLEX', ids, start, '+', 'LIMIT', 0, math.min(500, budget - seen))
  if #chunk == 0 then return {'end', last, unpack(found)} end
  for _, id in ipairs(chunk) do
    seen = seen + 1
    last = id
    local keep = true
    for _, name in ipairs(notin) do
      if keep then keep = redis.call('SISMEMBER', name, id) == 0 end
    end
    for i = 6, #ARGV do
      if not keep then break end
      keep = redis.call('SISMEMBER', ARGV[i], id) == 1
    end
    if keep then
      found[#found + 1] = id
      if #found >= want then return {'more', last, unpack(found)} end
    end
  end
  start = '(' .. last
end
return {'more', last, unpack(found)}
"""


# Many contact hashes in one call, as one JSON document: ARGV[1] the key prefix, then ids.
# Packing thousands of HGETALL commands and parsing their replies costs the client far more than
# Redis; one script call answering one string does not. (Reads keys built from ARGV: on a Redis
# Cluster, fall back to a pipeline of HGETALL.)
GET_MANY = """
local out = {}
for i = 2, #ARGV do
  local flat = redis.call('HGETALL', ARGV[1] .. ARGV[i])
  if #flat > 0 then
    local h = {}
    for j = 1, #flat, 2 do h[flat[j]] = flat[j + 1] end
    h['@id'] = ARGV[i]
    out[#out + 1] = h
  end
end
if #out == 0 then return '[]' end
return cjson.encode(out)
"""


# What a fan-out needs of many contacts, as one string: records split by \x1e, fields by \x1f
# (id, phone, phone_kind, role, region, channels, lang, active, name). A few fields by HMGET and one
# reply string cost a third of full hashes as JSON, for the 100,000-contact warning.
ROUTES = """
local out = {}
for i = 2, #ARGV do
  local v = redis.call('HMGET', ARGV[1] .. ARGV[i], 'phone', 'phone_kind', 'role', 'region', 'channels', 'lang',
                       'active', 'name')
  if v[1] then
    out[#out + 1] = table.concat({ARGV[i], v[1], v[2] or 'mobile', v[3] or '', v[4] or '', v[5] or '',
                                  v[6] or 'zh-CN', v[7] or '1', v[8] or ''}, '\\31')
  end
end
return table.concat(out, '\\30')
"""


# A number flagged for follow-up (needs_check), or the flag taken off, without touching the record's other fields
# or its index recipe. ARGV: 1 the needs_check set, 2 mode ("set": only where not flagged yet; "clear"), then
# contact key, id, flag pairs ("" for clear). Per contact: 1 changed, 0 already so, -1 contact gone.
FLAG = """
local out = {}
for i = 3, #ARGV, 3 do
  local key, id, flag = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  if redis.call('EXISTS', key) == 0 then
    out[#out + 1] = -1
  elseif ARGV[2] == 'set' then
    local old = redis.call('HGET', key, 'needs_check')
    if old and old ~= '' then
      out[#out + 1] = 0
    else
      redis.call('HSET', key, 'needs_check', flag)
      redis.call('SADD', ARGV[1], id)
      out[#out + 1] = 1
    end
  else
    out[#out + 1] = redis.call('HDEL', key, 'needs_check')
    redis.call('SREM', ARGV[1], id)
  end
end
return out
"""
