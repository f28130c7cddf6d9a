"""Engine construction per backend and the unit of work (one DB transaction per use case)."""

from __future__ import annotations

import logging
import os
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.orm import Session, sessionmaker

from app.infrastructure.migrations import SchemaNotCurrent, SchemaState, schema_state
from app.infrastructure.outbox import INSERT_EVENT, DomainEvent
from app.infrastructure.statements import batch, submit_commit
from app.infrastructure.tables import utcnow

log = logging.getLogger(__name__)


def build_engine(url: str) -> Engine:
    """Create the engine for a SQLAlchemy URL with settings right for that backend."""
    if url.startswith("sqlite"):
        _create_private_sqlite_file(url)
        engine = create_engine(url, hide_parameters=True, connect_args={"check_same_thread": False, "timeout": 30})
        _configure_sqlite(engine)
        return engine
    return create_engine(
        url,
        hide_parameters=True,  # bound values (password hashes, tokens) never reach a log or error text
        # At most 10 connections per process, waited for beyond that: a gevent worker serves
        # many requests at once, and 2 x CPUs + 1 workers must stay under the server's
        # max_connections (PostgreSQL's default is 100).
        pool_size=10,
        max_overflow=0,
        # No pre-ping: it costs a round trip on every checkout. A connection found dead
        # mid-request is a disconnect error, which invalidates the whole pool (that request
        # answers 503) and the next checkout reconnects.
        pool_timeout=5,
        connect_args={"connect_timeout": 3} if url.startswith("postgresql") else {},
    )


def _create_private_sqlite_file(url: str) -> None:
    """Create a new SQLite database file 0600 (its folder 0700) before SQLite does.

    SQLite would create it with the process umask (typically 0644: password hashes, emails
    and the whole ledger readable by every local user); it creates the -wal and -shm files
    with the database file's own permissions, so those follow. An existing file is left as
    the operator made it.
    """
    database = make_url(url).database
    if not database or database == ":memory:" or database.startswith("file:"):
        return
    path = Path(database)
    if path.exists():
        return
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))  # empty = a new database
    except FileExistsError:  # created meanwhile by another process
        pass


@contextmanager
def recorded_statements(engine: Engine, *markers: str) -> Iterator[list[tuple[str, Any]]]:
    """The (SQL, parameters) executed on engine inside the block that contain every marker.

    For looking at what really ran: the plan checks in the tests and the bench EXPLAIN
    the statement the app sent, not a hand-written copy of it.
    """
    recorded: list[tuple[str, Any]] = []

    def record(conn, cursor, statement, parameters, context, executemany):
        if all(marker in statement for marker in markers):
            recorded.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", record)
    try:
        yield recorded
    finally:
        event.remove(engine, "before_cursor_execute", record)


def _configure_sqlite(engine: Engine) -> None:
    # pysqlite's own transaction handling defers BEGIN and cannot take a write lock
    # up front; drive BEGIN ourselves so writers serialize instead of failing to upgrade.
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record):
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn):
        conn.exec_driver_sql("BEGIN " + conn.get_execution_options().get("sqlite_begin", "DEFERRED"))


EventHandler = Callable[[Session, DomainEvent], None]


class EventBus:
    """In-transaction subscribers: a handler runs inside the publisher's unit of work.

    For critical core modules only (the wallet born with its user): the kernel refuses a
    non-critical module that subscribes here. Every other module handles events after
    commit, delivered by app.events.
    """

    def __init__(self) -> None:
        self._handlers: dict[str, list[EventHandler]] = defaultdict(list)

    def subscribe(self, event_type: str, handler: EventHandler) -> None:
        self._handlers[event_type].append(handler)

    def unsubscribe(self, event_type: str, handler: EventHandler) -> None:
        if handler in self._handlers.get(event_type, []):
            self._handlers[event_type].remove(handler)

    def snapshot(self) -> dict[str, tuple[EventHandler, ...]]:
        """Every subscription now (the kernel compares it around a module's initialize)."""
        return {event_type: tuple(handlers) for event_type, handlers in self._handlers.items() if handlers}

    def restore(self, snapshot: dict[str, tuple[EventHandler, ...]]) -> None:
        """Back to the subscriptions of an earlier snapshot()."""
        self._handlers = defaultdict(list, {event_type: list(handlers) for event_type, handlers in snapshot.items()})

    def handles(self, event_type: str) -> bool:
        """Whether an in-transaction subscriber takes events of this type."""
        return bool(self._handlers.get(event_type))

    def dispatch(self, session: Session, domain_event: DomainEvent) -> None:
        for handler in list(self._handlers.get(domain_event.type, ())):
            handler(session, domain_event)


class UnitOfWork:
    """`with db.unit_of_work() as uow: ...; uow.commit()` — leaving without commit rolls back."""

    def __init__(
        self, session: Session, bus: EventBus, engine: Engine, on_events: Callable[[], None] | None = None
    ) -> None:
        self.session = session
        self._engine = engine  # the session's own, for committing_alone
        self._bus = bus
        self._on_events = on_events
        self._events: list[DomainEvent] = []
        self._after_commit: list[Callable[[], None]] = []
        self._wrote_events = False  # a statement wrote events itself (note_events_written)
        self.committed = False

    def __enter__(self) -> UnitOfWork:
        return self

    def __exit__(self, *exc_info) -> None:
        # close() ends the DB transaction (rolling back anything uncommitted) and detaches
        # loaded objects without expiring them, so read results stay usable.
        self._events.clear()
        if self.session.in_transaction() or self.session.identity_map:
            self.session.close()
        # else the session never ran or loaded anything: nothing to end or detach, and
        # close() would cost a money movement ~45,000 instructions of bookkeeping

    def record(self, domain_event: DomainEvent) -> None:
        """Queue an event: handed to in-transaction subscribers and written to the outbox at commit."""
        self._events.append(domain_event)

    def dispatches(self, event_type: str) -> bool:
        """Whether an event of this type must be recorded here, for an in-transaction subscriber."""
        return self._bus.handles(event_type)

    def pristine(self) -> bool:
        """Nothing read, written or recorded yet: the unit's work may be one statement that
        commits itself (committing_alone)."""
        return not self.session.in_transaction() and not self._events

    def note_events_written(self) -> None:
        """A statement of this unit wrote outbox rows itself: commit() wakes their relay."""
        self._wrote_events = True

    @contextmanager
    def committing_alone(self) -> Iterator[Connection]:
        """A connection whose one statement is its own transaction (the driver's autocommit):
        it commits, or rolls back, as it finishes; for a pristine unit whose last write it is.

        Taken from the engine, not through the session, which stays untouched: a session
        transaction begun, committed and closed around one statement that commits itself
        cost a transfer ~290,000 instructions of bookkeeping, a tenth of it (python -m
        bench.instructions transfer). The unit's commit() afterwards has nothing to send
        and runs the after-commit work.
        """
        with self._engine.connect() as connection:
            driver: Any = connection.connection.driver_connection
            driver.autocommit = True
            try:
                yield connection
            finally:
                try:
                    driver.autocommit = False
                except Exception:  # a broken connection: it must never go back to the pool in autocommit
                    connection.invalidate()

    def after_commit(self, callback: Callable[[], None]) -> None:
        """Run callback once the transaction is durable (cache invalidation and the like)."""
        self._after_commit.append(callback)

    @contextmanager
    def savepoint(self) -> Iterator[None]:
        """A part that may fail alone: on an exception, what it wrote, recorded and queued
        for after commit is undone (a SAVEPOINT rolled back) and the exception goes on."""
        events, callbacks = len(self._events), len(self._after_commit)
        nested = self.session.begin_nested()
        try:
            yield
            nested.commit()
        except BaseException:
            if nested.is_active:
                nested.rollback()
            del self._events[events:]
            del self._after_commit[callbacks:]
            raise

    def flush_events(self) -> list[dict[str, Any]]:
        """Hand the recorded events to in-transaction subscribers; their outbox rows."""
        rows = []
        occurred_at = utcnow()
        while self._events:  # a subscriber may record events of its own
            domain_event = self._events.pop(0)
            self._bus.dispatch(self.session, domain_event)
            rows.append(domain_event.row(occurred_at))
        return rows

    def commit(self) -> None:
        rows = self.flush_events()
        if rows:
            self.session.flush()  # the ORM's writes first, as they would go at commit
            with batch(self.session) as pipelined:
                for row in rows:
                    INSERT_EVENT.submit(self.session, row)
                if pipelined:  # the inserts and COMMIT: one round trip
                    submit_commit(self.session)
        if self.session.in_transaction():  # else nothing was read, written or added
            self.session.commit()
        self.committed = True
        for callback in self._after_commit:
            try:
                callback()
            except Exception:  # the commit stands; a failed side effect must not undo it
                log.exception("after-commit callback failed")
        if (rows or self._wrote_events) and self._on_events is not None:
            try:
                self._on_events()
            except Exception:
                log.exception("events committed, but waking their relay failed")

    def rollback(self) -> None:
        """Undo everything so far, including the events and side effects it queued."""
        self._events.clear()
        self._after_commit.clear()
        self._wrote_events = False
        self.session.rollback()


# While the schema is not the one the code needs, how often a unit of work reads it again
# (so a server started before `credit-system db upgrade` serves as soon as it has run).
SCHEMA_RECHECK_SECONDS = 1.0


class Database:
    """The shared engine and the factory for units of work."""

    def __init__(self, engine: Engine, bus: EventBus) -> None:
        self.engine = engine
        self.bus = bus
        self._events_listeners: list[Callable[[], None]] = []
        self.dialect = engine.dialect.name
        self._writer = sessionmaker(bind=engine.execution_options(sqlite_begin="IMMEDIATE"), expire_on_commit=False)
        self._reader = sessionmaker(bind=engine, expire_on_commit=False)
        self._schema: SchemaState | None = None  # as last read; None before the first read
        self._schema_read_at = 0.0
        self._schema_current = False  # once True, units of work no longer look

    def unit_of_work(self, write: bool = True) -> UnitOfWork:
        """A write unit takes SQLite's write lock at BEGIN; a read unit never blocks writers.

        Raises SchemaNotCurrent while the schema is not the revision this code needs: the
        work would otherwise fail on a missing table (or, on an old schema, run without a
        constraint the code relies on).
        """
        if not self._schema_current:
            self._require_current_schema()
        factory = self._writer if write else self._reader
        return UnitOfWork(factory(), self.bus, factory.kw["bind"], self._events_committed)

    def on_events_committed(self, listener: Callable[[], None]) -> None:
        """Call listener (quickly: it runs on the committing thread) after each commit that wrote events."""
        self._events_listeners.append(listener)

    def _events_committed(self) -> None:
        for listener in self._events_listeners:
            listener()

    def schema(self) -> SchemaState:
        """Read the schema's revision now; the driver's error if the database is unreachable."""
        state = schema_state(self.engine)
        self._schema, self._schema_read_at, self._schema_current = state, time.monotonic(), state.current
        return state

    def _require_current_schema(self) -> None:
        state = self._schema
        if state is None or time.monotonic() - self._schema_read_at >= SCHEMA_RECHECK_SECONDS:
            state = self.schema()
        if not state.current:
            raise SchemaNotCurrent(state)

    def dispose(self) -> None:
        self.engine.dispose()
