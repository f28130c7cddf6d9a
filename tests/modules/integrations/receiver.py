"""A real loopback HTTP receiver for webhook tests: it verifies every message with the
`standardwebhooks` package (each secret it is given on its own), records what came, and
answers as scripted (a status, headers, a delay, or no answer at all)."""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError


@dataclass
class Answer:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds before answering (longer than the sender's timeout: "never answers")


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    verified_by: list[str]  # the secrets whose signature matched
    at: float
    status: int


class Receiver:
    def __init__(self, secrets: list[str] | None = None, port: int = 0) -> None:
        self.secrets: list[str] = list(secrets or [])
        self.script: deque[Answer] = deque()
        self.default = Answer()
        self.received: list[Received] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                headers = {name.lower(): value for name, value in self.headers.items()}
                with receiver._lock:
                    answer = receiver.script.popleft() if receiver.script else receiver.default
                verified = []
                for secret in receiver.secrets:
                    try:
                        Webhook(secret).verify(body, headers)
                        verified.append(secret)
                    except WebhookVerificationError:
                        pass
                with receiver._lock:
                    receiver.received.append(Received(headers, body, verified, time.time(), answer.status))
                if answer.delay:
                    receiver._stop.wait(answer.delay)
                try:
                    self.send_response(answer.status)
                    for name, value in answer.headers.items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                except OSError:  # the sender gave up (timeout)
                    pass

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)  # reuses a port just closed
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self) -> Receiver:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self.server.shutdown()
        self.server.server_close()

    def then(self, *answers: Answer) -> Receiver:
        self.script.extend(answers)
        return self

    def wait_for(self, count: int, timeout: float = 10.0) -> list[Received]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if len(self.received) >= count:
                    return list(self.received)
            time.sleep(0.01)
        raise AssertionError(f"expected {count} messages, received {len(self.received)}")

    def __enter__(self) -> Receiver:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
