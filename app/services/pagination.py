"""Opaque keyset cursors: a page never costs more because of the rows before it."""

from __future__ import annotations

import base64
import json

from app.services.errors import ValidationFailed

DEFAULT_LIMIT = 50
MAX_LIMIT = 200
BIGINT_MAX = 2**63 - 1  # the largest id either database stores


def invalid_cursor() -> ValidationFailed:
    return ValidationFailed.field("cursor", "invalid cursor")


def encode_cursor(*values) -> str:
    raw = json.dumps(list(values), separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str | None, arity: int) -> list | None:
    if not cursor:
        return None
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        values = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (ValueError, TypeError):
        raise invalid_cursor() from None
    if not isinstance(values, list) or len(values) != arity:
        raise invalid_cursor()
    return values


# A cursor comes back from the client: each value it carries is checked as the database
# would take it, or a forged one reaches the driver and fails there (a 500).


def cursor_id(value) -> int:
    """A row id from a cursor: a JSON integer in BIGINT's range (true is not one)."""
    if type(value) is not int or not 0 <= value <= BIGINT_MAX:
        raise invalid_cursor()
    return value


def cursor_text(value) -> str:
    """A string key from a cursor: no NUL (PostgreSQL cannot compare one), valid UTF-8."""
    if not isinstance(value, str) or "\x00" in value:
        raise invalid_cursor()
    try:
        value.encode()
    except UnicodeEncodeError:  # a lone surrogate ("\ud800") no driver can send
        raise invalid_cursor() from None
    return value
