"""Opaque keyset cursors: a page never costs more because of the rows before it."""

from __future__ import annotations

import base64
import json

from app.services.errors import ValidationFailed

DEFAULT_LIMIT = 50
MAX_LIMIT = 200


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
        raise ValidationFailed.field("cursor", "invalid cursor") from None
    if not isinstance(values, list) or len(values) != arity:
        raise ValidationFailed.field("cursor", "invalid cursor")
    return values
