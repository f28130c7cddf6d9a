"""A client generated from the served /openapi.json by openapi-python-client drives a real server.

What a client developer does: generate, import, call. The generator must not warn, the
generated package must hold no two enum classes with the same values (one TransactionType,
one Role, ...), and a whole flow runs through the generated functions and models alone:
register, log in, deposit with an Idempotency-Key and its replay, transfer, a history page
by page, a reversal without a body, and typed errors read through the generated models.
"""

from __future__ import annotations

import contextlib
import enum
import importlib
import json
import os
import pkgutil
import subprocess
import sys
from collections import defaultdict

import pytest
import requests

from tests.helpers import DEFAULT_PASSWORD
from tests.servers import BIN, ServerProcess, ensure_admin, server_env

PACKAGE = "credit_system_client"


@pytest.fixture
def server(tmp_path, backend):
    database_url, cache_url = backend
    ensure_admin(database_url, tmp_path, cache_url)
    env = server_env(database_url, cache_url, tmp_path)
    with ServerProcess(env, workers=2, threads=2, log_path=tmp_path / "server.log") as server:
        yield server


@pytest.fixture
def generated(server, tmp_path):
    """The client package generated from the running server's document, imported."""
    spec = tmp_path / "openapi.json"
    spec.write_text(json.dumps(requests.get(server.url + "/openapi.json", timeout=10).json()))
    result = subprocess.run(
        [str(BIN / "openapi-python-client"), "generate", "--path", str(spec), "--meta", "none"]
        + ["--output-path", str(tmp_path / PACKAGE)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
        env={**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"},  # its ruff post-hook
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "Warning" not in output and "Skipping" not in output, output
    sys.path.insert(0, str(tmp_path))
    try:
        yield lambda name="": importlib.import_module(f"{PACKAGE}.{name}" if name else PACKAGE)
    finally:
        sys.path.remove(str(tmp_path))
        for name in [name for name in sys.modules if name == PACKAGE or name.startswith(PACKAGE + ".")]:
            del sys.modules[name]


def _enum_classes(models) -> dict[str, frozenset]:
    classes = {}
    for info in pkgutil.iter_modules(models.__path__):
        module = importlib.import_module(f"{models.__name__}.{info.name}")
        for value in vars(module).values():
            if isinstance(value, type) and issubclass(value, enum.Enum) and value.__module__ == module.__name__:
                classes[value.__name__] = frozenset(member.value for member in value)
    return classes


@pytest.mark.e2e
@pytest.mark.timeout(600)
def test_a_generated_client_has_one_class_per_enum_and_runs_the_whole_flow(server, generated):
    with contextlib.ExitStack() as clients:  # each generated client holds a connection pool
        _flow(server, generated, clients)


def _flow(server, generated, clients: contextlib.ExitStack) -> None:
    models = generated("models")
    by_values = defaultdict(list)
    for name, values in _enum_classes(models).items():
        by_values[values].append(name)
    assert not [names for names in by_values.values() if len(names) > 1]
    assert {"TransactionType", "Role", "ModuleLifecycle"} <= {name for names in by_values.values() for name in names}

    client_module = generated()
    api = {
        name: generated(f"api.{tag}.{name}")
        for tag, names in {
            "auth": ("login", "logout"),
            "users": ("create_user", "get_current_user"),
            "wallets": ("deposit", "withdraw", "get_balance"),
            "transactions": ("transfer", "list_transactions", "get_transaction", "reverse_transaction"),
            "system": ("livez",),
        }.items()
        for name in names
    }
    anonymous = clients.enter_context(client_module.Client(base_url=server.url))
    assert api["livez"].sync(client=anonymous).status == models.LivenessStatus.ALIVE

    # Register two users: 201 with the User and where to read it.
    users = {}
    for name in ("alice", "bob"):
        body = models.UserCreate(username=name, email=f"{name}@example.com", password=DEFAULT_PASSWORD)
        created = api["create_user"].sync_detailed(client=anonymous, body=body)
        assert created.status_code == 201 and isinstance(created.parsed, models.User)
        assert created.parsed.role == models.Role.USER
        assert created.headers["location"] == f"/users/{created.parsed.id}"
        users[name] = created.parsed

    def log_in(username: str):
        token = api["login"].sync(client=anonymous, body=models.Login(username=username, password=DEFAULT_PASSWORD))
        assert isinstance(token, models.Token) and token.token_type == "Bearer"
        return clients.enter_context(client_module.AuthenticatedClient(base_url=server.url, token=token.access_token))

    admin, alice, bob = log_in("admin"), log_in("alice@example.com"), log_in("bob")
    assert api["get_current_user"].sync(client=alice).id == users["alice"].id

    # A deposit with an Idempotency-Key, and its replay: the same Transaction, nothing moves twice.
    movement = models.MoneyMovement(user_id=users["alice"].id, amount=1_000, description="welcome")
    first = api["deposit"].sync_detailed(client=admin, body=movement, idempotency_key="gen-deposit-1")
    replay = api["deposit"].sync_detailed(client=admin, body=movement, idempotency_key="gen-deposit-1")
    assert first.status_code == replay.status_code == 201
    assert replay.headers["idempotent-replayed"] == "true" and replay.parsed == first.parsed
    assert first.parsed.type_ == models.TransactionType.DEPOSIT
    assert first.headers["location"] == f"/transactions/{first.parsed.id}"

    moved = api["transfer"].sync(
        client=alice, body=models.Transfer(from_user_id=users["alice"].id, to_user_id=users["bob"].id, amount=300)
    )
    assert isinstance(moved, models.Transaction) and moved.type_ == models.TransactionType.TRANSFER
    assert api["get_balance"].sync(client=bob, user_id=users["bob"].id).balance == 300

    # History, one item a page, newest first; then the admin's filter by user and type.
    seen, cursor = [], generated("types").UNSET
    while True:
        page = api["list_transactions"].sync(client=alice, limit=1, cursor=cursor)
        seen += [item.id for item in page.items]
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert seen == [moved.id, first.parsed.id]
    filtered = api["list_transactions"].sync(
        client=admin, user_id=users["bob"].id, type_=models.TransactionType.TRANSFER
    )
    assert [item.id for item in filtered.items] == [moved.id]

    # A reversal with no body at all (its body is optional), read back by its Location.
    reversal = api["reverse_transaction"].sync_detailed(client=admin, transaction_id=moved.id)
    assert reversal.status_code == 201 and reversal.parsed.reverses == moved.id
    assert reversal.parsed.type_ == models.TransactionType.REVERSAL
    read = api["get_transaction"].sync(client=admin, transaction_id=reversal.headers["location"].rsplit("/", 1)[1])
    assert read == reversal.parsed

    # Typed errors: the code is an enum member, the details typed members.
    refused = api["withdraw"].sync(client=bob, body=models.MoneyMovement(user_id=users["bob"].id, amount=1_000_000))
    assert isinstance(refused, models.InsufficientFundsOrIdempotencyConflictError)
    assert refused.error.code == models.InsufficientFundsOrIdempotencyConflictErrorDetailCode.INSUFFICIENT_FUNDS
    assert (refused.error.details.balance, refused.error.details.requested) == (0, 1_000_000)

    to_self = models.Transfer(from_user_id=users["alice"].id, to_user_id=users["alice"].id, amount=1)
    invalid = api["transfer"].sync(client=alice, body=to_self)
    assert isinstance(invalid, models.ValidationErrorOrIdempotencyKeyReusedError)
    assert invalid.error.code == models.ValidationErrorOrIdempotencyKeyReusedErrorDetailCode.VALIDATION_ERROR
    assert invalid.error.details["to_user_id"] == ["must differ from from_user_id"]

    wrong = api["login"].sync(client=anonymous, body=models.Login(username="alice", password="wrong-password"))
    assert isinstance(wrong, models.InvalidCredentialsError)
    assert wrong.error.code == models.InvalidCredentialsErrorDetailCode.INVALID_CREDENTIALS

    # Logging out ends the token: the same client now reads a typed 401.
    assert api["logout"].sync_detailed(client=alice).status_code == 204
    gone = api["get_current_user"].sync_detailed(client=alice)
    assert gone.status_code == 401 and isinstance(gone.parsed, models.UnauthorizedError)
    assert gone.headers["www-authenticate"] == "Bearer"
