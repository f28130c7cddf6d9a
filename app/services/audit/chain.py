"""The hash chain itself: the canonical form of an entry, its hash, and the walk that finds
the first broken link. Plain data and the standard library only, so the same code checks
the database (app.services.audit.trail) and an export file offline (app.services.audit.export).

An entry is the API's dict: `{sequence, event_id, occurred_at, action, actor: {type, id},
target: {type, id}, request_id, remote_addr, data, prev_hash, hash}`. Its canonical content
is every field but `prev_hash` and `hash`, as JSON with sorted keys, no whitespace and UTF-8
(RFC 8785 for these values: strings, integers, booleans and null, never a float);
`hash = sha256(prev_hash + canonical).hexdigest()`, and the first entry's prev_hash is 64 zeros.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

GENESIS = "0" * 64
LINK_FIELDS = ("prev_hash", "hash")

ALTERED, RELINKED, MISSING = "altered", "relinked", "missing"


def canonical(entry: Mapping[str, Any]) -> bytes:
    content = {key: value for key, value in entry.items() if key not in LINK_FIELDS}
    return json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def entry_hash(prev_hash: str, entry: Mapping[str, Any]) -> str:
    return hashlib.sha256(prev_hash.encode() + canonical(entry)).hexdigest()


@dataclass(frozen=True)
class Break:
    sequence: int
    reason: str  # altered | relinked | missing

    def public(self) -> dict[str, Any]:
        return {"sequence": self.sequence, "reason": self.reason}


@dataclass
class Walk:
    """Checks entries fed in sequence order against where the chain should go on from: the
    next sequence and the hash it must link to. Stops at the first break."""

    next_sequence: int
    prev_hash: str
    checked: int = 0
    head_sequence: int = 0
    head_hash: str = GENESIS
    broken: Break | None = None

    def __post_init__(self) -> None:
        self.head_sequence, self.head_hash = self.next_sequence - 1, self.prev_hash

    def feed(self, entries: Iterable[Mapping[str, Any]]) -> bool:
        """False once broken (the rest need not be read)."""
        for entry in entries:
            if self.broken is not None:
                return False
            self.check(entry)
        return self.broken is None

    def check(self, entry: Mapping[str, Any]) -> None:
        sequence = entry.get("sequence")
        if sequence != self.next_sequence:
            # A later sequence: the ones between were deleted. An earlier (or no) one: renumbered.
            late = isinstance(sequence, int) and sequence > self.next_sequence
            self.broken = Break(self.next_sequence, MISSING if late else ALTERED)
        elif entry.get("prev_hash") != self.prev_hash:
            self.broken = Break(sequence, RELINKED)
        elif _recomputed(entry) != entry.get("hash"):
            self.broken = Break(sequence, ALTERED)
        else:
            self.checked += 1
            self.next_sequence, self.prev_hash = sequence + 1, entry["hash"]
            self.head_sequence, self.head_hash = sequence, entry["hash"]

    def missing_after(self, expected_sequence: int) -> None:
        """The chain should reach expected_sequence (a checkpoint, an export's head) and does not."""
        if self.broken is None and self.head_sequence < expected_sequence:
            self.broken = Break(self.head_sequence + 1, MISSING)

    @property
    def verified(self) -> bool:
        return self.broken is None

    def verdict(self) -> dict[str, Any]:
        return {
            "verified": self.verified,
            "entries_checked": self.checked,
            "head": {"sequence": self.head_sequence, "hash": self.head_hash},
            "first_broken": self.broken.public() if self.broken else None,
        }


def _recomputed(entry: Mapping[str, Any]) -> str | None:
    prev_hash = entry.get("prev_hash")
    if not isinstance(prev_hash, str):
        return None
    try:
        return entry_hash(prev_hash, entry)
    except (TypeError, ValueError):  # not JSON-serialisable: an edited file
        return None
