"""Precompiled statements behave as session.execute would, on the backend under test."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.exc import IntegrityError

from app.infrastructure.statements import Precompiled
from app.infrastructure.tables import Account, IdempotencyKey, User

_users, _accounts, _keys = User.__table__, Account.__table__, IdempotencyKey.__table__
_INSERT_KEY = Precompiled(insert(_keys), column_keys=[c.key for c in _keys.c])
# The literal 'user' in the WHERE clause is a parameter SQLAlchemy binds itself.
_CREDIT = Precompiled(
    update(_accounts)
    .where(_accounts.c.user_id == bindparam("owner"), _accounts.c.kind == "user")
    .values(balance=_accounts.c.balance + bindparam("delta", type_=_accounts.c.balance.type))
    .returning(_accounts.c.id, _accounts.c.balance)
)


@pytest.fixture
def database(app):
    return app.container.database()


def _key_values(key: str, expires_at: datetime) -> dict:
    return {
        "user_id": "u1",
        "key": key,
        "request_hash": "h",
        "status_code": 201,
        "response_body": "{}",
        "created_at": expires_at - timedelta(days=1),
        "expires_at": expires_at,
    }


def _user_with_wallet(database, balance: int) -> str:
    user_id = str(uuid.uuid4())
    with database.unit_of_work() as uow:
        uow.session.add(
            User(
                id=user_id,
                username=user_id[:30],
                username_key=user_id[:30],
                email=f"{user_id}@x.io",
                email_key=f"{user_id}@x.io",
                password_hash="x",
            )
        )
        uow.session.flush()
        uow.session.add(Account(id=str(uuid.uuid4()), user_id=user_id, kind="user", balance=balance, version=0))
        uow.commit()
    return user_id


def test_bind_conversions_apply_as_through_the_session(database):
    # An aware datetime in another zone: UTCDateTime must turn it into UTC (and, on SQLite,
    # into the naive text SQLAlchemy reads back) exactly as a session insert would.
    expires = datetime(2030, 5, 1, 14, 30, 0, 123456, tzinfo=timezone(timedelta(hours=2)))
    with database.unit_of_work() as uow:
        assert _INSERT_KEY.execute(uow.session, _key_values("fast", expires)) == []
        uow.session.execute(insert(_keys), _key_values("slow", expires))
        uow.commit()
    with database.unit_of_work(write=False) as uow:
        stored = dict(uow.session.execute(select(_keys.c.key, _keys.c.expires_at)).all())
    assert stored["fast"] == stored["slow"] == expires.astimezone(UTC)


def test_returns_rows_and_uses_the_statements_own_literals(database):
    owner = _user_with_wallet(database, 10)
    with database.unit_of_work() as uow:
        ((account_id, balance),) = _CREDIT.execute(uow.session, {"owner": owner, "delta": 5})
        assert _CREDIT.execute(uow.session, {"owner": "nobody", "delta": 5}) == []
        uow.commit()
    assert balance == 15
    with database.unit_of_work(write=False) as uow:
        assert uow.session.scalar(select(_accounts.c.balance).where(_accounts.c.id == account_id)) == 15


def test_runs_inside_the_units_transaction(database):
    owner = _user_with_wallet(database, 10)
    with database.unit_of_work() as uow:
        _CREDIT.execute(uow.session, {"owner": owner, "delta": 5})
        uow.rollback()
    with database.unit_of_work(write=False) as uow:
        assert uow.session.scalar(select(_accounts.c.balance).where(_accounts.c.user_id == owner)) == 10


def test_driver_errors_arrive_as_sqlalchemy_errors_without_parameters(database):
    expires = datetime(2030, 1, 1, tzinfo=UTC)
    with database.unit_of_work() as uow:
        _INSERT_KEY.execute(uow.session, _key_values("k", expires))
        with pytest.raises(IntegrityError) as raised:
            _INSERT_KEY.execute(uow.session, _key_values("k", expires))
    assert "hidden due to hide_parameters" in str(raised.value)


def test_refuses_statements_that_need_sqlalchemys_per_run_work(database):
    with database.unit_of_work() as uow:
        # Account.created_at has a Python-side default the execution context would compute.
        with pytest.raises(TypeError, match="defaults for"):
            Precompiled(insert(_accounts), column_keys=["id", "kind"]).execute(uow.session, {"id": "a", "kind": "x"})
        with pytest.raises(TypeError, match="expanding"):
            Precompiled(select(_users.c.id).where(_users.c.id.in_(bindparam("ids", expanding=True)))).execute(
                uow.session, {"ids": ["a"]}
            )
        # A result SQLAlchemy would convert (UTCDateTime adds the zone back) is refused, not returned raw.
        with pytest.raises(TypeError, match="result conversion"):
            Precompiled(select(_keys.c.expires_at)).execute(uow.session, {})
