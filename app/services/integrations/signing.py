"""Signatures on both sides: Standard Webhooks for what we send, Stripe's scheme for what we receive."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from collections.abc import Iterable
from datetime import UTC, datetime

from standardwebhooks import Webhook

from app.vocabulary import ascii_int

SECRET_PREFIX = "whsec_"
SECRET_BYTES = 32  # the spec asks for 24 to 64 random bytes
STRIPE_TOLERANCE_SECONDS = 300  # Stripe's own libraries' default


def new_secret() -> str:
    """`whsec_` + base64 of random bytes: unique per endpoint, shown to the admin once."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def signature_header(secrets_: Iterable[str], message_id: str, timestamp: int, body: str) -> str:
    """`webhook-signature`: one `v1,<base64>` per valid secret, space-separated (rotation)."""
    when = datetime.fromtimestamp(timestamp, UTC)
    return " ".join(Webhook(secret).sign(message_id, when, body) for secret in secrets_)


def stripe_signature(secret: str, timestamp: int, body: bytes) -> str:
    """The `v1` of a Stripe-Signature header: hex HMAC-SHA256 of "{t}.{body}"."""
    return hmac.new(secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()


def verify_stripe(
    secret: str, header: str | None, body: bytes, tolerance: int = STRIPE_TOLERANCE_SECONDS, now: float | None = None
) -> bool:
    """Whether `Stripe-Signature: t=...,v1=...[,v1=...]` signs this exact body within the tolerance.

    Any matching v1 passes (Stripe sends one per secret while a secret is rolled); other
    schemes (v0) are ignored; compared in constant time.
    """
    if not header:
        return False
    timestamp: int | None = None
    candidates: list[str] = []
    for item in header.split(","):
        key, _, value = item.strip().partition("=")
        if key == "t":
            timestamp = ascii_int(value, max_digits=12)
        elif key == "v1" and value:
            candidates.append(value)
    if timestamp is None or not candidates:
        return False
    if abs((time.time() if now is None else now) - timestamp) > tolerance:
        return False
    expected = stripe_signature(secret, timestamp, body)
    return any(hmac.compare_digest(expected.encode(), candidate.encode()) for candidate in candidates)
