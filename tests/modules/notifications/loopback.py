"""Real servers on loopback for the notification tests: an SMTP server (aiosmtpd) and an HTTP
SMS provider, each answering from a script of replies and recording what it received."""

from __future__ import annotations

import base64
import email
import email.policy
import threading
from collections import deque
from dataclasses import dataclass, field
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

from aiosmtpd.controller import Controller

from tests.servers import free_port


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage
    peer: tuple = ()  # the client's (host, port): one per SMTP connection


class _Handler:
    def __init__(self, server: SmtpServer) -> None:
        self.server = server

    async def handle_DATA(self, _server, session, envelope) -> str:
        reply = self.server.next_reply()
        if reply.startswith("250"):
            parsed = email.message_from_bytes(envelope.content, policy=email.policy.default)
            self.server.received.append(
                Received(envelope.mail_from, list(envelope.rcpt_tos), parsed, tuple(session.peer))
            )
        return reply


class SmtpServer:
    """aiosmtpd in a thread on 127.0.0.1; `replies` answer DATA in turn, then 250 OK."""

    def __init__(self) -> None:
        self.port = free_port()
        self.received: list[Received] = []
        self.replies: deque[str] = deque()
        self._lock = threading.Lock()
        self._controller = Controller(_Handler(self), hostname="127.0.0.1", port=self.port)

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    def next_reply(self) -> str:
        with self._lock:
            return self.replies.popleft() if self.replies else "250 OK"

    def start(self) -> SmtpServer:
        self._controller.start()
        return self

    def stop(self) -> None:
        self._controller.stop()


@dataclass
class SmsRequest:
    path: str
    form: dict[str, str]
    auth: tuple[str, str] | None
    content_type: str


@dataclass
class SmsProvider:
    """A Twilio-shaped SMS provider on loopback: POST a form, basic auth; `statuses` answer in turn, then 201."""

    statuses: deque[int] = field(default_factory=deque)
    requests: list[SmsRequest] = field(default_factory=list)

    def start(self) -> SmsProvider:
        provider = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length).decode()
                form = {key: values[0] for key, values in parse_qs(raw).items()}
                header = self.headers.get("Authorization") or ""
                auth = None
                if header.startswith("Basic "):
                    user, _, password = base64.b64decode(header[6:]).decode().partition(":")
                    auth = (user, password)
                provider.requests.append(SmsRequest(self.path, form, auth, self.headers.get("Content-Type") or ""))
                status = provider.statuses.popleft() if provider.statuses else 201
                body = b'{"sid": "SM1"}'
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:
                return None

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def url(self, user: str = "AC123", token: str = "s3cret-token") -> str:
        return f"http://{user}:{token}@127.0.0.1:{self.port}/2010-04-01/Messages"

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
