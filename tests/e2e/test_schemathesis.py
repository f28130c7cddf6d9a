"""Contract fuzzing: Schemathesis drives a real server from /openapi.json, as a user and as an admin.

The server is gunicorn with two workers, on SQLite + memory or, with CREDIT_TEST_BACKEND=postgres,
on PostgreSQL + Redis. Every generated request (examples, boundary coverage, random fuzzing and
stateful sequences) must get an answer that is not a 5xx, has a documented status code and
content type, and whose body matches the documented schema. Knobs: CREDIT_FUZZ_MAX_EXAMPLES (per
operation and phase, default 100) and CREDIT_FUZZ_SEED (default fixed, so a failure reproduces).
The Schemathesis output and its JSON report land in test-artifacts/; `make fuzz` runs this alone.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections import Counter
from pathlib import Path

import pytest
import requests

from app import build_container
from app.config import load_settings
from app.infrastructure.migrations import upgrade
from tests import backends
from tests.helpers import DEFAULT_PASSWORD
from tests.servers import BIN, ServerProcess, server_env

CHECKS = "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance"
MAX_EXAMPLES = int(os.environ.get("CREDIT_FUZZ_MAX_EXAMPLES", "100"))
SEED = int(os.environ.get("CREDIT_FUZZ_SEED", "20240601"))
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
BACKEND = os.environ.get("CREDIT_TEST_BACKEND", "sqlite")
FUZZ_REDIS_URL = backends.REDIS_URL.rsplit("/", 1)[0] + "/12"
# Schemathesis reuses ids it has seen (GET /users/me), so a run that may deactivate, demote or
# log out its own caller would answer 401/403 to everything after: those operations get runs
# of their own, as a second admin (logging out first would leave nothing else to test).
SELF_HARM = ["POST /auth/logout", "PATCH /users/{user_id}", "DELETE /users/{user_id}"]
RUNS = {
    "user": [arg for name in ("POST /auth/logout", "DELETE /users/{user_id}") for arg in ("--exclude-name", name)],
    "admin": [arg for name in SELF_HARM for arg in ("--exclude-name", name)],
    "accounts": ["--include-name", "PATCH /users/{user_id}", "--include-name", "DELETE /users/{user_id}"],
    "logout": ["--include-name", "POST /auth/logout"],
}


@pytest.fixture
def backend(tmp_path):
    """(database_url, cache_url): SQLite + memory, or with CREDIT_TEST_BACKEND=postgres a fresh
    PostgreSQL database and a Redis database of its own, as in production."""
    if BACKEND != "postgres":
        database_url = f"sqlite:///{tmp_path / 'credit.sqlite3'}"
        upgrade(database_url)
        yield database_url, "memory://"
        return
    with backends.throwaway_postgres(FUZZ_REDIS_URL) as database_url:
        yield database_url, FUZZ_REDIS_URL


@pytest.fixture
def fuzz_server(tmp_path, backend):
    database_url, cache_url = backend
    container = build_container(
        load_settings(
            environ={},
            database_url=database_url,
            cache_url=cache_url,
            instance_path=str(tmp_path),
            secret_key="unused-here",
        )
    )
    for name in ("admin", "root"):
        container.user_service().ensure_admin(name, f"{name}@example.com", DEFAULT_PASSWORD)
    container.database().dispose()
    container.cache().close()
    env = server_env(database_url, cache_url, tmp_path)
    with ServerProcess(env, workers=2, threads=4, log_path=tmp_path / "server.log") as server:
        yield server


def _token(url: str, username: str) -> str:
    response = requests.post(url + "/auth/login", json={"username": username, "password": DEFAULT_PASSWORD}, timeout=10)
    assert response.status_code == 200, response.text
    return response.json()["access_token"]


def _world(url: str) -> dict:
    """Users alice (funded), bob and carol, a deposit, and tokens for each run's caller."""
    ids = {}
    for name in ("alice", "bob", "carol"):
        response = requests.post(
            url + "/users",
            json={"username": name, "email": f"{name}@example.com", "password": DEFAULT_PASSWORD},
            timeout=10,
        )
        assert response.status_code == 201, response.text
        ids[name] = response.json()["id"]
    tokens = {
        "admin": _token(url, "admin"),
        "user": _token(url, "alice"),
        "accounts": _token(url, "root"),
        "logout": _token(url, "root"),
    }
    admin = {"Authorization": f"Bearer {tokens['admin']}"}
    ids["admin"] = requests.get(url + "/users/me", headers=admin, timeout=10).json()["id"]
    response = requests.post(
        url + "/wallet/deposit", json={"user_id": ids["alice"], "amount": 1_000_000}, headers=admin, timeout=10
    )
    assert response.status_code == 201, response.text
    return {"tokens": tokens, "ids": ids, "deposit": response.json()["id"]}


def _config(world: dict, role: str) -> str:
    """Half of the generated ids are real ones, so requests get past 404 into the business rules.

    The accounts run must not learn its own caller's id (from responses or links): it would
    deactivate or demote itself and be answered 401 from then on."""
    ids = world["ids"]
    lines = [
        f"[dictionaries.users]\nvalues = {json.dumps([ids[name] for name in ('alice', 'bob', 'carol', 'admin')])}",
        f"[dictionaries.transactions]\nvalues = {json.dumps([world['deposit']])}",
        '[dictionaries.modules]\nvalues = ["connection_api", "user_management", "wallet_module", '
        '"transactions_module"]',
        "[parameters]",
        *(
            f'"{key}" = {{ dictionary = "users", probability = 0.5 }}'
            for key in ("path.user_id", "query.user_id", "body.user_id", "body.from_user_id", "body.to_user_id")
        ),
        '"path.transaction_id" = { dictionary = "transactions", probability = 0.5 }',
        '"path.name" = { dictionary = "modules", probability = 0.5 }',
    ]
    if role == "accounts":
        lines += [f"[phases.{phase}.extra-data-sources]\nresponses = false" for phase in ("coverage", "fuzzing")]
        lines += ["[phases.stateful]\nenabled = false"]
    return "\n".join(lines) + "\n"


@pytest.mark.e2e
@pytest.mark.timeout(900)
@pytest.mark.parametrize("role", list(RUNS))
def test_schemathesis_finds_no_contract_violation(fuzz_server, role, tmp_path, capsys):
    world = _world(fuzz_server.url)
    token = world["tokens"][role]
    config = tmp_path / "schemathesis.toml"
    config.write_text(_config(world, role))
    ARTIFACTS.mkdir(exist_ok=True)
    report_path = ARTIFACTS / f"schemathesis-{role}.json"
    report_path.unlink(missing_ok=True)
    command = [
        str(BIN / "st"),
        "--config-file",
        str(config),
        "run",
        f"{fuzz_server.url}/openapi.json",
        "--header",
        f"Authorization: Bearer {token}",
        "--checks",
        CHECKS,
        "--max-examples",
        str(MAX_EXAMPLES),
        "--seed",
        str(SEED),
        "--workers",
        "1",  # 2+ threads trip a CPython 3.11 ast.parse race inside Hypothesis
        "--request-timeout",
        "10",
        "--no-shrink",
        *RUNS[role],
        "--report",
        "json,har",
        "--report-json-path",
        str(report_path),
        "--report-har-path",
        str(tmp_path / "schemathesis.har"),
    ]
    env = {key: value for key, value in os.environ.items() if key != "SCHEMATHESIS_HOOKS"} | {"NO_COLOR": "1"}
    # In tmp_path: Schemathesis keeps a .schemathesis/ cache in its working directory.
    result = subprocess.run(command, capture_output=True, text=True, timeout=840, env=env, cwd=tmp_path)
    (ARTIFACTS / f"schemathesis-{role}.txt").write_text(result.stdout + result.stderr)
    assert report_path.exists(), result.stdout[-4000:] + result.stderr[-4000:]
    report = json.loads(report_path.read_text())

    operations, cases = report["operations"], report["test_cases"]
    failures = sum(failure["count"] for failure in report["failures"])
    har = json.loads((tmp_path / "schemathesis.har").read_text())
    statuses = Counter(entry["response"]["status"] for entry in har["log"]["entries"])
    summary = (
        f"schemathesis [{role}]: {operations['tested']} operations tested, {cases['generated']} cases, "
        f"{failures} failures ({cases['unique_failures']} unique), {len(report['errors'])} errors, "
        f"seed {report['seed']}, {report['running_time']:.0f}s; responses by status: "
        + ", ".join(f"{status}: {count}" for status, count in sorted(statuses.items()))
    )
    with capsys.disabled():
        print(f"\n{summary}")
    assert operations["tested"] == operations["selected"] > 0, summary
    assert cases["generated"] > 0, summary
    assert result.returncode == 0 and not failures and not report["errors"], (
        f"{summary}\n{result.stdout[-8000:]}\n{result.stderr[-2000:]}"
    )
    if role != "logout":  # the run kept its caller: it was not answered 401 from some point on
        me = requests.get(fuzz_server.url + "/users/me", headers={"Authorization": f"Bearer {token}"}, timeout=10)
        assert me.status_code == 200 and me.json()["role"] == ("user" if role == "user" else "admin"), me.text
