"""The request id: taken from a well-formed X-Request-ID header, else generated; kept on flask.g."""

from __future__ import annotations

import re
import uuid

from flask import g, has_request_context, request

HEADER = "X-Request-ID"
_VALID = re.compile(r"[A-Za-z0-9._-]{1,128}")


def current_request_id() -> str | None:
    """This request's id (assigned on first use), or None outside a request."""
    if not has_request_context():
        return None
    rid = g.get("request_id")
    if rid is None:
        given = request.headers.get(HEADER, "")
        # A client-chosen id lands in logs and headers: only a short, plain token is trusted.
        rid = g.request_id = given if _VALID.fullmatch(given) else uuid.uuid4().hex
    return rid
