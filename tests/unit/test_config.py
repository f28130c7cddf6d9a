"""Settings: numbers converted by the type each setting declares, the instance folder found
when the settings are loaded (not when app.config is imported)."""

from __future__ import annotations

from pathlib import Path
from typing import get_type_hints

import pytest

from app.config import ConfigError, Settings, load_settings

NUMERIC = {name: kind for name, kind in get_type_hints(Settings).items() if kind in (int, float)}


def test_there_are_numeric_settings_of_both_kinds():
    assert {int, float} <= set(NUMERIC.values())


def test_every_numeric_setting_from_the_environment_gets_its_declared_type(tmp_path):
    environ = {f"CREDIT_{name.upper()}": "7" for name in NUMERIC}
    settings = load_settings(environ, instance_path=str(tmp_path), secret_key="k")
    for name, kind in NUMERIC.items():
        value = getattr(settings, name)
        assert type(value) is kind and value == 7, name


def test_a_fractional_value_reaches_a_float_setting_whole(tmp_path):
    settings = load_settings({"CREDIT_HEALTH_TIMEOUT": "0.25"}, instance_path=str(tmp_path), secret_key="k")
    assert settings.health_timeout == 0.25


@pytest.mark.parametrize(("variable", "value"), [("CREDIT_TOKEN_TTL", "1.5"), ("CREDIT_HEALTH_TIMEOUT", "soon")])
def test_a_value_that_is_not_a_number_of_the_type_is_refused(tmp_path, variable, value):
    with pytest.raises(ConfigError, match="bad numeric configuration value"):
        load_settings({variable: value}, instance_path=str(tmp_path), secret_key="k")


def test_text_settings_stay_text(tmp_path):
    settings = load_settings({"CREDIT_SECRET_KEY": "1234"}, instance_path=str(tmp_path))
    assert settings.secret_key == "1234"


def test_the_instance_folder_defaults_to_instance_in_the_working_directory_at_load_time(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    settings = load_settings({}, secret_key="k")
    assert settings.instance_path == str(tmp_path / "instance")
    assert settings.database_url == f"sqlite:///{tmp_path / 'instance' / 'credit.sqlite3'}"


def test_credit_instance_path_set_after_import_is_used(tmp_path, monkeypatch):
    monkeypatch.setenv("CREDIT_INSTANCE_PATH", str(tmp_path / "here"))
    settings = load_settings(database_url="sqlite://", secret_key="k")
    assert settings.instance_path == str(tmp_path / "here")


def test_an_explicit_empty_environment_ignores_the_process_one(tmp_path, monkeypatch):
    monkeypatch.setenv("CREDIT_INSTANCE_PATH", str(tmp_path / "process"))
    monkeypatch.chdir(tmp_path)
    settings = load_settings({}, secret_key="k")
    assert Path(settings.instance_path) == tmp_path / "instance"


def test_settings_built_directly_also_default_to_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert Settings(database_url="sqlite://").instance_path == str(tmp_path / "instance")
