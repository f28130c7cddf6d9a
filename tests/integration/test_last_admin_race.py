"""Two admins demoting (or deactivating) each other at the same moment on PostgreSQL.

Each sees the other still active, so without a lock both changes would commit and leave no
admin at all: nobody could deposit or reverse again. Exactly one may go through.
"""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager

import pytest
from sqlalchemy import event, func, select, update

from app import create_app
from app.config import load_settings
from app.infrastructure.tables import User
from app.services.errors import LastAdmin
from app.services.principal import Principal
from tests import backends
from tests.helpers import make_admin

pytestmark = pytest.mark.integration

ROUNDS = 3


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    with backends.throwaway_postgres() as database_url:
        settings = load_settings(
            environ={},
            database_url=database_url,
            cache_url="memory://",
            secret_key="test-secret-key-0123456789abcdef",
            instance_path=str(tmp_path_factory.mktemp("last-admin")),
        )
        app = create_app(settings)
        yield app
        app.module_manager.shutdown()


def active_admins(app) -> int:
    with app.container.database().unit_of_work(write=False) as uow:
        return uow.session.scalar(select(func.count()).where(User.role == "admin", User.is_active.is_(True)))


def retire_every_admin(app) -> None:
    with app.container.database().unit_of_work() as uow:
        uow.session.execute(update(User).where(User.role == "admin").values(is_active=False))
        uow.commit()


@contextmanager
def slow_admin_reads(app, seconds: float = 0.2):
    """Hold every transaction a moment right after it read the active admins: both racers
    then surely read before either writes, instead of only when the timing happens to."""

    def pause(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().startswith("SELECT users.id") and "users.role" in statement:
            time.sleep(seconds)

    engine = app.container.database().engine
    event.listen(engine, "after_cursor_execute", pause)
    try:
        yield
    finally:
        event.remove(engine, "after_cursor_execute", pause)


def race(calls) -> list[BaseException | None]:
    """Run the calls at once (released by a barrier); each one's exception, or None."""
    barrier, outcomes = threading.Barrier(len(calls)), [None] * len(calls)

    def run(i: int) -> None:
        barrier.wait()
        try:
            calls[i]()
        except Exception as exc:
            outcomes[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return outcomes


@pytest.mark.parametrize("change", ["demote", "deactivate_by_patch", "deactivate"])
def test_two_admins_removing_each_other_at_once_leave_one(app, change):
    users = app.container.user_service()
    for round_ in range(ROUNDS):
        retire_every_admin(app)
        a, b = (make_admin(app, f"{change}-{round_}-{side}")["id"] for side in "ab")
        assert active_admins(app) == 2

        def remove(actor: str, target: str):
            principal = Principal(actor, "admin")
            if change == "deactivate":
                return lambda: users.deactivate(principal, target)
            body = {"role": "user"} if change == "demote" else {"is_active": False}
            return lambda: users.update(principal, target, body)

        with slow_admin_reads(app):
            outcomes = race([remove(a, b), remove(b, a)])
        assert sorted(map(type, outcomes), key=str) == sorted([type(None), LastAdmin], key=str), outcomes
        assert active_admins(app) == 1
