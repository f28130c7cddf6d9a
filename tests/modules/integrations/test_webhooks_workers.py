"""Webhooks as a user meets them: a real server, real `credit-system worker` processes on
PostgreSQL + Redis, and loopback receivers verifying with `standardwebhooks`."""

from __future__ import annotations

import time

import pytest
import requests

from tests import backends
from tests.helpers import DEFAULT_PASSWORD
from tests.modules.integrations.receiver import Answer, Receiver
from tests.servers import ServerProcess, WorkerProcess, ensure_admin, server_env

pytestmark = [pytest.mark.integration, pytest.mark.e2e]
SERVER_REDIS_URL = backends.REDIS_URL.rsplit("/", 1)[0] + "/14"


def poll(fetch, timeout: float):
    """fetch()'s first truthy answer within timeout, else None."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = fetch()
        if found:
            return found
        time.sleep(0.1)
    return None


@pytest.fixture
def shared_postgres():
    with backends.throwaway_postgres(SERVER_REDIS_URL) as database_url:
        yield database_url


class Api:
    def __init__(self, url: str) -> None:
        self.url = url

    def call(self, method: str, path: str, token: str | None = None, **kwargs) -> requests.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return requests.request(method, self.url + path, headers=headers, timeout=30, **kwargs)

    def login(self, username: str) -> str:
        return self.call("POST", "/auth/login", json={"username": username, "password": DEFAULT_PASSWORD}).json()[
            "access_token"
        ]

    def user(self, username: str) -> tuple[str, str]:
        created = self.call(
            "POST",
            "/users",
            json={"username": username, "email": f"{username}@example.com", "password": DEFAULT_PASSWORD},
        ).json()
        return created["id"], self.login(username)


def test_a_slow_endpoint_never_delays_the_others_and_a_stopped_receiver_catches_up(shared_postgres, tmp_path):
    ensure_admin(shared_postgres, tmp_path, SERVER_REDIS_URL)
    env = server_env(
        shared_postgres,
        SERVER_REDIS_URL,
        tmp_path,
        CREDIT_WEBHOOK_ALLOW_PRIVATE="true",
        CREDIT_WEBHOOK_TIMEOUT_SECONDS="3",
        CREDIT_WEBHOOK_RETRY_SCHEDULE="1,60",
        CREDIT_EVENTS_SWEEP_SECONDS="1",
    )
    fast, slow = Receiver().start(), Receiver().start()
    slow.default = Answer(200, delay=30)  # never answers within the timeout
    try:
        with (
            ServerProcess(env, workers=2, threads=4, log_path=tmp_path / "server.log") as server,
            WorkerProcess(env, concurrency=4, log_path=tmp_path / "worker.log"),
        ):
            api = Api(server.url)
            admin = api.login("admin")
            alice, alice_token = api.user("alice")
            bob, _ = api.user("bob")
            assert api.call("POST", "/wallet/deposit", admin, json={"user_id": alice, "amount": 100}).status_code == 201
            hooks = {}
            for name, receiver in (("fast", fast), ("slow", slow)):
                response = api.call(
                    "POST",
                    "/webhooks/endpoints",
                    admin,
                    json={"url": receiver.url, "event_types": ["transaction.posted"], "description": name},
                )
                assert response.status_code == 201, response.text
                hooks[name] = response.json()
                receiver.secrets = [hooks[name]["secret"]]

            started = time.monotonic()
            for _ in range(5):
                moved = api.call(
                    "POST", "/transactions", alice_token, json={"from_user_id": alice, "to_user_id": bob, "amount": 1}
                )
                assert moved.status_code == 201
            received = fast.wait_for(5, timeout=20)
            took = time.monotonic() - started
            # The slow endpoint's five would hold a shared sender 5 x 3 s; the fast one is not behind them.
            assert took < 8, f"the fast endpoint's deliveries took {took:.1f}s"
            assert all(message.verified_by == [hooks["fast"]["secret"]] for message in received)

            # "Stop the receiver, see retries pending, start it, retry, see success."
            port = fast.server.server_address[1]
            fast.stop()
            assert (
                api.call(
                    "POST", "/transactions", alice_token, json={"from_user_id": alice, "to_user_id": bob, "amount": 1}
                ).status_code
                == 201
            )

            def pending_retry():
                log = api.call("GET", f"/webhooks/endpoints/{hooks['fast']['id']}/deliveries", admin).json()["items"]
                waiting = [d for d in log if d["status"] == "pending" and d["attempts"] >= 1]
                return waiting[0] if waiting else None

            delivery = poll(pending_retry, timeout=20)
            assert delivery is not None, (tmp_path / "worker.log").read_text()[-3000:]
            assert delivery["last_status_code"] is None and delivery["last_error"]
            fast = Receiver([hooks["fast"]["secret"]], port=port).start()
            assert api.call("POST", f"/webhooks/deliveries/{delivery['id']}/retry", admin).status_code == 202

            def succeeded():
                log = api.call("GET", f"/webhooks/endpoints/{hooks['fast']['id']}/deliveries", admin).json()["items"]
                return [d for d in log if d["id"] == delivery["id"] and d["status"] == "succeeded"]

            assert poll(succeeded, timeout=20), (tmp_path / "worker.log").read_text()[-3000:]
            (message,) = fast.wait_for(1)
            assert message.verified_by == [hooks["fast"]["secret"]]
            assert message.headers["webhook-id"] == delivery["event_id"]
    finally:
        fast.stop()
        slow.stop()
