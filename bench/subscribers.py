"""Subscribing modules for the event benchmarks (loaded with CREDIT_MODULES_EXTRA)."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Column, Float, MetaData, String, Table, insert, select

from app.kernel import Module

metadata = MetaData()
handled = Table(
    "bench_event_latency",
    metadata,
    Column("event_id", String(36), primary_key=True),
    Column("seconds", Float, nullable=False),
)


class NoopSubscriber(Module):
    """Handles every event by doing nothing: what remains is the backbone's own cost."""

    NAME = "bench_noop"
    DEPENDENCIES = ("connection_api",)
    CRITICAL = False
    EVENT_TYPES = ("*",)
    EMITS = {"bench.noop": "an event written by the benchmark"}

    def __init__(self, connection_api) -> None:
        self.connection = connection_api

    def handle_event(self, uow, event) -> None:
        pass


class LatencySubscriber(NoopSubscriber):
    """Stores how long after its commit each transaction.posted reached the handler."""

    NAME = "bench_latency"
    EVENT_TYPES = ("transaction.posted",)

    def initialize(self) -> bool:
        metadata.create_all(self.connection.database.engine)
        return True

    def handle_event(self, uow, event) -> None:
        seconds = (datetime.now(UTC) - event.occurred_at).total_seconds()
        uow.session.execute(insert(handled).values(event_id=event.id, seconds=seconds))


def latencies(engine) -> list[float]:
    with engine.connect() as conn:
        return list(conn.scalars(select(handled.c.seconds)))
