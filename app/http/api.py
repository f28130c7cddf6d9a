"""The flask-smorest Api: OpenAPI from the schemas, our error body instead of its own."""

from __future__ import annotations

import flask_smorest
from flask import abort, request, send_from_directory
from marshmallow import Schema, fields
from werkzeug.routing import BaseConverter

from app.http.body import MAX_DEPTH, require_json_object
from app.http.docs import DocumentedConventions
from app.http.errors import error_response, register_error_handlers
from app.schemas.common import EnumString

__all__ = ["CreditApi", "api_settings", "screen_request"]


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


class IdConverter(BaseConverter):
    """`<id:name>`: a resource id in a path, 1-64 characters, and never the word `me`.

    `/users/me` is the caller's own route and answers GET only; without this, `/users/<id>`
    would match `me` for PATCH and DELETE, so OPTIONS advertised methods that then failed
    (403 "not your account", 404). Now they are 405 with `Allow: GET, HEAD, OPTIONS`.
    """

    regex = r"(?!me$)[^/]{1,64}"
    SCHEMA = {"type": "string", "minLength": 1, "maxLength": 64}


class CreditApi(flask_smorest.Api):
    ERROR_SCHEMA = ErrorSchema
    # No catch-all `default` response: every operation lists the statuses it answers with
    # (app.http.docs.errors), so a client and a contract test can rely on the list.
    DEFAULT_ERROR_RESPONSE_NAME = None

    def init_app(self, app, *args, **kwargs):
        app.url_map.converters["id"] = IdConverter
        super().init_app(app, *args, **kwargs)
        self.register_converter(IdConverter, lambda converter: dict(IdConverter.SCHEMA))

    def _register_error_handlers(self):
        register_error_handlers(self._app)

    def _init_spec(self, *, extra_plugins=None, **kwargs):
        super()._init_spec(extra_plugins=[*(extra_plugins or ()), DocumentedConventions()], **kwargs)
        self.ma_plugin.converter.add_attribute_function(enum_component)

    def register_blueprint(self, blp, **options):
        """Register a blueprint, and the tags its routes use besides its own (Blueprint(tags=...))."""
        super().register_blueprint(blp, **options)
        listed = {tag["name"] for tag in self.spec._tags}
        for name, description in getattr(blp, "extra_tags", {}).items():
            if name not in listed:
                self.spec.tag({"name": name, "description": description})

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


def screen_request():
    """Before any view or token check: a NUL in the path is a 404 (no resource id contains
    one, and PostgreSQL could not even compare one); a body must be a JSON object, and be
    there where the operation requires one. One hook for both: Flask pays a context lookup
    and a coroutine check per hook, on every request."""
    # One context lookup, not one per attribute (Flask types the proxy as the Request itself).
    req = request._get_current_object()  # type: ignore[attr-defined]
    if "\x00" in req.path:
        return error_response(404, "not_found", "no such resource")
    require_json_object(req)
    return None


API_DESCRIPTION = f"""A double-entry credit ledger: users, wallets, transfers, history and reversals.

- JSON in and out. Amounts and balances are JSON integers in credits, 1..1000000000000.
- Authenticate with `Authorization: Bearer <access_token>` from `POST /auth/login`.
- Every 4xx and 5xx answer has the body `{{"error": {{"code", "message", "details"}}}}`; each
  operation lists its statuses, and each status's body lists the codes it can carry.
- Lists are newest first and cursor-paginated (`limit`, `cursor` -> `next_cursor`).

Requests:
- A body is sent with `Content-Type: application/json`; any other media type is 415
  `unsupported_media_type`. A body that is not JSON (`NaN` and `Infinity` are not JSON), not an
  object, or nested deeper than {MAX_DEPTH} levels is 400 `bad_request`. An operation whose
  `requestBody` is required answers an empty body with 400; one whose body is optional reads
  an empty body as `{{}}`.
- A string holding an unpaired UTF-16 surrogate (`"\\ud800"`) is 422 `validation_error` on its field.
- A body over the limit is 413 `payload_too_large` with `details.limit_bytes`; there is no
  `Retry-After`, as the same body will never fit.
- An operation that declares query parameters answers any other one with 422
  `validation_error` (`{{"limt": ["Unknown field."]}}`), so a typo is not silently ignored;
  an operation without query parameters (health, metrics) ignores the query string.
- `X-Request-ID` (optional) is echoed on every response; one is generated when absent.
- Every 201 carries `Location`, the created resource's URL.
- A path no operation serves is 404 `not_found`; a method a path does not serve is 405
  `method_not_allowed` with `Allow` (components `NotFound`, `MethodNotAllowed`).

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
            "servers": [{"url": "/"}],
            "components": {
                "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}}
            },
        },
    )
