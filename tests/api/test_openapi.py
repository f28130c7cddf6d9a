"""The OpenAPI document is complete and true: every route, its security, its errors, and /docs."""

from __future__ import annotations

import re

import pytest
from flask import Flask
from flask_smorest import Blueprint
from marshmallow import Schema, fields
from openapi_spec_validator import validate

from app.http.api import CreditApi, api_settings
from app.http.docs import error_responses

ERROR_REF = "#/components/schemas/Error"
METHODS = {"get", "post", "put", "patch", "delete"}
# Kernel endpoints whose 503 carries a health report instead of the error body.
HEALTH_503 = {("/readyz", "get"), ("/health", "get"), ("/modules/{name}/health", "get")}
IDEMPOTENT = {
    ("/wallet/deposit", "post"),
    ("/wallet/withdraw", "post"),
    ("/transactions", "post"),
    ("/transactions/{transaction_id}/reverse", "post"),
}


@pytest.fixture
def spec(client):
    response = client.get("/openapi.json")
    assert response.status_code == 200
    return response.get_json()


def _operations(spec):
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            if method in METHODS:
                yield path, method, operation


def _openapi_path(rule: str) -> str:
    return re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule)


def _routes(app):
    """(OpenAPI path, method, endpoint) of every served route but Flask's static files and the
    documentation plumbing (/openapi.json, /docs and its assets), deliberately left out."""
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static" or rule.endpoint.startswith("api-docs."):
            continue
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            yield _openapi_path(rule.rule), method.lower(), rule.endpoint


def test_every_registered_route_is_documented_with_each_method(app, spec):
    routes = list(_routes(app))
    assert len(routes) >= 20
    missing = [
        f"{method.upper()} {path} ({endpoint})"
        for path, method, endpoint in routes
        if method not in spec["paths"].get(path, {})
    ]
    assert not missing, f"routes missing from the OpenAPI document: {missing}"


def test_every_documented_operation_is_served(app, spec):
    served = {(path, method) for path, method, _ in _routes(app)}
    phantom = [(path, method) for path, method, _ in _operations(spec) if (path, method) not in served]
    assert not phantom


def test_the_document_is_valid_openapi_3(spec):
    assert spec["openapi"].startswith("3.")
    validate(spec)


def test_operations_that_answer_401_without_a_token_declare_bearer_security(client, spec):
    """Ask every operation without a token: 401 if and only if it declares bearerAuth."""
    assert spec["components"]["securitySchemes"]["bearerAuth"] == {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
    }
    secured = 0
    for path, method, operation in _operations(spec):
        url = re.sub(r"{[^}]+}", "some-id", path)
        kwargs = {"json": {}} if "requestBody" in operation else {}
        status = client.open(url, method=method.upper(), **kwargs).status_code
        declared = operation.get("security") == [{"bearerAuth": []}]
        assert declared == (status == 401), (method.upper(), path, status, operation.get("security"))
        if declared:
            assert "401" in operation["responses"], (method, path)
            secured += 1
    assert secured >= 13


def test_error_responses_carry_the_error_body(spec):
    for path, method, operation in _operations(spec):
        for status, response in operation["responses"].items():
            if status == "default" or int(status) < 400 or (path, method) in HEALTH_503 and status == "503":
                continue
            schema = response["content"]["application/json"]["schema"]
            assert schema == {"$ref": ERROR_REF}, (method, path, status)
    error = spec["components"]["schemas"]["Error"]
    assert error["required"] == ["error"]
    assert spec["components"]["schemas"]["ErrorDetail"]["required"] == ["code", "details", "message"]
    for name, response in spec["components"].get("responses", {}).items():
        if "content" in response:
            assert response["content"]["application/json"]["schema"] == {"$ref": ERROR_REF}, name


def test_each_operation_lists_its_statuses_without_a_catch_all(spec):
    for path, method, operation in _operations(spec):
        responses = operation["responses"]
        assert "default" not in responses, (method, path)
        assert {"414", "500"} <= set(responses), (method, path)  # any request line can be too long
        assert any(status.startswith("2") for status in responses), (method, path)
        if "requestBody" in operation:
            assert {"400", "413", "422"} <= set(responses), (method, path)
        if any(p["in"] == "query" for p in operation.get("parameters", [])):
            assert "422" in responses, (method, path)


def test_error_codes_of_the_contract_are_documented_where_they_happen(spec):
    def codes(path, method, status):
        return set(spec["paths"][path][method]["responses"][status]["content"]["application/json"]["examples"])

    assert codes("/users", "post", "409") == {"username_taken", "email_taken"}
    assert codes("/auth/login", "post", "401") == {"invalid_credentials"}
    assert codes("/auth/login", "post", "429") == {"rate_limited"}
    assert codes("/wallet/withdraw", "post", "409") == {"insufficient_funds", "idempotency_conflict"}
    assert codes("/transactions/{transaction_id}/reverse", "post", "409") == {
        "already_reversed",
        "insufficient_funds",
        "idempotency_conflict",
    }
    assert codes("/transactions", "post", "422") == {"validation_error", "idempotency_key_reused"}
    assert codes("/transactions", "get", "401") == {"unauthorized"}


def test_headers_idempotency_key_replay_and_retry_after(spec):
    for path, method in IDEMPOTENT:
        operation = spec["paths"][path][method]
        (key,) = [p for p in operation["parameters"] if p["in"] == "header"]
        assert key["name"] == "Idempotency-Key" and key["schema"]["maxLength"] == 255
        for status in ("201", "409"):
            assert "Idempotent-Replayed" in operation["responses"][status]["headers"], (path, status)
    for path, method, operation in _operations(spec):
        if (path, method) not in IDEMPOTENT:
            assert "Idempotent-Replayed" not in str(operation), (method, path)
    login = spec["paths"]["/auth/login"]["post"]["responses"]["429"]
    assert login["headers"]["Retry-After"]["required"] is True


def test_health_endpoints_document_their_bodies(spec):
    paths = spec["paths"]
    assert paths["/health"]["get"]["responses"]["503"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Health"
    }
    assert paths["/modules/{name}/health"]["get"]["responses"]["404"]["content"]["application/json"]["schema"] == {
        "$ref": ERROR_REF
    }
    assert paths["/modules/status"]["get"]["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ModulesStatus"
    }
    assert set(paths["/livez"]["get"]["responses"]) == {"200", "414", "500"}


def test_a_module_without_our_helper_still_gets_our_error_body():
    """flask-smorest's own 422 component (UNPROCESSABLE_ENTITY) describes the API's error body."""

    class Thing(Schema):
        name = fields.String(required=True)

    app = Flask(__name__)
    api_settings(app)
    api = CreditApi(app)
    blp = Blueprint("extra", __name__)

    @blp.route("/things", methods=["POST"])
    @blp.arguments(Thing)
    @blp.response(201, Thing)
    def create(body):
        return body

    api.register_blueprint(blp)
    spec = api.spec.to_dict()
    assert spec["paths"]["/things"]["post"]["responses"]["422"] == {
        "$ref": "#/components/responses/UNPROCESSABLE_ENTITY"
    }
    assert spec["components"]["responses"]["UNPROCESSABLE_ENTITY"]["content"]["application/json"]["schema"] == {
        "$ref": ERROR_REF
    }


def test_error_helper_refuses_codes_outside_the_contract():
    with pytest.raises(ValueError, match="no_such_code"):
        error_responses("no_such_code")


def test_docs_page_is_served_with_local_assets_only(client):
    page = client.get("/docs")
    assert page.status_code == 200 and page.mimetype == "text/html"
    html = page.get_data(as_text=True)
    assert "http://" not in html and "https://" not in html  # nothing from a CDN
    assets = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert "/docs/assets/swagger-ui-bundle.js" in assets
    for asset in assets:
        with client.get(asset) as response:  # a file response: close it
            assert response.status_code == 200, asset
            assert response.content_length > 1000
    assert '"url": "/openapi.json"' in html.replace("url: ", '"url": ')
    missing = client.get("/docs/assets/index.html")  # the package's own page, not served
    assert missing.status_code == 404 and missing.get_json()["error"]["code"] == "not_found"
