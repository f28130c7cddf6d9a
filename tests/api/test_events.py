"""The event backbone through the API, on the selected backend: the envelope of each core
event, the feed, the types, deliveries to modules (failing, ordered, exactly once), the
operations on them, health and metrics. Modules come from tests/fixtures_modules/events.py."""

from __future__ import annotations

import threading

import pytest
from dependency_injector import providers
from sqlalchemy import select

from app import build_container, create_app
from app.events.testing import deliver_events
from app.infrastructure.tables import EventDelivery, OutboxEvent
from app.services.passwords import Passwords
from tests.fixtures_modules import events as fixtures
from tests.helpers import (
    assert_error,
    bearer,
    deposit,
    login,
    make_admin,
    register,
    user_with_token,
)

MODULES = "tests.fixtures_modules.events"
QUEUE_DOWN = "redis://127.0.0.1:1/0"  # nothing listens there: no wake-up reaches a worker


@pytest.fixture
def build(settings_factory):
    """build(extra modules..., **settings) -> an app with those extra modules; shut down after."""
    apps = []

    def make(*extras: str, **overrides):
        extra = ",".join(f"{MODULES}:{name}" for name in extras)
        settings = settings_factory(modules_extra=extra, **{"registrations_per_address": 1000, **overrides})
        container = build_container(settings)
        container.passwords.override(providers.Singleton(Passwords, time_cost=1, memory_cost=1024))
        app = create_app(settings, container=container)
        app.config["TESTING"] = True
        fixtures.clear(container.database().engine)
        apps.append(app)
        return app

    yield make
    for app in apps:
        app.module_manager.shutdown()


def admin_headers(app) -> dict:
    make_admin(app)
    return bearer(login(app.test_client(), "admin"))


def feed(client, headers, **query) -> dict:
    response = client.get("/events", query_string=query, headers=headers)
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()


def deliveries(app, module: str) -> list:
    with app.container.database().engine.connect() as conn:
        return conn.execute(
            select(EventDelivery.status, EventDelivery.attempts, EventDelivery.last_error, EventDelivery.sequence)
            .where(EventDelivery.subscriber == module)
            .order_by(EventDelivery.sequence)
        ).all()


# -- the envelope -------------------------------------------------------------------------
def test_every_change_records_its_event_with_who_and_where(app, client):
    admin = admin_headers(app)
    created = client.post(
        "/users",
        json={"username": "alice", "email": "alice@example.com", "password": "correct-horse-battery"},
        headers={"X-Request-ID": "signup-1"},
    ).get_json()
    alice = bearer(login(client, "alice"))
    client.post("/auth/login", json={"username": "alice", "password": "wrong-password"})
    bob, _ = user_with_token(client, "bob")
    deposit(client, admin, created["id"], 100)
    transfer = client.post(
        "/transactions", json={"from_user_id": created["id"], "to_user_id": bob["id"], "amount": 30}, headers=alice
    ).get_json()
    client.patch(f"/users/{created['id']}", json={"email": "alice@example.org"}, headers=alice)
    client.delete(f"/users/{bob['id']}", headers=admin)

    items = feed(client, admin, limit=200)["items"]
    assert [e["sequence"] for e in items] == list(range(1, len(items) + 1))
    by_type: dict[str, list] = {}
    for item in items:
        by_type.setdefault(item["type"], []).append(item)
        assert set(item) == {"id", "sequence", "type", "occurred_at", "actor", "request_id", "data"}

    signup = next(e for e in by_type["user.created"] if e["data"]["user"]["username"] == "alice")
    assert signup["actor"] == {"type": "user", "id": created["id"]}
    assert signup["request_id"] == "signup-1"
    assert signup["data"]["user"] == created
    admin_created = next(e for e in by_type["user.created"] if e["data"]["user"]["username"] == "admin")
    assert admin_created["actor"] == {"type": "system", "id": None}  # the CLI's create-admin path

    failed = [e for e in by_type["auth.login_failed"] if e["data"]["identifier"] == "alice"]
    assert failed and failed[0]["data"] == {"identifier": "alice", "reason": "wrong_password"}
    assert "wrong-password" not in str(items)

    posted = [e for e in by_type["transaction.posted"] if e["data"]["transaction"]["id"] == transfer["id"]]
    assert posted[0]["data"] == {"transaction": transfer, "balances": {created["id"]: 70, bob["id"]: 30}}
    assert posted[0]["actor"] == {"type": "user", "id": created["id"]}

    updated = by_type["user.updated"][-1]
    assert updated["data"]["changed"] == ["email"] and updated["data"]["user"]["email"] == "alice@example.org"
    (deactivated,) = by_type["user.deactivated"]
    assert deactivated["data"]["user"]["id"] == bob["id"] and deactivated["actor"]["type"] == "user"


def test_a_password_change_is_named_never_shown(app, client):
    user, headers = user_with_token(client, "carol")
    response = client.patch(
        f"/users/{user['id']}",
        json={"password": "another-long-password", "current_password": "correct-horse-battery"},
        headers=headers,
    )
    assert response.status_code == 200
    with app.container.database().engine.connect() as conn:
        stored = conn.scalars(select(OutboxEvent.data).where(OutboxEvent.type == "user.updated")).all()
    assert len(stored) == 1 and '"changed":["password"]' in stored[0]
    assert "another-long-password" not in stored[0] and "argon2" not in stored[0]


def test_the_feed_pages_without_gaps_and_filters_by_type(app, client):
    admin = admin_headers(app)
    for n in range(7):
        register(client, f"user{n}")
    first = feed(client, admin, limit=3)
    assert len(first["items"]) == 3 and first["last_sequence"] == first["items"][-1]["sequence"]
    seen = list(first["items"])
    after = first["last_sequence"]
    while True:
        page = feed(client, admin, after=after, limit=3)
        if not page["items"]:
            assert page["last_sequence"] == after
            break
        seen += page["items"]
        after = page["last_sequence"]
    assert [e["sequence"] for e in seen] == list(range(1, len(seen) + 1))
    users = feed(client, admin, type="user.", limit=200)["items"]
    assert users and all(e["type"].startswith("user.") for e in users)
    assert {e["type"] for e in feed(client, admin, type="auth.login_succeeded", limit=200)["items"]} == {
        "auth.login_succeeded"
    }


def test_the_feed_is_for_admins(app, client):
    _, headers = user_with_token(client, "dave")
    assert_error(client.get("/events", headers=headers), 403, "forbidden")
    assert_error(client.get("/events"), 401, "unauthorized")
    assert_error(client.get("/events/deliveries", headers=headers), 403, "forbidden")
    assert_error(client.get("/events?after=-1", headers=admin_headers(app)), 422, "validation_error")
    assert_error(client.get("/events?aftr=1", headers=admin_headers(app)), 422, "validation_error")


def test_types_list_the_core_and_the_modules_own(build):
    app = build("Journal")
    client = app.test_client()
    _, headers = user_with_token(client, "erin")
    types = {t["type"]: t["description"] for t in client.get("/events/types", headers=headers).get_json()}
    for core in (
        "user.created",
        "user.updated",
        "user.deactivated",
        "auth.login_succeeded",
        "auth.login_failed",
        "transaction.posted",
    ):
        assert types[core]
    assert types["journal.noted"] == "the journal noted something (tests)"
    assert_error(client.get("/events/types"), 401, "unauthorized")


# -- delivery ---------------------------------------------------------------------------------
def test_modules_receive_what_they_declared_once_in_sequence_order(build):
    app = build("Journal", "JournalOfMoney")
    client = app.test_client()
    admin = admin_headers(app)
    alice, alice_h = user_with_token(client, "alice")
    bob, _ = user_with_token(client, "bob")
    deposit(client, admin, alice["id"], 50)
    client.post(
        "/transactions", json={"from_user_id": alice["id"], "to_user_id": bob["id"], "amount": 5}, headers=alice_h
    )
    deliver_events(app)
    deliver_events(app)  # again: nothing is handled twice

    engine = app.container.database().engine
    everything = fixtures.journal(engine, "journal")
    events = feed(client, admin, limit=200)["items"]
    assert [(e["id"], e["sequence"], e["type"]) for e in events] == everything
    money = fixtures.journal(engine, "journal_of_money")
    assert [row[2] for row in money] == ["user.created"] * 3 + ["transaction.posted"] * 2
    assert [row[1] for row in money] == sorted(row[1] for row in money)
    assert {status for status, *_ in deliveries(app, "journal")} == {"done"}


def test_a_failing_module_never_touches_the_request_nor_the_others(build):
    """The newcomer's reproduction: an extra, non-critical module whose user.created handler raises."""
    app = build("Grumpy", "Journal", events_max_attempts=3, events_retry_base_seconds=3600)
    client = app.test_client()

    response = client.post(
        "/users", json={"username": "newbie", "email": "n@example.com", "password": "long-password-1"}
    )
    assert response.status_code == 201
    login(client, "newbie", "long-password-1")  # the user stands
    ((status, attempts, error, _),) = deliveries(app, "grumpy")
    assert (status, attempts) == ("failed", 1) and "grumpy will not greet newbie" in error
    admin = admin_headers(app)
    journal = fixtures.journal(app.container.database().engine, "journal")
    assert [t for _, _, t in journal].count("user.created") == 2  # the other module got both

    deliver_events(app, retry_failed=True)
    dead = client.get("/events/deliveries", query_string={"status": "dead"}, headers=admin).get_json()["items"]
    assert [(d["subscriber"], d["event_type"], d["attempts"]) for d in dead] == [("grumpy", "user.created", 3)] * 2
    assert all("RuntimeError: grumpy will not greet" in d["last_error"] for d in dead)

    health = client.get("/modules/grumpy/health", headers=admin).get_json()
    assert health["status"] == "degraded" and health["events"] == {
        "backlog": 0,
        "oldest_pending_seconds": 0.0,
        "dead": 2,
    }
    assert client.get("/modules/journal/health", headers=admin).get_json()["events"]["dead"] == 0
    assert client.get("/readyz").status_code == 200


def test_a_failed_head_holds_its_module_back_until_it_goes_dead(build):
    app = build("Grumpy", events_max_attempts=2, events_retry_base_seconds=3600)
    client = app.test_client()
    register(client, "first")
    register(client, "second")
    # The first failed and waits an hour for its retry: the second is not attempted before it.
    assert [(s, a) for s, a, *_ in deliveries(app, "grumpy")] == [("failed", 1), ("pending", 0)]
    deliver_events(app, retry_failed=True)
    assert [(s, a) for s, a, *_ in deliveries(app, "grumpy")] == [("dead", 2), ("dead", 2)]


def test_a_batch_handler_gets_the_owed_events_in_one_call(build):
    fixtures.BatchJournal.batches.clear()
    app = build("BatchJournal", queue_url=QUEUE_DOWN)
    client = app.test_client()
    for name in ("ann", "ben", "cid"):
        register(client, name)
    deliver_events(app)
    assert fixtures.BatchJournal.batches == [["ann", "ben", "cid"]]
    assert [t for _, _, t in fixtures.journal(app.container.database().engine, "batch_journal")] == ["user.created"] * 3
    assert {status for status, *_ in deliveries(app, "batch_journal")} == {"done"}


def test_a_batch_that_raises_goes_again_one_by_one_and_only_the_bad_event_waits(build):
    fixtures.BatchJournal.batches.clear()
    app = build("BatchJournal", queue_url=QUEUE_DOWN, events_max_attempts=2, events_retry_base_seconds=3600)
    client = app.test_client()
    for name in ("ann", "poison", "cid"):
        register(client, name)
    deliver_events(app)
    # At once (refused, rolled back), then one by one: ann done, poison failed, cid behind it.
    assert fixtures.BatchJournal.batches == [["ann", "poison", "cid"], ["ann"], ["poison"]]
    assert [(s, a) for s, a, *_ in deliveries(app, "batch_journal")] == [("done", 1), ("failed", 1), ("pending", 0)]
    engine = app.container.database().engine
    assert len(fixtures.journal(engine, "batch_journal")) == 1  # the refused batch left nothing behind

    deliver_events(app, retry_failed=True)
    assert [(s, a) for s, a, *_ in deliveries(app, "batch_journal")] == [("done", 1), ("dead", 2), ("done", 1)]
    assert len(fixtures.journal(engine, "batch_journal")) == 2


def test_the_shipped_modules_handle_a_mixed_batch_at_once(build, caplog):
    """Each shipped module's handle_events takes a batch of every kind of event without
    falling back to one event at a time (the fallback is correct, only slow: a test that
    looked at the results alone would not see a batch handler that always fails)."""
    app = build(queue_url=QUEUE_DOWN, webhook_allow_private=True)
    client = app.test_client()
    admin = admin_headers(app)
    register_endpoint = client.post(  # nothing listens there: the queue is down, nothing is sent
        "/webhooks/endpoints", json={"url": "http://127.0.0.1:9/in", "event_types": ["*"]}, headers=admin
    )
    assert register_endpoint.status_code == 201, register_endpoint.get_json()
    people = [user_with_token(client, f"mixed{n}") for n in range(3)]
    for (user, _), amount in zip(people, (500, 300, 100), strict=True):
        deposit(client, admin, user["id"], amount)
    for n in range(6):  # transfers between everyone, some of them the same day and quarter
        (source, headers), (target, _) = people[n % 3], people[(n + 1) % 3]
        body = {"from_user_id": source["id"], "to_user_id": target["id"], "amount": 60 + n}
        assert client.post("/transactions", json=body, headers=headers).status_code == 201
    caplog.clear()
    deliver_events(app)
    fallbacks = [r.getMessage() for r in caplog.records if "one event at a time" in r.getMessage()]
    assert fallbacks == []
    with app.container.database().engine.connect() as conn:
        outcomes = conn.execute(select(EventDelivery.subscriber, EventDelivery.status).distinct()).all()
    shipped = {"audit_module", "integration_module", "notification_module", "reporting_module"}
    assert {subscriber for subscriber, _ in outcomes} == shipped
    assert {status for _, status in outcomes} == {"done"}


def test_retry_brings_a_dead_delivery_back_and_refuses_a_done_one(build):
    app = build("Grumpy", "Journal", events_max_attempts=1)
    client = app.test_client()
    admin = admin_headers(app)
    register(client, "frank")
    dead, _admins = client.get("/events/deliveries?status=dead&subscriber=grumpy", headers=admin).get_json()["items"]
    assert dead["attempts"] == 1 and dead["next_attempt_at"] is None

    retried = client.post(f"/events/deliveries/{dead['id']}/retry", headers=admin)
    assert retried.status_code == 202
    # Retried at once (the immediate queue), failed again: out of its fresh attempt.
    assert retried.get_json()["id"] == dead["id"]
    assert [(s, a) for s, a, *_ in deliveries(app, "grumpy")][-1] == ("dead", 1)

    done = client.get("/events/deliveries?subscriber=journal", headers=admin).get_json()["items"][0]
    assert_error(client.post(f"/events/deliveries/{done['id']}/retry", headers=admin), 409, "already_delivered")
    assert_error(client.post("/events/deliveries/999999/retry", headers=admin), 404, "not_found")
    assert_error(client.post("/events/deliveries/abc/retry", headers=admin), 404, "not_found")
    assert_error(client.post("/events/deliveries/³/retry", headers=admin), 404, "not_found")  # isdigit, not int
    _, user = user_with_token(client, "gina")
    assert_error(client.post(f"/events/deliveries/{dead['id']}/retry", headers=user), 403, "forbidden")


def test_deliveries_page_newest_first(build):
    app = build("Journal")
    client = app.test_client()
    admin = admin_headers(app)
    for n in range(5):
        register(client, f"page{n}")
    ids, cursor = [], None
    while True:
        query = {"subscriber": "journal", "limit": 2} | ({"cursor": cursor} if cursor else {})
        page = client.get("/events/deliveries", query_string=query, headers=admin).get_json()
        ids += [int(d["id"]) for d in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert ids == sorted(ids, reverse=True) and len(ids) == len(deliveries(app, "journal"))


def test_exactly_once_when_a_lease_expires_mid_batch(build):
    """Two workers race for one module: the first's batch outlives its lease, the second takes
    the lease over and must neither handle those events again nor lose them."""
    app = build("Journal", events_lease_seconds=0.2, queue_url=QUEUE_DOWN)
    backbone = app.events
    fixtures_engine = app.container.database().engine
    client = app.test_client()
    for n in range(3):
        register(client, f"race{n}")
    # No wake-up reached a worker (the queue is never built): the events wait.
    backbone.relay.run()
    handled = threading.Event()
    original = app.module_manager.get_module("journal").handle_event

    def slow(uow, event):
        original(uow, event)
        handled.set()
        threading.Event().wait(0.6)  # past the lease

    app.module_manager.get_module("journal").handle_event = slow
    first = threading.Thread(target=backbone.drainer.drain, args=("journal", threading.Event()))
    first.start()
    assert handled.wait(10)
    threading.Event().wait(0.3)  # the lease has expired; the first batch is still running
    from app.events.drain import Drainer

    other = Drainer(app.container.database(), backbone.catalog, backbone.policy, "another-worker")
    app.module_manager.get_module("journal").handle_event = original
    other.drain("journal", threading.Event())
    first.join(30)
    assert not first.is_alive()
    seen = [event_id for event_id, *_ in fixtures.journal(fixtures_engine, "journal")]
    assert len(seen) == len(set(seen)) == len(deliveries(app, "journal"))
    assert {s for s, *_ in deliveries(app, "journal")} == {"done"}


def test_wake_ups_twice_and_two_workers_racing_handle_each_event_once(build):
    from app.events.drain import Drainer

    app = build("Journal", queue_url=QUEUE_DOWN)
    client = app.test_client()
    for n in range(20):
        register(client, f"twice{n}")
    backbone = app.events
    backbone.relay.run()
    backbone.drain_now("journal")
    backbone.drain_now("journal")  # a drain task enqueued twice
    register(client, "later")
    backbone.relay.run()
    workers = [Drainer(app.container.database(), backbone.catalog, backbone.policy, f"worker-{n}") for n in range(2)]
    threads = [threading.Thread(target=w.drain, args=("journal", threading.Event())) for w in workers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    seen = fixtures.journal(app.container.database().engine, "journal")
    assert len(seen) == len({row[0] for row in seen}) == len(deliveries(app, "journal"))
    assert {s for s, *_ in deliveries(app, "journal")} == {"done"}


# -- the kernel's rules -----------------------------------------------------------------------
def test_a_non_critical_module_may_not_subscribe_in_the_transaction(build):
    app = build("InTransaction")
    state = app.module_manager.states["in_transaction"]
    assert state.status == "failed" and "EVENT_TYPES" in state.reason
    assert any(f.code == "MOD-E013" for f in app.module_manager.findings)
    client = app.test_client()
    register(client, "unharmed")  # its in-transaction handler would have raised: it is gone


def test_unknown_event_types_are_findings_with_a_suggestion(build):
    app = build("Misspelt")
    messages = {f.message: f.hint for f in app.module_manager.findings if f.code == "MOD-W012"}
    assert any("'user.craeted'" in m and "'user.created'" in h for m, h in messages.items())
    assert any("'transction.'" in m and "'transaction.'" in h for m, h in messages.items())


def test_a_module_declaring_events_needs_a_handler(settings_factory):
    from app.kernel.findings import WiringError

    with pytest.raises(WiringError, match="MOD-E014"):
        create_app(settings_factory(modules_extra=f"{MODULES}:NoHandler"))


# -- operations -------------------------------------------------------------------------------
def test_metrics_show_outcomes_backlog_and_lag(build):
    app = build("Grumpy", "Journal", events_max_attempts=1)
    client = app.test_client()
    admin = admin_headers(app)
    register(client, "metric")
    text = client.get("/metrics", headers=admin).get_data(as_text=True)
    assert 'credit_event_deliveries_total{module="journal",outcome="done"}' in text
    assert 'credit_event_deliveries_total{module="grumpy",outcome="dead"}' in text
    assert 'credit_event_dead{module="grumpy"} 2.0' in text
    assert 'credit_event_backlog{module="journal"} 0.0' in text
    assert "credit_event_relay_lag_seconds 0.0" in text
    assert 'credit_event_handler_duration_seconds_count{module="journal"}' in text


def test_purge_drops_old_done_deliveries_only(build):
    from datetime import timedelta

    from app.events import store
    from app.infrastructure.tables import utcnow

    # Only the fixture modules subscribe: the shipped ones' done deliveries would be purged too.
    app = build("Grumpy", "Journal", events_max_attempts=1, modules_disabled="integration_module,reporting_module")
    register(app.test_client(), "purged")
    done = len(deliveries(app, "journal"))
    audited = len(deliveries(app, "audit_module"))  # the shipped subscriber's, done as well
    with app.container.database().unit_of_work() as uow:
        assert store.purge_done(uow.session, utcnow() - timedelta(hours=1)) == 0  # none is that old
        removed = store.purge_done(uow.session, utcnow() + timedelta(seconds=1))
        uow.commit()
    assert done and removed == done + audited and deliveries(app, "journal") == []
    assert {s for s, *_ in deliveries(app, "grumpy")} == {"dead"}  # dead ones wait for an operator


@pytest.mark.parametrize("delivery_id", ["\u00b3", "\u0661\u0662", "1" * 19])
def test_retry_of_an_id_that_is_no_ascii_number_is_404(app, client, delivery_id):
    """ "³" and Arabic-Indic digits are digits to str.isdigit but no int() a delivery id has."""
    response = client.post(f"/events/deliveries/{delivery_id}/retry", headers=admin_headers(app))
    assert response.status_code == 404 and response.get_json()["error"]["code"] == "not_found"
