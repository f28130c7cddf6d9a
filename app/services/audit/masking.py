"""What never enters the audit trail: a password, hash, token or secret, whatever event
carries one by mistake. The core's events carry none (docs/events.md); this is the net for
the modules' events and for the future."""

from __future__ import annotations

import re
from typing import Any

MASK = "[masked]"
# A key naming a credential: password, password_hash, current_password, token, access_token,
# secret, client_secret, api_key, authorization. (Not `hash` or `signature`: a checkpoint's
# chain head and its HMAC are public by design.)
_SECRET_KEY = re.compile(r"password|passwd|secret|token|api_?key|authorization", re.IGNORECASE)


def masked(value: Any) -> Any:
    """value with every credential-named key's value replaced by MASK, and every string made
    encodable as UTF-8 (a lone surrogate would make the canonical form unhashable)."""
    if isinstance(value, dict):
        return {_text(k): MASK if _SECRET_KEY.search(str(k)) else masked(v) for k, v in value.items()}
    if isinstance(value, list):
        return [masked(item) for item in value]
    if isinstance(value, str):
        return _text(value)
    return value


def _text(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    try:
        value.encode()
        return value
    except UnicodeEncodeError:
        return value.encode("utf-8", "replace").decode()
