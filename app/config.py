"""Settings from environment variables, optionally layered on a YAML file (CREDIT_CONFIG)."""

from __future__ import annotations

import os
import secrets
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import get_type_hints

import yaml  # type: ignore[import-untyped]

from app.infrastructure.cache import check_cache_url


class ConfigError(ValueError):
    """Raised for a configuration value that cannot be used."""


def default_instance_path() -> str:
    """./instance, resolved against the working directory when the settings are loaded."""
    return str(Path("instance").resolve())


@dataclass(frozen=True)
class Settings:
    database_url: str
    cache_url: str = "memory://"
    secret_key: str = ""
    secret_key_generated: bool = False
    token_ttl: int = 3600
    modules_disabled: tuple[str, ...] = ()
    modules_extra: tuple[str, ...] = ()
    health_timeout: float = 2.0
    health_cache_seconds: float = 1.0
    login_max_failures: int = 5
    login_window_seconds: int = 300
    idempotency_ttl_seconds: int = 86400
    balance_cache_seconds: int = 30
    max_body_bytes: int = 64 * 1024
    instance_path: str = field(default_factory=default_instance_path)

    def as_dict(self) -> dict:
        return asdict(self)


def _split(value) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, (list, tuple)):
        items = value
    else:
        items = str(value).split(",")
    return tuple(item.strip() for item in items if str(item).strip())


def _dev_secret(instance: Path) -> str:
    """Generate once and keep a development signing key in the instance folder."""
    key_file = instance / "secret_key"
    if key_file.exists():
        return key_file.read_text().strip()
    instance.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(48)
    key_file.write_text(key)
    key_file.chmod(0o600)
    return key


# Settings whose type is a number, and that type: environment variables arrive as strings.
_NUMBERS = {name: kind for name, kind in get_type_hints(Settings).items() if kind in (int, float)}


def load_settings(environ: dict | None = None, **overrides) -> Settings:
    """Read CREDIT_* variables (and the YAML file they may name); keyword overrides win."""
    env = dict(os.environ if environ is None else environ)
    raw: dict = {}
    config_file = env.get("CREDIT_CONFIG")
    if config_file:
        try:
            loaded = yaml.safe_load(Path(config_file).read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"cannot read CREDIT_CONFIG {config_file}: {exc}") from exc
        if not isinstance(loaded, dict):
            raise ConfigError(f"CREDIT_CONFIG {config_file} must hold a mapping")
        raw.update({str(k).lower().removeprefix("credit_"): v for k, v in loaded.items()})
    known = {f.name for f in fields(Settings)}
    for name in known:
        value = env.get(f"CREDIT_{name.upper()}")
        if value not in (None, ""):
            raw[name] = value
    raw.update(overrides)
    unknown = set(raw) - known
    if unknown:
        raise ConfigError(f"unknown configuration keys: {', '.join(sorted(unknown))}")

    instance = Path(raw.get("instance_path") or default_instance_path())
    raw["instance_path"] = str(instance)
    raw.setdefault("database_url", f"sqlite:///{instance / 'credit.sqlite3'}")
    if not raw.get("secret_key"):
        raw["secret_key"] = _dev_secret(instance)
        raw["secret_key_generated"] = True
    raw["modules_disabled"] = _split(raw.get("modules_disabled"))
    raw["modules_extra"] = _split(raw.get("modules_extra"))
    try:
        for key in _NUMBERS.keys() & raw.keys():
            raw[key] = _NUMBERS[key](raw[key])
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"bad numeric configuration value: {exc}") from exc
    if raw.get("token_ttl", 1) <= 0:
        raise ConfigError("CREDIT_TOKEN_TTL must be positive")
    try:
        check_cache_url(str(raw.get("cache_url", Settings.cache_url)))
    except ValueError as exc:
        raise ConfigError(f"CREDIT_CACHE_URL: {exc}") from exc
    return Settings(**raw)
