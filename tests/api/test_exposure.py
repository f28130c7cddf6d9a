"""What anonymous callers may learn, and the headers every answer carries.

/metrics (business volume, failed-login counts) needs an admin or the scrape token;
/modules/status tells anyone names, statuses and the load order, but a module's source and
routes only to admins; responses carry nosniff, no-store where a token is involved, and a
Content-Security-Policy on HTML pages.
"""

from __future__ import annotations

import base64
import hashlib
import re

import pytest

from app.config import ConfigError, load_settings
from app.testing import DEFAULT_PASSWORD, assert_error, bearer, login, make_admin, register

SCRAPE_TOKEN = "scrape-token-0123456789abcdef"


pytestmark = pytest.mark.credit_settings(metrics_token=SCRAPE_TOKEN)


@pytest.fixture
def admin_headers(app, client):
    make_admin(app, "root")
    return bearer(login(client, "root"))


@pytest.fixture
def user_headers(client):
    register(client, "plain")
    return bearer(login(client, "plain"))


# -- /metrics --------------------------------------------------------------------------------


def test_metrics_refuses_anonymous_callers_with_the_error_body(client):
    response = client.get("/metrics")
    assert_error(response, 401, "unauthorized")
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert b"credit_http_requests_total" not in response.get_data()


@pytest.mark.parametrize("token", ["wrong-token-0123456789abcdef", SCRAPE_TOKEN[:-1], SCRAPE_TOKEN + "x", ""])
def test_metrics_refuses_a_wrong_scrape_token(client, token):
    assert_error(client.get("/metrics", headers=bearer(token)), 401, "unauthorized")


def test_metrics_refuses_a_user_that_is_not_an_admin(client, user_headers):
    assert_error(client.get("/metrics", headers=user_headers), 403, "forbidden")


def test_metrics_answers_the_scrape_token_and_an_admin(client, admin_headers):
    for headers in (bearer(SCRAPE_TOKEN), {"Authorization": f"bearer  {SCRAPE_TOKEN}"}, admin_headers):
        response = client.get("/metrics", headers=headers)
        assert response.status_code == 200
        assert b"credit_http_requests_total" in response.get_data()


def test_without_a_configured_scrape_token_only_admins_scrape(credit_app_factory):
    app = credit_app_factory(metrics_token="")
    client = app.test_client()
    assert_error(client.get("/metrics", headers=bearer(SCRAPE_TOKEN)), 401, "unauthorized")
    make_admin(app, "root")
    assert client.get("/metrics", headers=bearer(login(client, "root"))).status_code == 200


def test_a_short_scrape_token_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="CREDIT_METRICS_TOKEN must be at least 16 bytes"):
        load_settings(environ={"CREDIT_METRICS_TOKEN": "short"}, instance_path=str(tmp_path))


def test_metrics_documents_who_may_scrape(client):
    operation = client.get("/openapi.json").get_json()["paths"]["/metrics"]["get"]
    assert operation["security"] == [{"bearerAuth": []}]
    assert {"401", "403"} <= set(operation["responses"])
    assert "CREDIT_METRICS_TOKEN" in operation["description"]


# -- /modules/status ---------------------------------------------------------------------------

PUBLIC_STATUS = {"status", "dependencies", "dependents", "load_position", "init_ms", "critical"}


def test_anonymous_and_users_see_module_names_statuses_and_order_only(client, user_headers):
    for headers in ({}, user_headers):
        body = client.get("/modules/status", headers=headers).get_json()
        assert body["load_order"] == list(body["modules"])
        for status in body["modules"].values():
            assert set(status) == PUBLIC_STATUS
        text = client.get("/modules/status", headers=headers).get_data(as_text=True)
        assert "app.modules" not in text and "/wallet/deposit" not in text


def test_admins_also_see_each_modules_source_and_routes(client, admin_headers):
    modules = client.get("/modules/status", headers=admin_headers).get_json()["modules"]
    assert modules["wallet_module"]["source"].startswith("app.modules")
    assert "/wallet/deposit" in modules["wallet_module"]["routes"]
    assert set(modules["wallet_module"]) == PUBLIC_STATUS | {"source", "routes", "reason"}


# -- headers -----------------------------------------------------------------------------------


def test_every_response_says_nosniff(client, admin_headers):
    responses = [
        client.get("/livez"),
        client.get("/no-such-path"),
        client.post("/users", data="not json", content_type="application/json"),
        client.get("/users/me"),
        client.get("/users/me", headers=admin_headers),
        client.get("/openapi.json"),
        client.get("/docs"),
        client.get("/docs/assets/swagger-ui.css"),
    ]
    for response in responses:
        response.close()  # the stylesheet is a file response
    assert [r.headers.get("X-Content-Type-Options") for r in responses] == ["nosniff"] * len(responses)


def test_tokens_and_whatever_a_token_unlocked_are_not_stored(client, admin_headers, user_headers):
    token = client.post("/auth/login", json={"username": "plain", "password": DEFAULT_PASSWORD})
    failed = client.post("/auth/login", json={"username": "plain", "password": "wrong-password"})
    assert token.headers["Cache-Control"] == "no-store"
    assert failed.headers["Cache-Control"] == "no-store"
    for path in ("/users/me", "/users", "/transactions", "/metrics", "/health", "/modules/status"):
        response = client.get(path, headers=admin_headers)
        assert response.status_code == 200, path
        assert response.headers["Cache-Control"] == "no-store", path
    # Any request carrying a token, whatever its answer.
    assert client.get("/users", headers=user_headers).headers["Cache-Control"] == "no-store"
    assert client.get("/users/me", headers=bearer("junk")).headers["Cache-Control"] == "no-store"
    # Anonymous public reads stay cacheable as their routes decide.
    assert "no-store" not in client.get("/livez").headers.get("Cache-Control", "")


def test_security_headers_replace_the_routes_own_and_leave_the_rest(app, client):
    def own_headers():
        return (
            "{}",
            200,
            {"Cache-Control": "public, max-age=60", "X-Content-Type-Options": "sniff-away", "X-Own": "kept"},
        )

    app.add_url_rule("/own-headers", "own_headers", own_headers)  # before the app's first request
    register(client, "plain")
    user_headers = bearer(login(client, "plain"))
    anonymous = client.get("/own-headers")
    assert anonymous.headers.getlist("X-Content-Type-Options") == ["nosniff"]
    assert anonymous.headers.getlist("Cache-Control") == ["public, max-age=60"]  # anonymous: the route decides
    with_token = client.get("/own-headers", headers=user_headers)
    assert with_token.headers.getlist("Cache-Control") == ["no-store"]
    assert with_token.headers.getlist("X-Content-Type-Options") == ["nosniff"]
    assert anonymous.headers["X-Own"] == with_token.headers["X-Own"] == "kept"
    # the login path as werkzeug reads it, slashes in front collapsed
    doubled = client.post("/auth/login", json={}, environ_overrides={"PATH_INFO": "//auth/login"})
    assert doubled.status_code == 422 and doubled.headers.get("Cache-Control") == "no-store"


def test_the_docs_page_carries_a_policy_allowing_only_its_own_script(client):
    response = client.get("/docs")
    assert response.mimetype == "text/html"
    policy = response.headers["Content-Security-Policy"]
    directives = dict(d.strip().split(" ", 1) for d in policy.split(";"))
    assert directives["default-src"] == "'none'"
    assert directives["frame-ancestors"] == "'none'" and response.headers["X-Frame-Options"] == "DENY"
    (inline,) = re.findall(rb"<script>(.*?)</script>", response.get_data(), re.DOTALL)
    digest = base64.b64encode(hashlib.sha256(inline).digest()).decode()
    assert directives["script-src"] == f"'self' 'sha256-{digest}'"
    assert "unsafe-eval" not in policy
    # JSON answers need no policy.
    assert "Content-Security-Policy" not in client.get("/livez").headers
