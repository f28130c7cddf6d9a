"""Inbound Stripe top-ups: verified first, then recorded with their deposit, once per session."""

from __future__ import annotations

import json
import time

import pytest
from sqlalchemy import func, select

from app.infrastructure.tables_integrations import PaymentEvent
from app.testing import assert_error, deliver_events, ledger_snapshot
from tests.modules.integrations.conftest import STRIPE_SECRET, checkout_event, post_stripe, stripe_header

pytestmark = pytest.mark.credit_settings(stripe_webhook_secret=STRIPE_SECRET, payments_credits_per_unit=2)


def balance(client, person) -> int:
    return client.get(f"/wallet/balance/{person.id}", headers=person.headers).json["balance"]


def payment_rows(app) -> int:
    with app.container.database().unit_of_work(write=False) as uow:
        return uow.session.scalar(select(func.count()).select_from(PaymentEvent))


def test_a_paid_checkout_deposits_once_however_often_it_comes(credit_app, credit_client, people):
    body = checkout_event(people.alice.id, metadata={"credits": "250"})
    for n in range(10):
        response = post_stripe(credit_client, body)
        assert response.status_code == 200, response.json
        assert response.json == {"received": True, "status": "credited", "duplicate": n > 0}
    assert balance(credit_client, people.alice) == 250
    history = credit_client.get("/transactions", headers=people.alice.headers).json["items"]
    (deposit,) = [t for t in history if t["type"] == "deposit"]
    assert deposit["amount"] == 250 and deposit["description"] == "stripe:cs_test_1"
    assert deposit["to_user_id"] == people.alice.id and deposit["from_user_id"] is None
    # An ordinary deposit in the events too, by the system.
    deliver_events(credit_app)
    feed = credit_client.get("/events?type=transaction.posted", headers=people.admin.headers).json["items"]
    (posted,) = [e for e in feed if e["data"]["transaction"]["id"] == deposit["id"]]
    assert posted["actor"] == {"type": "system", "id": None}
    listed = credit_client.get("/integrations/payments?status=credited", headers=people.admin.headers).json["items"]
    assert [(p["provider_id"], p["transaction_id"], p["amount"]) for p in listed] == [("cs_test_1", deposit["id"], 250)]


def test_without_metadata_credits_amount_total_times_the_rate(credit_client, people):
    response = post_stripe(credit_client, checkout_event(people.alice.id, amount_total=700))
    assert response.json["status"] == "credited"
    assert balance(credit_client, people.alice) == 1400  # CREDIT_PAYMENTS_CREDITS_PER_UNIT=2


def test_another_session_is_another_deposit(credit_client, people):
    post_stripe(credit_client, checkout_event(people.alice.id, "cs_a", "evt_a", amount_total=1))
    post_stripe(credit_client, checkout_event(people.alice.id, "cs_b", "evt_b", amount_total=1))
    assert balance(credit_client, people.alice) == 4


def test_an_unknown_user_is_recorded_unmatched_for_admins(credit_app, credit_client, people):
    before = ledger_snapshot(credit_app)
    for _ in range(2):
        response = post_stripe(credit_client, checkout_event("00000000-0000-0000-0000-000000000000", "cs_lost"))
        assert response.status_code == 200 and response.json["status"] == "unmatched"
    assert ledger_snapshot(credit_app) == before
    listed = credit_client.get("/integrations/payments?status=unmatched", headers=people.admin.headers).json
    (payment,) = listed["items"]
    assert payment["provider_id"] == "cs_lost" and payment["transaction_id"] is None and payment["reason"]
    assert_error(credit_client.get("/integrations/payments", headers=people.alice.headers), 403, "forbidden")
    assert_error(credit_client.get("/integrations/payments"), 401, "unauthorized")
    assert_error(
        credit_client.get("/integrations/payments?status=lost", headers=people.admin.headers), 422, "validation_error"
    )


def test_an_inactive_user_or_an_unusable_amount_is_unmatched(credit_app, credit_client, people):
    credit_client.delete(f"/users/{people.bob.id}", headers=people.admin.headers)
    before = ledger_snapshot(credit_app)
    assert post_stripe(credit_client, checkout_event(people.bob.id, "cs_1")).json["status"] == "unmatched"
    for n, session in enumerate(
        (
            {"metadata": {"credits": "12.5"}},
            {"metadata": {"credits": 5}},
            {"amount_total": None},
            {"amount_total": 0},
            {"client_reference_id": None},
            {"client_reference_id": "x" * 80},
            {"client_reference_id": "a\u0000b"},
        )
    ):
        body = checkout_event(people.alice.id, f"cs_bad_{n}", f"evt_bad_{n}", **session)
        assert post_stripe(credit_client, body).json["status"] == "unmatched", session
    assert ledger_snapshot(credit_app) == before


def test_other_events_are_acknowledged_and_ignored(credit_app, credit_client, people):
    before = ledger_snapshot(credit_app)
    other = json.dumps({"id": "evt_x", "type": "invoice.paid", "data": {"object": {"id": "in_1"}}}).encode()
    unpaid = checkout_event(people.alice.id, "cs_unpaid", "evt_u", payment_status="unpaid")
    for body in (other, unpaid, other):
        response = post_stripe(credit_client, body)
        assert response.status_code == 200 and response.json["status"] == "ignored"
    assert ledger_snapshot(credit_app) == before
    assert payment_rows(credit_app) == 2


def test_bad_stale_missing_or_altered_signatures_are_400_and_nothing_is_recorded(credit_app, credit_client, people):
    body = checkout_event(people.alice.id)
    before = ledger_snapshot(credit_app)
    altered = body.replace(b'"amount_total": 500', b'"amount_total": 900')
    assert altered != body
    cases = {
        "bad": stripe_header(body, secret="whsec_someone_else"),
        "stale": stripe_header(body, timestamp=int(time.time()) - 360),
        "future": stripe_header(body, timestamp=int(time.time()) + 600),  # the edges: tests/unit
        "unsigned": None,
        "empty": "",
        "garbage": "t=abc,v1=zz",
        "superscript timestamp": "t=³,v1=zz",  # "³".isdigit() is True; int("³") raises
        "no v1": f"t={int(time.time())}",
    }
    for name, header in cases.items():
        assert_error(post_stripe(credit_client, body, header=header), 400, "invalid_signature"), name
    # Signed, then changed after signing.
    response = credit_client.post(
        "/integrations/payments/stripe",
        data=altered,
        headers={"Content-Type": "application/json", "Stripe-Signature": stripe_header(body)},
    )
    assert_error(response, 400, "invalid_signature")
    assert ledger_snapshot(credit_app) == before and payment_rows(credit_app) == 0
    assert balance(credit_client, people.alice) == 0


@pytest.mark.credit_settings(stripe_webhook_secret="")
def test_without_a_secret_the_route_is_unavailable(credit_client, people):
    response = post_stripe(credit_client, checkout_event(people.alice.id))
    assert_error(response, 503, "module_unavailable")
