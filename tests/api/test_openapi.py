"""The OpenAPI document is complete and true: every route, its security, its errors, and /docs."""

from __future__ import annotations

import re

import pytest
from flask import Flask
from flask_smorest import Blueprint
from marshmallow import Schema, fields
from openapi_spec_validator import validate

from app.http.api import CreditApi, api_settings
from app.http.blueprint import Blueprint as CreditBlueprint
from app.http.docs import error_responses

ERROR_REF = "#/components/schemas/Error"
SCHEMAS = "#/components/schemas/"
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
    """(OpenAPI path, method, endpoint) of every served route but Flask's static files, the
    documentation plumbing (/openapi.json, /docs and its assets) and, likewise, the /dashboard
    page and its assets (HTML for a browser; its data comes from documented operations),
    deliberately left out."""
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static" or rule.endpoint.startswith(("api-docs.", "dashboard.")):
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


def _component(spec, ref: dict) -> dict:
    assert set(ref) == {"$ref"} and ref["$ref"].startswith(SCHEMAS), ref
    return spec["components"]["schemas"][ref["$ref"][len(SCHEMAS) :]]


def _error_codes(spec, response: dict) -> list[str]:
    """The `error.code` enum of an error response's body, checking the body's shape on the way."""
    body = _component(spec, response["content"]["application/json"]["schema"])
    assert body["required"] == ["error"] and body["additionalProperties"] is False
    detail = _component(spec, body["properties"]["error"])
    assert detail["required"] == ["code", "message", "details"] and detail["additionalProperties"] is False
    assert detail["properties"]["message"] == {"type": "string"}
    details = detail["properties"]["details"]
    assert _component(spec, details)["type"] == "object"
    return detail["properties"]["code"]["enum"]


def test_error_responses_carry_the_error_body_with_exactly_their_codes(spec):
    """Each error response's `error.code` is an enum of the codes that response documents, no more."""
    checked = 0
    for path, method, operation in _operations(spec):
        for status, response in operation["responses"].items():
            if int(status) < 400 or (path, method) in HEALTH_503 and status == "503":
                continue
            documented = list(response["content"]["application/json"]["examples"])
            assert _error_codes(spec, response) == documented, (method, path, status)
            checked += 1
    assert checked > 100
    for name, response in spec["components"]["responses"].items():
        assert _error_codes(spec, response) == list(response["content"]["application/json"]["examples"]), name


def test_a_code_set_is_one_component(spec):
    """Generated clients get one class per error body, not one per operation."""
    responses = [
        response
        for path, method, operation in _operations(spec)
        for status, response in operation["responses"].items()
        if int(status) >= 400 and not ((path, method) in HEALTH_503 and status == "503")
    ]
    bodies = {
        response["content"]["application/json"]["schema"]["$ref"]: tuple(_error_codes(spec, response))
        for response in responses
    }
    assert len(bodies) == len(set(bodies.values())) < len(responses)


def test_known_error_details_are_typed(spec):
    schemas = spec["components"]["schemas"]

    def details(code_set: str) -> dict:
        return _component(spec, schemas[code_set + "Detail"]["properties"]["details"])

    integer = {"type": "integer"}
    insufficient = details("InsufficientFundsOrIdempotencyConflictError")["properties"]
    assert {name: {"type": prop["type"]} for name, prop in insufficient.items()} == {
        "balance": integer,
        "requested": integer,
    }
    assert details("RateLimitedError")["properties"]["retry_after"]["type"] == "integer"
    assert details("PayloadTooLargeError")["properties"]["limit_bytes"]["type"] == "integer"
    assert details("ValidationError")["additionalProperties"] == {"type": "array", "items": {"type": "string"}}
    # Optional members: the same body also carries codes whose details are {}.
    assert "required" not in details("InsufficientFundsOrIdempotencyConflictError")
    assert details("NotFoundError") == {
        "type": "object",
        "description": schemas["AnyDetails"]["description"],
        "additionalProperties": {},
    }


def test_operation_ids_are_unique_readable_and_named_after_their_views(spec):
    ids = {(method.upper(), path): operation.get("operationId") for path, method, operation in _operations(spec)}
    assert ids == {
        ("POST", "/auth/login"): "login",
        ("POST", "/auth/logout"): "logout",
        ("POST", "/users"): "createUser",
        ("GET", "/events"): "listEvents",
        ("GET", "/events/types"): "listEventTypes",
        ("GET", "/events/deliveries"): "listEventDeliveries",
        ("POST", "/events/deliveries/{delivery_id}/retry"): "retryEventDelivery",
        ("GET", "/audit/entries"): "listAuditEntries",
        ("GET", "/audit/entries/{sequence}"): "getAuditEntry",
        ("GET", "/audit/verify"): "verifyAuditChain",
        ("GET", "/audit/export"): "exportAuditTrail",
        ("GET", "/users/me"): "getCurrentUser",
        ("GET", "/users/{user_id}"): "getUser",
        ("PATCH", "/users/{user_id}"): "updateUser",
        ("DELETE", "/users/{user_id}"): "deactivateUser",
        ("GET", "/users"): "listUsers",
        ("GET", "/wallet/balance/{user_id}"): "getBalance",
        ("POST", "/wallet/deposit"): "deposit",
        ("POST", "/wallet/withdraw"): "withdraw",
        ("POST", "/transactions"): "transfer",
        ("GET", "/transactions"): "listTransactions",
        ("GET", "/transactions/{transaction_id}"): "getTransaction",
        ("POST", "/transactions/{transaction_id}/reverse"): "reverseTransaction",
        ("GET", "/health"): "health",
        ("GET", "/livez"): "livez",
        ("GET", "/readyz"): "readyz",
        ("GET", "/modules/status"): "moduleStatus",
        ("GET", "/modules/{name}/health"): "moduleHealth",
        ("GET", "/metrics"): "metrics",
        ("POST", "/webhooks/endpoints"): "createWebhookEndpoint",
        ("GET", "/webhooks/endpoints"): "listWebhookEndpoints",
        ("GET", "/webhooks/endpoints/{endpoint_id}"): "getWebhookEndpoint",
        ("PATCH", "/webhooks/endpoints/{endpoint_id}"): "updateWebhookEndpoint",
        ("DELETE", "/webhooks/endpoints/{endpoint_id}"): "deleteWebhookEndpoint",
        ("POST", "/webhooks/endpoints/{endpoint_id}/rotate-secret"): "rotateWebhookSecret",
        ("POST", "/webhooks/endpoints/{endpoint_id}/test"): "testWebhookEndpoint",
        ("GET", "/webhooks/endpoints/{endpoint_id}/deliveries"): "listWebhookDeliveries",
        ("POST", "/webhooks/deliveries/{delivery_id}/retry"): "retryWebhookDelivery",
        ("POST", "/integrations/payments/stripe"): "receiveStripeEvent",
        ("GET", "/integrations/payments"): "listPayments",
        ("GET", "/reports/summary"): "getSummary",
        ("GET", "/reports/balances"): "getBalances",
        ("GET", "/reports/top-users"): "getTopUsers",
        ("GET", "/wallet/statement/{user_id}"): "getStatement",
        ("GET", "/dashboard/panels/volumes.svg"): "getVolumesPanel",
        ("GET", "/dashboard/panels/modules.svg"): "getModulesPanel",
        ("GET", "/notifications"): "listNotifications",
        ("POST", "/notifications/{notification_id}/read"): "markNotificationRead",
        ("POST", "/notifications/read-all"): "markAllNotificationsRead",
        ("GET", "/notifications/preferences"): "getNotificationPreferences",
        ("PATCH", "/notifications/preferences"): "updateNotificationPreferences",
        ("GET", "/notifications/deliveries"): "listNotificationDeliveries",
    }


def test_a_new_module_gets_operation_ids_from_its_view_names():
    """The mechanism, not the list: camelCase of the view function, or what @blp.doc says."""
    app = Flask(__name__)
    api_settings(app)
    api = CreditApi(app)
    blp = CreditBlueprint("audit", __name__)

    @blp.route("/audit/entries")
    def list_audit_entries():
        return {}

    @blp.route("/audit/verify")
    @blp.doc(operationId="verifyAuditTrail")
    def verify():
        return {}

    api.register_blueprint(blp)
    paths = api.spec.to_dict()["paths"]
    assert paths["/audit/entries"]["get"]["operationId"] == "listAuditEntries"
    assert paths["/audit/verify"]["get"]["operationId"] == "verifyAuditTrail"


def test_login_and_logout_are_tagged_auth(spec):
    tags = {tag["name"]: tag["description"] for tag in spec["tags"]}
    assert tags["auth"]
    for path, method, operation in _operations(spec):
        assert (operation["tags"] == ["auth"]) == path.startswith("/auth/"), (method, path)


def test_query_parameters_are_never_nullable(spec):
    """A query string cannot carry null: no `nullable`, `default: null` or null enum member."""
    queries = [p for _, _, op in _operations(spec) for p in op.get("parameters", []) if p.get("in") == "query"]
    assert len(queries) >= 6
    for parameter in queries:
        schema = _component(spec, parameter["schema"]) if "$ref" in parameter["schema"] else parameter["schema"]
        assert "nullable" not in schema and schema.get("default", "absent") is not None, parameter
        assert None not in schema.get("enum", []), parameter
        if parameter["name"] == "cursor":  # schemathesis cannot know a cursor must be one we issued
            assert "did not issue is 422" in parameter["description"]


def test_request_bodies_say_whether_they_are_required(spec):
    required = {
        (method, path): operation["requestBody"].get("required")
        for path, method, operation in _operations(spec)
        if "requestBody" in operation
    }
    # API.md: reverse's body is `{reason?}`; PATCH needs a patch document (`{}` is a no-op).
    assert required.pop(("post", "/transactions/{transaction_id}/reverse")) is False
    assert required and set(required.values()) == {True}, required
    assert "must differ" in spec["components"]["schemas"]["Transfer"]["description"]


def test_each_operation_lists_its_statuses_without_a_catch_all(spec):
    for path, method, operation in _operations(spec):
        responses = operation["responses"]
        assert "default" not in responses, (method, path)
        assert {"414", "500"} <= set(responses), (method, path)  # any request line can be too long
        assert any(status.startswith("2") for status in responses), (method, path)
        if "requestBody" in operation or method == "post":  # any body may be refused
            assert {"400", "413", "415"} <= set(responses), (method, path)
        if "requestBody" in operation:
            assert "422" in responses, (method, path)
        if any(p.get("in") == "query" for p in operation.get("parameters", [])):
            assert "422" in responses, (method, path)  # also for an unknown query parameter
        if "{" in path:  # an id too long for the route is a 404 without a route
            assert "404" in responses, (method, path)


def test_routeless_404_and_405_are_documented(spec):
    responses = spec["components"]["responses"]
    assert set(responses) == {"NotFound", "MethodNotAllowed"}
    assert responses["MethodNotAllowed"]["headers"]["Allow"]["required"] is True
    assert "`NotFound`, `MethodNotAllowed`" in spec["info"]["description"]
    assert spec["servers"] == [{"url": "/"}]


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
        (key,) = [p for p in operation["parameters"] if p.get("in") == "header"]
        assert key["name"] == "Idempotency-Key" and key["schema"]["maxLength"] == 255
        for status in ("201", "409"):
            assert "Idempotent-Replayed" in operation["responses"][status]["headers"], (path, status)
    for path, method, operation in _operations(spec):
        if (path, method) not in IDEMPOTENT:
            assert "Idempotent-Replayed" not in str(operation), (method, path)
    login = spec["paths"]["/auth/login"]["post"]["responses"]["429"]
    assert login["headers"]["Retry-After"]["required"] is True


def test_request_id_and_location_headers_are_documented_everywhere(spec):
    request_id = {"$ref": "#/components/parameters/X-Request-ID"}
    assert spec["components"]["parameters"]["X-Request-ID"]["in"] == "header"
    assert spec["components"]["parameters"]["X-Request-ID"]["required"] is False
    created = 0
    for path, method, operation in _operations(spec):
        assert request_id in operation["parameters"], (method, path)
        for status, response in operation["responses"].items():
            headers = response.get("headers", {})
            # gunicorn answers a too-long request line before the app (and its request id) exist.
            assert ("X-Request-ID" in headers) == (status != "414"), (method, path, status)
            assert ("Location" in headers) == (status == "201"), (method, path, status)
            created += status == "201"
    assert created == 6  # users, deposits, withdrawals, transfers, reversals, webhook endpoints
    assert spec["components"]["headers"]["Location"]["required"] is True
    assert spec["components"]["headers"]["X-Request-ID"]["required"] is True


def test_health_endpoints_document_their_bodies(spec):
    paths = spec["paths"]
    assert paths["/health"]["get"]["responses"]["503"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Health"
    }
    assert _error_codes(spec, paths["/modules/{name}/health"]["get"]["responses"]["404"]) == ["not_found"]
    assert paths["/modules/status"]["get"]["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ModulesStatus"
    }
    assert set(paths["/livez"]["get"]["responses"]) == {"200", "414", "500"}
    assert paths["/health"]["get"]["responses"]["503"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Health"
    }


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


def test_request_bodies_say_unknown_fields_are_refused(spec):
    """additionalProperties: false on every body schema, Transfer's (with a Meta.description) too."""
    bodies = [
        operation["requestBody"]["content"]["application/json"]["schema"]
        for _, _, operation in _operations(spec)
        if "requestBody" in operation
    ]
    assert {"#/components/schemas/Transfer", "#/components/schemas/UserUpdate"} <= {ref["$ref"] for ref in bodies}
    for ref in bodies:
        assert _component(spec, ref)["additionalProperties"] is False, ref
