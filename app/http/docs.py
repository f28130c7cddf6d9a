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
from app.http.errors import ErrorDoc, error_catalog
from app.http.idempotency import IDEMPOTENCY_DOC

BEARER = [{"bearerAuth": []}]
_RETRY_AFTER = {"description": "Seconds to wait before retrying", "schema": {"type": "integer", "minimum": 0}}
_REPLAYED = {
    "Idempotent-Replayed": {
        "description": "`true` when this is the stored answer to an earlier request with the same Idempotency-Key",
        "schema": {"type": "string", "enum": ["true"]},
    }
}


def _response(status: int, codes: list[str], headers: dict, catalog: dict[str, ErrorDoc]) -> dict:
    lines = "\n".join(f"- `{code}`: {catalog[code].description}" for code in codes)
    response = {
        "description": f"{http.HTTPStatus(status).phrase}\n\n{lines}",
        "content": {
            "application/json": {
                "schema": ErrorSchema,
                "examples": {
                    code: {
                        "summary": catalog[code].description,
                        "value": {
                            "error": {
                                "code": code,
                                "message": catalog[code].description,
                                "details": catalog[code].example,
                            }
                        },
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
    catalog = error_catalog()  # read now: a module's own DomainError classes are imported by now
    unknown = [code for code in wanted if code not in catalog]
    if unknown:
        raise ValueError(f"undocumented error codes: {unknown}")

    by_status: dict[int, list[str]] = {}
    for code in dict.fromkeys(wanted):
        by_status.setdefault(catalog[code].status, []).append(code)
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
        responses[status] = _response(status, status_codes, headers, catalog)
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
