"""Mail through a real SMTP server on loopback (aiosmtpd): the message as received, 451 retried,
550 failed at once with notification.failed, a server that is down, two senders racing."""

from __future__ import annotations

import logging
import threading
from datetime import timedelta

import pytest

from tests.modules.notifications.helpers import deliveries_of, failed_events, later, notifications_of, sender, transfer


@pytest.fixture
def credit_settings(credit_settings_factory, smtp_server, request):
    marker = request.node.get_closest_marker("credit_settings")
    settings = {"mail_url": smtp_server.url, "mail_from": "Credits <credits@bank.example>"}
    return credit_settings_factory(**{**settings, **(marker.kwargs if marker else {})})


def test_the_message_arrives_with_headers_both_parts_and_the_recipient(credit_app, credit_client, people, smtp_server):
    people.fund(people.alice, 500)
    smtp_server.received.clear()  # alice's deposit mail
    transfer(credit_client, people.alice, people.bob, 42, "rent <share>")

    (received,) = smtp_server.received
    message = received.message
    assert received.rcpt_tos == ["bob@example.com"] and received.mail_from == "credits@bank.example"
    assert message["To"] == "bob@example.com" and message["From"] == "Credits <credits@bank.example>"
    assert message["Subject"] == "You received 42 credits"
    (mail,) = deliveries_of(credit_app, people.bob.id, "email")
    assert message["Message-ID"] == f"<{mail.id}@bank.example>" == mail.message_id
    assert message["Date"] and message["Auto-Submitted"] == "auto-generated"
    text = message.get_body(("plain",)).get_content()
    html = message.get_body(("html",)).get_content()
    assert "Hello bob," in text and "alice sent you 42 credits" in text and 'Note: "rent <share>"' in text
    assert "alice sent you 42 credits" in html and "rent &lt;share&gt;" in html and "<share>" not in html
    for secret in (people.bob.token, people.alice.token, people.bob.password):
        assert secret not in message.as_string()
    assert mail.status == "sent" and mail.attempts == 1 and mail.sent_at is not None


def test_451_is_retried_and_then_sent(credit_app, credit_client, people, smtp_server):
    smtp_server.replies.append("451 4.3.0 try again later")
    people.fund(people.alice, 10)
    (mail,) = deliveries_of(credit_app, people.alice.id, "email")
    assert (mail.status, mail.attempts, mail.next_attempt_at is not None) == ("queued", 1, True)
    assert mail.last_error.startswith("SMTP 451")
    assert smtp_server.received == []
    assert sender(credit_app).send_due() == []  # not due yet
    (outcome,) = sender(credit_app).send_due(later())
    assert outcome.status == "sent"
    (mail,) = deliveries_of(credit_app, people.alice.id, "email")
    assert (mail.status, mail.attempts) == ("sent", 2)
    assert len(smtp_server.received) == 1 and failed_events(credit_app) == []


def test_550_fails_at_once_with_notification_failed(credit_app, credit_client, people, smtp_server):
    smtp_server.replies.append("550 5.1.1 <alice@example.com>: mailbox unavailable")
    people.fund(people.alice, 10)
    (mail,) = deliveries_of(credit_app, people.alice.id, "email")
    assert (mail.status, mail.attempts) == ("failed", 1)
    assert mail.last_error.startswith("SMTP 550") and "alice@example.com" not in mail.last_error
    assert sender(credit_app).send_due(later()) == []  # never retried
    (event,) = failed_events(credit_app)
    assert event["delivery_id"] == mail.id and event["permanent"] is True and event["to"] == "a***e@example.com"
    assert "alice@example.com" not in str(event)
    assert smtp_server.received == []


@pytest.mark.credit_settings(notifications_max_attempts=2)
def test_the_last_transient_failure_fails_the_delivery(credit_app, credit_client, people, smtp_server):
    smtp_server.replies.extend(["421 4.7.0 busy", "452 4.2.2 mailbox full"])
    people.fund(people.alice, 10)
    (outcome,) = sender(credit_app).send_due(later())
    assert outcome.status == "failed"
    (mail,) = deliveries_of(credit_app, people.alice.id, "email")
    assert (mail.status, mail.attempts) == ("failed", 2) and mail.last_error.startswith("SMTP 452")
    (event,) = failed_events(credit_app)
    assert event["permanent"] is False and event["attempts"] == 2


def test_two_senders_racing_send_one_message(credit_app, credit_client, people, smtp_server):
    smtp_server.replies.append("451 4.3.0 later")
    people.fund(people.alice, 10)
    (mail,) = deliveries_of(credit_app, people.alice.id, "email")
    when, barrier, outcomes = later(), threading.Barrier(4), []

    def race():
        barrier.wait()
        outcomes.append(sender(credit_app).send(mail.id, when).status)

    threads = [threading.Thread(target=race) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["sent", "skipped", "skipped", "skipped"]
    assert len(smtp_server.received) == 1


def test_no_address_or_token_in_the_logs(credit_app, credit_client, people, smtp_server, caplog):
    caplog.set_level(logging.DEBUG)
    smtp_server.replies.append("550 5.1.1 <alice@example.com> unknown")
    people.fund(people.alice, 10)
    # the app's records (the SMTP server's own debug log quotes the envelope, as servers do)
    logged = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith(("app", "huey")))
    assert "notification failed" in logged and "a***e@example.com" in logged
    assert "alice@example.com" not in logged and people.alice.token not in logged


@pytest.mark.credit_settings(mail_url="smtp://127.0.0.1:1")  # nothing listens on port 1
def test_a_down_smtp_server_degrades_the_module_not_the_service(credit_app, credit_client, people):
    people.fund(people.alice, 5)
    health = credit_client.get("/modules/notification_module/health", headers=people.admin.headers).get_json()
    assert health["status"] == "degraded" and "mail unavailable" in health["details"]["error"]
    assert credit_client.get("/health").get_json()["status"] == "degraded"
    assert credit_client.get("/readyz").status_code == 200
    (mail,) = deliveries_of(credit_app, people.alice.id, "email")
    assert mail.status == "queued" and "connection failed" in mail.last_error
    assert notifications_of(credit_app, people.alice.id, "deposit")  # the inbox does not wait for the mail


def test_the_sweep_wakes_a_late_delivery_once_and_leaves_fresh_ones_to_their_wake_up(
    credit_app, credit_client, people, smtp_server
):
    smtp_server.replies.append("451 4.3.0 try again later")
    people.fund(people.alice, 10)
    (mail,) = deliveries_of(credit_app, people.alice.id, "email")
    assert mail.status == "queued"
    just_due = mail.next_attempt_at + timedelta(seconds=1)
    assert sender(credit_app).lost_wakeups(just_due) == []  # its scheduled wake-up is still on its way
    assert sender(credit_app).lost_wakeups(later()) == [mail.id]
    assert sender(credit_app).lost_wakeups(later()) == []  # already woken: not queued again
    assert sender(credit_app).send_due(later())[0].status == "sent"


def test_a_chunk_is_claimed_together_sent_over_one_connection_and_each_outcome_recorded(
    credit_app, credit_client, people, smtp_server
):
    smtp_server.replies.extend(["451 4.3.0 try again later"] * 3)
    for amount in (1, 2, 3):
        people.fund(people.alice, amount)
    mails = sorted(deliveries_of(credit_app, people.alice.id, "email"), key=lambda mail: mail.created_at)
    assert [mail.status for mail in mails] == ["queued"] * 3
    ids = [mail.id for mail in mails]
    smtp_server.replies.append("550 5.1.1 mailbox unavailable")  # the first of the chunk only

    outcomes = sender(credit_app).send_many([*ids, "no-such-delivery"], later())
    assert [(o.delivery_id, o.status) for o in outcomes] == [
        (ids[0], "failed"),
        (ids[1], "sent"),
        (ids[2], "sent"),
        ("no-such-delivery", "skipped"),
    ]
    assert len(smtp_server.received) == 2
    # The refusal dropped its connection; the two messages after it shared the next one.
    assert len({received.peer for received in smtp_server.received}) == 1
    after = {
        mail.id: (mail.status, mail.attempts, mail.claimed_by) for mail in deliveries_of(credit_app, people.alice.id)
    }
    assert [after[i] for i in ids] == [("failed", 2, None), ("sent", 2, None), ("sent", 2, None)]
    assert {o.status for o in sender(credit_app).send_many(ids, later())} == {"skipped"}  # nothing sent twice
    assert len(smtp_server.received) == 2
