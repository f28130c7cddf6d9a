"""The flask-smorest Api: OpenAPI from the schemas, our error body instead of its own."""

from __future__ import annotations

import json

import flask_smorest
from apispec import BasePlugin
from flask import abort, request, send_from_directory
from marshmallow import Schema, fields

from app.http.errors import error_response, register_error_handlers
from app.schemas.common import EnumString

BODY_METHODS = {"POST", "PUT", "PATCH"}


class ErrorDetailSchema(Schema):
    code = fields.String(required=True, metadata={"example": "validation_error"})
    message = fields.String(required=True)
    details = fields.Dict(required=True)


class ErrorSchema(Schema):
    """Every 4xx and 5xx response has this body."""

    error = fields.Nested(ErrorDetailSchema, required=True)


# The Swagger UI files /docs needs, shipped in the swagger-ui-bundle package: no CDN involved.
SWAGGER_UI_ASSETS = frozenset(
    {
        "swagger-ui.css",
        "swagger-ui-bundle.js",
        "swagger-ui-standalone-preset.js",
        "favicon-16x16.png",
        "favicon-32x32.png",
    }
)


def swagger_ui_asset(filename: str):
    from swagger_ui_bundle import swagger_ui_path

    if filename not in SWAGGER_UI_ASSETS:
        abort(404)
    return send_from_directory(swagger_ui_path, filename, max_age=86400)


class SortedResponses(BasePlugin):
    """List each operation's responses by status code, whichever decorator documented them."""

    def operation_helper(self, path=None, operations=None, **kwargs):
        for operation in (operations or {}).values():
            if isinstance(operation, dict) and isinstance(operation.get("responses"), dict):
                operation["responses"] = dict(sorted(operation["responses"].items(), key=lambda item: str(item[0])))


def enum_component(converter, field: fields.Field, ret: dict, **kwargs) -> dict:
    """apispec attribute function: an EnumString field is a $ref to its enum's one component.

    The component (`{"type": "string", "enum": [...]}`, named after the enum class) is
    registered on first use. What the built-in attribute functions derived for the field
    (type, the OneOf's inline enum, a null default) is replaced by the reference; only a
    description is kept, beside it in an allOf (OpenAPI 3.0 ignores siblings of a $ref).
    """
    if not isinstance(field, EnumString):
        return {}
    name, schema = field.enum.__name__, {"type": "string", "enum": [member.value for member in field.enum]}
    components = converter.spec.components
    registered = components.schemas.get(name)
    if registered is None:
        components.schema(name, schema)
    elif registered != schema:
        raise ValueError(f"the OpenAPI component {name} is already a different schema")
    ref = components.get_ref("schema", name)
    description = ret.get("description")
    ret.clear()  # as apispec's own field2nullable does, rewrite what came before
    return {"allOf": [ref], "description": description} if description else ref


class CreditApi(flask_smorest.Api):
    ERROR_SCHEMA = ErrorSchema
    # No catch-all `default` response: every operation lists the statuses it answers with
    # (app.http.docs.errors), so a client and a contract test can rely on the list.
    DEFAULT_ERROR_RESPONSE_NAME = None

    def _register_error_handlers(self):
        register_error_handlers(self._app)

    def _init_spec(self, *, extra_plugins=None, **kwargs):
        super()._init_spec(extra_plugins=[*(extra_plugins or ()), SortedResponses()], **kwargs)
        self.ma_plugin.converter.add_attribute_function(enum_component)

    def _register_pagination_header(self):
        """Pages are `{items, next_cursor}` bodies (app.schemas.common.page_schema), not headers."""

    def _register_swagger_ui_rule(self, blueprint):
        """/docs, plus the Swagger UI assets it loads, served by this app from the installed package.

        /docs, /docs/assets/* and /openapi.json are documentation plumbing, deliberately left
        out of the OpenAPI document itself."""
        super()._register_swagger_ui_rule(blueprint)
        url, prefix = self.config.get("OPENAPI_SWAGGER_UI_URL") or "", (blueprint.url_prefix or "").rstrip("/")
        if self.config.get("OPENAPI_SWAGGER_UI_PATH") is not None and url.startswith(prefix + "/"):
            blueprint.add_url_rule(
                f"{url[len(prefix) :]}<path:filename>", endpoint="swagger_ui_assets", view_func=swagger_ui_asset
            )


def refuse_nul_in_path():
    """No resource id contains NUL (and PostgreSQL could not even compare one): 404 up front."""
    if "\x00" in request.path:
        return error_response(404, "not_found", "no such resource")
    return None


def require_json_object():
    """A body that is not JSON, or not a JSON object, is a 400 before any view runs."""
    if request.method not in BODY_METHODS:
        return None
    raw = request.get_data(cache=True)
    if not raw.strip():
        return None
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return error_response(400, "bad_request", "the request body is not valid JSON")
    if not isinstance(body, dict):
        return error_response(400, "bad_request", "the request body must be a JSON object")
    return None


API_DESCRIPTION = """A double-entry credit ledger: users, wallets, transfers, history and reversals.

- JSON in and out. Amounts and balances are JSON integers in credits, 1..1000000000000.
- Authenticate with `Authorization: Bearer <access_token>` from `POST /auth/login`.
- Every 4xx and 5xx answer has the body `{"error": {"code", "message", "details"}}`; each
  operation lists its statuses and the error codes each can carry.
- Lists are newest first and cursor-paginated (`limit`, `cursor` -> `next_cursor`).

Browse this document at `/docs`; the document itself is `/openapi.json`.
"""


def api_settings(app) -> None:
    app.config.setdefault("API_TITLE", "Credit System")
    app.config.setdefault("API_VERSION", "1.0")
    app.config.setdefault("OPENAPI_VERSION", "3.0.3")
    app.config.setdefault("OPENAPI_URL_PREFIX", "/")
    app.config.setdefault("OPENAPI_JSON_PATH", "openapi.json")
    app.config.setdefault("OPENAPI_SWAGGER_UI_PATH", "docs")
    app.config.setdefault("OPENAPI_SWAGGER_UI_URL", "/docs/assets/")
    app.config.setdefault(
        "OPENAPI_SWAGGER_UI_CONFIG", {"validatorUrl": None, "deepLinking": True, "displayRequestDuration": True}
    )
    app.config.setdefault(
        "API_SPEC_OPTIONS",
        {
            "info": {"description": API_DESCRIPTION},
            "components": {
                "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}}
            },
        },
    )
