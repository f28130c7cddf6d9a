"""User accounts: registration, profile changes, deactivation, listing, admin bootstrap."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import and_, or_, select
from sqlalchemy.exc import IntegrityError

from app.infrastructure.database import Database
from app.infrastructure.outbox import DomainEvent
from app.infrastructure.tables import User, utcnow
from app.services.auth_state import AuthStateCache
from app.services.errors import (
    EmailTaken,
    Forbidden,
    InvalidCredentials,
    LastAdmin,
    NotFound,
    UsernameTaken,
    ValidationFailed,
)
from app.services.login_throttle import LoginThrottle
from app.services.pagination import cursor_text, decode_cursor, encode_cursor, invalid_cursor
from app.services.passwords import Passwords
from app.services.principal import OWN_ACCOUNT_ONLY, Principal, require_owner_or_admin
from app.vocabulary import EventType, Role

USER_CREATED = EventType.USER_CREATED
_OWN_PASSWORD = {"password", "current_password"}  # the only change a read-only principal makes
_READ_ONLY = "an auditor may change nothing but its own password"


@dataclass(frozen=True)
class Page:
    items: list
    next_cursor: str | None


class UserService:
    def __init__(
        self, database: Database, passwords: Passwords, auth_state: AuthStateCache, throttle: LoginThrottle
    ) -> None:
        self._db = database
        self._passwords = passwords
        self._auth_state = auth_state
        self._throttle = throttle

    def sign_up(self, username: str, email: str, password: str, client: str, phone: str | None = None) -> User:
        """Register through the API: each client address may sign up a limited number of times."""
        self._throttle.admit_registration(client)
        return self.register(username, email, password, phone=phone)

    def register(
        self,
        username: str,
        email: str,
        password: str,
        role: str = "user",
        self_service: bool = True,
        phone: str | None = None,
    ) -> User:
        """Create a user; a `user.created` event in the same transaction lets wallets follow.

        self_service: the new user registered itself (the event's actor); else whoever acts
        (the system, from the CLI).
        """
        user = User(
            id=str(uuid.uuid4()),
            username=username,
            username_key=username.lower(),
            email=email,
            email_key=email.lower(),
            phone=phone,
            password_hash=self._passwords.hash(password),
            role=role,
            is_active=True,
            token_version=0,
            created_at=utcnow(),
            updated_at=utcnow(),
        )
        with self._db.unit_of_work() as uow:
            self._ensure_free(uow.session, username=username, email=email)
            uow.session.add(user)
            actor = {"actor_id": user.id} if self_service else {}
            uow.record(DomainEvent(USER_CREATED, user.id, {"user": public_user(user)}, target_type="user", **actor))
            self._commit(uow)
        return user

    def get(self, actor: Principal, user_id: str) -> User:
        require_owner_or_admin(actor, user_id, read=True)
        with self._db.unit_of_work(write=False) as uow:
            return self._load(uow.session, user_id)

    def update(self, actor: Principal, user_id: str, changes: dict, client: str = "unknown") -> User:
        """Change a user; `client` (the caller's address) is throttled like a login when the
        caller's own current_password is checked."""
        if not (actor.user_id == user_id and changes.keys() <= _OWN_PASSWORD):  # an auditor's one write
            require_owner_or_admin(actor, user_id, _READ_ONLY if actor.read_only else OWN_ACCOUNT_ONLY)
        if not actor.is_admin and ({"role", "is_active"} & changes.keys()):
            raise Forbidden("only an admin may change role or is_active")
        verified_hash = None
        if "password" in changes and actor.user_id == user_id:
            if "current_password" not in changes:
                raise ValidationFailed.field("current_password", "required to change your password")
            verified_hash = self._check_current_password(user_id, changes["current_password"], client)
        new_hash = self._passwords.hash(changes["password"]) if "password" in changes else None
        with self._db.unit_of_work() as uow:
            if changes.get("role", Role.ADMIN) != Role.ADMIN or changes.get("is_active") is False:
                self._keep_an_admin(uow.session, user_id)
            user = self._load(uow.session, user_id)
            if verified_hash is not None and user.password_hash != verified_hash:
                raise InvalidCredentials("current_password is wrong")  # changed meanwhile
            # data.changed of user.updated names these (and "password"), never a value or hash
            before = {field: getattr(user, field) for field in ("email", "phone", "role", "is_active")}
            if "email" in changes and changes["email"].lower() != user.email_key:
                self._ensure_free(uow.session, email=changes["email"])
                user.email, user.email_key = changes["email"], changes["email"].lower()
            if "phone" in changes:
                user.phone = changes["phone"]
            revoke = False
            if new_hash is not None:
                user.password_hash, revoke = new_hash, True
            for field in ("role", "is_active"):
                if field in changes and getattr(user, field) != changes[field]:
                    setattr(user, field, changes[field])
                    revoke = True  # tokens carry no role: re-login picks up the new rights
            if revoke:
                user.token_version += 1
            user.updated_at = utcnow()
            changed = [f for f in before if before[f] != getattr(user, f)] + (["password"] if new_hash else [])
            self._record_update(uow, user, changed, actor.user_id)
            self._publish_auth_state(uow, user)
            self._commit(uow)
        return user

    def _check_current_password(self, user_id: str, password: str, client: str) -> str:
        """The stored hash `password` matches, checked before any write transaction (no lock
        is held through Argon2 or the throttle's round trip); counted in the same account
        bucket as logging in, so a stolen token is no faster way to guess."""
        with self._db.unit_of_work(write=False) as uow:
            user = self._load(uow.session, user_id)
        admission = self._throttle.admit(LoginThrottle.account_key(user_id, user.username), client)
        if not self._passwords.verify(user.password_hash, password):
            raise InvalidCredentials("current_password is wrong")
        self._throttle.succeeded(admission)
        return user.password_hash

    def deactivate(self, actor: Principal, user_id: str) -> None:
        """Keep the user (and wallet, and history) but stop logins and every token."""
        require_owner_or_admin(actor, user_id, _READ_ONLY if actor.read_only else OWN_ACCOUNT_ONLY)
        with self._db.unit_of_work() as uow:
            self._keep_an_admin(uow.session, user_id)
            user = self._load(uow.session, user_id)
            if user.is_active:
                user.is_active = False
                user.token_version += 1
                user.updated_at = utcnow()
                uow.record(
                    DomainEvent(
                        EventType.USER_DEACTIVATED,
                        user.id,
                        {"user": public_user(user)},
                        target_type="user",
                        actor_id=actor.user_id,
                    )
                )
                self._publish_auth_state(uow, user)
                uow.commit()

    def list(self, actor: Principal, limit: int, cursor: str | None) -> Page:
        if not actor.can_read_all:
            raise Forbidden("only an admin or an auditor may list users")
        after = decode_cursor(cursor, 2)
        query = select(User).order_by(User.created_at.desc(), User.id.desc()).limit(limit + 1)
        if after:
            created_at, last_id = _parse_time(after[0]), cursor_text(after[1])
            query = query.where(
                or_(User.created_at < created_at, and_(User.created_at == created_at, User.id < last_id))
            )
        with self._db.unit_of_work(write=False) as uow:
            rows = list(uow.session.scalars(query))
        more = len(rows) > limit
        rows = rows[:limit]
        next_cursor = encode_cursor(rows[-1].created_at.isoformat(), rows[-1].id) if more and rows else None
        return Page(rows, next_cursor)

    def ensure_admin(self, username: str, email: str, password: str) -> tuple[User, bool]:
        """Create an admin, or promote (and re-password) the existing user; True when created."""
        with self._db.unit_of_work() as uow:
            user = uow.session.scalar(select(User).where(User.username_key == username.lower()))
            if user is None:
                uow.rollback()
            else:
                changed = [f for f, v in (("role", "admin"), ("is_active", True)) if getattr(user, f) != v]
                user.role, user.is_active = "admin", True
                user.password_hash = self._passwords.hash(password)
                user.token_version += 1
                user.updated_at = utcnow()
                self._record_update(uow, user, [*changed, "password"], None)
                self._publish_auth_state(uow, user)
                uow.commit()
                return user, False
        return self.register(username, email, password, role="admin", self_service=False), True

    # -- helpers ------------------------------------------------------------------------
    @staticmethod
    def _load(session, user_id: str) -> User:
        user = session.get(User, user_id)
        if user is None:
            raise NotFound("no such user")
        return user

    @staticmethod
    def _keep_an_admin(session, user_id: str) -> None:
        """409 `last_admin` if user_id is the only active admin (about to be demoted or deactivated).

        The active admins' rows are locked first (in id order, so two such changes cannot
        deadlock): two admins demoting each other at once are serialized, and the second
        sees the first's change, so they cannot leave no admin between them. (SQLite's
        writers are serialized already.)
        """
        admins = session.scalars(
            select(User.id).where(User.role == Role.ADMIN, User.is_active.is_(True)).order_by(User.id).with_for_update()
        ).all()
        if list(admins) == [user_id]:
            raise LastAdmin()

    @staticmethod
    def _ensure_free(session, username: str | None = None, email: str | None = None) -> None:
        if username and session.scalar(select(User.id).where(User.username_key == username.lower())):
            raise UsernameTaken()
        if email and session.scalar(select(User.id).where(User.email_key == email.lower())):
            raise EmailTaken()

    @staticmethod
    def _record_update(uow, user: User, changed: Sequence[str], actor_id: str | None) -> None:
        if changed:
            data = {"changed": [*changed], "user": public_user(user)}
            uow.record(DomainEvent(EventType.USER_UPDATED, user.id, data, target_type="user", actor_id=actor_id))

    def _publish_auth_state(self, uow, user: User) -> None:
        state = (user.token_version, user.is_active, user.role)
        uow.after_commit(lambda: self._auth_state.store_user(user.id, *state))

    @staticmethod
    def _commit(uow) -> None:
        """Commit; a unique-index race lost to a concurrent request maps to the same 409s."""
        try:
            uow.commit()
        except IntegrityError as exc:
            uow.rollback()
            # Only the first line names the violated index; PostgreSQL's DETAIL line repeats the
            # values, and a username like "email.fan" must not read as an email conflict.
            text = (str(exc.orig).lower().splitlines() or [""])[0]
            if "email_key" in text:
                raise EmailTaken() from None
            if "username_key" in text:
                raise UsernameTaken() from None
            raise


def public_user(user: User) -> dict:
    """The User as the API shows it (never a password or hash), for events' data."""
    return {
        "id": user.id,
        "username": user.username,
        "email": user.email,
        "phone": user.phone,
        "role": user.role,
        "is_active": user.is_active,
        "created_at": user.created_at.isoformat(),
    }


def _parse_time(value):
    from datetime import UTC, datetime

    try:
        parsed = datetime.fromisoformat(cursor_text(value))
        # Normalise here: a crafted offset near year 1 or 9999 must be a 422, not an
        # OverflowError (a 500) when the column type converts the bound value to UTC.
        return parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    except (ValueError, OverflowError):
        raise invalid_cursor() from None
