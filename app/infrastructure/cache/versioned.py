"""The one encoding of a versioned cache value, `<version>|<payload>`, and the rule for
replacing one: only a strictly newer version wins. Nothing else knows the format: the
backends store what encode() gives them (Redis applies the same rule in SET_IF_NEWER),
and readers get (version, payload) back from decode().

A version is a non-negative integer the writer takes from the database (a wallet row's
version, a user's token version), so a slow writer holding an older read can never put
back what a newer one replaced.
"""

from __future__ import annotations

from app.vocabulary import ascii_int

SEPARATOR = "|"


def encode(version: int, payload: str) -> str:
    return f"{version}{SEPARATOR}{payload}"


def decode(raw: str | None) -> tuple[int, str] | None:
    """(version, payload), or None for a miss or a value that was not written versioned."""
    if not raw:
        return None
    head, separator, payload = raw.partition(SEPARATOR)
    version = ascii_int(head, max_digits=30) if separator else None
    return None if version is None else (version, payload)


def is_newer(version: int, current: str | None) -> bool:
    """Whether a write of `version` replaces `current` (a miss or an unversioned value always is)."""
    stored = decode(current)
    return stored is None or stored[0] < version


# is_newer() and encode(), atomically in Redis, for any number of keys:
# KEYS = the keys; ARGV = ttl in ms, then version and payload per key. Returns how many were stored.
SET_IF_NEWER = f"""
local stored = 0
for i, key in ipairs(KEYS) do
  local version = tonumber(ARGV[2 * i])
  local current = redis.call('GET', key)
  local v = current and tonumber(string.match(current, '^(%d+){SEPARATOR}'))
  if not v or v < version then
    redis.call('SET', key, ARGV[2 * i] .. '{SEPARATOR}' .. ARGV[2 * i + 1], 'PX', ARGV[1])
    stored = stored + 1
  end
end
return stored
"""
