"""user_management services tested directly: tokens, the auth-state cache, passwords, throttle."""

from __future__ import annotations

import logging
import time

import jwt
import pytest
from sqlalchemy import func, select

from app.infrastructure.cache import build_cache
from app.infrastructure.tables import RevokedToken, User
from app.services.auth_state import AuthStateCache
from app.services.errors import EmailTaken, InvalidCredentials, RateLimited, Unauthorized, UsernameTaken
from app.services.login_throttle import CLIENT_FACTOR, LoginThrottle
from app.services.passwords import Passwords
from app.services.principal import Principal
from app.services.tokens import Tokens
from app.services.users import UserService

SECRET = "unit-secret-key-0123456789abcdef-0123"
PASSWORD = "correct-horse-battery"


def _count_users(app) -> int:
    with app.container.database().unit_of_work(write=False) as uow:
        return uow.session.scalar(select(func.count()).select_from(User))


def _row(app, user_id: str) -> User:
    with app.container.database().unit_of_work(write=False) as uow:
        return uow.session.get(User, user_id)


# -- Tokens ------------------------------------------------------------------------------


def test_token_round_trip_carries_user_version_and_expiry():
    tokens = Tokens(SECRET, 120)
    token, claims = tokens.issue("user-1", 7)
    decoded = tokens.decode(token)
    assert decoded == claims
    assert decoded.user_id == "user-1" and decoded.version == 7
    assert abs(decoded.expires_at - (time.time() + 120)) < 5
    assert tokens.issue("user-1", 7)[1].jti != claims.jti


def test_token_from_another_key_is_refused():
    token, _ = Tokens("another-secret-key-0123456789abcdef-xyz", 120).issue("user-1", 0)
    with pytest.raises(Unauthorized):
        Tokens(SECRET, 120).decode(token)


def test_expired_token_is_refused():
    token, _ = Tokens(SECRET, -5).issue("user-1", 0)
    with pytest.raises(Unauthorized, match="expired"):
        Tokens(SECRET, 120).decode(token)


@pytest.mark.parametrize(
    "payload",
    [
        {"sub": "u", "ver": 0, "jti": "j", "typ": "refresh"},
        {"sub": "u", "ver": 0, "jti": "j"},
        {"sub": "u", "jti": "j", "typ": "access"},
        {"ver": 0, "jti": "j", "typ": "access"},
        {"sub": "u", "ver": 0, "typ": "access"},
        {"sub": "u", "ver": "0", "jti": "j", "typ": "access"},
        {"sub": 5, "ver": 0, "jti": "j", "typ": "access"},
    ],
)
def test_token_with_wrong_claims_is_refused(payload):
    token = jwt.encode({**payload, "exp": int(time.time()) + 60}, SECRET, algorithm="HS256")
    with pytest.raises(Unauthorized):
        Tokens(SECRET, 120).decode(token)


# -- Passwords -----------------------------------------------------------------------------


def test_passwords_hash_and_verify():
    passwords = Passwords(time_cost=1, memory_cost=1024)
    first, second = passwords.hash(PASSWORD), passwords.hash(PASSWORD)
    assert first.startswith("$argon2id$") and PASSWORD not in first
    assert first != second  # salted
    assert passwords.verify(first, PASSWORD) is True
    assert passwords.verify(second, PASSWORD) is True
    assert passwords.verify(first, PASSWORD + "x") is False


@pytest.mark.parametrize("stored", [None, "", "not-a-hash", "$argon2id$v=19$m=1024,t=1,p=1$broken"])
def test_passwords_verify_without_a_usable_hash_is_false(stored):
    passwords = Passwords(time_cost=1, memory_cost=1024)
    assert passwords.verify(stored, PASSWORD) is False
    # Not even the dummy hash's own password gets an unknown user in.
    assert passwords.verify(stored, "not-a-real-password-used-for-timing") is False


def test_passwords_need_rehash_when_the_cost_changes():
    weak = Passwords(time_cost=1, memory_cost=1024)
    strong = Passwords(time_cost=2, memory_cost=2048)
    assert strong.needs_rehash(weak.hash(PASSWORD)) is True
    assert weak.needs_rehash(weak.hash(PASSWORD)) is False


# -- AuthStateCache version guard (on the selected backend's cache) -------------------------


@pytest.fixture
def auth_state(backend_urls):
    cache = build_cache(backend_urls[1])
    yield AuthStateCache(cache, ttl_seconds=60)
    cache.close()


def test_auth_state_lookup_of_nothing_is_a_miss(auth_state):
    assert auth_state.lookup("nobody", "no-jti") == (None, None)


def test_auth_state_ignores_a_stale_user_store(auth_state):
    auth_state.store_user("u1", 3, False, "user")
    auth_state.store_user("u1", 2, True, "admin")  # a slow reader that saw the row before the change
    assert auth_state.lookup("u1", "j")[0] == (3, False, "user")
    auth_state.store_user("u1", 3, True, "admin")  # same version: the first writer wins
    assert auth_state.lookup("u1", "j")[0] == (3, False, "user")
    auth_state.store_user("u1", 4, True, "admin")
    assert auth_state.lookup("u1", "j")[0] == (4, True, "admin")


def test_auth_state_revocation_cannot_be_undone_by_a_stale_store(auth_state):
    auth_state.store_token("j1", False, 60)
    assert auth_state.lookup("u", "j1")[1] is False
    auth_state.store_token("j1", True, 60)
    auth_state.store_token("j1", False, 60)
    assert auth_state.lookup("u", "j1")[1] is True


def test_auth_state_does_not_store_an_expired_token(auth_state):
    auth_state.store_token("j2", True, 0)
    auth_state.store_token("j3", True, -10)
    assert auth_state.lookup("u", "j2")[1] is None
    assert auth_state.lookup("u", "j3")[1] is None


# -- AuthService / UserService: token versioning ---------------------------------------------


@pytest.fixture
def services(app):
    return app.container.user_service(), app.container.auth_service(), app.container.auth_state()


def _session(services, username="alice", password=PASSWORD):
    users, auth, _ = services
    user = users.register(username, f"{username}@example.com", password)
    token = auth.login(username, password, "127.0.0.1")
    return user, token


def test_password_change_bumps_the_version_and_revokes(app, services):
    users, auth, _ = services
    user, token = _session(services)
    assert auth.authenticate(token)[0] == Principal(user.id, "user")
    users.update(Principal(user.id, "user"), user.id, {"password": "new-password-2", "current_password": PASSWORD})
    assert _row(app, user.id).token_version == 1
    with pytest.raises(Unauthorized):
        auth.authenticate(token)
    fresh = auth.login("alice", "new-password-2", "127.0.0.1")
    assert auth.authenticate(fresh)[0].user_id == user.id


def test_email_change_keeps_the_version_and_tokens(app, services):
    users, auth, _ = services
    user, token = _session(services)
    users.update(Principal(user.id, "user"), user.id, {"email": "alice.new@example.com"})
    assert _row(app, user.id).token_version == 0
    assert auth.authenticate(token)[0].user_id == user.id


def test_stale_state_cannot_resurrect_a_deactivated_users_token(services):
    users, auth, auth_state = services
    user, token = _session(services)
    auth.authenticate(token)
    users.deactivate(Principal(user.id, "user"), user.id)
    # What a request that read the row just before the deactivation would write back:
    auth_state.store_user(user.id, 0, True, "user")
    with pytest.raises(Unauthorized):
        auth.authenticate(token)


def test_stale_state_cannot_undo_a_logout(services):
    _users, auth, auth_state = services
    _user, token = _session(services)
    principal, jti, expires_at = auth.authenticate(token)
    auth.logout(principal, jti, expires_at)
    auth_state.store_token(jti, False, 60)
    with pytest.raises(Unauthorized):
        auth.authenticate(token)


def test_the_database_decides_when_the_cache_is_empty(app, services):
    users, auth, _ = services
    revoked_user, revoked_token = _session(services)
    inactive_user, inactive_token = _session(services, "bob")
    live_user, live_token = _session(services, "carol")
    auth.logout(*auth.authenticate(revoked_token))
    users.deactivate(Principal(inactive_user.id, "user"), inactive_user.id)
    cache, tokens = app.container.cache(), app.container.tokens()
    for user, token in ((revoked_user, revoked_token), (inactive_user, inactive_token), (live_user, live_token)):
        cache.delete(AuthStateCache.user_key(user.id), AuthStateCache.token_key(tokens.decode(token).jti))
    with pytest.raises(Unauthorized):
        auth.authenticate(revoked_token)  # found in revoked_tokens
    with pytest.raises(Unauthorized):
        auth.authenticate(inactive_token)  # inactive in users
    assert auth.authenticate(live_token)[0].user_id == live_user.id


def test_purge_expired_revocations_keeps_live_ones(app, services):
    _users, auth, _ = services
    user, token = _session(services)
    principal, jti, expires_at = auth.authenticate(token)
    auth.logout(principal, jti, expires_at)
    auth.logout(principal, "old-jti", int(time.time()) - 60)
    assert auth.purge_expired_revocations() == 1
    with app.container.database().unit_of_work(write=False) as uow:
        assert [row.jti for row in uow.session.scalars(select(RevokedToken))] == [jti]
    with pytest.raises(Unauthorized):
        auth.authenticate(token)


def test_login_of_unknown_or_inactive_user_is_invalid_credentials(services):
    users, auth, _ = services
    user, _token = _session(services)
    with pytest.raises(InvalidCredentials):
        auth.login("nobody", PASSWORD, "127.0.0.1")
    users.deactivate(Principal(user.id, "user"), user.id)
    with pytest.raises(InvalidCredentials):
        auth.login("alice", PASSWORD, "127.0.0.1")


def test_stored_password_is_an_argon2id_hash(app, services):
    user, _ = _session(services)
    stored = _row(app, user.id).password_hash
    assert stored.startswith("$argon2id$") and PASSWORD not in stored


# -- UserService: registration races and the admin bootstrap -----------------------------------


@pytest.mark.parametrize(
    "first, second, error",
    [
        (("email.fan", "one@example.com"), ("EMAIL.FAN", "two@example.com"), UsernameTaken),
        (("alice", "user.email@example.com"), ("bob", "USER.EMAIL@example.com"), EmailTaken),
        (("username_key", "a@example.com"), ("UserName_Key", "b@example.com"), UsernameTaken),
    ],
)
def test_a_lost_registration_race_maps_to_the_right_conflict(app, services, monkeypatch, first, second, error):
    """With the pre-check skipped (as when a concurrent request wins), the unique index decides."""
    users = services[0]
    users.register(first[0], first[1], PASSWORD)
    monkeypatch.setattr(UserService, "_ensure_free", staticmethod(lambda *args, **kwargs: None))
    with pytest.raises(error):
        users.register(second[0], second[1], PASSWORD)
    assert _count_users(app) == 1


def test_ensure_admin_creates_then_promotes(app, services):
    users, auth, _ = services
    admin, created = users.ensure_admin("root", "root@example.com", PASSWORD)
    assert created is True and admin.role == "admin"
    bob, token = _session(services, "bob")
    promoted, created = users.ensure_admin("BOB", "ignored@example.com", "another-password-2")
    assert created is False and promoted.id == bob.id
    row = _row(app, bob.id)
    assert (row.role, row.email, row.token_version) == ("admin", "bob@example.com", 1)
    with pytest.raises(Unauthorized):
        auth.authenticate(token)
    with pytest.raises(InvalidCredentials):
        auth.login("bob", PASSWORD, "127.0.0.1")
    assert auth.authenticate(auth.login("bob", "another-password-2", "127.0.0.1"))[0].is_admin
    assert _count_users(app) == 2


# -- LoginThrottle ------------------------------------------------------------------------------


def _account(name: str) -> str:
    return LoginThrottle.account_key(None, name)


def test_throttle_counts_attempts_per_account_and_clears_on_success():
    throttle = LoginThrottle("memory://", max_failures=2, window_seconds=30)
    throttle.admit(_account("Alice"), "c1")
    throttle.admit(_account("alice"), "c1")
    with pytest.raises(RateLimited) as raised:
        throttle.admit(_account("ALICE"), "c1")
    assert 1 <= raised.value.retry_after <= 30
    throttle.admit(_account("bob"), "c1")  # another account, same client: within the client budget
    fresh = LoginThrottle("memory://", max_failures=2, window_seconds=30)
    fresh.succeeded(fresh.admit(_account("carol"), "c1"))
    fresh.admit(_account("carol"), "c1")
    fresh.admit(_account("carol"), "c1")  # the success cleared carol's count: two more


def test_an_account_resolved_to_a_user_is_one_bucket_whatever_it_was_called():
    assert LoginThrottle.account_key("u-1", "alice") == LoginThrottle.account_key("u-1", "alice@example.com")
    assert LoginThrottle.account_key(None, "Alice") == LoginThrottle.account_key(None, "alice")
    assert LoginThrottle.account_key(None, "u-1") != LoginThrottle.account_key("u-1", "u-1")


def test_throttle_limits_a_client_across_accounts_and_gives_successes_back():
    throttle = LoginThrottle("memory://", max_failures=2, window_seconds=30)
    for n in range(2 * CLIENT_FACTOR - 1):
        throttle.admit(_account(f"account{n}"), "c1")
    for _ in range(5):  # successes from c1 do not use up its budget
        throttle.succeeded(throttle.admit(_account("regular"), "c1"))
    throttle.admit(_account("last-one"), "c1")
    with pytest.raises(RateLimited):
        throttle.admit(_account("someone-else"), "c1")
    throttle.admit(_account("someone-else"), "c2")


def test_registrations_are_limited_per_address():
    throttle = LoginThrottle("memory://", 5, 30, registrations_per_address=2, registration_window_seconds=60)
    throttle.admit_registration("c1")
    throttle.admit_registration("c1")
    with pytest.raises(RateLimited) as raised:
        throttle.admit_registration("c1")
    assert 1 <= raised.value.retry_after <= 60
    throttle.admit_registration("c2")


def test_throttle_fails_open_when_its_backend_is_down(caplog):
    throttle = LoginThrottle("redis://127.0.0.1:1/0", max_failures=1, window_seconds=30)
    with caplog.at_level(logging.WARNING, logger="app.services.login_throttle"):
        for _ in range(3):
            admission = throttle.admit(_account("alice"), "c1")
        throttle.succeeded(admission)
        throttle.admit_registration("c1")
    assert throttle.ping() is False
    assert any("login throttle unavailable" in record.getMessage() for record in caplog.records)
