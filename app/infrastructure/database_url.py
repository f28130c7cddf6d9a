"""The database URL: checked when the configuration is read, and shown without its password."""

from __future__ import annotations

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError

# SQLAlchemy reads a bare postgresql:// as psycopg2, which this project does not install, and no
# longer knows postgres:// (the scheme Heroku and others hand out): both mean psycopg 3 here.
_POSTGRESQL_SCHEMES = ("postgresql://", "postgres://")
POSTGRESQL_DRIVER = "postgresql+psycopg://"

# The pip extra that installs a driver, by the module the driver imports as.
_EXTRA_FOR_DRIVER = {"psycopg": "postgres"}


def check_database_url(url: str) -> str:
    """The URL SQLAlchemy is given for url; ValueError, in one line, if it cannot be used.

    The driver is imported here, so a missing one is reported when the configuration is
    read (naming the pip extra that installs it), not as a traceback from the first
    connection or migration.
    """
    for scheme in _POSTGRESQL_SCHEMES:
        if url.startswith(scheme):
            url = POSTGRESQL_DRIVER + url.removeprefix(scheme)
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ValueError("not a database URL (dialect+driver://user:password@host/database)") from None
    try:
        dialect = parsed.get_dialect()
    except NoSuchModuleError:
        raise ValueError(f"{masked_url(url)!r}: SQLAlchemy has no database backend {parsed.drivername!r}") from None
    try:
        dialect.import_dbapi()
    except ImportError as exc:
        module = (exc.name or "").partition(".")[0]
        extra = _EXTRA_FOR_DRIVER.get(module)
        install = f"pip install 'credit-system[{extra}]'" if extra else f"install the Python package {module!r}"
        raise ValueError(f"the {parsed.drivername} driver ({module}) is not installed: {install}") from None
    return url


def masked_url(url: str | URL) -> str:
    """url with its password replaced by ***, for logs and command output."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "(not a database URL)"
