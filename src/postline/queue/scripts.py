"""Lua scripts that keep the per-key FIFOs and the channel streams in step.

Design (README, "Ordering"): every ordering key has a Redis list
`postline:fifo:<key>` of `<message id>|<channel>` members in acceptance order.
Only the head of a list is ever in a channel stream, so at most one message
of a key is being worked on at any moment, across all workers. A script runs
atomically, so pushing and advancing can never interleave badly.

The scripts build stream names from the member's channel, so they are not
Redis Cluster safe; Postline targets a single Redis (with replicas).
"""

from __future__ import annotations

FIFO_PREFIX = "postline:fifo:"

# KEYS: none (names are built from ARGV). ARGV: repeated triples of
# (ordering key, member, message id); returns how many were appended.
# `check` = "1" makes the push idempotent (the reconciler's use): a member
# already in its list is not pushed again.
PUSH = """
local check = ARGV[1] == '1'
local pushed = 0
for i = 2, #ARGV, 3 do
  local key, member, id = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local fifo = 'postline:fifo:' .. key
  local present = false
  if check then present = redis.call('LPOS', fifo, member) end
  if not present then
    pushed = pushed + 1
    if redis.call('RPUSH', fifo, member) == 1 then
      local channel = string.sub(member, string.find(member, '|', 1, true) + 1)
      redis.call('XADD', 'message_queue:' .. channel, '*', 'id', id, 'k', key)
    end
  end
end
return pushed
"""

# ARGV: repeated pairs of (ordering key, member). Releases each member from its
# FIFO: when it is the head, pops it and puts the next head into its channel
# stream; when it waits further back (a cancelled message), just removes it.
ADVANCE = """
local moved = 0
for i = 1, #ARGV, 2 do
  local key, member = ARGV[i], ARGV[i + 1]
  local fifo = 'postline:fifo:' .. key
  if redis.call('LINDEX', fifo, 0) == member then
    redis.call('LPOP', fifo)
    local nxt = redis.call('LINDEX', fifo, 0)
    if nxt then
      local sep = string.find(nxt, '|', 1, true)
      redis.call('XADD', 'message_queue:' .. string.sub(nxt, sep + 1), '*',
                 'id', string.sub(nxt, 1, sep - 1), 'k', key)
      moved = moved + 1
    end
  else
    redis.call('LREM', fifo, 1, member)
  end
end
return moved
"""

# KEYS[1]: the delay set. ARGV[1]: now (unix seconds), ARGV[2]: how many.
# Moves due members out of the delay set atomically, so two workers never move
# the same one. A member is `r|<id>|<channel>|<key>` (a retry: the message is
# still its key's head, so it goes straight back to its stream) or
# `s|<id>|<channel>|<key>` (a scheduled send: it joins the back of its FIFO).
PROMOTE = """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
for _, m in ipairs(due) do
  redis.call('ZREM', KEYS[1], m)
  local kind, rest = string.sub(m, 1, 1), string.sub(m, 3)
  local a = string.find(rest, '|', 1, true)
  local b = string.find(rest, '|', a + 1, true)
  local id = string.sub(rest, 1, a - 1)
  local channel, key = string.sub(rest, a + 1, b - 1), string.sub(rest, b + 1)
  if kind == 'r' then
    redis.call('XADD', 'message_queue:' .. channel, '*', 'id', id, 'k', key)
  else
    local fifo = 'postline:fifo:' .. key
    local member = id .. '|' .. channel
    if not redis.call('LPOS', fifo, member) then
      if redis.call('RPUSH', fifo, member) == 1 then
        redis.call('XADD', 'message_queue:' .. channel, '*', 'id', id, 'k', key)
      end
    end
  end
end
return #due
"""
