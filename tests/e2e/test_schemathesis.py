"""Contract fuzzing: Schemathesis drives a real server from /openapi.json, as a user and as an admin.

The server is gunicorn with two workers, on SQLite + memory or, with CREDIT_TEST_BACKEND=postgres,
on PostgreSQL + Redis. Every check Schemathesis has runs (`--checks all`: no 5xx, documented
statuses, content types, headers and bodies, negative data refused and positive data accepted,
authentication not ignored, an Allow header on every 405, ...) over every phase: examples,
boundary coverage, random fuzzing and stateful sequences that follow the ids and Location
headers responses hand out.

Every operation is fuzzed, those that end the caller's token too (logout, demoting or
deactivating oneself, a password change): the caller is a throwaway account of the run's role,
replaced whenever a 401 says it is gone (tests/e2e/schemathesis_hooks.py), so the run never
goes on as a dead token and never harms the accounts the test set up.

Knobs: CREDIT_FUZZ_MAX_EXAMPLES (per operation and phase) and CREDIT_FUZZ_SEED (fixed by
default, so a failure reproduces). The output and the JSON report land in test-artifacts/;
`make fuzz` runs this alone, longer.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections import Counter
from pathlib import Path

import pytest
import requests

from tests.helpers import DEFAULT_PASSWORD
from tests.servers import BIN, ServerProcess, ensure_admin, server_env

MAX_EXAMPLES = int(os.environ.get("CREDIT_FUZZ_MAX_EXAMPLES", "30"))
SEED = int(os.environ.get("CREDIT_FUZZ_SEED", "20240601"))
ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
ROLES = ("user", "admin")
# A schema-valid request the server rightly refuses with 422, for a rule its documentation can
# only describe (a cross-field or opaque-value rule): allowed there, and only there, by the
# positive-data check.
DESCRIBED_422 = {
    "listTransactions": "a cursor this server did not issue",
    "listUsers": "a cursor this server did not issue",
    "listEventDeliveries": "a cursor this server did not issue",
    "listNotifications": "a cursor this server did not issue",
    "listNotificationDeliveries": "a cursor this server did not issue",
    "updateNotificationPreferences": "turning off security email (API.md: it cannot be)",
    "transfer": "to_user_id equal to from_user_id, or a payee deactivated earlier in the run",
    "updateUser": "a new password of one's own without current_password",
    "listAuditEntries": "an action no known event type starts with, until not after since, or a foreign cursor",
    "verifyAuditChain": "from_sequence without from_hash or the other way round (a checkpoint is both)",
    "exportAuditTrail": "until not after since",
    # API.md: an inactive payee is 422, and the admin run deactivates users as it goes.
    **{operation_id: "a payee deactivated earlier in the run" for operation_id in ("deposit", "reverseTransaction")},
    **{
        operation_id: "a cursor this server did not issue"
        for operation_id in ("listWebhookEndpoints", "listWebhookDeliveries", "listPayments")
    },
    **{
        operation_id: "a URL that is not http(s) or does not resolve to public addresses only, or an unknown event type"
        for operation_id in ("createWebhookEndpoint", "updateWebhookEndpoint")
    },
    # Reports: a string that is no calendar date or IANA zone, `from` after `to`, more than 366
    # buckets, a time off the quarter hours, an `as_of` in the future (each described, 422).
    **{
        operation_id: "a date or zone the schema can only describe, or a range the rules refuse"
        for operation_id in (
            "getSummary",
            "getBalances",
            "getTopUsers",
            "getStatement",
            "getBalance",
            "getVolumesPanel",
        )
    },
}
# A schema-valid request refused with 400 for what no schema can hold: a payment provider's
# signature over the raw body, which the fuzzer cannot make.
DESCRIBED_400 = {"receiveStripeEvent": "a body not signed with the server's Stripe secret"}
ACCEPTED = ["2xx", "3xx", "401", "403", "404", "409", "429"]
# DELETE /users/{id} deactivates: the user stays readable (API.md), and an admin's PATCH may
# reactivate it; a stateful run reaching either after the DELETE is no use-after-free. The check
# is excluded for the whole run: `--checks all` on the command line outranks a per-operation
# `false` in the config file (a run failed on GET /users/{id} after DELETE with getUser's check
# off). The one resource a DELETE really removes, a webhook endpoint, is read back as a 404 in
# tests/modules/integrations/test_webhooks.py.
# Operations that end the caller's token when they succeed on the caller's own account.
SELF_HARM = ("POST /auth/logout", "PATCH /users/{user_id}", "DELETE /users/{user_id}")


@pytest.fixture
def fuzz_server(tmp_path, backend):
    database_url, cache_url = backend
    ensure_admin(database_url, tmp_path, cache_url)
    # Inbound payments configured, so their route answers (400 for the fuzzer's unsigned bodies).
    env = server_env(database_url, cache_url, tmp_path, CREDIT_STRIPE_WEBHOOK_SECRET="whsec_fuzz_0123456789abcdef")
    with ServerProcess(env, workers=2, threads=4, log_path=tmp_path / "server.log") as server:
        yield server


def _world(url: str) -> dict:
    """Users alice (funded), bob and carol, a deposit, and the admin's token (the funder)."""
    ids = {}
    for name in ("alice", "bob", "carol"):
        response = requests.post(
            url + "/users",
            json={"username": name, "email": f"{name}@example.com", "password": DEFAULT_PASSWORD},
            timeout=10,
        )
        assert response.status_code == 201, response.text
        ids[name] = response.json()["id"]
    login = requests.post(url + "/auth/login", json={"username": "admin", "password": DEFAULT_PASSWORD}, timeout=10)
    assert login.status_code == 200, login.text
    admin = {"Authorization": f"Bearer {login.json()['access_token']}"}
    ids["admin"] = requests.get(url + "/users/me", headers=admin, timeout=10).json()["id"]
    response = requests.post(
        url + "/wallet/deposit", json={"user_id": ids["alice"], "amount": 1_000_000}, headers=admin, timeout=10
    )
    assert response.status_code == 201, response.text
    return {"admin_token": login.json()["access_token"], "ids": ids, "deposit": response.json()["id"]}


def _config(world: dict) -> str:
    """Half of the generated ids are real ones, so requests get past 404 into the business rules;
    and what the schema cannot say, said per operation."""
    ids = world["ids"]
    lines = [
        f"[dictionaries.users]\nvalues = {json.dumps([ids[name] for name in ('alice', 'bob', 'carol', 'admin')])}",
        f"[dictionaries.transactions]\nvalues = {json.dumps([world['deposit']])}",
        '[dictionaries.modules]\nvalues = ["connection_api", "user_management", "wallet_module", '
        '"transactions_module", "integration_module", "notification_module"]',
        "[parameters]",
        *(
            f'"{key}" = {{ dictionary = "users", probability = 0.5 }}'
            for key in ("path.user_id", "query.user_id", "body.user_id", "body.from_user_id", "body.to_user_id")
        ),
        '"path.transaction_id" = { dictionary = "transactions", probability = 0.5 }',
        '"path.name" = { dictionary = "modules", probability = 0.5 }',
    ]
    for operation_id in sorted({*DESCRIBED_422, *DESCRIBED_400}):
        lines += ["[[operations]]", f'include-operation-id = "{operation_id}"']
        for status, described in (("422", DESCRIBED_422), ("400", DESCRIBED_400)):
            if operation_id in described:
                lines += [
                    f"# {described[operation_id]}",
                    f"checks.positive_data_acceptance.expected-statuses = {json.dumps([*ACCEPTED, status])}",
                ]
    return "\n".join(lines) + "\n"


@pytest.mark.e2e
@pytest.mark.timeout(900)
@pytest.mark.parametrize("role", ROLES)
def test_schemathesis_finds_no_contract_violation(fuzz_server, role, tmp_path, capsys):
    world = _world(fuzz_server.url)
    config = tmp_path / "schemathesis.toml"
    config.write_text(_config(world))
    accounts_log = tmp_path / "accounts.log"
    ARTIFACTS.mkdir(exist_ok=True)
    report_path = ARTIFACTS / f"schemathesis-{role}.json"
    report_path.unlink(missing_ok=True)
    command = [
        str(BIN / "st"),
        "--config-file",
        str(config),
        "run",
        f"{fuzz_server.url}/openapi.json",
        "--checks",
        "all",
        "--exclude-checks",
        "use_after_free",
        "--phases",
        "examples,coverage,fuzzing,stateful",
        "--max-examples",
        str(MAX_EXAMPLES),
        "--seed",
        str(SEED),
        "--workers",
        "1",  # 2+ threads trip a CPython 3.11 ast.parse race inside Hypothesis
        "--request-timeout",
        "10",
        "--no-shrink",
        "--report",
        "json,har",
        "--report-json-path",
        str(report_path),
        "--report-har-path",
        str(tmp_path / "schemathesis.har"),
    ]
    env = {
        **os.environ,
        **fuzz_server.env,  # the hooks build the server's own services from the same settings
        "NO_COLOR": "1",
        "PYTHONPATH": str(ROOT),
        "SCHEMATHESIS_HOOKS": "tests.e2e.schemathesis_hooks",
        "CREDIT_FUZZ_ROLE": role,
        "CREDIT_FUZZ_URL": fuzz_server.url,
        "CREDIT_FUZZ_FUNDER_TOKEN": world["admin_token"],
        "CREDIT_FUZZ_ACCOUNTS_LOG": str(accounts_log),
    }
    # In tmp_path: Schemathesis keeps a .schemathesis/ cache in its working directory.
    result = subprocess.run(command, capture_output=True, text=True, timeout=840, env=env, cwd=tmp_path)
    (ARTIFACTS / f"schemathesis-{role}.txt").write_text(result.stdout + result.stderr)
    assert report_path.exists(), result.stdout[-4000:] + result.stderr[-4000:]
    report = json.loads(report_path.read_text())

    operations, cases = report["operations"], report["test_cases"]
    failures = sum(failure["count"] for failure in report["failures"])
    har = json.loads((tmp_path / "schemathesis.har").read_text())
    entries = har["log"]["entries"]
    statuses = Counter(entry["response"]["status"] for entry in entries)
    accounts = accounts_log.read_text().split() if accounts_log.exists() else []
    summary = (
        f"schemathesis [{role}]: {operations['tested']} operations tested, {cases['generated']} cases, "
        f"{failures} failures ({cases['unique_failures']} unique), {len(report['errors'])} errors, "
        f"{len(accounts)} throwaway accounts, seed {report['seed']}, {report['running_time']:.0f}s; "
        "responses by status: " + ", ".join(f"{status}: {count}" for status, count in sorted(statuses.items()))
    )
    with capsys.disabled():
        print(f"\n{summary}")
    assert operations["tested"] == operations["selected"] == operations["total"] > 0, summary
    assert cases["generated"] > 0, summary
    assert result.returncode == 0 and not failures and not report["errors"], (
        f"{summary}\n{result.stdout[-8000:]}\n{result.stderr[-2000:]}"
    )
    # The operations that end the caller's token did succeed, and the run went on as a new account.
    succeeded = {
        f"{entry['request']['method']} {entry['request']['url']}"
        for entry in entries
        if 200 <= entry["response"]["status"] < 300
    }
    for name in SELF_HARM:
        method, path = name.split(" ")
        prefix = f"{method} {fuzz_server.url}{path.split('{')[0]}"
        assert any(request.startswith(prefix) for request in succeeded), (name, summary)
    assert len(accounts) > 1, summary
