"""Fixtures of the fault scenarios; what they hand out is built in tests/faults/harness.py."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import backends
from tests.faults.harness import (
    PG_BIN,
    REDIS_SERVER,
    FaultDatabase,
    Figures,
    PostgresCluster,
    RedisServer,
    missing_postgres_tools,
)


@pytest.fixture(scope="session")
def fault_cluster() -> Iterator[PostgresCluster]:
    """A PostgreSQL cluster of our own with a migrated template database; removed at the end."""
    missing = missing_postgres_tools()
    if missing:
        backends.unavailable("PostgreSQL server binaries", FileNotFoundError(f"{missing} in {PG_BIN}"))
    cluster = PostgresCluster(Path(tempfile.mkdtemp(prefix="credit-faults-pg-")))
    try:
        cluster.init()
        cluster.start()
        cluster.create_template()
        yield cluster
    finally:
        cluster.destroy()


@pytest.fixture
def postgres(fault_cluster: PostgresCluster) -> Iterator[FaultDatabase]:
    """A fresh migrated database (a clone of the template) on the fault cluster."""
    database = fault_cluster.clone_template()
    yield database
    database.drop()


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    """A Redis server of our own on a free port, killed and removed after the test."""
    if not REDIS_SERVER:
        backends.unavailable("redis-server", FileNotFoundError("redis-server is not on PATH"))
    server = RedisServer(Path(tempfile.mkdtemp(prefix="credit-faults-redis-")))
    server.start()
    yield server
    server.destroy()


@pytest.fixture
def figures(request) -> Iterator[Figures]:
    """The scenario's figures, printed as one FAULT-FIGURES line at its end."""
    result = Figures(request.node.name)
    yield result
    print("\n" + result.summary(), flush=True)
