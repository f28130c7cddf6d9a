"""Outgoing webhooks against a real loopback receiver that verifies with `standardwebhooks`."""

from __future__ import annotations

import json
import time
from dataclasses import replace

import pytest
from sqlalchemy import select

from app.infrastructure.tables import OutboxEvent
from app.infrastructure.tables_integrations import WebhookDelivery
from app.testing import assert_error, deliver_events, login
from tests.modules.integrations.conftest import register_endpoint
from tests.modules.integrations.receiver import Answer, Receiver

pytestmark = pytest.mark.credit_settings(webhook_allow_private=True, webhook_retry_schedule="0.2,0.2")


def deliveries(client, admin, endpoint_id: str) -> list[dict]:
    response = client.get(f"/webhooks/endpoints/{endpoint_id}/deliveries", headers=admin.headers)
    assert response.status_code == 200, response.json
    return response.json["items"]


def transfer(client, people, amount: int = 5) -> dict:
    response = client.post(
        "/transactions",
        json={"from_user_id": people.alice.id, "to_user_id": people.bob.id, "amount": amount},
        headers=people.alice.headers,
    )
    assert response.status_code == 201, response.json
    return response.json


def sweep_until(app, predicate, timeout: float = 5.0):
    """Run the workers' sweep (retries falling due) until predicate() holds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        app.container.webhook_service().sweep()
        result = predicate()
        if result:
            return result
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


def test_a_transfer_arrives_signed_and_shows_as_succeeded(credit_app, credit_client, people, receiver):
    people.fund(people.alice, 100)
    endpoint = register_endpoint(credit_client, people.admin, receiver.url, event_types=["transaction.posted"])
    assert endpoint["secret"].startswith("whsec_") and endpoint["status"] == "active"
    receiver.secrets = [endpoint["secret"]]
    posted = transfer(credit_client, people)

    (message,) = receiver.wait_for(1)
    assert message.verified_by == [endpoint["secret"]]  # standardwebhooks.Webhook.verify accepted it
    event = json.loads(message.body)
    assert event["type"] == "transaction.posted" and event["data"]["transaction"]["id"] == posted["id"]
    assert message.headers["webhook-id"] == event["id"]
    assert abs(int(message.headers["webhook-timestamp"]) - time.time()) < 60
    assert message.headers["webhook-signature"].startswith("v1,")
    (delivery,) = deliveries(credit_client, people.admin, endpoint["id"])
    assert delivery["status"] == "succeeded" and delivery["attempts"] == 1 and delivery["last_status_code"] == 200
    assert delivery["event_id"] == event["id"]
    # The secret is shown only at creation.
    shown = credit_client.get(f"/webhooks/endpoints/{endpoint['id']}", headers=people.admin.headers).json
    assert "secret" not in shown


def test_a_500_is_retried_on_the_schedule_then_succeeds(credit_app, credit_client, people, receiver):
    people.fund(people.alice, 100)
    endpoint = register_endpoint(credit_client, people.admin, receiver.url, event_types=["transaction."])
    receiver.secrets = [endpoint["secret"]]
    receiver.then(Answer(500))
    transfer(credit_client, people)
    receiver.wait_for(1)
    (delivery,) = deliveries(credit_client, people.admin, endpoint["id"])
    assert delivery["status"] == "pending" and delivery["attempts"] == 1 and delivery["last_status_code"] == 500
    assert delivery["next_attempt_at"] is not None

    sweep_until(credit_app, lambda: deliveries(credit_client, people.admin, endpoint["id"])[0]["status"] == "succeeded")
    first, second = receiver.wait_for(2)
    assert first.body == second.body and first.headers["webhook-id"] == second.headers["webhook-id"]
    assert second.at - first.at >= 0.2  # not before the (shortened) schedule said
    assert second.verified_by == [endpoint["secret"]]
    assert deliveries(credit_client, people.admin, endpoint["id"])[0]["attempts"] == 2


def test_out_of_attempts_the_delivery_fails_and_a_manual_retry_sends_it(credit_app, credit_client, people, receiver):
    people.fund(people.alice, 100)
    endpoint = register_endpoint(credit_client, people.admin, receiver.url)
    receiver.default = Answer(500)
    transfer(credit_client, people)
    state = sweep_until(
        credit_app,
        lambda: [d for d in deliveries(credit_client, people.admin, endpoint["id"]) if d["status"] == "failed"],
    )
    assert state[0]["attempts"] == 3  # the first and one per step of the schedule "0.2,0.2"

    receiver.default = Answer(204)
    response = credit_client.post(f"/webhooks/deliveries/{state[0]['id']}/retry", headers=people.admin.headers)
    assert response.status_code == 202, response.json
    receiver.wait_for(4)
    after = [d for d in deliveries(credit_client, people.admin, endpoint["id"]) if d["id"] == state[0]["id"]][0]
    assert after["status"] == "succeeded" and after["attempts"] == 4


def test_410_gone_disables_the_endpoint_and_records_the_event(credit_app, credit_client, people, receiver):
    people.fund(people.alice, 100)
    endpoint = register_endpoint(credit_client, people.admin, receiver.url, event_types=["transaction.posted"])
    receiver.default = Answer(410)
    transfer(credit_client, people)
    receiver.wait_for(1)
    shown = credit_client.get(f"/webhooks/endpoints/{endpoint['id']}", headers=people.admin.headers).json
    assert shown["status"] == "disabled" and "410" in shown["disabled_reason"]
    (delivery,) = deliveries(credit_client, people.admin, endpoint["id"])
    assert delivery["status"] == "failed" and delivery["last_status_code"] == 410
    feed = credit_client.get("/events?type=webhook.", headers=people.admin.headers).json["items"]
    assert [e["type"] for e in feed] == ["webhook.endpoint_disabled"]
    assert feed[0]["data"]["endpoint"]["id"] == endpoint["id"] and feed[0]["actor"]["type"] == "system"

    transfer(credit_client, people)  # a disabled endpoint is owed nothing new
    assert len(deliveries(credit_client, people.admin, endpoint["id"])) == 1
    assert len(receiver.received) == 1
    retry = credit_client.post(f"/webhooks/deliveries/{delivery['id']}/retry", headers=people.admin.headers)
    assert_error(retry, 409, "endpoint_disabled")
    assert_error(
        credit_client.post(f"/webhooks/endpoints/{endpoint['id']}/test", headers=people.admin.headers),
        409,
        "endpoint_disabled",
    )


@pytest.mark.credit_settings(webhook_retry_schedule="60")
def test_429_with_retry_after_is_honoured(credit_app, credit_client, people, receiver):
    people.fund(people.alice, 100)
    endpoint = register_endpoint(credit_client, people.admin, receiver.url)
    receiver.then(Answer(429, {"Retry-After": "1"}))
    transfer(credit_client, people)
    receiver.wait_for(1)
    (delivery,) = deliveries(credit_client, people.admin, endpoint["id"])
    assert delivery["status"] == "pending" and delivery["last_status_code"] == 429
    from datetime import datetime

    wait = datetime.fromisoformat(delivery["next_attempt_at"]) - datetime.fromisoformat(delivery["created_at"])
    assert 0.5 < wait.total_seconds() < 5  # Retry-After's second, not the schedule's minute

    credit_app.container.webhook_service().sweep()
    assert len(receiver.received) == 1  # paused: not before Retry-After
    sweep_until(credit_app, lambda: len(receiver.received) == 2)
    assert receiver.received[1].at - receiver.received[0].at >= 0.9
    assert deliveries(credit_client, people.admin, endpoint["id"])[0]["status"] == "succeeded"


@pytest.mark.credit_settings(webhook_timeout_seconds=0.5, webhook_retry_schedule="60")
def test_a_receiver_that_never_answers_times_out(credit_app, credit_client, people, receiver):
    people.fund(people.alice, 100)
    endpoint = register_endpoint(credit_client, people.admin, receiver.url)
    receiver.default = Answer(200, delay=5)
    started = time.monotonic()
    transfer(credit_client, people)
    assert time.monotonic() - started < 4  # given up after the timeout, not the receiver's 5 s
    (delivery,) = deliveries(credit_client, people.admin, endpoint["id"])
    assert delivery["status"] == "pending" and delivery["last_status_code"] is None
    assert "timed out" in delivery["last_error"]


def test_a_redirect_is_a_failure_and_is_not_followed(credit_app, credit_client, people, receiver):
    people.fund(people.alice, 100)
    with Receiver() as elsewhere:
        endpoint = register_endpoint(credit_client, people.admin, receiver.url)
        receiver.then(Answer(302, {"Location": elsewhere.url}))
        transfer(credit_client, people)
        receiver.wait_for(1)
        (delivery,) = deliveries(credit_client, people.admin, endpoint["id"])
        assert delivery["status"] == "pending" and delivery["last_status_code"] == 302
        assert "redirect" in delivery["last_error"]
        assert elsewhere.received == []


def test_rotation_signs_with_both_secrets_during_the_overlap(credit_app, credit_client, people, receiver):
    people.fund(people.alice, 100)
    endpoint = register_endpoint(credit_client, people.admin, receiver.url)
    rotated = credit_client.post(f"/webhooks/endpoints/{endpoint['id']}/rotate-secret", headers=people.admin.headers)
    assert rotated.status_code == 200
    new = rotated.json["secret"]
    assert new.startswith("whsec_") and new != endpoint["secret"]
    receiver.secrets = [endpoint["secret"], new]
    transfer(credit_client, people)
    (message,) = receiver.wait_for(1)
    assert sorted(message.verified_by) == sorted([endpoint["secret"], new])  # a receiver on either secret accepts it
    assert len(message.headers["webhook-signature"].split(" ")) == 2


@pytest.mark.credit_settings(webhook_disable_after_seconds=1, webhook_retry_schedule="0.3,0.3,0.3,0.3,0.3,0.3")
def test_an_endpoint_failing_for_too_long_is_disabled(credit_app, credit_client, people, receiver):
    people.fund(people.alice, 100)
    endpoint = register_endpoint(credit_client, people.admin, receiver.url)
    receiver.default = Answer(503)
    transfer(credit_client, people)

    def disabled():
        shown = credit_client.get(f"/webhooks/endpoints/{endpoint['id']}", headers=people.admin.headers).json
        return shown if shown["status"] == "disabled" else None

    shown = sweep_until(credit_app, disabled, timeout=8)
    assert "failing without a success" in shown["disabled_reason"]
    feed = credit_client.get("/events?type=webhook.endpoint_disabled", headers=people.admin.headers).json["items"]
    assert len(feed) == 1
    # Enabled again by an admin: it receives again.
    receiver.default = Answer(200)
    enabled = credit_client.patch(
        f"/webhooks/endpoints/{endpoint['id']}", json={"status": "active"}, headers=people.admin.headers
    )
    assert enabled.status_code == 200 and enabled.json["status"] == "active" and enabled.json["disabled_reason"] is None
    count = len(receiver.received)
    transfer(credit_client, people)
    receiver.wait_for(count + 1)


def test_the_test_event_reaches_the_endpoint(credit_app, credit_client, people, receiver):
    endpoint = register_endpoint(credit_client, people.admin, receiver.url, event_types=["user.created"])
    receiver.secrets = [endpoint["secret"]]
    response = credit_client.post(f"/webhooks/endpoints/{endpoint['id']}/test", headers=people.admin.headers)
    assert response.status_code == 202 and response.json["event_type"] == "webhook.test"
    (message,) = receiver.wait_for(1)
    assert json.loads(message.body)["type"] == "webhook.test" and message.verified_by == [endpoint["secret"]]
    assert deliveries(credit_client, people.admin, endpoint["id"])[0]["status"] == "succeeded"


def test_filters_and_creation_time_decide_what_an_endpoint_receives(credit_app, credit_client, people, receiver):
    people.fund(people.alice, 100)  # before any endpoint: never sent
    users_only = register_endpoint(credit_client, people.admin, receiver.url, event_types=["user."])
    everything = register_endpoint(credit_client, people.admin, receiver.url)
    transfer(credit_client, people)
    people.add("carol")
    deliver_events(credit_app)
    assert [d["event_type"] for d in deliveries(credit_client, people.admin, users_only["id"])] == ["user.created"]
    got = {d["event_type"] for d in deliveries(credit_client, people.admin, everything["id"])}
    assert got >= {"transaction.posted", "user.created"}
    assert all(json.loads(m.body)["data"].get("transaction", {}).get("type") != "deposit" for m in receiver.received)


def test_a_redelivered_event_is_sent_once(credit_app, credit_client, people, receiver):
    people.fund(people.alice, 100)
    endpoint = register_endpoint(credit_client, people.admin, receiver.url, event_types=["transaction.posted"])
    transfer(credit_client, people)
    receiver.wait_for(1)
    from app.events.envelope import Event

    database = credit_app.container.database()
    with database.unit_of_work(write=False) as uow:
        row = (
            uow.session.execute(
                select(OutboxEvent).where(OutboxEvent.type == "transaction.posted").order_by(OutboxEvent.id.desc())
            )
            .scalars()
            .first()
        )
        event = Event.from_row(row)
    module = credit_app.module_manager.get_module("integration_module")
    for _ in range(2):  # the backbone may deliver an event again: the handler adds nothing
        with database.unit_of_work() as uow:
            module.handle_events(uow, [event])
            uow.commit()
    with database.unit_of_work(write=False) as uow:
        count = len(uow.session.scalars(select(WebhookDelivery.id).where(WebhookDelivery.event_id == event.id)).all())
    assert count == 1
    time.sleep(0.1)
    assert len(receiver.received) == 1
    assert deliveries(credit_client, people.admin, endpoint["id"])[0]["status"] == "succeeded"


def test_the_endpoint_crud(credit_client, people, receiver):
    admin = people.admin.headers
    endpoint = register_endpoint(credit_client, people.admin, receiver.url, description="books")
    assert endpoint["event_types"] == [] and endpoint["description"] == "books"
    listed = credit_client.get("/webhooks/endpoints", headers=admin).json
    assert [e["id"] for e in listed["items"]] == [endpoint["id"]] and listed["next_cursor"] is None
    changed = credit_client.patch(
        f"/webhooks/endpoints/{endpoint['id']}",
        json={"event_types": ["user.created"], "description": None, "status": "disabled"},
        headers=admin,
    ).json
    assert changed["event_types"] == ["user.created"] and changed["description"] is None
    assert changed["status"] == "disabled" and changed["disabled_reason"] == "disabled by an admin"
    assert credit_client.delete(f"/webhooks/endpoints/{endpoint['id']}", headers=admin).status_code == 204
    assert_error(credit_client.get(f"/webhooks/endpoints/{endpoint['id']}", headers=admin), 404, "not_found")


def test_pages_of_endpoints_follow_the_cursor(credit_client, people, receiver):
    made = [register_endpoint(credit_client, people.admin, receiver.url)["id"] for _ in range(3)]
    first = credit_client.get("/webhooks/endpoints?limit=2", headers=people.admin.headers).json
    second = credit_client.get(
        f"/webhooks/endpoints?limit=2&cursor={first['next_cursor']}", headers=people.admin.headers
    ).json
    assert sorted(e["id"] for e in first["items"] + second["items"]) == sorted(made)
    assert second["next_cursor"] is None


def test_bad_input_and_access(credit_client, people, receiver):
    admin, alice = people.admin.headers, people.alice.headers
    assert_error(credit_client.post("/webhooks/endpoints", json={"url": receiver.url}), 401, "unauthorized")
    assert_error(credit_client.post("/webhooks/endpoints", json={"url": receiver.url}, headers=alice), 403, "forbidden")
    assert_error(credit_client.get("/webhooks/endpoints", headers=alice), 403, "forbidden")
    for body in ({}, {"url": 5}, {"url": receiver.url, "event_types": "x"}, {"url": receiver.url, "extra": 1}):
        assert_error(credit_client.post("/webhooks/endpoints", json=body, headers=admin), 422, "validation_error")
    bad_type = credit_client.post(
        "/webhooks/endpoints", json={"url": receiver.url, "event_types": ["no.such_type"]}, headers=admin
    )
    assert "event_types" in assert_error(bad_type, 422, "validation_error")["details"]
    for url in ("ftp://example.com/x", "not a url", "http:///path"):
        response = credit_client.post("/webhooks/endpoints", json={"url": url}, headers=admin)
        assert "url" in assert_error(response, 422, "validation_error")["details"]
    assert_error(
        credit_client.post("/webhooks/endpoints", data="{", headers={**admin, "Content-Type": "application/json"}),
        400,
        "bad_request",
    )
    assert_error(credit_client.get("/webhooks/endpoints/nope", headers=admin), 404, "not_found")
    assert_error(credit_client.post("/webhooks/deliveries/12345/retry", headers=admin), 404, "not_found")
    assert_error(credit_client.post("/webhooks/deliveries/abc/retry", headers=admin), 404, "not_found")
    assert_error(credit_client.post("/webhooks/deliveries/³/retry", headers=admin), 404, "not_found")
    assert_error(credit_client.get("/webhooks/endpoints/nope/deliveries", headers=admin), 404, "not_found")
    assert_error(credit_client.get("/webhooks/endpoints?cursor=Zm9v", headers=admin), 422, "validation_error")
    assert credit_client.get("/webhooks/endpoints", headers=admin).json["items"] == []


@pytest.mark.credit_settings(modules_disabled=("integration_module",))
def test_without_the_module_the_core_works_and_its_routes_are_gone(credit_client, people):
    people.fund(people.alice, 100)
    assert transfer(credit_client, people)["amount"] == 5
    assert_error(credit_client.get("/webhooks/endpoints", headers=people.admin.headers), 404, "not_found")
    assert_error(credit_client.get("/integrations/payments", headers=people.admin.headers), 404, "not_found")
    assert credit_client.get("/modules/status").json["modules"]["integration_module"]["status"] == "disabled"


def test_a_bad_event_type_is_reported_on_the_field(credit_client, people, receiver):
    for event_types in (["not a type!"], [5], ["transaction.posted", ""]):
        response = credit_client.post(
            "/webhooks/endpoints", json={"url": receiver.url, "event_types": event_types}, headers=people.admin.headers
        )
        details = assert_error(response, 422, "validation_error")["details"]
        assert all(isinstance(message, str) for message in details["event_types"]), details


def test_an_auditor_reads_the_endpoints_and_their_log_but_changes_nothing(credit_client, people, receiver):
    endpoint = register_endpoint(credit_client, people.admin, receiver.url)
    auditor = people.add("inspector")
    promoted = credit_client.patch(f"/users/{auditor.id}", json={"role": "auditor"}, headers=people.admin.headers)
    assert promoted.status_code == 200, promoted.json
    auditor = replace(auditor, token=login(credit_client, "inspector"))  # a new role revoked the old tokens
    assert credit_client.get("/webhooks/endpoints", headers=auditor.headers).status_code == 200
    assert (
        credit_client.get(f"/webhooks/endpoints/{endpoint['id']}/deliveries", headers=auditor.headers).status_code
        == 200
    )
    assert credit_client.get("/integrations/payments", headers=auditor.headers).status_code == 200
    assert_error(
        credit_client.post("/webhooks/endpoints", json={"url": receiver.url}, headers=auditor.headers), 403, "forbidden"
    )
    assert_error(
        credit_client.post(f"/webhooks/endpoints/{endpoint['id']}/rotate-secret", headers=auditor.headers),
        403,
        "forbidden",
    )
