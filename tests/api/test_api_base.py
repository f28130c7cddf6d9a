"""The API base: one error body for every failure, health endpoints."""

import pytest


def test_unknown_path_is_404_error_body(client):
    response = client.get("/no/such/path")
    assert response.status_code == 404
    assert response.get_json()["error"]["code"] == "not_found"


def test_wrong_method_is_405_with_allow(client):
    response = client.delete("/livez")
    assert response.status_code == 405
    assert response.get_json()["error"]["code"] == "method_not_allowed"
    assert "GET" in response.headers["Allow"]


@pytest.mark.parametrize("body", [b"{not json", b"[1, 2]", b'"text"', b"42", b"\xff\xfe"])
def test_malformed_or_non_object_json_is_400(client, body):
    response = client.post("/auth/login", data=body, content_type="application/json")
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "bad_request"


def test_unexpected_exception_is_500_without_internals(app, client):
    @app.route("/boom")
    def boom():
        raise RuntimeError("secret SELECT * FROM users")

    response = client.get("/boom")
    assert response.status_code == 500
    body = response.get_json()
    assert body["error"]["code"] == "internal_error"
    assert "SELECT" not in response.get_data(as_text=True)
    assert "Traceback" not in response.get_data(as_text=True)


def test_livez_readyz_health(client):
    assert client.get("/livez").status_code == 200
    assert client.get("/readyz").status_code == 200
    health = client.get("/health").get_json()
    assert health["status"] == "healthy"
    assert set(health["modules"]) == {
        "connection_api",
        "user_management",
        "audit_module",
        "wallet_module",
        "notification_module",
        "transactions_module",
        "integration_module",
        "reporting_module",
    }
