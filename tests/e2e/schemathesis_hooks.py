"""Schemathesis hooks for tests/e2e/test_schemathesis.py: every run calls as a throwaway account.

Schemathesis reuses the ids it sees (GET /users/me), so a run sends PATCH /users/{own id}
{"role": "user"}, DELETE /users/{own id} and POST /auth/logout with its own token, as any
client may. Each of those ends the token (the server bumps the user's token version or
revokes it), and every later request would be a 401. Schemathesis answers a 401 by asking
the auth provider again and replaying the request once; the provider here then makes a new
account of the run's role, so those operations are tested for real and the run goes on.

Accounts are written straight to the server's database (its settings come from the same
CREDIT_* environment) and their tokens signed with its key: no login, so the login throttle
the run itself trips cannot lock the provider out. A user is funded by a deposit through the
API with the admin token in CREDIT_FUZZ_FUNDER_TOKEN. Each account made is logged, one id a
line, to CREDIT_FUZZ_ACCOUNTS_LOG for the test to count.
"""

from __future__ import annotations

import os
import uuid

import requests
import schemathesis

from app import build_container
from app.config import load_settings
from app.services.users import USER_CREATED
from app.services.wallets import WalletService
from app.testing import cheap_passwords
from app.vocabulary import Role

ROLE = Role(os.environ["CREDIT_FUZZ_ROLE"])
URL = os.environ["CREDIT_FUZZ_URL"]
FUNDS = 1_000_000
KEY_MAX = 255  # Idempotency-Key's maxLength


class _Accounts:
    """The server's own services, built once; an account each time one is asked for."""

    def __init__(self) -> None:
        self.container = build_container(load_settings())
        self.container.passwords.override(cheap_passwords())
        # As the wallet module does in the server: a wallet in the transaction creating its user.
        self.container.database().bus.subscribe(USER_CREATED, WalletService.create_wallet)

    def new(self) -> str:
        name = f"fuzz-{ROLE.value}-{uuid.uuid4().hex[:12]}"
        user = self.container.user_service().register(name, f"{name}@example.com", uuid.uuid4().hex, role=ROLE.value)
        token, _ = self.container.tokens().issue(user.id, user.token_version)
        if ROLE is Role.USER:
            response = requests.post(
                URL + "/wallet/deposit",
                json={"user_id": user.id, "amount": FUNDS},
                headers={"Authorization": f"Bearer {os.environ['CREDIT_FUZZ_FUNDER_TOKEN']}"},
                timeout=10,
            )
            response.raise_for_status()
        with open(os.environ["CREDIT_FUZZ_ACCOUNTS_LOG"], "a") as log:
            log.write(user.id + "\n")
        return token


_accounts: _Accounts | None = None


@schemathesis.auth(refresh_interval=24 * 3600)  # replaced on a 401 only, never on a timer
class ThrowawayAccount:
    def get(self, case, context) -> str:
        global _accounts
        _accounts = _accounts or _Accounts()
        return _accounts.new()

    def set(self, case, data: str, context) -> None:
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {data}"}


@schemathesis.hook
def before_call(context, case, kwargs) -> None:
    """An Idempotency-Key is for one request: the fuzzer reuses its short keys ("0") with other
    bodies, which the server rightly refuses (422 idempotency_key_reused) and the positive-data
    check would count as a valid request refused. A key already invalid stays as generated."""
    key = (case.headers or {}).get("Idempotency-Key")
    if isinstance(key, str) and 1 <= len(key) <= KEY_MAX:
        # Still at most KEY_MAX long; a new dict, as generated cases may share one.
        unique = f"{key[: KEY_MAX - 33]}-{uuid.uuid4().hex}"
        case.headers = {**case.headers, "Idempotency-Key": unique}
