"""Settings from environment variables, optionally layered on a YAML file (CREDIT_CONFIG)."""

from __future__ import annotations

import difflib
import os
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import get_type_hints

import yaml

from app.infrastructure.cache import check_cache_url
from app.infrastructure.database_url import check_database_url
from app.infrastructure.notify import check_mail_url, check_sms_url
from app.infrastructure.queue import check_queue_url, default_queue_url

MIN_SECRET_KEY_BYTES = 32  # HS256's own key size: a shorter key can be brute-forced from one token
MIN_METRICS_TOKEN_BYTES = 16


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
    registrations_per_address: int = 10
    registration_window_seconds: int = 3600
    idempotency_ttl_seconds: int = 86400
    balance_cache_seconds: int = 30
    max_body_bytes: int = 64 * 1024
    metrics_token: str = ""
    queue_url: str = ""  # "" until loaded: then the cache's Redis, or a SQLite file in the instance folder
    events_batch_size: int = 100
    events_lease_seconds: float = 30.0
    events_max_attempts: int = 10
    events_retry_base_seconds: float = 1.0
    events_retry_max_seconds: float = 600.0
    events_sweep_seconds: float = 5.0
    events_relay_delay_seconds: float = 0.1
    events_done_retention_seconds: int = 7 * 24 * 3600
    # integration_module (API.md "Integrations"); the retry schedule, timeout and disabling
    # delay are settings so tests can shorten them.
    webhook_allow_private: bool = False
    webhook_retry_schedule: str = "5,300,1800,7200,18000,36000,36000"  # seconds after each failure
    webhook_timeout_seconds: float = 10.0
    webhook_disable_after_seconds: int = 5 * 24 * 3600
    stripe_webhook_secret: str = ""
    payments_credits_per_unit: int = 1
    # notification_module (file:// means a folder in the instance folder: instance/mail, instance/sms)
    mail_url: str = "file://"
    mail_from: str = "credits@localhost"
    sms_url: str = "file://"
    sms_from: str = ""
    notifications_templates: str = ""  # a folder whose templates override the built-in ones by name
    notifications_max_attempts: int = 5
    notifications_retry_base_seconds: float = 30.0
    instance_path: str = field(default_factory=default_instance_path)

    def as_dict(self) -> dict:
        return asdict(self)


# Each setting's environment variable; the YAML file uses the setting names themselves.
SETTING_VARIABLES = {f"CREDIT_{f.name.upper()}": f.name for f in fields(Settings)}
# CREDIT_* variables that are not settings: the settings file, and the test suite's, the
# fuzzer's and the bench's own knobs. Any other CREDIT_* name is a typo, reported by
# unknown_variables() (a misspelled setting is otherwise silently replaced by its default).
OTHER_VARIABLES = frozenset({"CREDIT_CONFIG"})
OTHER_VARIABLE_PREFIXES = ("CREDIT_TEST_", "CREDIT_BENCH_", "CREDIT_FUZZ_")


def _closest(name: str, known: Iterable[str]) -> str | None:
    close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.75)
    return close[0] if close else None


def _did_you_mean(match: str | None) -> str:
    return f" (did you mean {match}?)" if match else ""


def unknown_variables(environ: Mapping[str, str] | None = None) -> list[str]:
    """One message per CREDIT_* variable that is neither a setting nor one of OTHER_VARIABLES."""
    env = os.environ if environ is None else environ
    # Compared without the prefix they share, which would make any two names look alike.
    known = {name.removeprefix("CREDIT_"): name for name in (*SETTING_VARIABLES, *OTHER_VARIABLES)}
    messages = []
    for name in sorted(env):
        if not name.startswith("CREDIT_") or name in known.values() or name.startswith(OTHER_VARIABLE_PREFIXES):
            continue
        match = _closest(name.removeprefix("CREDIT_"), known)
        messages.append(f"unknown variable {name} is ignored{_did_you_mean(known.get(match or ''))}")
    return messages


def _split(value) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, (list, tuple)):
        items = value
    else:
        items = str(value).split(",")
    return tuple(item.strip() for item in items if str(item).strip())


def _dev_secret(instance: Path) -> str:
    """Generate once and keep a development signing key in the instance folder.

    The folder is made 0700 and the key file 0600 as they are created (no moment where
    another local user could read the key); two processes starting at once share one key.
    """
    key_file = instance / "secret_key"
    if key_file.exists():
        return key_file.read_text().strip()
    instance.mkdir(mode=0o700, parents=True, exist_ok=True)
    key = secrets.token_urlsafe(48)
    try:
        fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process made it first: use theirs
        return key_file.read_text().strip()
    with os.fdopen(fd, "w") as out:
        out.write(key)
    return key


# Settings whose type is a number, and that type: environment variables arrive as strings.
_NUMBERS = {name: kind for name, kind in get_type_hints(Settings).items() if kind in (int, float)}


_POSITIVE = [name for name in _NUMBERS if name.startswith(("events_", "webhook_", "payments_"))]
# Settings that are true or false: "true"/"false" (or 1/0, yes/no, on/off) in the environment.
_FLAGS = [name for name, kind in get_type_hints(Settings).items() if kind is bool and name != "secret_key_generated"]
_TRUE, _FALSE = {"true", "1", "yes", "on"}, {"false", "0", "no", "off"}


def _flag(name: str, value) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text not in _TRUE | _FALSE:
        raise ConfigError(f"CREDIT_{name.upper()} must be true or false, not {value!r}")
    return text in _TRUE


def _schedule(value: str) -> str:
    """CREDIT_WEBHOOK_RETRY_SCHEDULE: comma-separated positive seconds, kept as text."""
    try:
        delays = [float(part) for part in str(value).split(",") if part.strip()]
    except ValueError:
        delays = []
    if not delays or any(delay <= 0 for delay in delays):
        raise ConfigError("CREDIT_WEBHOOK_RETRY_SCHEDULE must list positive seconds, as 5,300,1800")
    return ",".join(str(part).strip() for part in str(value).split(",") if part.strip())


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
    for variable, name in SETTING_VARIABLES.items():
        value = env.get(variable)
        if value not in (None, ""):
            raw[name] = value
    raw.update(overrides)
    known = SETTING_VARIABLES.values()
    unknown = sorted(set(raw) - set(known))
    if unknown:
        listed = ", ".join(key + _did_you_mean(_closest(key, known)) for key in unknown)
        raise ConfigError(f"unknown configuration keys: {listed}")

    instance = Path(raw.get("instance_path") or default_instance_path())
    raw["instance_path"] = str(instance)
    raw.setdefault("database_url", f"sqlite:///{instance / 'credit.sqlite3'}")
    try:
        raw["database_url"] = check_database_url(str(raw["database_url"]))
    except ValueError as exc:
        raise ConfigError(f"CREDIT_DATABASE_URL: {exc}") from exc
    if not raw.get("secret_key"):
        raw["secret_key"] = _dev_secret(instance)
        raw["secret_key_generated"] = True
    elif len(str(raw["secret_key"]).encode()) < MIN_SECRET_KEY_BYTES:
        raise ConfigError(
            f"CREDIT_SECRET_KEY is {len(str(raw['secret_key']).encode())} bytes; it must be at least "
            f"{MIN_SECRET_KEY_BYTES} (anyone who guesses it can sign tokens for any account). "
            'Generate one with: python -c "import secrets; print(secrets.token_urlsafe(48))"'
        )
    raw["modules_disabled"] = _split(raw.get("modules_disabled"))
    raw["modules_extra"] = _split(raw.get("modules_extra"))
    try:
        for key in _NUMBERS.keys() & raw.keys():
            raw[key] = _NUMBERS[key](raw[key])
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"bad numeric configuration value: {exc}") from exc
    if raw.get("metrics_token") and len(str(raw["metrics_token"]).encode()) < MIN_METRICS_TOKEN_BYTES:
        raise ConfigError(f"CREDIT_METRICS_TOKEN must be at least {MIN_METRICS_TOKEN_BYTES} bytes")
    if raw.get("token_ttl", 1) <= 0:
        raise ConfigError("CREDIT_TOKEN_TTL must be positive")
    try:
        check_cache_url(str(raw.get("cache_url", Settings.cache_url)))
    except ValueError as exc:
        raise ConfigError(f"CREDIT_CACHE_URL: {exc}") from exc
    raw["queue_url"] = str(
        raw.get("queue_url") or default_queue_url(str(raw.get("cache_url", Settings.cache_url)), str(instance))
    )
    try:
        check_queue_url(raw["queue_url"])
    except ValueError as exc:
        raise ConfigError(f"CREDIT_QUEUE_URL: {exc}") from exc
    for name in _POSITIVE:
        if name in raw and raw[name] <= 0:
            raise ConfigError(f"CREDIT_{name.upper()} must be positive")
    for name in _FLAGS:
        if name in raw:
            raw[name] = _flag(name, raw[name])
    if "webhook_retry_schedule" in raw:
        raw["webhook_retry_schedule"] = _schedule(raw["webhook_retry_schedule"])
    _notification_settings(raw, instance)
    return Settings(**raw)


def _notification_settings(raw: dict, instance: Path) -> None:
    """Mail and SMS URLs checked, `file://` resolved to its folder in the instance folder."""
    for name, check, folder in (("mail_url", check_mail_url, "mail"), ("sms_url", check_sms_url, "sms")):
        url = str(raw.get(name) or "file://")
        if url == "file://":
            url = f"file://{instance / folder}"
        try:
            check(url)
        except ValueError as exc:
            raise ConfigError(f"CREDIT_{name.upper()}: {exc}") from exc
        raw[name] = url
    for name in ("notifications_max_attempts", "notifications_retry_base_seconds"):
        if name in raw and raw[name] <= 0:
            raise ConfigError(f"CREDIT_{name.upper()} must be positive")
