"""Settings: numbers converted by the type each setting declares, the instance folder found
when the settings are loaded (not when app.config is imported), CREDIT_* names that are no
setting, and the database URL checked (driver installed, postgresql:// meaning psycopg 3)."""

from __future__ import annotations

import re
import sys
from dataclasses import fields
from pathlib import Path
from typing import get_type_hints

import pytest

from app.config import ConfigError, Settings, load_settings, unknown_variables
from app.infrastructure.database_url import masked_url

NUMERIC = {name: kind for name, kind in get_type_hints(Settings).items() if kind in (int, float)}


def test_there_are_numeric_settings_of_both_kinds():
    assert {int, float} <= set(NUMERIC.values())


def test_every_numeric_setting_from_the_environment_gets_its_declared_type(tmp_path):
    environ = {f"CREDIT_{name.upper()}": "7" for name in NUMERIC}
    settings = load_settings(environ, instance_path=str(tmp_path), secret_key="k" * 32)
    for name, kind in NUMERIC.items():
        value = getattr(settings, name)
        assert type(value) is kind and value == 7, name


def test_a_fractional_value_reaches_a_float_setting_whole(tmp_path):
    settings = load_settings({"CREDIT_HEALTH_TIMEOUT": "0.25"}, instance_path=str(tmp_path), secret_key="k" * 32)
    assert settings.health_timeout == 0.25


@pytest.mark.parametrize(("variable", "value"), [("CREDIT_TOKEN_TTL", "1.5"), ("CREDIT_HEALTH_TIMEOUT", "soon")])
def test_a_value_that_is_not_a_number_of_the_type_is_refused(tmp_path, variable, value):
    with pytest.raises(ConfigError, match="bad numeric configuration value"):
        load_settings({variable: value}, instance_path=str(tmp_path), secret_key="k" * 32)


def test_text_settings_stay_text(tmp_path):
    digits = "1234" * 8  # a key may look like a number: it stays the text it was
    settings = load_settings({"CREDIT_SECRET_KEY": digits}, instance_path=str(tmp_path))
    assert settings.secret_key == digits


def test_the_instance_folder_defaults_to_instance_in_the_working_directory_at_load_time(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    settings = load_settings({}, secret_key="k" * 32)
    assert settings.instance_path == str(tmp_path / "instance")
    assert settings.database_url == f"sqlite:///{tmp_path / 'instance' / 'credit.sqlite3'}"


def test_credit_instance_path_set_after_import_is_used(tmp_path, monkeypatch):
    monkeypatch.setenv("CREDIT_INSTANCE_PATH", str(tmp_path / "here"))
    settings = load_settings(database_url="sqlite://", secret_key="k" * 32)
    assert settings.instance_path == str(tmp_path / "here")


def test_an_explicit_empty_environment_ignores_the_process_one(tmp_path, monkeypatch):
    monkeypatch.setenv("CREDIT_INSTANCE_PATH", str(tmp_path / "process"))
    monkeypatch.chdir(tmp_path)
    settings = load_settings({}, secret_key="k" * 32)
    assert Path(settings.instance_path) == tmp_path / "instance"


def test_settings_built_directly_also_default_to_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert Settings(database_url="sqlite://").instance_path == str(tmp_path / "instance")


# -- names that are not settings ----------------------------------------------------------------
KEY = "k" * 32


def test_a_misspelled_variable_is_named_with_the_setting_meant():
    assert unknown_variables({"CREDIT_DATABSE_URL": "postgresql://db", "CREDIT_CACHE_URL": "memory://"}) == [
        "unknown variable CREDIT_DATABSE_URL is ignored (did you mean CREDIT_DATABASE_URL?)"
    ]


def test_a_name_like_no_setting_is_reported_without_a_guess():
    assert unknown_variables({"CREDIT_FROBNICATE": "1"}) == ["unknown variable CREDIT_FROBNICATE is ignored"]


def test_every_setting_the_settings_file_and_the_tools_own_variables_are_known():
    environ = {f"CREDIT_{f.name.upper()}": "x" for f in fields(Settings)}
    environ.update(
        CREDIT_CONFIG="c.yaml",
        CREDIT_TEST_BACKEND="postgres",
        CREDIT_BENCH_POSTGRES_URL="x",
        CREDIT_FUZZ_SEED="7",
        DATABASE_URL="not ours",
    )
    assert "CREDIT_INSTANCE_PATH" in environ
    assert unknown_variables(environ) == []


def test_unknown_variables_reads_the_process_environment_by_default(monkeypatch):
    monkeypatch.setenv("CREDIT_SECRET_KYE", KEY)
    assert "unknown variable CREDIT_SECRET_KYE is ignored (did you mean CREDIT_SECRET_KEY?)" in unknown_variables()


def test_a_misspelled_key_in_the_settings_file_is_refused_with_the_setting_meant(tmp_path):
    config = tmp_path / "credit.yaml"
    config.write_text("databse_url: sqlite://\n")
    with pytest.raises(ConfigError, match=r"unknown configuration keys: databse_url \(did you mean database_url\?\)"):
        load_settings({"CREDIT_CONFIG": str(config)}, instance_path=str(tmp_path), secret_key=KEY)


# -- the database URL -------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("given", "used"),
    [
        ("postgresql://app:pw@db.example/credit", "postgresql+psycopg://app:pw@db.example/credit"),
        ("postgres://app:pw@db.example:5433/credit", "postgresql+psycopg://app:pw@db.example:5433/credit"),
        ("postgresql+psycopg://app@db.example/credit", "postgresql+psycopg://app@db.example/credit"),
        ("sqlite:///relative/credit.sqlite3", "sqlite:///relative/credit.sqlite3"),
    ],
)
def test_postgresql_urls_without_a_driver_mean_psycopg_3(tmp_path, given, used):
    settings = load_settings({"CREDIT_DATABASE_URL": given}, instance_path=str(tmp_path), secret_key=KEY)
    assert settings.database_url == used


def test_a_missing_postgresql_driver_is_one_line_naming_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "psycopg", None)  # as after a plain `pip install .`
    with pytest.raises(ConfigError) as caught:
        load_settings(
            {"CREDIT_DATABASE_URL": "postgresql://app@db/credit"}, instance_path=str(tmp_path), secret_key=KEY
        )
    assert str(caught.value) == (
        "CREDIT_DATABASE_URL: the postgresql+psycopg driver (psycopg) is not installed: "
        "pip install 'credit-system[postgres]'"
    )


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("credit.sqlite3", "CREDIT_DATABASE_URL: not a database URL"),
        ("postgresql+nodriver://db/credit", "SQLAlchemy has no database backend 'postgresql+nodriver'"),
    ],
)
def test_a_database_url_that_cannot_be_used_is_refused(tmp_path, url, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_settings({"CREDIT_DATABASE_URL": url}, instance_path=str(tmp_path), secret_key=KEY)


def test_a_password_never_reaches_the_message(tmp_path):
    with pytest.raises(ConfigError) as caught:
        load_settings({"CREDIT_DATABASE_URL": "mysql+nodriver://app:s3cret@db/x"}, instance_path=str(tmp_path))
    assert "s3cret" not in str(caught.value) and "app:***@db" in str(caught.value)


def test_masked_url_hides_only_the_password():
    assert masked_url("postgresql+psycopg://app:s3cret@db:5432/credit") == "postgresql+psycopg://app:***@db:5432/credit"
    assert masked_url("sqlite:////srv/credit.sqlite3") == "sqlite:////srv/credit.sqlite3"
