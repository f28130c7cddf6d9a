"""Checks and wiring helpers for tests of the app and of modules added to it."""

from __future__ import annotations

from dependency_injector import providers

from app.config import SETTING_VARIABLES, Settings
from app.kernel import Module


def assert_error(response, status: int, code: str) -> dict:
    """Assert the API's error body with this status and code; return its `error` object."""
    assert response.status_code == status, (response.status_code, response.get_data(as_text=True))
    body = response.get_json()
    assert isinstance(body, dict) and set(body) == {"error"}, body
    error = body["error"]
    assert set(error) == {"code", "message", "details"}, error
    assert error["code"] == code, error
    assert isinstance(error["message"], str) and error["message"]
    assert isinstance(error["details"], dict)
    return error


def ledger_snapshot(app) -> dict:
    """What a money request can write, read from the database itself (not through the API or cache):
    row counts of transactions, ledger entries and idempotency keys, and every wallet's balance.
    Equal snapshots before and after a refused request prove it wrote nothing."""
    from sqlalchemy import func, select

    from app.infrastructure.tables import Account, IdempotencyKey, LedgerEntry, Transaction

    with app.container.database().engine.connect() as conn:
        snapshot = {
            name: conn.scalar(select(func.count()).select_from(table))
            for name, table in (
                ("transactions", Transaction),
                ("entries", LedgerEntry),
                ("idempotency_keys", IdempotencyKey),
            )
        }
        snapshot["balances"] = dict(
            conn.execute(select(Account.user_id, Account.balance).where(Account.kind == "user")).all()
        )
    return snapshot


def rewired(provider, cls):
    """A provider building `cls` with exactly the injections of `provider`: replace a module
    (or any Singleton) by a subclass without restating what it receives, e.g.
    `container.wallet_module.override(rewired(container.wallet_module, MyWallet))`."""
    return providers.Singleton(cls, *provider.args, **provider.kwargs)


def failing(module_cls: type[Module], message: str = "failed on purpose") -> type[Module]:
    """A subclass of `module_cls` whose initialize() raises RuntimeError(message): install it
    with `rewired` to see the module fail at start-up (and its dependents skipped)."""

    def initialize(self) -> bool:
        raise RuntimeError(message)

    return type(f"Failing{module_cls.__name__}", (module_cls,), {"initialize": initialize})


def credit_env(settings: Settings) -> dict[str, str | None]:
    """The CREDIT_* environment that makes a `credit-system` command load exactly `settings`
    (None: the variable is removed, so nothing from the outer environment leaks in)."""
    env: dict[str, str | None] = dict.fromkeys([*SETTING_VARIABLES, "CREDIT_CONFIG"])
    for variable, name in SETTING_VARIABLES.items():
        value = getattr(settings, name)
        if name == "secret_key_generated" or value in ("", ()):
            continue
        env[variable] = ",".join(value) if isinstance(value, tuple) else str(value)
    return env
