"""HTTP routes for users and authentication: parse, call one service, return."""

from __future__ import annotations

from flask import request, url_for

from app.http.blueprint import Blueprint
from app.http.docs import errors
from app.http.guard import AccessGuard
from app.schemas.common import PageQuerySchema, page_schema
from app.schemas.users import LoginSchema, TokenSchema, UserCreateSchema, UserSchema, UserUpdateSchema
from app.services.auth import AuthService
from app.services.users import UserService

UserPageSchema = page_schema(UserSchema, "UserPage")


def client_address() -> str:
    return request.remote_addr or "unknown"


def build_blueprint(users: UserService, auth: AuthService, guard: AccessGuard) -> Blueprint:
    blp = Blueprint("users", __name__, description="Users", tags={"auth": "Logging in and out: bearer tokens"})

    @blp.route("/users", methods=["POST"])
    @blp.arguments(UserCreateSchema)
    @blp.response(201, UserSchema)
    @errors("username_taken", "email_taken", "rate_limited", body=True)
    def create_user(body):
        """Register a user (its wallet is created with it).

        Each client address may register a limited number of users per window (by default 10
        an hour); past it, 429 `rate_limited` with Retry-After.
        """
        user = users.sign_up(body["username"], body["email"], body["password"], client_address(), body.get("phone"))
        return user, {"Location": url_for("users.get_user", user_id=user.id)}

    @blp.route("/auth/login", methods=["POST"], tags=["auth"])
    @blp.arguments(LoginSchema)
    @blp.response(200, TokenSchema)
    @errors("invalid_credentials", "rate_limited", body=True)
    def login(body):
        """Exchange a username (or email) and password for a bearer token.

        Throttled: failed attempts are counted per account (its username and email together)
        and per client address, before the password is checked. Past the account's limit
        (by default 5 failures in 300 s) the answer is 429 `rate_limited` with Retry-After,
        except that the right password from an address this account logged in from before
        still gets in; past the address's limit (four times as many) every attempt from it
        is 429.
        """
        token = auth.login(body["username"], body["password"], client_address())
        return {"access_token": token, "token_type": "Bearer", "expires_in": auth.token_ttl}

    @blp.route("/auth/logout", methods=["POST"], tags=["auth"])
    @blp.response(204)
    @errors(auth=True, empty_body=True)
    def logout():
        """Revoke the token this request carries, in every server process."""
        auth.logout(*guard.session())

    @blp.route("/users/me")
    @blp.response(200, UserSchema)
    @errors(auth=True)
    def get_current_user():
        """The caller's own user."""
        principal = guard.principal()
        return users.get(principal, principal.user_id)

    @blp.route("/users")
    @blp.arguments(PageQuerySchema, location="query")
    @blp.response(200, UserPageSchema)
    @errors("forbidden", "validation_error", auth=True)
    def list_users(query):
        """Every user, newest first (admin, auditor)."""
        page = users.list(guard.principal(), query["limit"], query["cursor"])
        return {"items": page.items, "next_cursor": page.next_cursor}

    @blp.route("/users/<id:user_id>")
    @blp.response(200, UserSchema)
    @errors("forbidden", "not_found", auth=True)
    def get_user(user_id):
        """One user (self, admin or auditor)."""
        return users.get(guard.principal(), user_id)

    @blp.route("/users/<id:user_id>", methods=["PATCH"])
    @blp.arguments(UserUpdateSchema)
    @blp.response(200, UserSchema)
    @errors(
        "invalid_credentials",
        "forbidden",
        "not_found",
        "email_taken",
        "last_admin",
        "rate_limited",
        auth=True,
        body=True,
    )
    def update_user(changes, user_id):
        """Self: email, phone, password (with current_password). Admin: also role and is_active.
        An auditor: its own password only (anything else is 403).

        A wrong current_password counts against the account like a failed login (429
        `rate_limited` past the limit).
        """
        return users.update(guard.principal(), user_id, changes, client_address())

    @blp.route("/users/<id:user_id>", methods=["DELETE"])
    @blp.response(204)
    @errors("forbidden", "not_found", "last_admin", auth=True)
    def deactivate_user(user_id):
        """Deactivate: no more logins, every token stops working; wallet and history stay."""
        users.deactivate(guard.principal(), user_id)

    return blp
