"""SMS through a real HTTP provider on loopback: the form and basic auth it receives, 429 and
500 retried, 400 failed at once; the token never in the delivery log or the logs."""

from __future__ import annotations

import logging

import pytest

from tests.modules.notifications.helpers import deliveries, deliveries_of, failed_events, later, sender

PHONE = "+4915112345678"


@pytest.fixture
def credit_settings(credit_settings_factory, sms_provider):
    return credit_settings_factory(sms_url=sms_provider.url(), sms_from="+15005550006")


@pytest.fixture
def alice_by_sms(credit_client, people):
    """alice with a phone, deposits by SMS."""
    response = credit_client.patch(f"/users/{people.alice.id}", json={"phone": PHONE}, headers=people.alice.headers)
    assert response.status_code == 200
    prefs = {"topics": {"deposit": {"sms": True}}}
    assert (
        credit_client.patch("/notifications/preferences", json=prefs, headers=people.alice.headers).status_code == 200
    )
    return people.alice


def test_the_provider_gets_the_form_with_basic_auth(credit_app, credit_client, people, sms_provider, alice_by_sms):
    people.fund(alice_by_sms, 25)
    (request,) = sms_provider.requests
    assert request.path == "/2010-04-01/Messages"
    assert request.auth == ("AC123", "s3cret-token")
    assert request.content_type.startswith("application/x-www-form-urlencoded")
    assert request.form["To"] == PHONE and request.form["From"] == "+15005550006"
    assert "25 credits were added to your wallet" in request.form["Body"] or "25 credits" in request.form["Body"]
    (sms,) = [d for d in deliveries(credit_client, alice_by_sms) if d["channel"] == "sms"]
    assert sms["status"] == "sent" and sms["to"] == "+49*******5678" and sms["attempts"] == 1


def test_429_and_500_are_retried(credit_app, credit_client, people, sms_provider, alice_by_sms, caplog):
    caplog.set_level(logging.DEBUG)
    sms_provider.statuses.extend([429, 500])
    people.fund(alice_by_sms, 25)
    (sms,) = deliveries_of(credit_app, alice_by_sms.id, "sms")
    assert (sms.status, sms.last_error) == ("queued", "SMS provider answered 429")
    (outcome,) = sender(credit_app).send_due(later())
    assert outcome.status == "queued"
    (outcome,) = sender(credit_app).send_due(later(20000))
    assert outcome.status == "sent"
    (sms,) = deliveries_of(credit_app, alice_by_sms.id, "sms")
    assert (sms.status, sms.attempts) == ("sent", 3) and len(sms_provider.requests) == 3
    logged = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith(("app", "huey")))
    assert "s3cret-token" not in logged and PHONE not in logged


def test_400_fails_at_once(credit_app, credit_client, people, sms_provider, alice_by_sms):
    sms_provider.statuses.append(400)
    people.fund(alice_by_sms, 25)
    (sms,) = deliveries_of(credit_app, alice_by_sms.id, "sms")
    assert (sms.status, sms.attempts, sms.last_error) == ("failed", 1, "SMS provider answered 400")
    assert sender(credit_app).send_due(later()) == []
    assert len(sms_provider.requests) == 1
    (event,) = failed_events(credit_app)
    assert event["channel"] == "sms" and event["to"] == "+49*******5678" and "s3cret" not in str(event)


def test_a_provider_that_is_gone_is_a_transient_failure(credit_app, credit_client, people, sms_provider, alice_by_sms):
    sms_provider.stop()
    people.fund(alice_by_sms, 25)
    (sms,) = deliveries_of(credit_app, alice_by_sms.id, "sms")
    assert sms.status == "queued" and sms.last_error.startswith("SMS provider unreachable")
    assert "s3cret-token" not in sms.last_error
