"""user_management through the HTTP API (Flask test client), on the selected test backend."""

from __future__ import annotations

import base64
import json
import logging
import time
import uuid
from datetime import datetime, timedelta

import jwt
import pytest
from sqlalchemy import func, select

from app.infrastructure.tables import OutboxEvent, User
from app.services.login_throttle import CLIENT_FACTOR
from app.services.principal import Principal
from app.services.tokens import Tokens
from app.testing import DEFAULT_PASSWORD, assert_error, bearer, login, make_admin, register
from tests.helpers import cursor_of

USER_FIELDS = {"id", "username", "email", "phone", "role", "is_active", "created_at"}


class Actions:
    """The few steps most tests start with: users with tokens, an admin, row counts."""

    def __init__(self, app, client) -> None:
        self.app = app
        self.client = client

    def user(self, username: str, password: str = DEFAULT_PASSWORD, email: str | None = None) -> tuple[dict, dict]:
        """Register and log in: (User, auth headers)."""
        user = register(self.client, username, password, email)
        return user, bearer(login(self.client, username, password))

    def admin(self, username: str = "root", password: str = DEFAULT_PASSWORD) -> tuple[dict, dict]:
        admin = make_admin(self.app, username, password)
        return admin, bearer(login(self.client, username, password))

    def counts(self) -> tuple[int, int]:
        """(users, outbox events): what a refused request must not have changed."""
        with self.app.container.database().unit_of_work(write=False) as uow:
            users = uow.session.scalar(select(func.count()).select_from(User))
            events = uow.session.scalar(select(func.count()).select_from(OutboxEvent))
        return users, events

    def me(self, headers: dict):
        return self.client.get("/users/me", headers=headers)


@pytest.fixture
def act(app, client) -> Actions:
    return Actions(app, client)


def craft_token(secret: str, user_id: str, *, version: int = 0, expires_in: int = 60, **extra) -> str:
    now = int(time.time())
    payload = {
        "sub": user_id,
        "ver": version,
        "jti": uuid.uuid4().hex,
        "iat": now,
        "exp": now + expires_in,
        "typ": "access",
        **extra,
    }
    return jwt.encode(payload, secret, algorithm="HS256")


# -- registration -----------------------------------------------------------------------


def test_register_returns_exactly_the_user_fields(act, client):
    response = client.post(
        "/users", json={"username": "Alice.B-1_", "email": "Alice@Example.com", "password": "s3cret-passw0rd"}
    )
    assert response.status_code == 201
    user = response.get_json()
    assert set(user) == USER_FIELDS
    assert user["username"] == "Alice.B-1_"
    assert user["email"] == "Alice@Example.com"
    assert user["role"] == "user"
    assert user["is_active"] is True
    assert isinstance(user["id"], str) and user["id"]
    created = datetime.fromisoformat(user["created_at"])
    assert created.utcoffset() == timedelta(0)
    text = response.get_data(as_text=True)
    assert "s3cret-passw0rd" not in text and "$argon2" not in text and "password" not in text
    assert act.counts()[0] == 1


def test_register_boundaries_are_accepted(client):
    register(client, "abc", password="12345678")
    register(client, "a" * 32)
    register(client, "x_y.z-9")


def test_duplicate_username_in_another_case_is_409(act, client):
    register(client, "Alice")
    before = act.counts()
    response = client.post(
        "/users", json={"username": "aLICE", "email": "other@example.com", "password": DEFAULT_PASSWORD}
    )
    assert_error(response, 409, "username_taken")
    assert act.counts() == before


def test_duplicate_email_in_another_case_is_409(act, client):
    register(client, "alice", email="Alice@Example.com")
    before = act.counts()
    response = client.post(
        "/users", json={"username": "bob", "email": "ALICE@example.COM", "password": DEFAULT_PASSWORD}
    )
    assert_error(response, 409, "email_taken")
    assert act.counts() == before


VALID = {"username": "carol", "email": "carol@example.com", "password": DEFAULT_PASSWORD}


@pytest.mark.parametrize(
    "changes, field",
    [
        ({"email": "not-an-email"}, "email"),
        ({"email": "carol@"}, "email"),
        ({"email": None}, "email"),
        ({"password": "short7!"}, "password"),
        ({"password": ""}, "password"),
        ({"username": "ab"}, "username"),
        ({"username": "a" * 33}, "username"),
        ({"username": "bad name"}, "username"),
        ({"username": "bad/name"}, "username"),
        ({"username": "jürgen"}, "username"),
        ({"username": ""}, "username"),
        ({"username": "nul\u0000name"}, "username"),
        ({"email": "nul\u0000@example.com"}, "email"),
        ({"username": 123}, "username"),
        ({"password": True}, "password"),
        ({"password": 12345678}, "password"),
        ({"email": ["carol@example.com"]}, "email"),
        ({"role": "admin"}, "role"),
        ({"is_active": False}, "is_active"),
        ({"id": "0000"}, "id"),
    ],
    ids=lambda value: repr(value) if not isinstance(value, str) else value,
)
def test_invalid_registration_is_422_and_writes_nothing(act, client, changes, field):
    before = act.counts()
    response = client.post("/users", json={**VALID, **changes})
    error = assert_error(response, 422, "validation_error")
    assert field in error["details"], error
    assert all(isinstance(m, str) for m in error["details"][field])
    assert act.counts() == before


@pytest.mark.parametrize("missing", ["username", "email", "password"])
def test_missing_registration_field_is_422(act, client, missing):
    body = {k: v for k, v in VALID.items() if k != missing}
    error = assert_error(client.post("/users", json=body), 422, "validation_error")
    assert set(error["details"]) == {missing}
    assert act.counts() == (0, 0)


def test_empty_object_names_every_missing_field(client):
    error = assert_error(client.post("/users", json={}), 422, "validation_error")
    assert set(error["details"]) == {"username", "email", "password"}


@pytest.mark.parametrize(
    "raw",
    [
        b'{"username": "carol",',
        b"not json",
        b"[]",
        b'[{"username": "carol", "email": "carol@example.com", "password": "x"}]',
        b'"carol"',
        b"null",
        b"\xff\xfe",
    ],
)
def test_non_object_or_malformed_body_is_400(act, client, raw):
    response = client.post("/users", data=raw, content_type="application/json")
    assert_error(response, 400, "bad_request")
    assert act.counts() == (0, 0)


def test_oversized_body_is_413_with_error_body(act, client, app):
    limit = app.settings.max_body_bytes
    assert limit == 64 * 1024
    raw = json.dumps({**VALID, "padding": "x" * limit}).encode()
    assert len(raw) > 64 * 1024
    response = client.post("/users", data=raw, content_type="application/json")
    assert_error(response, 413, "payload_too_large")
    assert act.counts() == (0, 0)


# -- login and logout -----------------------------------------------------------------


def test_login_by_username_returns_bearer_token(client, settings):
    register(client, "dave")
    response = client.post("/auth/login", json={"username": "dave", "password": DEFAULT_PASSWORD})
    assert response.status_code == 200
    body = response.get_json()
    assert set(body) == {"access_token", "token_type", "expires_in"}
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == settings.token_ttl == 3600
    assert isinstance(body["access_token"], str) and body["access_token"]
    me = client.get("/users/me", headers=bearer(body["access_token"]))
    assert me.status_code == 200 and me.get_json()["username"] == "dave"


def test_login_by_email_and_username_ignore_case(client):
    user = register(client, "Erin", email="Erin@Example.com")
    for identifier in ("erin@example.com", "ERIN@EXAMPLE.COM", "erin", "ERIN"):
        token = login(client, identifier)
        assert client.get("/users/me", headers=bearer(token)).get_json()["id"] == user["id"]


def test_unknown_user_and_wrong_password_answer_identically(act, client):
    register(client, "frank")
    wrong_password = client.post("/auth/login", json={"username": "frank", "password": "wrong-password"})
    unknown_user = client.post("/auth/login", json={"username": "nobody", "password": "wrong-password"})
    unknown_email = client.post("/auth/login", json={"username": "nobody@example.com", "password": DEFAULT_PASSWORD})
    assert_error(wrong_password, 401, "invalid_credentials")
    for other in (unknown_user, unknown_email):
        assert other.status_code == wrong_password.status_code
        assert other.get_json() == wrong_password.get_json()
        assert other.headers.get("WWW-Authenticate") == wrong_password.headers.get("WWW-Authenticate")


@pytest.mark.parametrize(
    "body, field",
    [
        ({"username": "frank"}, "password"),
        ({"password": DEFAULT_PASSWORD}, "username"),
        ({"username": 123, "password": DEFAULT_PASSWORD}, "username"),
        ({"username": "frank", "password": True}, "password"),
        ({"username": "frank", "password": DEFAULT_PASSWORD, "remember": True}, "remember"),
        ({"username": "fra\u0000nk", "password": DEFAULT_PASSWORD}, "username"),
    ],
)
def test_login_validation_is_422(client, body, field):
    error = assert_error(client.post("/auth/login", json=body), 422, "validation_error")
    assert field in error["details"]


def test_login_body_not_json_is_400(client):
    assert_error(
        client.post("/auth/login", data=b"username=frank", content_type="application/json"), 400, "bad_request"
    )


def test_logout_revokes_only_that_token(act, client):
    _user, headers = act.user("gina")
    other = bearer(login(client, "gina"))
    response = client.post("/auth/logout", headers=headers)
    assert response.status_code == 204
    assert response.get_data() == b""
    assert_error(act.me(headers), 401, "unauthorized")
    assert_error(client.post("/auth/logout", headers=headers), 401, "unauthorized")
    assert act.me(other).status_code == 200
    assert act.me(bearer(login(client, "gina"))).status_code == 200


def test_logout_without_token_is_401(client):
    response = client.post("/auth/logout")
    assert_error(response, 401, "unauthorized")
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


# -- tokens -----------------------------------------------------------------------------


def test_crafted_token_with_the_right_key_is_accepted(act, client, settings):
    """Control for the crafted-token tests below: the crafting itself is right."""
    user = register(client, "hank")
    token = craft_token(settings.secret_key, user["id"])
    assert act.me(bearer(token)).status_code == 200


@pytest.mark.parametrize(
    "how",
    [
        "expired",
        "other_key",
        "wrong_version",
        "not_access",
        "no_jti",
        "unknown_user",
        "alg_none",
        # Claims only the key holder can set, which reached the database (a 500) before.
        "nul_in_sub",
        "surrogate_in_sub",
        "nul_in_jti",
        "surrogate_in_jti",
        "bool_version",
        "lifetime_past_the_ttl",
    ],
)
def test_bad_tokens_are_401(act, client, settings, how):
    user = register(client, "hank")
    key, user_id = settings.secret_key, user["id"]
    token = {
        "expired": lambda: craft_token(key, user_id, expires_in=-10),
        "other_key": lambda: craft_token("another-secret-key-0123456789abcdef-xyz", user_id),
        "wrong_version": lambda: craft_token(key, user_id, version=1),
        "not_access": lambda: craft_token(key, user_id, typ="refresh"),
        "no_jti": lambda: jwt.encode(
            {"sub": user_id, "ver": 0, "exp": int(time.time()) + 60, "typ": "access"}, key, algorithm="HS256"
        ),
        "unknown_user": lambda: craft_token(key, str(uuid.uuid4())),
        "nul_in_sub": lambda: craft_token(key, user_id + "\x00"),
        "surrogate_in_sub": lambda: craft_token(key, "\ud800"),
        "nul_in_jti": lambda: craft_token(key, user_id, jti="a\x00b"),
        "surrogate_in_jti": lambda: craft_token(key, user_id, jti="\ud800"),
        "bool_version": lambda: craft_token(key, user_id, ver=False),
        "lifetime_past_the_ttl": lambda: craft_token(key, user_id, exp=10**30),
        "alg_none": lambda: jwt.encode(
            {"sub": user_id, "ver": 0, "jti": "x", "exp": int(time.time()) + 60, "typ": "access"},
            None,
            algorithm="none",
        ),
    }[how]()
    response = act.me(bearer(token))
    assert_error(response, 401, "unauthorized")
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_expired_token_from_a_short_ttl_is_401(credit_app_factory):
    app = credit_app_factory(token_ttl=60)
    client = app.test_client()
    user = register(client, "ivy")
    body = client.post("/auth/login", json={"username": "ivy", "password": DEFAULT_PASSWORD}).get_json()
    assert body["expires_in"] == 60
    assert client.get("/users/me", headers=bearer(body["access_token"])).status_code == 200
    # The same signer and lifetime, issued 61 s ago: expired now, without sleeping.
    issued_earlier = Tokens(app.settings.secret_key, 60, clock=lambda: time.time() - 61)
    expired, _claims = issued_earlier.issue(user["id"], 0)
    error = assert_error(client.get("/users/me", headers=bearer(expired)), 401, "unauthorized")
    assert "expired" in error["message"]


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "Bearer",
        "Bearer ",
        "Token {t}",
        "Basic dXNlcjpwYXNz",
        "{t}",
        "Bearer not.a.jwt",
        "Bearer {t} extra",
        "Bearer {t}x",
    ],
)
def test_malformed_authorization_header_is_401(act, client, header):
    _user, headers = act.user("jack")
    token = headers["Authorization"].split(" ", 1)[1]
    sent = {} if header is None else {"Authorization": header.format(t=token)}
    assert_error(client.get("/users/me", headers=sent), 401, "unauthorized")


def test_scheme_is_case_insensitive(act, client):
    _user, headers = act.user("jack")
    token = headers["Authorization"].split(" ", 1)[1]
    assert client.get("/users/me", headers={"Authorization": f"bearer {token}"}).status_code == 200


# -- reading users ------------------------------------------------------------------------


def test_me_and_get_self(act, client):
    user, headers = act.user("kate")
    me = act.me(headers)
    assert me.status_code == 200 and me.get_json() == user
    got = client.get(f"/users/{user['id']}", headers=headers)
    assert got.status_code == 200 and got.get_json() == user


def test_admin_reads_any_user(act, client):
    user, _ = act.user("kate")
    _admin, admin_headers = act.admin()
    got = client.get(f"/users/{user['id']}", headers=admin_headers)
    assert got.status_code == 200 and got.get_json() == user


def test_user_reading_another_user_is_403_without_data(act, client):
    other, _ = act.user("kate", email="kate-private@example.com")
    _user, headers = act.user("liam")
    response = client.get(f"/users/{other['id']}", headers=headers)
    assert_error(response, 403, "forbidden")
    assert "kate-private" not in response.get_data(as_text=True)


def test_unknown_user_id_is_404_for_admin_and_refused_for_user(act, client):
    _admin, admin_headers = act.admin()
    _user, headers = act.user("liam")
    for missing in (str(uuid.uuid4()), "x" * 100, "a%00b"):
        for method in ("get", "patch", "delete"):
            kwargs = {"json": {"email": "x@example.com"}} if method == "patch" else {}
            response = getattr(client, method)(f"/users/{missing}", headers=admin_headers, **kwargs)
            assert_error(response, 404, "not_found")
            assert getattr(client, method)(f"/users/{missing}", headers=headers, **kwargs).status_code in (403, 404)


def test_reading_users_requires_a_token(act, client):
    user, _ = act.user("liam")
    for path in ("/users/me", f"/users/{user['id']}", "/users"):
        assert_error(client.get(path), 401, "unauthorized")
    assert_error(client.patch(f"/users/{user['id']}", json={"email": "n@example.com"}), 401, "unauthorized")
    assert_error(client.delete(f"/users/{user['id']}"), 401, "unauthorized")


# -- changing users -----------------------------------------------------------------------


def test_self_changes_email(act, client):
    user, headers = act.user("mia")
    response = client.patch(f"/users/{user['id']}", json={"email": "Mia.New@Example.com"}, headers=headers)
    assert response.status_code == 200
    body = response.get_json()
    assert set(body) == USER_FIELDS
    assert body == {**user, "email": "Mia.New@Example.com"}
    assert act.me(headers).get_json()["email"] == "Mia.New@Example.com"  # an email change keeps tokens
    login(client, "mia.new@example.com")
    assert_error(
        client.post("/auth/login", json={"username": "mia@example.com", "password": DEFAULT_PASSWORD}),
        401,
        "invalid_credentials",
    )


def test_changing_email_to_a_taken_one_is_409(act, client):
    register(client, "noah", email="Noah@Example.com")
    user, headers = act.user("mia")
    before = act.counts()
    response = client.patch(f"/users/{user['id']}", json={"email": "NOAH@example.com"}, headers=headers)
    assert_error(response, 409, "email_taken")
    assert act.me(headers).get_json()["email"] == "mia@example.com"
    assert act.counts() == before


def test_self_password_change_revokes_tokens(act, client):
    user, headers = act.user("olga", password="old-password-1")
    other_session = bearer(login(client, "olga", "old-password-1"))
    response = client.patch(
        f"/users/{user['id']}",
        headers=headers,
        json={"password": "new-password-2", "current_password": "old-password-1"},
    )
    assert response.status_code == 200
    assert response.get_json() == user
    assert "new-password-2" not in response.get_data(as_text=True)
    assert_error(act.me(headers), 401, "unauthorized")
    assert_error(act.me(other_session), 401, "unauthorized")
    assert_error(
        client.post("/auth/login", json={"username": "olga", "password": "old-password-1"}), 401, "invalid_credentials"
    )
    assert act.me(bearer(login(client, "olga", "new-password-2"))).status_code == 200


def test_password_change_needs_current_password(act, client):
    user, headers = act.user("olga", password="old-password-1")
    response = client.patch(f"/users/{user['id']}", json={"password": "new-password-2"}, headers=headers)
    error = assert_error(response, 422, "validation_error")
    assert "current_password" in error["details"]
    assert act.me(headers).status_code == 200
    login(client, "olga", "old-password-1")


def test_password_change_with_wrong_current_password_is_401(act, client):
    user, headers = act.user("olga", password="old-password-1")
    response = client.patch(
        f"/users/{user['id']}",
        headers=headers,
        json={"password": "new-password-2", "current_password": "not-my-password"},
    )
    assert_error(response, 401, "invalid_credentials")
    assert act.me(headers).status_code == 200
    login(client, "olga", "old-password-1")
    assert_error(
        client.post("/auth/login", json={"username": "olga", "password": "new-password-2"}), 401, "invalid_credentials"
    )


def test_new_password_is_validated(act, client):
    user, headers = act.user("olga", password="old-password-1")
    response = client.patch(
        f"/users/{user['id']}", headers=headers, json={"password": "short", "current_password": "old-password-1"}
    )
    error = assert_error(response, 422, "validation_error")
    assert "password" in error["details"]
    login(client, "olga", "old-password-1")


def test_user_changing_another_user_is_403(act, client):
    other, other_headers = act.user("paul")
    _user, headers = act.user("quinn")
    for changes in (
        {"email": "stolen@example.com"},
        {"password": "hijacked-123", "current_password": "whatever"},
        {"is_active": False},
        {"role": "admin"},
    ):
        assert_error(client.patch(f"/users/{other['id']}", json=changes, headers=headers), 403, "forbidden")
    assert act.me(other_headers).get_json() == other
    login(client, "paul")


@pytest.mark.parametrize(
    "changes", [{"role": "admin"}, {"is_active": False}, {"email": "q2@example.com", "role": "admin"}]
)
def test_user_cannot_change_own_role_or_active_flag(act, client, changes):
    user, headers = act.user("quinn")
    assert_error(client.patch(f"/users/{user['id']}", json=changes, headers=headers), 403, "forbidden")
    assert act.me(headers).get_json() == user
    assert_error(client.get("/users", headers=headers), 403, "forbidden")


@pytest.mark.parametrize(
    "changes, field",
    [
        ({"is_active": "yes"}, "is_active"),
        ({"is_active": 1}, "is_active"),
        ({"is_active": None}, "is_active"),
        ({"role": "superuser"}, "role"),
        ({"role": True}, "role"),
        ({"email": 5}, "email"),
        ({"email": "nope"}, "email"),
        ({"email": "rita\u0000@example.com"}, "email"),
        ({"username": "renamed"}, "username"),
        ({"password_hash": "$argon2id$v=19$x"}, "password_hash"),
        ({"token_version": 0}, "token_version"),
    ],
)
def test_invalid_patch_is_422_and_changes_nothing(act, client, changes, field):
    user, _ = act.user("rita")
    _admin, admin_headers = act.admin()
    error = assert_error(
        client.patch(f"/users/{user['id']}", json=changes, headers=admin_headers), 422, "validation_error"
    )
    assert field in error["details"]
    assert client.get(f"/users/{user['id']}", headers=admin_headers).get_json() == user


def test_patch_body_must_be_a_json_object(act, client):
    user, headers = act.user("rita")
    for raw in (b"[]", b"{", b'"email"'):
        assert_error(
            client.patch(f"/users/{user['id']}", data=raw, headers=headers, content_type="application/json"),
            400,
            "bad_request",
        )


def test_admin_promotes_user(act, client):
    user, headers = act.user("sam")
    _admin, admin_headers = act.admin()
    response = client.patch(f"/users/{user['id']}", json={"role": "admin"}, headers=admin_headers)
    assert response.status_code == 200
    assert response.get_json() == {**user, "role": "admin"}
    # A role change revokes the user's tokens; a fresh login carries the new rights.
    assert_error(act.me(headers), 401, "unauthorized")
    new_headers = bearer(login(client, "sam"))
    assert act.me(new_headers).get_json()["role"] == "admin"
    assert client.get("/users", headers=new_headers).status_code == 200


def test_admin_demotes_admin(act, client):
    other_admin = make_admin(act.app, "other-admin")
    other_headers = bearer(login(client, "other-admin"))
    _admin, admin_headers = act.admin()
    response = client.patch(f"/users/{other_admin['id']}", json={"role": "user"}, headers=admin_headers)
    assert response.status_code == 200 and response.get_json()["role"] == "user"
    assert_error(act.me(other_headers), 401, "unauthorized")
    assert_error(client.get("/users", headers=bearer(login(client, "other-admin"))), 403, "forbidden")


@pytest.mark.parametrize(
    "method, body",
    [("patch", {"role": "user"}), ("patch", {"is_active": False}), ("patch", {"role": "user", "is_active": False})]
    + [("delete", None)],
)
def test_the_last_active_admin_cannot_demote_or_deactivate_itself(act, client, method, body):
    admin, headers = act.admin()
    inactive_admin = make_admin(act.app, "retired")  # an inactive admin does not count
    act.app.container.user_service().deactivate(Principal(inactive_admin["id"], "admin"), inactive_admin["id"])
    response = getattr(client, method)(f"/users/{admin['id']}", json=body, headers=headers)
    error = assert_error(response, 409, "last_admin")
    assert "another user an admin" in error["message"]
    me = act.me(headers).get_json()  # nothing changed, and the token still works
    assert (me["id"], me["role"], me["is_active"]) == (admin["id"], "admin", True)
    # With a second active admin, the same request goes through.
    make_admin(act.app, "deputy")
    response = getattr(client, method)(f"/users/{admin['id']}", json=body, headers=headers)
    assert response.status_code in (200, 204)


def test_an_admin_may_still_change_its_own_email_and_password(act, client):
    admin, headers = act.admin()
    changes = {"email": "root2@example.com", "password": "new-password-123", "current_password": DEFAULT_PASSWORD}
    response = client.patch(
        f"/users/{admin['id']}", json={**changes, "role": "admin", "is_active": True}, headers=headers
    )
    assert response.status_code == 200 and response.get_json()["email"] == "root2@example.com"


def test_admin_deactivates_and_reactivates_user(act, client):
    user, headers = act.user("tina")
    _admin, admin_headers = act.admin()
    response = client.patch(f"/users/{user['id']}", json={"is_active": False}, headers=admin_headers)
    assert response.status_code == 200
    assert response.get_json() == {**user, "is_active": False}
    assert_error(act.me(headers), 401, "unauthorized")
    assert_error(
        client.post("/auth/login", json={"username": "tina", "password": DEFAULT_PASSWORD}), 401, "invalid_credentials"
    )
    response = client.patch(f"/users/{user['id']}", json={"is_active": True}, headers=admin_headers)
    assert response.status_code == 200 and response.get_json()["is_active"] is True
    assert_error(act.me(headers), 401, "unauthorized")  # the old token stays dead
    assert act.me(bearer(login(client, "tina"))).status_code == 200


def test_deactivated_user_login_answers_like_wrong_password(act, client):
    user, _ = act.user("tina")
    _admin, admin_headers = act.admin()
    assert client.patch(f"/users/{user['id']}", json={"is_active": False}, headers=admin_headers).status_code == 200
    right = client.post("/auth/login", json={"username": "tina", "password": DEFAULT_PASSWORD})
    unknown = client.post("/auth/login", json={"username": "ghost", "password": DEFAULT_PASSWORD})
    assert_error(right, 401, "invalid_credentials")
    assert right.get_json() == unknown.get_json()


# -- deactivation (DELETE) ------------------------------------------------------------------


def test_delete_self_deactivates(act, client):
    user, headers = act.user("uma")
    response = client.delete(f"/users/{user['id']}", headers=headers)
    assert response.status_code == 204
    assert response.get_data() == b""
    assert_error(act.me(headers), 401, "unauthorized")
    assert_error(
        client.post("/auth/login", json={"username": "uma", "password": DEFAULT_PASSWORD}), 401, "invalid_credentials"
    )
    _admin, admin_headers = act.admin()
    kept = client.get(f"/users/{user['id']}", headers=admin_headers)
    assert kept.status_code == 200 and kept.get_json() == {**user, "is_active": False}
    # Deactivated, not deleted: the username stays taken.
    assert_error(
        client.post("/users", json={"username": "UMA", "email": "uma2@example.com", "password": DEFAULT_PASSWORD}),
        409,
        "username_taken",
    )


def test_admin_deletes_user_and_again_is_204(act, client):
    user, headers = act.user("victor")
    _admin, admin_headers = act.admin()
    assert client.delete(f"/users/{user['id']}", headers=admin_headers).status_code == 204
    assert_error(act.me(headers), 401, "unauthorized")
    assert client.delete(f"/users/{user['id']}", headers=admin_headers).status_code == 204
    assert act.me(admin_headers).status_code == 200


def test_user_deleting_another_user_is_403(act, client):
    other, other_headers = act.user("walt")
    _user, headers = act.user("xena")
    assert_error(client.delete(f"/users/{other['id']}", headers=headers), 403, "forbidden")
    assert act.me(other_headers).get_json()["is_active"] is True


# -- listing --------------------------------------------------------------------------------


def test_admin_lists_users_newest_first_with_cursor(act, client):
    admin, admin_headers = act.admin()
    created = [admin["id"]] + [register(client, f"user{i}")["id"] for i in range(5)]
    seen, pages, cursor = [], 0, None
    while True:
        query = {"limit": 2} if cursor is None else {"limit": 2, "cursor": cursor}
        response = client.get("/users", query_string=query, headers=admin_headers)
        assert response.status_code == 200
        page = response.get_json()
        assert set(page) == {"items", "next_cursor"}
        assert 1 <= len(page["items"]) <= 2
        assert all(set(item) == USER_FIELDS for item in page["items"])
        seen.extend(item["id"] for item in page["items"])
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
        assert isinstance(cursor, str) and pages < 10
    assert pages == 3
    assert len(seen) == len(set(seen)) == 6
    assert seen == list(reversed(created))
    everything = client.get("/users", headers=admin_headers).get_json()
    assert [item["id"] for item in everything["items"]] == seen and everything["next_cursor"] is None
    stamps = [datetime.fromisoformat(item["created_at"]) for item in everything["items"]]
    assert stamps == sorted(stamps, reverse=True)
    assert "password" not in json.dumps(everything) and "$argon2" not in json.dumps(everything)


@pytest.mark.parametrize("limit", ["0", "201", "abc", "-1", "1.5", ""])
def test_list_limit_out_of_range_is_422(act, client, limit):
    _admin, admin_headers = act.admin()
    error = assert_error(client.get(f"/users?limit={limit}", headers=admin_headers), 422, "validation_error")
    assert "limit" in error["details"]


@pytest.mark.parametrize("limit", ["1", "200"])
def test_list_limit_bounds_are_accepted(act, client, limit):
    _admin, admin_headers = act.admin()
    register(client, "yara")
    response = client.get(f"/users?limit={limit}", headers=admin_headers)
    assert response.status_code == 200
    page = response.get_json()
    assert len(page["items"]) == min(int(limit), 2)
    assert (page["next_cursor"] is None) == (int(limit) >= 2)


@pytest.mark.parametrize(
    "cursor",
    [
        "abc",
        "!!!",
        "%%%",
        cursor_of("x"),
        cursor_of(1, 2),
        cursor_of(None, None),
        cursor_of("a", "b", "c"),
        cursor_of(["a"], {"b": 1}),
        cursor_of("not-a-time", "id"),
        cursor_of("9999-12-31T23:59:59-05:00", "id"),
        cursor_of("0001-01-01T00:00:00+05:00", "id"),
        cursor_of("2020-01-01T00:00:00+00:00", "a\u0000b"),
        cursor_of("2020-01-01T00:00:00+00:00", 5),
        # Forged values the database driver would refuse (a 500 before): each is a 422.
        cursor_of("2020-01-01T00:00:00+00:00", "\ud800"),
        cursor_of("2020-01-01T00:00:00+00:00", True),
        cursor_of("2020-01-01T00:00:00+00:00", 2**63),
        cursor_of(True, "id"),
        cursor_of(2**63, "id"),
        cursor_of(10**30, "id"),
        cursor_of("2020-01-01T00:00:00\ud800", "id"),
        base64.urlsafe_b64encode(b'{"a": 1}').decode(),
        "x" * 600,
    ],
)
def test_list_garbage_cursor_is_422(act, client, cursor):
    _admin, admin_headers = act.admin()
    error = assert_error(
        client.get("/users", query_string={"cursor": cursor}, headers=admin_headers), 422, "validation_error"
    )
    assert "cursor" in error["details"]


def test_non_admin_listing_is_403(act, client):
    _user, headers = act.user("zed")
    response = client.get("/users", headers=headers)
    assert_error(response, 403, "forbidden")
    assert "zed@example.com" not in response.get_data(as_text=True)


# -- login throttling -------------------------------------------------------------------------


def _fail(client, username, **kwargs):
    return client.post("/auth/login", json={"username": username, "password": "definitely-wrong"}, **kwargs)


def _retry_after(response) -> int:
    value = response.headers.get("Retry-After")
    assert value is not None and value.isdigit(), value
    return int(value)


def test_account_is_throttled_after_max_failures(credit_app_factory):
    app = credit_app_factory(login_max_failures=3)
    client = app.test_client()
    register(client, "alice")
    for _ in range(3):
        assert_error(_fail(client, "alice"), 401, "invalid_credentials")
    throttled = _fail(client, "alice")
    error = assert_error(throttled, 429, "rate_limited")
    assert 1 <= _retry_after(throttled) <= app.settings.login_window_seconds
    assert error["details"].get("retry_after") == _retry_after(throttled)
    # The right password is refused while throttled, also in another letter case.
    for identifier in ("alice", "ALICE"):
        right = client.post("/auth/login", json={"username": identifier, "password": DEFAULT_PASSWORD})
        assert_error(right, 429, "rate_limited")
        _retry_after(right)
    # Another account from the same client is not affected by alice's failures.
    register(client, "bob")
    login(client, "bob")


def test_case_variants_count_for_one_account(credit_app_factory):
    app = credit_app_factory(login_max_failures=3)
    client = app.test_client()
    register(client, "alice")
    for identifier in ("alice", "Alice", "ALICE"):
        assert_error(_fail(client, identifier), 401, "invalid_credentials")
    assert_error(_fail(client, "aLiCe"), 429, "rate_limited")


def test_successful_login_resets_the_account_failures(credit_app_factory):
    app = credit_app_factory(login_max_failures=3)
    client = app.test_client()
    register(client, "alice")
    for _round in range(3):
        for _ in range(2):
            assert_error(_fail(client, "alice"), 401, "invalid_credentials")
        login(client, "alice")


def test_client_is_throttled_after_its_own_budget(credit_app_factory):
    app = credit_app_factory(login_max_failures=3)
    client = app.test_client()
    register(client, "victim")
    budget = 3 * CLIENT_FACTOR
    accounts = [f"guess{i}" for i in range(budget)]
    # Two failures per account: no single account reaches its limit of 3.
    for n in range(budget):
        assert_error(_fail(client, accounts[n // 2]), 401, "invalid_credentials")
        if n == budget - 2:
            login(client, "victim")  # one failure of budget left: other accounts still work
    blocked = client.post("/auth/login", json={"username": "victim", "password": DEFAULT_PASSWORD})
    assert_error(blocked, 429, "rate_limited")
    _retry_after(blocked)
    assert_error(_fail(client, "fresh-name"), 429, "rate_limited")
    # The limit is per client: the same account from another address logs in.
    login(client, "victim", environ_overrides={"REMOTE_ADDR": "10.9.8.7"})


# -- secrets never leak ---------------------------------------------------------------------


def test_no_password_or_hash_in_responses_or_logs(act, client, caplog):
    caplog.set_level(logging.DEBUG)
    secrets = ["Plain-Text-Pass-1", "Another-Pass-22", "Wrong-Guess-333", "Short7!"]
    bodies = []

    def call(method, path, **kwargs):
        response = getattr(client, method)(path, **kwargs)
        bodies.append(response.get_data(as_text=True))
        return response

    user = call(
        "post", "/users", json={"username": "leaky", "email": "leaky@example.com", "password": secrets[0]}
    ).get_json()
    call("post", "/users", json={"username": "leaky2", "email": "leaky2@example.com", "password": secrets[3]})
    call("post", "/users", json={"username": "leaky", "email": "leaky@example.com", "password": secrets[0]})
    token = call("post", "/auth/login", json={"username": "leaky", "password": secrets[0]}).get_json()["access_token"]
    call("post", "/auth/login", json={"username": "leaky", "password": secrets[2]})
    call("post", "/auth/login", json={"username": "nobody", "password": secrets[2]})
    call(
        "patch",
        f"/users/{user['id']}",
        headers=bearer(token),
        json={"password": secrets[1], "current_password": secrets[2]},
    )
    call(
        "patch",
        f"/users/{user['id']}",
        headers=bearer(token),
        json={"password": secrets[3], "current_password": secrets[0]},
    )
    call(
        "patch",
        f"/users/{user['id']}",
        headers=bearer(token),
        json={"password": secrets[1], "current_password": secrets[0]},
    )
    new_token = call("post", "/auth/login", json={"username": "leaky", "password": secrets[1]}).get_json()
    call("get", "/users/me", headers=bearer(new_token["access_token"]))
    _admin, admin_headers = act.admin()
    call("get", "/users", headers=admin_headers)
    call("get", f"/users/{user['id']}", headers=admin_headers)

    assert len(bodies) == 13
    # Prove the capture sees the app's loggers at DEBUG (today these flows log nothing at all,
    # so the check below guards against a future log line, e.g. of a request body).
    logging.getLogger("app.services.auth").debug("capture-canary")
    assert any(record.getMessage() == "capture-canary" for record in caplog.records)
    logged = (
        [caplog.text]
        + [record.getMessage() for record in caplog.records]
        + [repr(record.args) for record in caplog.records]
        + [record.exc_text or "" for record in caplog.records]
    )
    for text in bodies + logged:
        assert "$argon2" not in text
        for secret in secrets + [DEFAULT_PASSWORD]:
            assert secret not in text


# -- credit-system create-admin --------------------------------------------------------------


def _create_admin(credit_cli, username, email, password):
    return credit_cli("create-admin", "--username", username, "--email", email, "--password", password)


def test_create_admin_creates_an_admin_who_can_list_users(credit_cli, credit_app_factory):
    result = _create_admin(credit_cli, "boss", "boss@example.com", "boss-password-1")
    assert result.exit_code == 0, result.output
    assert "created admin boss" in result.output
    assert "boss-password-1" not in result.output
    client = credit_app_factory().test_client()
    headers = bearer(login(client, "boss", "boss-password-1"))
    me = client.get("/users/me", headers=headers).get_json()
    assert me["role"] == "admin" and me["is_active"] is True and me["email"] == "boss@example.com"
    listing = client.get("/users", headers=headers)
    assert listing.status_code == 200
    assert [item["username"] for item in listing.get_json()["items"]] == ["boss"]


def test_create_admin_promotes_an_existing_user(credit_cli, credit_app_factory):
    app = credit_app_factory()
    client = app.test_client()
    user = register(client, "worker", password="worker-password-1")

    result = _create_admin(credit_cli, "Worker", "ignored@example.com", "promoted-password-2")
    assert result.exit_code == 0, result.output
    assert "promoted admin worker" in result.output

    client = credit_app_factory().test_client()
    assert_error(
        client.post("/auth/login", json={"username": "worker", "password": "worker-password-1"}),
        401,
        "invalid_credentials",
    )
    headers = bearer(login(client, "worker", "promoted-password-2"))
    me = client.get("/users/me", headers=headers).get_json()
    assert me["id"] == user["id"] and me["role"] == "admin" and me["email"] == "worker@example.com"
    assert client.get("/users", headers=headers).status_code == 200


@pytest.mark.parametrize(
    "username, email, password, message",
    [
        ("boss", "not-an-email", "boss-password-1", "email"),
        ("boss", "boss@example.com", "tiny-7!", "password"),
        ("b", "boss@example.com", "boss-password-1", "username"),
        ("bad name", "boss@example.com", "boss-password-1", "username"),
    ],
)
def test_create_admin_rejects_invalid_input(credit_cli, credit_app_factory, username, email, password, message):
    result = _create_admin(credit_cli, username, email, password)
    assert result.exit_code != 0
    assert "invalid input" in result.output and message in result.output
    assert password not in result.output
    with credit_app_factory().container.database().unit_of_work(write=False) as uow:
        assert uow.session.scalar(select(func.count()).select_from(User)) == 0


def test_create_admin_with_an_email_of_another_user_fails(credit_cli, credit_app_factory):
    app = credit_app_factory()
    register(app.test_client(), "owner", email="owner@example.com")
    result = _create_admin(credit_cli, "boss", "OWNER@example.com", "boss-password-1")
    assert result.exit_code != 0
    assert "email" in result.output
    with app.container.database().unit_of_work(write=False) as uow:
        assert uow.session.scalar(select(func.count()).select_from(User)) == 1


def test_create_admin_without_required_options_fails(credit_cli):
    result = credit_cli("create-admin", "--username", "boss")
    assert result.exit_code != 0
