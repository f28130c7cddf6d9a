"""The request id: taken from a well-formed X-Request-ID header, else generated; held in a
context variable for the request's duration, so log lines and hooks read it without Flask's
context proxies."""

from __future__ import annotations

import random
import re
from contextvars import ContextVar

HEADER = "X-Request-ID"
_VALID = re.compile(r"[A-Za-z0-9._-]{1,128}")
_current: ContextVar[str | None] = ContextVar("credit_request_id", default=None)


def begin_request_id(given: str) -> str:
    """Fix this request's id: the client's when well-formed, else a new one."""
    # A client-chosen id lands in logs and headers: only a short, plain token is trusted.
    # A generated one need only be unique, not unguessable: the random module (reseeded in
    # every forked worker) costs no system call, where uuid4 reads os.urandom each time.
    rid = given if given and _VALID.fullmatch(given) else f"{random.getrandbits(128):032x}"
    _current.set(rid)
    return rid


def end_request_id() -> None:
    _current.set(None)


def current_request_id() -> str | None:
    """This request's id, or None outside a request."""
    return _current.get()
