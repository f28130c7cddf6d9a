"""Stripe's signature scheme at the edges of its tolerance, with the clock fixed."""

from __future__ import annotations

import hashlib
import hmac

from app.services.integrations.signing import verify_stripe

SECRET = "whsec_unit"
BODY = b'{"id":"evt_1"}'


def header(t: int, secret: str = SECRET, body: bytes = BODY) -> str:
    return f"t={t},v1={hmac.new(secret.encode(), f'{t}.'.encode() + body, hashlib.sha256).hexdigest()}"


def test_the_tolerance_is_300_seconds_either_way():
    now = 1_800_000_000
    assert verify_stripe(SECRET, header(now - 300), BODY, now=now)
    assert verify_stripe(SECRET, header(now + 300), BODY, now=now)
    assert not verify_stripe(SECRET, header(now - 301), BODY, now=now)
    assert not verify_stripe(SECRET, header(now + 301), BODY, now=now)


def test_any_v1_may_match_and_other_schemes_are_ignored():
    now = 1_800_000_000
    good = header(now).split(",v1=")[1]
    assert verify_stripe(SECRET, f"t={now},v0=abc,v1=deadbeef,v1={good}", BODY, now=now)
    assert not verify_stripe(SECRET, f"t={now},v0={good}", BODY, now=now)
    assert not verify_stripe(SECRET, header(now), BODY + b" ", now=now)
    assert not verify_stripe(SECRET, header(now, secret="other"), BODY, now=now)
