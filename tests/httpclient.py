"""The one HTTP client of the tests that talk to real server processes.

Several servers' base URLs, one requests Session per thread; a request goes to the server
it names, or to one picked at random. Every answer and every connection failure can be
reported to an observer (the fault tests' figures count them).
"""

from __future__ import annotations

import random
import threading
import time
from typing import Any, Protocol

import requests

from tests.helpers import DEFAULT_PASSWORD


class Observer(Protocol):
    def answered(self, status: int, seconds: float) -> None: ...

    def failed(self, seconds: float) -> None: ...

    def retried(self) -> None: ...


class Unobserved:
    """Counts nothing."""

    def answered(self, status: int, seconds: float) -> None:
        pass

    def failed(self, seconds: float) -> None:
        pass

    def retried(self) -> None:
        pass


def body_of(response: requests.Response) -> dict:
    """The JSON body (empty for no content); a page that is not JSON is kept as text to report."""
    try:
        return response.json() if response.content else {}
    except ValueError:
        return {"not_json": response.text[:200]}


class ServersClient:
    """requests over several servers, one Session (and one random sequence) per thread."""

    def __init__(self, urls: list[str], observer: Observer | None = None, timeout: float = 15, seed: int = 0) -> None:
        self.urls = urls
        self.observer = observer or Unobserved()
        self.timeout = timeout
        self._seed = seed
        self._local = threading.local()

    def _session(self) -> requests.Session:
        if not hasattr(self._local, "session"):
            self._local.session = requests.Session()
            self._local.rng = random.Random(f"{self._seed}-{threading.get_ident()}")
        return self._local.session

    def url(self, server: int | None) -> str:
        """Base URL of server number `server` (wrapping around), or of a random one for None."""
        if server is None:
            self._session()
            return self._local.rng.choice(self.urls)
        return self.urls[server % len(self.urls)]

    def request(self, method: str, path: str, server: int | None = 0, **kwargs: Any) -> requests.Response:
        """One attempt; a connection error or timeout is reported and raised."""
        started = time.monotonic()
        kwargs.setdefault("timeout", self.timeout)
        try:
            response = self._session().request(method, self.url(server) + path, **kwargs)
        except requests.RequestException:
            self.observer.failed(time.monotonic() - started)
            raise
        self.observer.answered(response.status_code, time.monotonic() - started)
        return response

    def send(
        self,
        method: str,
        path: str,
        body: dict | None,
        headers: dict,
        server: int = 0,
        deadline_seconds: float = 60,
        first_timeout: float | None = None,
    ) -> tuple[int, dict]:
        """Send until there is an answer that is not a fault: a connection error, a timeout or a
        503 is retried with the same request (and so the same Idempotency-Key) on the next
        server; 409 idempotency_conflict (the first attempt still running) is retried too.
        `first_timeout`: an impatient first attempt, whose retry races the original."""
        deadline = time.monotonic() + deadline_seconds
        attempt = 0
        while True:
            attempt += 1
            timeout = (5, first_timeout) if attempt == 1 and first_timeout else self.timeout
            try:
                response = self.request(method, path, server, json=body, headers=headers, timeout=timeout)
            except requests.RequestException:
                response = None
            if response is not None:
                payload = body_of(response)
                code = payload.get("error", {}).get("code") if isinstance(payload, dict) else None
                if response.status_code != 503 and code != "idempotency_conflict":
                    self._local.attempts = attempt
                    self._local.replayed = response.headers.get("Idempotent-Replayed") == "true"
                    return response.status_code, payload
            if time.monotonic() > deadline:
                raise AssertionError(f"{method} {path} got no definite answer in {deadline_seconds}s")
            self.observer.retried()
            server += 1  # the other server, if there is one
            time.sleep(min(0.05 * attempt, 0.5))

    def last_attempts(self) -> int:
        """How many attempts this thread's last send() took."""
        return getattr(self._local, "attempts", 0)

    def last_replayed(self) -> bool:
        """Whether this thread's last send() was answered from a stored outcome."""
        return getattr(self._local, "replayed", False)

    def login(self, username: str, password: str = DEFAULT_PASSWORD) -> dict[str, str]:
        """Bearer headers for `username` (asserts the login succeeded)."""
        status, body = self.send("POST", "/auth/login", {"username": username, "password": password}, {})
        assert status == 200, body
        return {"Authorization": f"Bearer {body['access_token']}"}

    # tests.workload.Http: one attempt each, on a server picked at random.
    def post(self, path: str, json: dict | None, headers: dict) -> tuple[int, dict, dict]:
        response = self.request("POST", path, None, json=json, headers=headers)
        return response.status_code, body_of(response), dict(response.headers)

    def get(self, path: str, headers: dict) -> tuple[int, dict]:
        response = self.request("GET", path, None, headers=headers)
        return response.status_code, body_of(response)
