"""What a configuration can leak: a signing key too short to resist guessing, and the
embedded database's files readable by every local user."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import text

from app.cli import main
from app.config import MIN_SECRET_KEY_BYTES, ConfigError, load_settings
from app.infrastructure.database import build_engine
from app.infrastructure.migrations import upgrade


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def loose_umask():
    """The common default umask: without care, new files are 0644 and folders 0755."""
    previous = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(previous)


# -- the signing key ----------------------------------------------------------------------


@pytest.mark.parametrize("key", ["secret", "x" * (MIN_SECRET_KEY_BYTES - 1), "é" * 15])
def test_a_configured_key_shorter_than_32_bytes_is_refused(tmp_path, key):
    with pytest.raises(ConfigError, match="CREDIT_SECRET_KEY is .* bytes; it must be at least 32"):
        load_settings(environ={"CREDIT_SECRET_KEY": key, "CREDIT_INSTANCE_PATH": str(tmp_path)})


def test_a_32_byte_key_and_the_generated_key_are_accepted(tmp_path):
    assert load_settings(environ={}, instance_path=str(tmp_path), secret_key="k" * 32).secret_key == "k" * 32
    generated = load_settings(environ={}, instance_path=str(tmp_path / "dev"))
    assert generated.secret_key_generated and len(generated.secret_key.encode()) >= MIN_SECRET_KEY_BYTES


@pytest.mark.parametrize("command", [["serve", "--bind", "127.0.0.1:1"], ["run", "--port", "1"], ["check"]])
def test_every_command_refuses_a_weak_key_with_one_clear_line(tmp_path, command):
    env = {"CREDIT_SECRET_KEY": "secret", "CREDIT_INSTANCE_PATH": str(tmp_path), "CREDIT_CONFIG": None}
    env["CREDIT_DATABASE_URL"] = f"sqlite:///{tmp_path / 'credit.sqlite3'}"
    result = CliRunner().invoke(main, command, env=env)
    assert result.exit_code == 1
    assert "CREDIT_SECRET_KEY is 6 bytes; it must be at least 32" in result.output
    assert "Traceback" not in result.output


# -- file modes -----------------------------------------------------------------------------


def test_the_instance_folder_and_generated_key_are_private_from_creation(tmp_path, loose_umask):
    instance = tmp_path / "instance"
    load_settings(environ={}, instance_path=str(instance))
    assert mode(instance) == 0o700
    assert mode(instance / "secret_key") == 0o600


def test_the_development_key_is_written_once_and_shared(tmp_path):
    first = load_settings(environ={}, instance_path=str(tmp_path)).secret_key
    assert load_settings(environ={}, instance_path=str(tmp_path)).secret_key == first


def test_a_new_sqlite_database_and_its_wal_files_are_private(tmp_path, loose_umask):
    database = tmp_path / "data" / "credit.sqlite3"
    upgrade(f"sqlite:///{database}")  # what `db upgrade` and `run` do first
    engine = build_engine(f"sqlite:///{database}")
    with engine.begin() as conn:  # a write keeps the -wal and -shm files while connected
        conn.execute(text("UPDATE alembic_version SET version_num = version_num"))
        files = {path.name: mode(path) for path in database.parent.iterdir()}
    engine.dispose()
    assert mode(database.parent) == 0o700
    assert files == {"credit.sqlite3": 0o600, "credit.sqlite3-wal": 0o600, "credit.sqlite3-shm": 0o600}


def test_an_existing_database_file_keeps_the_operators_mode(tmp_path, loose_umask):
    database = tmp_path / "shared.sqlite3"
    database.touch(mode=0o640)
    build_engine(f"sqlite:///{database}").dispose()
    assert mode(database) == 0o640
