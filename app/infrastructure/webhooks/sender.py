"""One webhook POST (httpx): a timeout, no redirects followed, the checked address pinned."""

from __future__ import annotations

import email.utils
import time
from dataclasses import dataclass

import httpx

from app.infrastructure.webhooks.guard import Target
from app.vocabulary import ascii_int

MAX_RETRY_AFTER = 24 * 3600.0  # a receiver cannot park a delivery for longer than a day
USER_AGENT = "credit-system-webhooks/1"


@dataclass(frozen=True)
class Response:
    """What an attempt came to: a status (None when no answer came) and why it failed."""

    status_code: int | None
    error: str | None = None
    retry_after: float | None = None  # seconds, from a Retry-After header

    @property
    def succeeded(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def retry_after_seconds(value: str | None) -> float | None:
    """A Retry-After header as seconds from now: delta-seconds or an HTTP date; None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    seconds = ascii_int(value, max_digits=12)
    if seconds is not None:
        return min(float(seconds), MAX_RETRY_AFTER)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    return min(max(when.timestamp() - time.time(), 0.0), MAX_RETRY_AFTER)


class WebhookSender:
    """Shared by the worker's threads: one connection pool, thread-safe (httpx.Client)."""

    def __init__(self, timeout_seconds: float = 10.0) -> None:
        self.timeout = timeout_seconds
        self._client = httpx.Client(
            timeout=httpx.Timeout(timeout_seconds),
            follow_redirects=False,
            trust_env=False,  # a proxy from the environment would bypass the address check
            headers={"User-Agent": USER_AGENT},
        )

    def post(self, target: Target, body: bytes, headers: dict[str, str]) -> Response:
        url = httpx.URL(target.url)
        extensions = {}
        headers = {**headers, "Content-Type": "application/json"}
        if target.address is not None:
            # Connect to the address the guard checked; the host still names the site
            # (Host header, and the TLS server name that the certificate is checked against).
            headers["Host"] = url.netloc.decode("ascii")
            if url.scheme == "https":
                extensions["sni_hostname"] = target.host
            url = url.copy_with(host=target.address)
        started = time.monotonic()
        try:
            # Streamed and never read: only the status and headers matter, and a receiver
            # answering with an endless body cannot hold the sender.
            with self._client.stream("POST", url, content=body, headers=headers, extensions=extensions) as answer:
                code, retry_after_header = answer.status_code, answer.headers.get("Retry-After")
        except httpx.TimeoutException:
            return Response(None, f"timed out after {time.monotonic() - started:.1f}s (limit {self.timeout:g}s)")
        except httpx.HTTPError as exc:
            return Response(None, f"{type(exc).__name__}: {exc}"[:500])
        if 200 <= code < 300:
            return Response(code)
        if 300 <= code < 400:
            return Response(code, f"redirect ({code}) not followed")
        retry_after = retry_after_seconds(retry_after_header) if code in (429, 503) else None
        return Response(code, f"HTTP {code}", retry_after)

    def close(self) -> None:
        self._client.close()
