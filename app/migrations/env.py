"""Alembic environment: the URL comes from the app's settings, never from a file."""

from alembic import context

from app.infrastructure import (
    tables_integrations,  # noqa: F401 - its tables join Base's metadata
    tables_reporting,  # noqa: F401  (its tables join Base.metadata)
)
from app.infrastructure.database import build_engine
from app.infrastructure.tables import Base

config = context.config
target_metadata = Base.metadata


def run_migrations_offline() -> None:
    context.configure(
        url=config.get_main_option("sqlalchemy.url"),
        target_metadata=target_metadata,
        literal_binds=True,
        render_as_batch=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    url = config.get_main_option("sqlalchemy.url")
    if url is None:  # alembic_config() always sets it; a bare `alembic` command would not
        raise RuntimeError("no database URL: run migrations with `credit-system db upgrade`")
    engine = build_engine(url)
    with engine.connect() as conn:
        _run(conn)
    engine.dispose()


def _run(connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
