"""Done when, as a new user tries it: `credit-system run` (what `make run` starts) with its
defaults, in a fresh instance folder. Register with an email and a phone, receive a transfer,
see it in the inbox, find the .eml under the instance folder, switch the topic off and get no
further message for it. A real server process with its in-process worker."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest
import requests

from tests import helpers
from tests.e2e.test_dev_server import stop, wait_live
from tests.servers import BIN, free_port

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]
PASSWORD = "correct-horse-battery"


def eventually(check):
    """A real server and worker: up to a minute."""
    return helpers.eventually(check, timeout=60.0, interval=0.2)


def mails_to(instance: Path, address: str) -> list[str]:
    folder = instance / "mail"
    texts = [path.read_text() for path in sorted(folder.glob("*.eml"))] if folder.exists() else []
    return [text for text in texts if f"To: {address}" in text]


def test_a_new_user_hears_of_a_transfer_and_can_turn_it_off(tmp_path):
    instance = tmp_path / "instance"
    # `make run`'s defaults: nothing set but where the instance folder is
    env = {k: v for k, v in os.environ.items() if not k.startswith("CREDIT_")}
    env["CREDIT_INSTANCE_PATH"] = str(instance)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen(
        [str(BIN / "credit-system"), "run", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        wait_live(url, proc)
        subprocess.run(
            [
                str(BIN / "credit-system"),
                "create-admin",
                "--username",
                "admin",
                "--email",
                "admin@example.com",
                "--password",
                PASSWORD,
            ],
            env=env,
            check=True,
            capture_output=True,
        )

        def token(username):
            response = requests.post(f"{url}/auth/login", json={"username": username, "password": PASSWORD}, timeout=10)
            return {"Authorization": f"Bearer {response.json()['access_token']}"}

        new = {"username": "newcomer", "email": "newcomer@example.com", "password": PASSWORD, "phone": "+4915112345678"}
        created = requests.post(f"{url}/users", json=new, timeout=10)
        assert created.status_code == 201 and created.json()["phone"] == "+4915112345678"
        newcomer = created.json()
        friend = requests.post(
            f"{url}/users", json={"username": "friend", "email": "friend@example.com", "password": PASSWORD}, timeout=10
        ).json()
        admin, me, them = token("admin"), token("newcomer"), token("friend")
        deposit = {"user_id": friend["id"], "amount": 100}
        assert requests.post(f"{url}/wallet/deposit", json=deposit, headers=admin, timeout=10).status_code == 201

        def send(amount):
            body = {"from_user_id": friend["id"], "to_user_id": newcomer["id"], "amount": amount}
            assert requests.post(f"{url}/transactions", json=body, headers=them, timeout=10).status_code == 201

        def inbox(headers):
            return requests.get(f"{url}/notifications", headers=headers, timeout=10).json()["items"]

        send(30)
        items = eventually(lambda: inbox(me))
        assert [(n["topic"], n["title"]) for n in items] == [("transfer_received", "You received 30 credits")]
        (mail,) = eventually(lambda: mails_to(instance, "newcomer@example.com"))
        assert "Subject: You received 30 credits" in mail and "friend sent you 30 credits" in mail

        def delivery_log():
            items = requests.get(f"{url}/notifications/deliveries", headers=me, timeout=10).json()["items"]
            return [(d["channel"], d["status"], d["to"]) for d in items]

        # the worker writes the .eml first and marks the delivery sent in the next transaction
        sent = [("email", "sent", "n***r@example.com")]
        assert eventually(lambda: delivery_log() == sent), delivery_log()

        off = {"topics": {"transfer_received": {"in_app": False, "email": False}}}
        assert requests.patch(f"{url}/notifications/preferences", json=off, headers=me, timeout=10).status_code == 200
        send(10)
        # friend's own notice of the second transfer shows the module has handled that event
        assert eventually(lambda: len([n for n in inbox(them) if n["topic"] == "transfer_sent"]) == 2)
        time.sleep(1)  # and any mail it could have queued would be out by now
        assert len(inbox(me)) == 1
        assert len(mails_to(instance, "newcomer@example.com")) == 1
    finally:
        _out, err = stop(proc)
    assert b"Traceback" not in err, err.decode()[-2000:]
