"""How an operation's errors, security and idempotency appear in the OpenAPI document.

Routes name the error codes of the contract they can answer with; the statuses, the
error body (ErrorSchema), the headers and an example per code come from here, so every
module documents its failures the same way:

    @blp.route("/wallet/withdraw", methods=["POST"])
    @blp.arguments(MoneyMovementSchema)
    @blp.response(201, TransactionSchema)
    @errors("forbidden", "not_found", "insufficient_funds", auth=True, body=True, idempotent=True)
    def withdraw(body): ...

Cross-cutting failures follow from the flags, as they follow from the code paths:
  auth=True       bearer security and 401 `unauthorized` (the token is checked first)
  body=True       400 `bad_request` (not JSON, not an object), 413 `payload_too_large`,
                  422 `validation_error`
  backend=True    503 `service_unavailable` with Retry-After (the database is down); the default
  idempotent=True the Idempotency-Key header, `Idempotent-Replayed: true` on replayed 201 and
                  409 answers, 409 `idempotency_conflict`, 422 `idempotency_key_reused`
and every operation documents 414 `uri_too_long` (any request line can be too long; see
app.http.wire_errors) and 500 `internal_error`. There is no catch-all `default` response:
the statuses listed are all the statuses an operation answers with.
"""

from __future__ import annotations

import http

from flask_smorest import Blueprint

from app.http.api import ErrorSchema
from app.http.errors import CODE_BY_HTTP_STATUS, STATUS_BY_CODE
from app.http.idempotency import IDEMPOTENCY_DOC

BEARER = [{"bearerAuth": []}]

STATUS_OF = {**{code: status for status, code in CODE_BY_HTTP_STATUS.items()}, **STATUS_BY_CODE, "internal_error": 500}

# Each error code: (what it means, an example of its `details`).
CATALOG: dict[str, tuple[str, dict]] = {
    "bad_request": ("the body is not valid JSON, or not a JSON object", {}),
    "payload_too_large": ("the body is larger than the server accepts", {}),
    "uri_too_long": ("the request line (path and query string) is longer than the server accepts", {}),
    "validation_error": (
        "a field is missing or invalid; `details` maps each bad field to its messages",
        {"amount": ["Must be a JSON integer."]},
    ),
    "idempotency_key_reused": ("this Idempotency-Key was used with a different request", {}),
    "unauthorized": ("no valid bearer token: missing, malformed, expired or revoked", {}),
    "invalid_credentials": ("wrong username or password (the same answer for an unknown user)", {}),
    "forbidden": ("authenticated, but not allowed to do this", {}),
    "not_found": ("no such resource (or not yours to see)", {}),
    "username_taken": ("that username is taken (case-insensitively)", {}),
    "email_taken": ("that email is already registered", {}),
    "insufficient_funds": ("the balance is too low for this debit", {"balance": 50, "requested": 100}),
    "already_reversed": ("this transaction has already been reversed", {}),
    "idempotency_conflict": ("a request with this Idempotency-Key is in progress; retry later", {}),
    "rate_limited": ("too many failed attempts; retry after Retry-After seconds", {"retry_after": 30}),
    "service_unavailable": ("a required backend (the database) is unavailable; retry later", {}),
    "internal_error": ("an unexpected failure; the body never carries a stack trace or SQL", {}),
}

_RETRY_AFTER = {"description": "Seconds to wait before retrying", "schema": {"type": "integer", "minimum": 0}}
_REPLAYED = {
    "Idempotent-Replayed": {
        "description": "`true` when this is the stored answer to an earlier request with the same Idempotency-Key",
        "schema": {"type": "string", "enum": ["true"]},
    }
}


def _response(status: int, codes: list[str], headers: dict) -> dict:
    lines = "\n".join(f"- `{code}`: {CATALOG[code][0]}" for code in codes)
    response = {
        "description": f"{http.HTTPStatus(status).phrase}\n\n{lines}",
        "content": {
            "application/json": {
                "schema": ErrorSchema,
                "examples": {
                    code: {
                        "summary": CATALOG[code][0],
                        "value": {"error": {"code": code, "message": CATALOG[code][0], "details": CATALOG[code][1]}},
                    }
                    for code in codes
                },
            }
        },
    }
    if headers:
        response["headers"] = headers
    return response


def error_responses(
    *codes: str,
    auth: bool = False,
    body: bool = False,
    backend: bool = True,
    idempotent: bool = False,
    success: int = 201,
) -> dict:
    """The OpenAPI fields (responses, security, parameters) of an operation answering with `codes`."""
    wanted = list(codes)
    if auth:
        wanted.insert(0, "unauthorized")
    if body:
        wanted[:0] = ["bad_request", "payload_too_large", "validation_error"]
    if idempotent:
        wanted += ["idempotency_conflict", "idempotency_key_reused"]
    if backend:
        wanted.append("service_unavailable")
    wanted += ["uri_too_long", "internal_error"]
    unknown = [code for code in wanted if code not in CATALOG]
    if unknown:
        raise ValueError(f"undocumented error codes: {unknown}")

    by_status: dict[int, list[str]] = {}
    for code in dict.fromkeys(wanted):
        by_status.setdefault(STATUS_OF[code], []).append(code)
    responses = {}
    for status, status_codes in sorted(by_status.items()):
        headers = {}
        if "unauthorized" in status_codes:
            headers["WWW-Authenticate"] = {
                "description": "`Bearer` when the token is missing or invalid",
                "schema": {"type": "string"},
            }
        if status == 429:
            headers["Retry-After"] = {**_RETRY_AFTER, "required": True}
        if status == 503:
            headers["Retry-After"] = _RETRY_AFTER
        if idempotent and status == 409:
            headers.update(_REPLAYED)
        responses[status] = _response(status, status_codes, headers)
    doc: dict = {"responses": responses}
    if idempotent:
        responses[success] = {"headers": dict(_REPLAYED)}
        doc["parameters"] = IDEMPOTENCY_DOC["parameters"]
    if auth:
        doc["security"] = BEARER
    return doc


def errors(*codes: str, **flags):
    """Decorator: document `codes` (and the flags' cross-cutting errors) on a view; see the module doc."""
    return Blueprint.doc(**error_responses(*codes, **flags))
