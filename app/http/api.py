"""The flask-smorest Api: OpenAPI from the schemas, our error body instead of its own."""
from __future__ import annotations

import json

import flask_smorest
from flask import request
from marshmallow import Schema, fields

from app.http.errors import error_response, register_error_handlers

BODY_METHODS = {"POST", "PUT", "PATCH"}


class ErrorDetailSchema(Schema):
    code = fields.String(required=True, metadata={"example": "validation_error"})
    message = fields.String(required=True)
    details = fields.Dict(required=True)


class ErrorSchema(Schema):
    """Every 4xx and 5xx response has this body."""

    error = fields.Nested(ErrorDetailSchema, required=True)


class CreditApi(flask_smorest.Api):
    ERROR_SCHEMA = ErrorSchema

    def _register_error_handlers(self):
        register_error_handlers(self._app)


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


def api_settings(app) -> None:
    app.config.setdefault("API_TITLE", "Credit System")
    app.config.setdefault("API_VERSION", "1.0")
    app.config.setdefault("OPENAPI_VERSION", "3.0.3")
    app.config.setdefault("OPENAPI_URL_PREFIX", "/")
    app.config.setdefault("OPENAPI_JSON_PATH", "openapi.json")
    app.config.setdefault("API_SPEC_OPTIONS", {
        "components": {"securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}}},
    })
