"""Modules that handle events, for the backbone's tests (loaded through CREDIT_MODULES_EXTRA).

Journal writes every event it handles to its own table, in the handler's transaction:
what a module saw, and how often, is then read from the database, by this process or
another (the worker and server tests).
"""

from __future__ import annotations

import os
import time
from typing import ClassVar

from sqlalchemy import BigInteger, Column, Integer, MetaData, String, Table, delete, func, insert, select

from app.kernel import Module

metadata = MetaData()
seen = Table(
    "journal_seen",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("module", String(64), nullable=False),
    Column("event_id", String(36), nullable=False),
    Column("sequence", BigInteger, nullable=False),
    Column("type", String(64), nullable=False),
)
# A handler sleeps this long when an event's data names this user, after touching the marker
# file (the SIGKILL test: the worker is killed in the middle of that handler).
SLOW_USERNAME_ENV = "CREDIT_TEST_SLOW_USERNAME"
SLOW_SECONDS_ENV = "CREDIT_TEST_SLOW_SECONDS"
SLOW_MARKER_ENV = "CREDIT_TEST_SLOW_MARKER"


def clear(engine) -> None:
    metadata.create_all(engine)
    with engine.begin() as conn:
        conn.execute(delete(seen))


def journal(engine, module: str | None = None) -> list[tuple[str, int, str]]:
    """(event id, sequence, type) of every handling recorded, in handling order."""
    query = select(seen.c.event_id, seen.c.sequence, seen.c.type).order_by(seen.c.id)
    if module:
        query = query.where(seen.c.module == module)
    with engine.connect() as conn:
        return [tuple(row) for row in conn.execute(query)]


def count(engine) -> int:
    with engine.connect() as conn:
        return conn.scalar(select(func.count()).select_from(seen)) or 0


class Journal(Module):
    """Every event, written down once per handling."""

    NAME = "journal"
    DEPENDENCIES = ("connection_api",)
    CRITICAL = False
    EVENT_TYPES: ClassVar[tuple[str, ...]] = ("*",)
    EMITS: ClassVar[dict[str, str]] = {"journal.noted": "the journal noted something (tests)"}

    def __init__(self, connection_api) -> None:
        self.connection = connection_api

    def initialize(self) -> bool:
        metadata.create_all(self.connection.database.engine)
        return True

    def handle_event(self, uow, event) -> None:
        slow = os.environ.get(SLOW_USERNAME_ENV)
        if slow and event.data.get("user", {}).get("username") == slow:
            if os.environ.get(SLOW_MARKER_ENV):
                with open(os.environ[SLOW_MARKER_ENV], "a") as marker:
                    marker.write(f"{os.getpid()}\n")
            time.sleep(float(os.environ.get(SLOW_SECONDS_ENV, "30")))
        uow.session.execute(
            insert(seen).values(module=self.NAME, event_id=event.id, sequence=event.sequence, type=event.type)
        )


class JournalOfMoney(Journal):
    """Only what concerns money and users, under another name: its own deliveries."""

    NAME = "journal_of_money"
    EVENT_TYPES = ("transaction.", "user.created")
    EMITS = {}


class BatchJournal(Journal):
    """Writes a batch together (handle_events); refuses any batch naming the user "poison"."""

    NAME = "batch_journal"
    EVENT_TYPES = ("user.created",)
    EMITS = {}
    batches: ClassVar[list[list[str]]] = []  # the usernames of every batch it was handed, in order

    def handle_events(self, uow, events) -> None:
        names = [event.data["user"]["username"] for event in events]
        type(self).batches.append(names)
        if "poison" in names:
            raise RuntimeError("poison in the batch")
        uow.session.execute(
            insert(seen),
            [dict(module=self.NAME, event_id=e.id, sequence=e.sequence, type=e.type) for e in events],
        )


class Grumpy(Module):
    """The newcomer's module: its user.created handler raises."""

    NAME = "grumpy"
    DEPENDENCIES = ("connection_api",)
    CRITICAL = False
    EVENT_TYPES = ("user.created",)

    def __init__(self, connection_api) -> None:
        self.connection = connection_api

    def handle_event(self, uow, event) -> None:
        raise RuntimeError(f"grumpy will not greet {event.data['user']['username']}")


class InTransaction(Module):
    """Non-critical, yet subscribes inside the writing transaction: refused by the kernel."""

    NAME = "in_transaction"
    DEPENDENCIES = ("connection_api",)
    CRITICAL = False

    def __init__(self, connection_api) -> None:
        self.connection = connection_api

    def initialize(self) -> bool:
        self.connection.events.subscribe("user.created", self.on_user)
        return True

    def on_user(self, session, event) -> None:
        raise RuntimeError("would have rolled the user back")


class Misspelt(Module):
    NAME = "misspelt"
    DEPENDENCIES = ("connection_api",)
    CRITICAL = False
    EVENT_TYPES = ("user.craeted", "transction.")

    def __init__(self, connection_api) -> None:
        self.connection = connection_api

    def handle_event(self, uow, event) -> None:
        pass


class NoHandler(Module):
    NAME = "no_handler"
    DEPENDENCIES = ("connection_api",)
    EVENT_TYPES = ("user.created",)

    def __init__(self, connection_api) -> None:
        self.connection = connection_api
