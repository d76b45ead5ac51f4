"""Lua scripts that keep the channel streams and the queued index in step.

Design (README, "Ordering"): PostgreSQL decides which message of a key may
go; Redis only says which messages are worth a claim. A stream entry is a
hint ("message X may be sendable now"): the worker's claim refuses it when
an earlier message of its key is still open, so a lost, duplicated or
reordered entry costs a wasted read or a reconciler pass, never order.

`postline:queued` maps a message id to its latest stream entry, so the
reconciler can tell in O(1) whether an open key's head is already queued.
A script runs atomically, so an entry and its index field are written (and
removed) together, also in the AOF.

Every key a script touches comes in KEYS, values in ARGV; no script builds
a key name (they are all in `keys`):

- PUSH (and PUSH_TRACED): the queued index and the channel streams of the batch;
- ACK: the queued index and the streams of the entries;
- PROMOTE: the delay set, the queued index and every channel stream (which
  stream a due retry goes to is only known inside the script).

That is what Redis Cluster asks of a script; the keys would also need a
common hash tag (see `keys`).
"""

from __future__ import annotations

# KEYS[1]: the queued index, KEYS[2..]: channel streams. ARGV: repeated
# triples (message id, KEYS index of its stream, ordering key). Adds one
# stream entry per message; returns how many.
PUSH = """
local n = 0
for i = 1, #ARGV, 3 do
  local id, stream, key = ARGV[i], KEYS[tonumber(ARGV[i + 1])], ARGV[i + 2]
  local entry = redis.call('XADD', stream, '*', 'id', id, 'k', key)
  redis.call('HSET', KEYS[1], id, stream .. ' ' .. entry)
  n = n + 1
end
return n
"""

# PUSH, with each message's W3C trace context in the entry's field `tp`:
# ARGV is repeated quadruples (PUSH's triple, then the traceparent; "" adds
# no field). Used only while tracing is on, so PUSH's entries and arguments
# stay as they were when it is off.
PUSH_TRACED = """
local n = 0
for i = 1, #ARGV, 4 do
  local id, stream, key, tp = ARGV[i], KEYS[tonumber(ARGV[i + 1])], ARGV[i + 2], ARGV[i + 3]
  local entry
  if tp == '' then
    entry = redis.call('XADD', stream, '*', 'id', id, 'k', key)
  else
    entry = redis.call('XADD', stream, '*', 'id', id, 'k', key, 'tp', tp)
  end
  redis.call('HSET', KEYS[1], id, stream .. ' ' .. entry)
  n = n + 1
end
return n
"""

# KEYS[1]: the queued index, KEYS[2..]: streams. ARGV[1]: the consumer
# group's name, then repeated triples (KEYS index of the stream, entry id,
# message id). Acknowledges and deletes each entry; drops the message's
# index field only if it still names this entry (a newer entry of the same
# message stays indexed).
ACK = """
local group = ARGV[1]
for i = 2, #ARGV, 3 do
  local stream, entry, id = KEYS[tonumber(ARGV[i])], ARGV[i + 1], ARGV[i + 2]
  redis.call('XACK', stream, group, entry)
  redis.call('XDEL', stream, entry)
  if id ~= '' and redis.call('HGET', KEYS[1], id) == stream .. ' ' .. entry then
    redis.call('HDEL', KEYS[1], id)
  end
end
return 1
"""

# KEYS[1]: the delay set, KEYS[2]: the queued index, KEYS[3..]: the channel
# streams. ARGV[1]: now (unix seconds), ARGV[2]: how many, ARGV[3..]: the
# channel of each stream, in the order of KEYS[3..]. Moves due members out
# of the delay set atomically, so two workers never move the same one. A
# member is `r|<id>|<channel>|<key>` (a retry: it goes straight back to its
# stream) or `s|<id>|<channel>|<key>` (a scheduled send: returned, so that
# PostgreSQL gives it its place in the key's queue before it is queued). A
# retry of a channel without a stream is dropped: no worker would read it,
# and the reconciler queues its message from PostgreSQL.
PROMOTE = """
local streams = {}
for i = 3, #KEYS do
  streams[ARGV[i]] = KEYS[i]
end
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
local scheduled = {}
for _, m in ipairs(due) do
  redis.call('ZREM', KEYS[1], m)
  local kind, rest = string.sub(m, 1, 1), string.sub(m, 3)
  local a = string.find(rest, '|', 1, true)
  local b = string.find(rest, '|', a + 1, true)
  local id = string.sub(rest, 1, a - 1)
  local channel, key = string.sub(rest, a + 1, b - 1), string.sub(rest, b + 1)
  if kind == 'r' then
    local stream = streams[channel]
    if stream then
      local entry = redis.call('XADD', stream, '*', 'id', id, 'k', key)
      redis.call('HSET', KEYS[2], id, stream .. ' ' .. entry)
    end
  else
    table.insert(scheduled, m)
  end
end
return {#due, scheduled}
"""
