"""Run Alembic migrations programmatically against the configured database."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text
from sqlalchemy.engine import Engine

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"


def alembic_config(database_url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return cfg


def upgrade(database_url: str, revision: str = "head") -> None:
    # A new SQLite file (and its folder) is created private by build_engine, which env.py uses.
    command.upgrade(alembic_config(database_url), revision)


@lru_cache(maxsize=1)
def _scripts() -> ScriptDirectory:
    return ScriptDirectory.from_config(alembic_config("sqlite://"))


def head_revision() -> str | None:
    return _scripts().get_current_head()


@lru_cache(maxsize=1)
def known_revisions() -> frozenset[str]:
    return frozenset(script.revision for script in _scripts().walk_revisions())


def current_revision(engine: Engine) -> str | None:
    """The schema revision the database is at (None before the first migration).

    Read directly rather than through Alembic's MigrationContext, which logs at INFO on
    every call: health checks run this several times a second.
    """
    with engine.connect() as conn:
        if not inspect(conn).has_table("alembic_version"):
            return None
        return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()


UPGRADE_HINT = "run `credit-system db upgrade`"


@dataclass(frozen=True)
class SchemaState:
    """The revision a database's schema is at, against the one this code needs."""

    revision: str | None
    head: str | None

    @property
    def current(self) -> bool:
        return self.revision == self.head

    @property
    def problem(self) -> str | None:
        """Why the schema cannot be used, in words fit for anyone (None when it can)."""
        if self.current:
            return None
        if self.revision is None:
            return "database schema not migrated"
        if self.revision not in known_revisions():
            return f"database schema at revision {self.revision}, which this code does not know (a newer release?)"
        return f"database schema out of date (at revision {self.revision}, this code needs {self.head})"

    @property
    def advice(self) -> str | None:
        """The problem and what an operator does about it."""
        if self.current:
            return None
        if self.revision is not None and self.revision not in known_revisions():
            return f"{self.problem}: run the release that migrated it, or restore a database this release knows"
        return f"{self.problem}: {UPGRADE_HINT}"


def schema_state(engine: Engine) -> SchemaState:
    """Read where the database's schema is; the driver's error if the database is unreachable."""
    return SchemaState(current_revision(engine), head_revision())


class SchemaNotCurrent(Exception):
    """Work was asked of a database whose schema is not the revision this code needs."""

    def __init__(self, state: SchemaState) -> None:
        super().__init__(state.advice)
        self.state = state
