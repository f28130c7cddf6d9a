"""Hot-path statements: compiled by SQLAlchemy once per dialect, then run on the driver's cursor.

`session.execute(statement, params)` costs about 60-70 us of CPU per call on top of the
driver (cache key, execution context, result metadata), several times what the driver
itself spends, and a money movement is several statements; so the ledger runs its own
through `Precompiled`: the SQL text, parameter order and type conversions are worked out
once per dialect from SQLAlchemy's own compiler and type system, and each run does only
what must happen per call. It runs inside the session's transaction, on its connection,
and a driver error goes through SQLAlchemy's handling (wrapped in `sqlalchemy.exc`, a
dead connection invalidating the pool), so callers see exactly what `session.execute`
would raise. For statements whose results need no conversion: that is checked when the
statement is compiled, not discovered on a wrong value later.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from weakref import WeakKeyDictionary

from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.orm import Session
from sqlalchemy.sql.selectable import ExecutableReturnsRows


@dataclass(frozen=True)
class _Compiled:
    sql: str
    defaults: dict[str, Any]  # values fixed in the statement itself (literals SQLAlchemy binds)
    processors: tuple[tuple[str, Callable[[Any], Any]], ...]
    order: tuple[str, ...] | None  # parameter names in order, for positional paramstyles
    returns_rows: bool


class Precompiled:
    """A Core statement run on the DBAPI cursor of a session's connection (or of a connection
    taken outside the session, `execute_on`)."""

    def __init__(self, statement: ExecutableReturnsRows, column_keys: Sequence[str] | None = None) -> None:
        """column_keys: for a bare insert(table), the columns every run supplies."""
        self.statement = statement
        self._column_keys = list(column_keys) if column_keys is not None else None
        self._by_dialect: WeakKeyDictionary[Dialect, _Compiled] = WeakKeyDictionary()

    def _compiled(self, dialect: Dialect) -> _Compiled:
        compiled = self._by_dialect.get(dialect)
        if compiled is None:
            compiled = self._by_dialect[dialect] = self._compile(dialect)
        return compiled

    def _compile(self, dialect: Dialect) -> _Compiled:
        compiled = self.statement.compile(dialect=dialect, column_keys=self._column_keys)
        # Python-side column defaults are computed by SQLAlchemy's execution context, which
        # this path skips: every value must come from the caller or the statement.
        prefetched = (*getattr(compiled, "insert_prefetch", ()), *getattr(compiled, "update_prefetch", ()))
        missing = [column.key for column in prefetched]
        if missing or any(bind.expanding for bind in compiled.binds.values()):
            raise TypeError(
                f"statement needs per-run work SQLAlchemy does (defaults for {missing} or "
                "expanding parameters); run it through the session"
            )
        columns = list(self.statement.exported_columns)  # RETURNING or SELECT columns
        for column in columns:
            if column.type.dialect_impl(dialect).result_processor(dialect, None) is not None:
                raise TypeError(
                    f"column {column.key!r} needs result conversion on {dialect.name}; "
                    "run this statement through the session"
                )
        processors = []
        for name, bind in compiled.binds.items():
            processor = bind.type.dialect_impl(dialect).bind_processor(dialect)
            if processor is not None:
                processors.append((name, processor))
        defaults = {name: bind.effective_value for name, bind in compiled.binds.items() if not bind.required}
        order = tuple(compiled.positiontup or ()) if compiled.positional else None  # a list when positional
        return _Compiled(compiled.string, defaults, tuple(processors), order, bool(columns))

    def _driver_parameters(self, compiled: _Compiled, params: Mapping[str, Any]) -> Any:
        values = {**compiled.defaults, **params}
        for name, processor in compiled.processors:
            values[name] = processor(values[name])
        return values if compiled.order is None else tuple(values[name] for name in compiled.order)

    def execute(self, session: Session, params: Mapping[str, Any]) -> list[tuple]:
        """Run once; the rows it returns (for INSERT/UPDATE/DELETE ... RETURNING and SELECT)."""
        return self.submit(session, params).rows()

    def execute_on(self, connection: Connection, params: Mapping[str, Any]) -> list[tuple]:
        """Run once on a connection outside any session (UnitOfWork.committing_alone); its rows."""
        return self._send(connection, params).finish()

    def submit(self, session: Session, params: Mapping[str, Any]) -> Pending:
        """Send it; inside `batch()` its rows (and any error) arrive when the batch ends."""
        pending = self._send(session.connection(), params)
        in_batch = session.info.get(_BATCH)
        if in_batch is None:
            pending.finish()  # nothing to share a round trip with: done now
        else:
            in_batch.append(pending)
        return pending

    def _send(self, connection: Connection, params: Mapping[str, Any]) -> Pending:
        compiled = self._compiled(connection.dialect)
        parameters = self._driver_parameters(compiled, params)
        cursor = connection.connection.cursor()
        with _sqlalchemy_errors(connection, compiled.sql, parameters, cursor):
            cursor.execute(compiled.sql, parameters)
        return Pending(connection, cursor, compiled)


class Pending:
    """A submitted statement: its rows, once the batch it was sent in is over."""

    def __init__(self, connection: Connection, cursor: Any, compiled: _Compiled) -> None:
        self._connection, self._cursor, self._compiled = connection, cursor, compiled
        self._rows: list[tuple] | None = None

    def finish(self) -> list[tuple]:
        """Read its rows and release its cursor (SQLite refuses to commit with a statement open)."""
        if self._rows is not None:
            return self._rows
        try:
            with _sqlalchemy_errors(self._connection, self._compiled.sql, None, self._cursor):
                self._rows = self._cursor.fetchall() if self._compiled.returns_rows else []
        finally:
            self._cursor.close()
        return self._rows

    def rows(self) -> list[tuple]:
        return self.finish()

    def close(self) -> None:
        """Release its cursor without reading it (a batch that failed)."""
        self._cursor.close()


_BATCH = "statements.batch"


@contextmanager
def batch(session: Session) -> Iterator[bool]:
    """Statements submitted inside share round trips where the driver allows it.

    On psycopg that is pipeline mode: the transaction's BEGIN and every statement go out
    together and the results come back together, one round trip instead of one each.
    Elsewhere each statement runs, and raises, when submitted. Either way read results
    after the block; errors arrive as sqlalchemy.exc errors. Yields whether it pipelines.
    """
    connection = session.connection()
    pipeline = getattr(connection.connection.driver_connection, "pipeline", None)
    if pipeline is None:
        yield False
        return
    pending: list[Pending] = []
    session.info[_BATCH] = pending
    try:
        with _sqlalchemy_errors(connection, "-- pipelined statements", None, None), pipeline():
            yield True
        for one in pending:
            one.finish()
    finally:
        del session.info[_BATCH]
        for one in pending:
            one.close()


_COMMIT = _Compiled("COMMIT", {}, (), None, False)


def submit_commit(session: Session) -> None:
    """Inside a pipelining batch(): COMMIT goes out with the batch's statements, in its one
    round trip. The session's own commit() afterwards finds the transaction over (psycopg
    sends nothing for it) and only tidies up. An error in the batch, or the COMMIT
    refused (a deferred constraint), is raised when the batch ends."""
    connection = session.connection()
    in_batch = session.info.get(_BATCH)
    if in_batch is None:
        raise RuntimeError("submit_commit() belongs inside a pipelining batch(); elsewhere use session.commit()")
    cursor = connection.connection.cursor()
    with _sqlalchemy_errors(connection, _COMMIT.sql, None, cursor):
        cursor.execute(_COMMIT.sql)
    in_batch.append(Pending(connection, cursor, _COMMIT))


@contextmanager
def _sqlalchemy_errors(connection: Connection, sql: str, parameters: Any, cursor: Any) -> Iterator[None]:
    """Driver errors through SQLAlchemy's own handling: the sqlalchemy.exc wrapper callers
    catch, parameters hidden as the engine is configured, and on a lost connection the
    connection and the pool invalidated, so the next checkout reconnects."""
    try:
        yield
    except connection.dialect.loaded_dbapi.Error as error:
        if cursor is not None:
            cursor.close()
        connection._handle_dbapi_exception(error, sql, parameters, cursor, None)
        raise  # not reached: the handler always raises
