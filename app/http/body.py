"""Request bodies: read once, decoded once, refused with the API's error body when they cannot be used.

The before-request check (`require_json_object`, called by app.http.api.screen_request) answers,
before any view or token check:
  415 `unsupported_media_type`  a body sent without `Content-Type: application/json`
  400 `bad_request`             not JSON (NaN and Infinity included), not an object, nested deeper
                                than MAX_DEPTH, or no body where the operation requires one
  413 `payload_too_large`       over the limit, with Content-Length or chunked
The arguments parser (app.http.blueprint) then loads the same decoded body, so nothing is parsed
twice and no view ever sees a body this module refused; a string holding an unpaired UTF-16
surrogate ("\\ud800": valid JSON, but no encoder, database or hash accepts it) is a 422 on its
field there, after the caller is authenticated, like every other invalid field.
"""

from __future__ import annotations

import json
import re
from typing import Any

from flask import Request, current_app, request
from werkzeug.exceptions import RequestEntityTooLarge

from app.http.errors import BodyRefused

BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
# Request bodies here are flat objects; any of them needs a few levels at most. A body json
# cannot even decode (RecursionError, near 1,000 levels) is refused the same way.
MAX_DEPTH = 32
SURROGATE_MESSAGE = "Must not contain an unpaired UTF-16 surrogate (\\ud800-\\udfff)."
# A lone surrogate can only arrive as a \u escape: raw bytes that encode one are not UTF-8.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


class _NotJson(ValueError):
    """NaN, Infinity and -Infinity: Python's json reads them, JSON has no such values."""


def _refuse_constant(name: str) -> Any:
    raise _NotJson(f"the request body is not valid JSON: {name} is not a JSON value")


def _depth_and_surrogates(value: Any) -> tuple[int, list[str]]:
    """The nesting depth of a decoded body, and the top-level fields holding an unpaired surrogate.

    Iterative, so a deep body cannot exhaust the stack here either."""
    depth, flagged = 0, []
    stack: list[tuple[Any, int, str | None]] = [(value, 0, None)]
    while stack:
        node, level, field = stack.pop()
        if isinstance(node, dict):
            depth = max(depth, level + 1)
            for key, item in node.items():
                named = _encodable(key)
                if not named:
                    flagged.append(field if field is not None else "_schema")
                # A field's errors are reported under its name, or under _schema when the name is the problem.
                stack.append((item, level + 1, field if field is not None else key if named else "_schema"))
        elif isinstance(node, list):
            depth = max(depth, level + 1)
            stack.extend((item, level + 1, field) for item in node)
        elif isinstance(node, str) and not _encodable(node):
            flagged.append(field if field is not None else "_schema")
    return depth, list(dict.fromkeys(flagged))


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


class DecodedBody:
    """A request body as JSON: the value and the fields that hold an unpaired surrogate."""

    __slots__ = ("value", "unencodable")

    def __init__(self, value: Any, unencodable: list[str]) -> None:
        self.value, self.unencodable = value, unencodable


def decode(raw: bytes) -> DecodedBody:
    """Decode a JSON body, refusing what the API cannot take (BodyRefused)."""
    too_deep = BodyRefused(400, "bad_request", f"the request body is nested deeper than {MAX_DEPTH} levels")
    try:
        # UTF-8 only (RFC 8259), strictly: json.loads would guess UTF-16 and let surrogates pass.
        value = json.loads(raw.decode("utf-8"), parse_constant=_refuse_constant)
    except _NotJson as exc:
        raise BodyRefused(400, "bad_request", str(exc)) from exc
    except RecursionError as exc:  # hundreds of levels: far past MAX_DEPTH
        raise too_deep from exc
    except (ValueError, UnicodeDecodeError) as exc:
        raise BodyRefused(400, "bad_request", "the request body is not valid JSON") from exc
    if not isinstance(value, dict):
        raise BodyRefused(400, "bad_request", "the request body must be a JSON object")
    # The walk costs Python time, so it runs only when the bytes say it may find something.
    if raw.count(b"[") + raw.count(b"{") <= MAX_DEPTH and not _SURROGATE_ESCAPE.search(raw):
        return DecodedBody(value, [])
    depth, unencodable = _depth_and_surrogates(value)
    if depth > MAX_DEPTH:
        raise too_deep
    return DecodedBody(value, unencodable)


_KEY = "credit.json_body"  # where a request's decoded body is kept, in its WSGI environ
_UNREAD = object()


def _read(req) -> DecodedBody | None:
    raw = req.get_data(cache=True)
    # Sent chunked (no Content-Length), a body is cut at the limit: one byte more means too large.
    if raw and not req.environ.get("CONTENT_LENGTH"):
        limit = req.max_content_length
        if limit is not None and len(raw) >= limit and req.environ["wsgi.input"].read(1):
            raise RequestEntityTooLarge()
    if not raw.strip():
        return None
    if not req.is_json:
        raise BodyRefused(
            415,
            "unsupported_media_type",
            f"send the body as JSON with 'Content-Type: application/json' (not {req.mimetype or 'none'})",
        )
    return decode(raw)


def request_body() -> DecodedBody | None:
    """This request's body, decoded once (None when there is none); BodyRefused when unusable."""
    # One context lookup, not one per attribute (Flask types the proxy as the Request itself).
    req = request._get_current_object()  # type: ignore[attr-defined]
    body = req.environ.get(_KEY, _UNREAD)
    if body is _UNREAD:
        body = req.environ[_KEY] = _read(req)
    return body


def _body_required(endpoint: str) -> bool:
    """Whether the view requires a JSON body: what its arguments say, as `requestBody.required` does."""
    view = current_app.view_functions[endpoint]
    parameters = getattr(view, "_apidoc", {}).get("arguments", {}).get("parameters", ())
    return any(parameter.get("in") == "json" and parameter.get("required") for parameter in parameters)


def require_json_object(req: Request) -> None:
    """Before any view: a body is JSON and an object, and present where the operation requires one."""
    if req.method not in BODY_METHODS or req.routing_exception is not None or req.url_rule is None:
        return  # no body to read, or a 404/405 answers first
    if request_body() is None and _body_required(req.url_rule.endpoint):
        raise BodyRefused(400, "bad_request", "this operation requires a JSON object as the request body")
