"""SMS out: a form POST (`To`, `From`, `Body`) to an HTTP provider with basic auth taken from
the URL (Twilio's shape: `https://ACCOUNT:TOKEN@api.example.com/send`), or `file://` (one
`.txt` per message under a folder) or `console://`.

2xx is sent; 429 and 5xx, a timeout or a broken connection are transient; any other answer
(4xx, a redirect) is permanent. The token never appears in an error.
"""

from __future__ import annotations

import sys
import threading
from pathlib import Path
from typing import Protocol
from urllib.parse import unquote, urlsplit, urlunsplit

import httpx

from app.infrastructure.notify.failures import PermanentFailure, TransientFailure
from app.infrastructure.notify.files import folder_of, write_private
from app.infrastructure.notify.urls import check_transport_url

SCHEMES = ("https", "http", "file", "console")
TIMEOUT_SECONDS = 10.0


class SmsGateway(Protocol):
    backend: str

    def send(self, to: str, sender: str, body: str, reference: str) -> None:
        """Hand the message over; TransientFailure or PermanentFailure when it cannot be."""


def check_sms_url(url: str) -> None:
    """ValueError unless url names an SMS transport this module knows."""
    check_transport_url(url, "SMS", SCHEMES, ("http", "https"), "https://user:token@host/path")


def build_sms_gateway(url: str, default_folder: Path = Path("instance") / "sms") -> SmsGateway:
    check_sms_url(url)
    scheme = urlsplit(url).scheme
    if scheme == "file":
        return FileSms(folder_of(url, default_folder))
    if scheme == "console":
        return ConsoleSms()
    return HttpSms(url)


class HttpSms:
    backend = "http"

    def __init__(self, url: str, timeout: float = TIMEOUT_SECONDS) -> None:
        parts = urlsplit(url)
        host = parts.hostname or ""
        netloc = f"[{host}]" if ":" in host else host
        if parts.port:
            netloc += f":{parts.port}"
        self.endpoint = urlunsplit((parts.scheme, netloc, parts.path or "/", parts.query, ""))
        auth = httpx.BasicAuth(unquote(parts.username), unquote(parts.password or "")) if parts.username else None
        self._client = httpx.Client(auth=auth, timeout=timeout, follow_redirects=False)

    def send(self, to: str, sender: str, body: str, reference: str) -> None:
        try:
            response = self._client.post(self.endpoint, data={"To": to, "From": sender, "Body": body})
        except httpx.HTTPError as exc:
            raise TransientFailure(f"SMS provider unreachable: {type(exc).__name__}") from None
        status = response.status_code
        if 200 <= status < 300:
            return
        cause = f"SMS provider answered {status}"
        if status == 429 or status >= 500:
            raise TransientFailure(cause)
        raise PermanentFailure(cause)

    def close(self) -> None:
        self._client.close()


class FileSms:
    backend = "file"

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def send(self, to: str, sender: str, body: str, reference: str) -> None:
        text = f"To: {to}\nFrom: {sender}\n\n{body}\n"
        try:
            write_private(self.folder, f"{reference}.txt", text.encode())
        except OSError as exc:
            raise TransientFailure(f"cannot write the SMS folder: {type(exc).__name__}") from None


class ConsoleSms:
    backend = "console"

    def __init__(self) -> None:
        self._lock = threading.Lock()

    def send(self, to: str, sender: str, body: str, reference: str) -> None:
        with self._lock:
            sys.stdout.write(f"SMS To: {to} From: {sender}\n{body}\n\n")
            sys.stdout.flush()
