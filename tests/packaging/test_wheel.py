"""The wheel a plain `pip install .` installs: built without setuptools warnings, with the
migrations inside, able to run `credit-system db upgrade` from where it is installed, and
registering the testing kit as a pytest plugin wherever it is installed."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
import sysconfig
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


@pytest.fixture(scope="module")
def installed(build, tmp_path_factory) -> Path:
    """A throwaway virtual environment (its python) with the wheel installed, as `pip install
    'credit-system[dev]'` leaves one: the dependencies are this environment's, linked in one by
    one, except credit-system itself, which comes from the wheel alone (its entry points too)."""
    _output, wheel = build
    root = tmp_path_factory.mktemp("venv")
    venv, deps = root / "venv", root / "deps"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    site = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout.strip()
    pip = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index", "--target", site, str(wheel)]
    result = subprocess.run(pip, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    deps.mkdir()
    ours = ("credit_system", "__editable__", "app", "containers")
    for entry in Path(sysconfig.get_path("purelib")).iterdir():
        if not entry.name.startswith(ours) and entry.suffix != ".pth":
            (deps / entry.name).symlink_to(entry)
    (Path(site) / "dependencies.pth").write_text(f"{deps}\n")
    return python


def test_the_installed_wheel_is_a_pytest_plugin(installed, tmp_path):
    """`pytest --fixtures` in a project of its own lists the kit's fixtures, from the wheel."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CREDIT_", "PYTEST_", "PYTHON"))}
    result = subprocess.run(
        [installed, "-m", "pytest", "-p", "no:cacheprovider", "--fixtures"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    listed = {line.split()[0]: line for line in result.stdout.splitlines() if line.startswith(("credit_", "people"))}
    for fixture in ("credit_app", "credit_client", "credit_container", "credit_settings", "people", "credit_cli"):
        assert fixture in listed, result.stdout
        assert (
            f"/venv/lib/python{sys.version_info.major}.{sys.version_info.minor}/site-packages/app/testing/"
            in listed[fixture]
        ), listed[fixture]  # the wheel's
