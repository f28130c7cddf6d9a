"""What the end-to-end tests share: the backend a real server process runs on."""

from __future__ import annotations

import os

import pytest

from app.infrastructure.migrations import upgrade
from tests import backends
from tests.e2e.browser import sync_playwright  # noqa: F401 - the page tests' fixture

BACKEND = os.environ.get("CREDIT_TEST_BACKEND", "sqlite")
# Redis db 12: a server process's own, apart from the in-process tests' db 13.
SERVER_REDIS_URL = backends.REDIS_URL.rsplit("/", 1)[0] + "/12"


@pytest.fixture
def backend(tmp_path):
    """(database_url, cache_url): SQLite + memory, or with CREDIT_TEST_BACKEND=postgres a fresh
    PostgreSQL database and a Redis database of its own, as in production."""
    if BACKEND != "postgres":
        database_url = f"sqlite:///{tmp_path / 'credit.sqlite3'}"
        upgrade(database_url)
        yield database_url, "memory://"
        return
    with backends.throwaway_postgres(SERVER_REDIS_URL) as database_url:
        yield database_url, SERVER_REDIS_URL
