"""The wheel a plain `pip install .` installs: built without setuptools warnings, with the
migrations inside, and able to run `credit-system db upgrade` from where it is installed."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from app.infrastructure.migrations import head_revision

ROOT = Path(__file__).resolve().parents[2]
# What the build reads; anything else in the checkout (tests, bench, .venv) stays out of it.
SOURCES = ("setup.cfg", "pyproject.toml", "README.md", "containers.py", "app")
MIGRATIONS = ROOT / "app" / "migrations"


@pytest.fixture(scope="module")
def build(tmp_path_factory):
    """(pip's verbose output, the wheel): built from a copy of the sources, with build isolation as
    `pip install .` does."""
    tmp = tmp_path_factory.mktemp("wheel")
    source, out = tmp / "source", tmp / "dist"
    source.mkdir()
    for name in SOURCES:
        path = ROOT / name
        if path.is_dir():
            shutil.copytree(path, source / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(path, source / name)
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--verbose", "--wheel-dir", str(out), str(source)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    (wheel,) = out.glob("credit_system-*.whl")
    return output, wheel


def test_the_build_says_nothing_about_ignored_packages(build):
    output, _wheel = build
    assert "would be ignored" not in output
    assert "absent from the `packages` configuration" not in output


def test_the_wheel_holds_every_migration_file(build):
    _output, wheel = build
    shipped = {
        path.relative_to(ROOT).as_posix()
        for path in MIGRATIONS.rglob("*")
        if path.is_file() and path.suffix in (".py", ".mako")
    }
    assert "app/migrations/versions/0001_initial_schema.py" in shipped
    with zipfile.ZipFile(wheel) as archive:
        assert shipped <= set(archive.namelist())


def test_db_upgrade_runs_from_the_installed_wheel(build, tmp_path):
    """Unpacked (as pip installs it) and first on the path: the migrations are found in the wheel."""
    _output, wheel = build
    site = tmp_path / "site"
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(site)
    database = tmp_path / "work" / "credit.sqlite3"
    database.parent.mkdir()
    program = (
        "import sys; sys.path.insert(0, sys.argv.pop(1)); import app; "
        "assert app.__file__.startswith(sys.path[0]), app.__file__; "
        "from app.cli import main; main()"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("CREDIT_")}
    env.update(CREDIT_DATABASE_URL=f"sqlite:///{database}", CREDIT_INSTANCE_PATH=str(tmp_path / "work"))
    result = subprocess.run(
        [sys.executable, "-c", program, str(site), "db", "upgrade"],
        cwd=tmp_path / "work",
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    with sqlite3.connect(database) as conn:
        assert conn.execute("SELECT version_num FROM alembic_version").fetchone() == (head_revision(),)
