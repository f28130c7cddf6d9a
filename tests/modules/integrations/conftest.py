"""Shared by the integration_module tests: a loopback receiver, endpoints, Stripe signing."""

from __future__ import annotations

import hashlib
import hmac
import json
import time

import pytest

from tests.modules.integrations.receiver import Receiver

STRIPE_SECRET = "whsec_stripe_test_0123456789abcdef"


@pytest.fixture
def receiver():
    with Receiver() as running:
        yield running


def register_endpoint(client, admin, url: str, **fields) -> dict:
    response = client.post("/webhooks/endpoints", json={"url": url, **fields}, headers=admin.headers)
    assert response.status_code == 201, response.json
    return response.json


def stripe_header(body: bytes, secret: str = STRIPE_SECRET, timestamp: int | None = None) -> str:
    """Stripe-Signature computed here, independently of the app's code."""
    t = int(time.time()) if timestamp is None else timestamp
    signature = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={t},v1={signature}"


def checkout_event(user_id: str | None, session_id: str = "cs_test_1", event_id: str = "evt_1", **session) -> bytes:
    obj = {
        "id": session_id,
        "object": "checkout.session",
        "client_reference_id": user_id,
        "payment_status": "paid",
        "amount_total": 500,
        "currency": "eur",
        "metadata": {},
        **session,
    }
    return json.dumps({"id": event_id, "type": "checkout.session.completed", "data": {"object": obj}}).encode()


def post_stripe(client, body: bytes, header: str | None = "sign"):
    headers = {"Content-Type": "application/json"}
    if header == "sign":
        header = stripe_header(body)
    if header is not None:
        headers["Stripe-Signature"] = header
    return client.post("/integrations/payments/stripe", data=body, headers=headers)
