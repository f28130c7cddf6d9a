"""The work queue (huey), with its storage chosen by CREDIT_QUEUE_URL.

The queue only carries wake-ups ("relay", "drain module M"): the outbox and the delivery
rows in the database are the truth (app.events), so a task lost with a killed worker or a
restarted Redis costs a delay, never an event. huey is the engine because its storage
matrix is ours: Redis or PostgreSQL in production, a SQLite file on the embedded default,
memory (immediate: a task runs when enqueued) in tests.

| URL | huey |
|---|---|
| `redis://host:port/db`, `rediss://...` | RedisHuey |
| `postgresql://...` (`postgres://`, `postgresql+psycopg://`) | PostgresHuey (tables `huey_*` in that database) |
| `sqlite:///path/queue.sqlite3` | SqliteHuey (processes on one host share the file) |
| `memory://` | MemoryHuey in immediate mode (one process; tests) |
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from huey import Huey, MemoryHuey, PostgresHuey, RedisHuey, SqliteHuey  # type: ignore[import-untyped]

QUEUE_NAME = "credit_events"


class QueueUnavailable(Exception):
    """The queue's backend cannot be reached."""


@dataclass(frozen=True)
class _Scheme:
    build: Callable[[str], Huey]
    backend: str


def _redis(url: str) -> Huey:
    # results=False: nothing reads task results; each would be a write to the backend.
    return RedisHuey(QUEUE_NAME, url=url, results=False, read_timeout=1)


def _postgres(url: str) -> Huey:
    scheme, rest = url.split("://", 1)
    return PostgresHuey(QUEUE_NAME, dsn=f"postgresql://{rest}", results=False, read_timeout=1)


def _sqlite(url: str) -> Huey:
    path = url.removeprefix("sqlite:///")
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    return SqliteHuey(QUEUE_NAME, filename=path, results=False)


def _memory(url: str) -> Huey:
    return MemoryHuey(QUEUE_NAME, immediate=True, results=False)


SCHEMES: dict[str, _Scheme] = {
    "redis": _Scheme(_redis, "redis"),
    "rediss": _Scheme(_redis, "redis"),
    "postgresql": _Scheme(_postgres, "postgresql"),
    "postgres": _Scheme(_postgres, "postgresql"),
    "postgresql+psycopg": _Scheme(_postgres, "postgresql"),
    "sqlite": _Scheme(_sqlite, "sqlite"),
    "memory": _Scheme(_memory, "memory"),
}


def _scheme(url: str) -> _Scheme:
    scheme, separator, rest = url.partition("://")
    if not separator or scheme not in SCHEMES:
        known = ", ".join(sorted({f"{name}://" for name in SCHEMES}))
        raise ValueError(f"{url!r} names no known queue backend; known schemes: {known}")
    if scheme == "sqlite" and not rest.startswith("/"):
        raise ValueError(f"{url!r}: a SQLite queue needs a file, as sqlite:///path/queue.sqlite3")
    return SCHEMES[scheme]


def check_queue_url(url: str) -> None:
    """Raise ValueError unless url names a queue backend huey can use."""
    _scheme(url)


def default_queue_url(cache_url: str, instance_path: str) -> str:
    """Follow the backends: the cache's Redis when the cache is Redis, else a SQLite file."""
    if cache_url.startswith(("redis://", "rediss://")):
        return cache_url
    return f"sqlite:///{Path(instance_path) / 'queue.sqlite3'}"


class EventQueue:
    """The huey instance for a URL, built on first use (a PostgreSQL or SQLite storage
    connects and creates its tables when built: not while the app is merely created)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._scheme = _scheme(url)
        self.backend = self._scheme.backend
        self._huey: Huey | None = None
        self._lock = threading.Lock()
        self._ready: list[Callable[[Huey], Any]] = []

    @property
    def immediate(self) -> bool:
        """Tasks run when enqueued, on the enqueuing thread (memory://)."""
        return self.backend == "memory"

    @property
    def huey(self) -> Huey:
        if self._huey is None:
            with self._lock:
                if self._huey is None:
                    huey = self._scheme.build(self.url)
                    for setup in self._ready:
                        setup(huey)
                    self._huey = huey
        return self._huey

    def when_built(self, setup: Callable[[Huey], Any]) -> None:
        """Run setup(huey) once the huey instance exists (registering tasks)."""
        with self._lock:
            if self._huey is None:
                self._ready.append(setup)
                return
        setup(self._huey)

    def first_to_ask(self, wakeup: str, seconds: float) -> bool:
        """Whether no process sharing this queue asked for `wakeup` in the last `seconds`
        (and this one now has): on Redis one SET NX PX, so processes on every host wake the
        worker that often at most between them. Other backends cannot tell cheaply: True,
        each process pacing itself. Raises what the backend raises when it is down."""
        if self.backend != "redis":
            return True
        storage: Any = self.huey.storage
        key = f"huey.redis.{storage.name}.asked.{wakeup}"
        return bool(storage.conn.set(key, b"1", nx=True, px=max(round(seconds * 1000), 1)))

    def ping(self) -> None:
        """QueueUnavailable unless the backend answers."""
        try:
            storage: Any = self.huey.storage
            if self.backend == "redis":
                storage.conn.ping()
            elif self.backend in ("postgresql", "sqlite"):
                storage.queue_size()
        except Exception as exc:
            raise QueueUnavailable(f"{type(exc).__name__}: {exc}") from exc

    def close(self) -> None:
        if self._huey is not None:
            try:
                self._huey.storage.close()
            except Exception:  # closing a storage that never connected, or is gone
                pass
