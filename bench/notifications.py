"""`python -m bench.notifications`: emails sent per second by one worker to a local SMTP server.

The embedded default (a SQLite database and a SQLite queue in a scratch instance folder),
with `CREDIT_MAIL_URL` pointing at an aiosmtpd server in this process on loopback. N users
each get a deposit; their `deposit` notifications are handled (rows written, N send tasks
queued) before any worker runs, then one `credit-system worker` process (the default 2
threads) sends them. The rate is taken between the first and the last `sent_at` the
database recorded, so the worker's start-up is not in it; the SMTP server's count of
messages received is printed beside it.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from aiosmtpd.controller import Controller
from sqlalchemy import func, select

from app import build_container, create_app
from app.config import load_settings
from app.infrastructure.tables_notifications import NotificationDelivery
from bench.seed import PASSWORD, SECRET_KEY

BIN = Path(sys.executable).parent
ROOT = Path(__file__).resolve().parent.parent


class Counting:
    def __init__(self) -> None:
        self.received = 0

    async def handle_DATA(self, server, session, envelope) -> str:  # noqa: N802 - aiosmtpd's name
        self.received += 1
        return "250 OK"


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def prepare(env: dict[str, str], users: int) -> None:
    """Users, a deposit each, the notifications handled: N queued sends, no worker yet."""
    from app.testing import cheap_passwords

    settings = load_settings(environ=env)
    subprocess.run([str(BIN / "credit-system"), "db", "upgrade"], env=env, check=True, capture_output=True)
    container = build_container(settings)
    container.passwords.override(cheap_passwords())
    app = create_app(settings, container=container)
    admin, _ = container.user_service().ensure_admin("bench-admin", "bench-admin@example.com", PASSWORD)
    client = app.test_client()
    token = client.post("/auth/login", json={"username": "bench-admin", "password": PASSWORD}).get_json()
    headers = {"Authorization": f"Bearer {token['access_token']}"}
    for n in range(users):
        user = container.user_service().register(f"u{n}", f"u{n}@example.com", PASSWORD)
        response = client.post("/wallet/deposit", json={"user_id": user.id, "amount": 500}, headers=headers)
        assert response.status_code == 201, response.get_json()
    container.event_backbone().deliver_pending()
    app.module_manager.shutdown()


def sent_times(env: dict[str, str]) -> tuple[int, float | None, float | None]:
    settings = load_settings(environ=env)
    from sqlalchemy import create_engine

    engine = create_engine(settings.database_url)
    d = NotificationDelivery
    with engine.connect() as conn:
        count, first, last = conn.execute(
            select(func.count(), func.min(d.sent_at), func.max(d.sent_at)).where(d.status == "sent")
        ).one()
    engine.dispose()
    return count, _seconds(first), _seconds(last)


def _seconds(value) -> float | None:
    """A sent_at read back without the model's type: SQLite gives text, PostgreSQL a datetime."""
    if value is None:
        return None
    if isinstance(value, str):
        from datetime import datetime

        value = datetime.fromisoformat(value)
    return value.timestamp()


def run(users: int) -> dict:
    workdir = Path(tempfile.mkdtemp(prefix="credit-bench-notifications-"))
    handler = Counting()
    port = free_port()
    smtp = Controller(handler, hostname="127.0.0.1", port=port)
    smtp.start()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CREDIT_")}
    env.update(
        PYTHONPATH=str(ROOT),
        CREDIT_INSTANCE_PATH=str(workdir),
        CREDIT_SECRET_KEY=SECRET_KEY,
        CREDIT_MAIL_URL=f"smtp://127.0.0.1:{port}",
        CREDIT_REGISTRATIONS_PER_ADDRESS="1000000",
    )
    try:
        prepare(env, users)
        with open(workdir / "worker.log", "ab") as log:
            worker = subprocess.Popen(
                [str(BIN / "credit-system"), "worker"],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        started = time.monotonic()
        try:
            while time.monotonic() - started < 600:
                count, first, last = sent_times(env)
                if count >= users:
                    break
                time.sleep(0.2)
        finally:
            os.killpg(worker.pid, signal.SIGTERM)
            worker.wait(timeout=60)
        count, first, last = sent_times(env)
    finally:
        smtp.stop()
    span = (last - first) if first and last else 0.0
    return {
        "users": users,
        "queued": users,
        "sent": count,
        "received": handler.received,
        "span_seconds": span,
        "per_second": (count - 1) / span if span > 0 else None,
        "workdir": str(workdir),
    }


def report(result: dict) -> None:
    rate = result["per_second"]
    print(
        f"notifications: {result['sent']} of {result['queued']} emails sent by one worker (2 threads) to aiosmtpd on "
        f"loopback, SQLite database and queue; SMTP server received {result['received']}; "
        f"{result['span_seconds']:.2f} s from the first to the last sent: "
        + (f"{rate:.0f} emails/s" if rate else "rate not measurable")
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=300, help="deposits, hence emails, to send")
    args = parser.parse_args()
    report(run(args.users))
    return 0


if __name__ == "__main__":
    sys.exit(main())
