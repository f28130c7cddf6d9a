"""How an operation's errors, security, idempotency and headers appear in the OpenAPI document.

Routes name the error codes of the contract they can answer with; the statuses, the
error bodies, the headers and an example per code come from here, so every module
documents its failures the same way:

    @blp.route("/wallet/withdraw", methods=["POST"])
    @blp.arguments(MoneyMovementSchema)
    @blp.response(201, TransactionSchema)
    @errors("forbidden", "not_found", "insufficient_funds", auth=True, body=True, idempotent=True)
    def withdraw(body): ...

Cross-cutting failures follow from the flags, as they follow from the code paths:
  auth=True       bearer security and 401 `unauthorized` (the token is checked first)
  body=True       400 `bad_request` (not JSON, not an object, missing), 413 `payload_too_large`,
                  415 `unsupported_media_type`, 422 `validation_error`
  empty_body=True a POST that takes no body: 400, 413 and 415 as above when one is sent anyway
  backend=True    503 `service_unavailable` with Retry-After (the database is down); the default
  idempotent=True the Idempotency-Key header, `Idempotent-Replayed: true` on replayed 201 and
                  409 answers, 409 `idempotency_conflict`, 422 `idempotency_key_reused`
and every operation documents 414 `uri_too_long` (any request line can be too long; see
app.http.wire_errors) and 500 `internal_error`. There is no catch-all `default` response:
the statuses listed are all the statuses an operation answers with.

Each error response's body is a schema of its own code set (`NotFoundError`,
`InsufficientFundsOrIdempotencyConflictError`, ...): `error.code` is an enum of exactly the
codes that response lists, and `error.details` is typed where the code documents members
(from the error's `details` example: `balance`/`requested`, `retry_after`, `limit_bytes`;
validation errors map each field to its messages). A code set is one component however many
operations answer with it, so a generated client gets one class per set.

DocumentedConventions (an apispec plugin the Api installs) adds what every operation shares:
the optional `X-Request-ID` request header and its echo on every response, `Location` on
every 201, and the error components the operations reference.
"""

from __future__ import annotations

import http
from typing import Any

from apispec import BasePlugin
from apispec.ext.marshmallow.common import resolve_schema_instance
from marshmallow import RAISE

from app.http.blueprint import Blueprint
from app.http.errors import ErrorDoc, error_catalog
from app.http.idempotency import IDEMPOTENCY_DOC

BEARER: list[dict[str, list[str]]] = [{"bearerAuth": []}]
_RETRY_AFTER = {"description": "Seconds to wait before retrying", "schema": {"type": "integer", "minimum": 0}}
_REPLAYED = {
    "Idempotent-Replayed": {
        "description": "`true` when this is the stored answer to an earlier request with the same Idempotency-Key",
        "schema": {"type": "string", "enum": ["true"]},
    }
}
SCHEMAS = "#/components/schemas/"
# Codes whose `details` map each invalid field (or `_schema`) to a list of messages.
FIELD_MESSAGES = frozenset({"validation_error"})
_JSON_TYPES = {bool: "boolean", int: "integer", float: "number", str: "string"}

ANY_DETAILS = {
    "type": "object",
    "description": "No members are documented for these codes (they send `{}`)",
    "additionalProperties": {},
}
# Every error component an operation has referenced so far, by name (see DocumentedConventions).
ERROR_COMPONENTS: dict[str, dict[str, Any]] = {}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": SCHEMAS + name}


def _pascal(code: str) -> str:
    return "".join(word[:1].upper() + word[1:] for word in code.split("_"))


def _define(name: str, schema: dict[str, Any]) -> dict[str, str]:
    if ERROR_COMPONENTS.setdefault(name, schema) != schema:
        raise ValueError(f"the error component {name} is already a different schema")
    return _ref(name)


def _details_schema(code: str, doc: ErrorDoc) -> dict[str, str] | None:
    """The typed `details` of one code, or None when it documents no members."""
    if code in FIELD_MESSAGES:
        return _define(
            f"{_pascal(code)}Details",
            {
                "type": "object",
                "description": "Each invalid field (`_schema` for the body as a whole) and its messages",
                "additionalProperties": {"type": "array", "items": {"type": "string"}},
            },
        )
    if not doc.example:
        return None
    properties = {name: {"type": _JSON_TYPES[type(value)], "example": value} for name, value in doc.example.items()}
    return _define(f"{_pascal(code)}Details", {"type": "object", "properties": properties})


def error_body_schema(codes: list[str], catalog: dict[str, ErrorDoc]) -> dict[str, str]:
    """A reference to the error body whose `error.code` is one of `codes` (defined on first use)."""
    name = "Or".join(_pascal(code) for code in codes)
    name = name if name.endswith("Error") else name + "Error"
    typed = {ref["$ref"]: ref for code in codes if (ref := _details_schema(code, catalog[code])) is not None}
    # One code with documented members types `details`; codes that document none send `{}`,
    # which those optional members allow. Two different typed shapes leave it free-form.
    details = next(iter(typed.values())) if len(typed) == 1 else _define("AnyDetails", ANY_DETAILS)
    detail = _define(
        f"{name}Detail",
        {
            "type": "object",
            "properties": {
                "code": {"type": "string", "enum": list(codes)},
                "message": {"type": "string"},
                "details": details,
            },
            "required": ["code", "message", "details"],
            "additionalProperties": False,
        },
    )
    return _define(
        name,
        {
            "type": "object",
            "description": "The error body: " + ", ".join(f"`{code}`" for code in codes),
            "properties": {"error": detail},
            "required": ["error"],
            "additionalProperties": False,
        },
    )


def _response(status: int, codes: list[str], headers: dict, catalog: dict[str, ErrorDoc]) -> dict:
    lines = "\n".join(f"- `{code}`: {catalog[code].description}" for code in codes)
    response = {
        "description": f"{http.HTTPStatus(status).phrase}\n\n{lines}",
        "content": {
            "application/json": {
                "schema": error_body_schema(codes, catalog),
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
    empty_body: bool = False,
    backend: bool = True,
    idempotent: bool = False,
    success: int = 201,
) -> dict:
    """The OpenAPI fields (responses, security, parameters) of an operation answering with `codes`."""
    wanted = list(codes)
    if auth:
        wanted.insert(0, "unauthorized")
    if body or empty_body:  # a POST without a body still has one checked: it must be empty or {}
        wanted[:0] = ["bad_request", "payload_too_large", "unsupported_media_type"]
    if body:
        wanted.insert(3, "validation_error")
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
        headers: dict[str, dict[str, Any]] = {}
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


REQUEST_ID = "X-Request-ID"
REQUEST_ID_PARAMETER = {
    "description": "Your id for this request (1-128 of `A-Z a-z 0-9 . _ -`), echoed in the response and the "
    "server's logs; another value is replaced by a generated one",
    "required": False,
    "schema": {"type": "string"},
}
REQUEST_ID_HEADER = {
    "description": "The request's id: the one sent, or a generated one",
    "required": True,
    "schema": {"type": "string", "pattern": "^[A-Za-z0-9._-]{1,128}$"},
}
LOCATION_HEADER = {
    "description": "Where the created resource is read: `/users/{id}`, `/transactions/{id}`",
    "required": True,
    "schema": {"type": "string", "format": "uri-reference"},
}
# Answers no operation can list, since no operation matched: the info description points here.
ROUTELESS = {
    "NotFound": (404, "not_found", {}),
    "MethodNotAllowed": (
        405,
        "method_not_allowed",
        {"Allow": {"description": "The methods this path answers", "required": True, "schema": {"type": "string"}}},
    ),
}
ROUTELESS_NOTE = "Answered for a path no operation serves, or a method the path does not serve."
# gunicorn answers a too-long request line itself, before the application (and its id) exists.
_NO_REQUEST_ID = frozenset({"414"})


class DocumentedConventions(BasePlugin):
    """What every operation shares, added as the operations are registered.

    - the optional `X-Request-ID` request header, and the same header on every response
      the application answers (all but gunicorn's 414);
    - `Location` on every 201: the server sends it (tests/api/test_openapi.py holds it to that);
    - the error body components (error_body_schema) the operation's responses refer to;
    - responses listed by status code, whichever decorator documented them.
    """

    def init_spec(self, spec) -> None:
        super().init_spec(spec)
        self.spec = spec
        spec.components.parameter(REQUEST_ID, "header", REQUEST_ID_PARAMETER)
        spec.components.header(REQUEST_ID, REQUEST_ID_HEADER)
        spec.components.header("Location", LOCATION_HEADER)
        catalog = error_catalog()
        for name, (status, code, headers) in ROUTELESS.items():
            response = _response(status, [code], headers, catalog)
            response["description"] += "\n\n" + ROUTELESS_NOTE
            self._register(response["content"])
            spec.components.response(name, response)

    def _register(self, schema: Any) -> None:
        """Register the error components `schema` refers to, the ones they refer to first."""
        if isinstance(schema, dict):
            ref = schema.get("$ref", "")
            name = ref[len(SCHEMAS) :] if ref.startswith(SCHEMAS) else None
            if name in ERROR_COMPONENTS and name not in self.spec.components.schemas:
                self._register(ERROR_COMPONENTS[name])
                self.spec.components.schema(name, ERROR_COMPONENTS[name])
            for value in schema.values():
                self._register(value)

    def schema_helper(self, name, definition, **kwargs) -> dict | None:
        """A schema refusing unknown fields says so (`additionalProperties: false`), also when it
        has a Meta.description (apispec then leaves it out)."""
        schema = kwargs.get("schema")
        if schema is None or "additionalProperties" in definition:
            return None
        if resolve_schema_instance(schema).unknown == RAISE:
            return {"additionalProperties": False}
        return None

    def operation_helper(self, path=None, operations=None, **kwargs) -> None:
        for operation in (operations or {}).values():
            if not isinstance(operation, dict) or not isinstance(operation.get("responses"), dict):
                continue
            parameters = operation.setdefault("parameters", [])
            for parameter in parameters:
                # A parameter's description sits beside its schema, so an enum's allOf wrapper
                # (app.http.api.enum_component) is only in the way of a plain $ref.
                schema = parameter.get("schema") if isinstance(parameter, dict) else None
                if isinstance(schema, dict) and list(schema) == ["allOf"] and len(schema["allOf"]) == 1:
                    parameter["schema"] = schema["allOf"][0]
            parameters.append(REQUEST_ID)  # a component id: apispec refers to it
            operation["responses"] = dict(sorted(operation["responses"].items(), key=lambda item: str(item[0])))
            for status, response in operation["responses"].items():
                if not isinstance(response, dict):
                    continue
                headers = response.setdefault("headers", {})
                if str(status) not in _NO_REQUEST_ID:
                    headers[REQUEST_ID] = REQUEST_ID
                if str(status) == "201":
                    headers["Location"] = "Location"
                self._register(response.get("content"))
