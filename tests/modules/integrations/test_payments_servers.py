"""The classic double-credit bug, tried for real: the same paid checkout delivered 10 times,
5 of them at once, to two gunicorn servers on one PostgreSQL database: one deposit."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from sqlalchemy import create_engine, func, select
from sqlalchemy.pool import NullPool

from app.infrastructure.tables import Account, Transaction
from app.infrastructure.tables_integrations import PaymentEvent
from tests import backends
from tests.helpers import DEFAULT_PASSWORD
from tests.modules.integrations.conftest import STRIPE_SECRET, checkout_event, stripe_header
from tests.servers import ServerProcess, server_env

pytestmark = [pytest.mark.integration, pytest.mark.e2e]
SERVER_REDIS_URL = backends.REDIS_URL.rsplit("/", 1)[0] + "/14"


@pytest.fixture
def shared_postgres():
    with backends.throwaway_postgres(SERVER_REDIS_URL) as database_url:
        yield database_url


def test_ten_deliveries_five_at_once_to_two_servers_credit_once(shared_postgres, tmp_path):
    env = server_env(shared_postgres, SERVER_REDIS_URL, tmp_path, CREDIT_STRIPE_WEBHOOK_SECRET=STRIPE_SECRET)
    with (
        ServerProcess(env, workers=2, threads=4, log_path=tmp_path / "a.log") as a,
        ServerProcess(env, workers=2, threads=4, log_path=tmp_path / "b.log") as b,
    ):
        user = requests.post(
            f"{a.url}/users",
            json={"username": "payer", "email": "payer@example.com", "password": DEFAULT_PASSWORD},
            timeout=30,
        ).json()
        body = checkout_event(user["id"], "cs_live_once", "evt_once", metadata={"credits": "1234"})
        start = threading.Barrier(5)

        def deliver(n: int, together: bool) -> requests.Response:
            if together:
                start.wait(timeout=30)
            server = (a, b)[n % 2]
            return requests.post(
                f"{server.url}/integrations/payments/stripe",
                data=body,
                headers={"Content-Type": "application/json", "Stripe-Signature": stripe_header(body)},
                timeout=30,
            )

        with ThreadPoolExecutor(5) as pool:
            concurrent = list(pool.map(lambda n: deliver(n, True), range(5)))
        sequential = [deliver(n, False) for n in range(5)]

    answers = [(r.status_code, r.json()["status"]) for r in concurrent + sequential]
    assert answers == [(200, "credited")] * 10, answers
    assert sum(not r.json()["duplicate"] for r in concurrent + sequential) == 1
    engine = create_engine(shared_postgres, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            deposits = conn.execute(
                select(Transaction.id, Transaction.amount).where(Transaction.description == "stripe:cs_live_once")
            ).all()
            payments = conn.execute(select(PaymentEvent.transaction_id, PaymentEvent.status)).all()
            wallet = conn.scalar(select(Account.balance).where(Account.user_id == user["id"]))
            count = conn.scalar(select(func.count()).select_from(Transaction))
    finally:
        engine.dispose()
    assert len(deposits) == 1 and deposits[0].amount == 1234
    assert payments == [(deposits[0].id, "credited")]
    assert wallet == 1234 and count == 1
