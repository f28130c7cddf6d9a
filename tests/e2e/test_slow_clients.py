"""Slow clients must not freeze the production setups `credit-system serve` documents.

Fifty connections each send a request line and then one header line a second, never
finishing their headers (slowloris). With sync workers alone (serve's default), two such
connections hold both workers of a 2-worker server until gunicorn kills them (30 s): the
control case below shows the attack landing. The production setup is sync workers behind
the nginx configuration `credit-system nginx-config` prints, which reads every request whole
before `serve` sees it; gevent workers (credit-system[gevent]) give each connection a
greenlet instead. Behind either, health checks and transfers keep answering.
"""

from __future__ import annotations

import socket
import threading
import time
import uuid
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests

from app import build_container
from app.config import load_settings
from app.infrastructure.migrations import upgrade
from tests.backends import IN_CI
from tests.helpers import DEFAULT_PASSWORD
from tests.servers import NGINX, NginxProcess, ServerProcess, server_env

SLOW_CLIENTS = 50
MEASURE_SECONDS = 8
P99_LIMIT = 1.0
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


class Tricklers:
    """SLOW_CLIENTS slow connections, each sending one more header line a second, from one thread.

    Like a real attacker, a connection the server closes is replaced at once by a new one
    (gevent workers drop a request whose headers are not complete within the keep-alive
    time, 5 s). `open_per_round` records, each second, how many were connected and still
    unanswered after that round's sends.
    """

    def __init__(self, port: int) -> None:
        self.port = port
        self.sockets = [self._connect() for _ in range(SLOW_CLIENTS)]
        self.open_per_round: list[int] = []
        self.reconnects = 0
        self.answered = 0  # bytes the server sent on a slow connection: it must send none
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._trickle, daemon=True)

    def _connect(self) -> socket.socket:
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=5)
        sock.sendall(b"GET /livez HTTP/1.1\r\nHost: slow\r\n")
        return sock

    def _closed(self, sock: socket.socket) -> bool:
        """True once the server closed (or answered) this connection."""
        sock.setblocking(False)
        try:
            data = sock.recv(4096)
        except BlockingIOError:
            return False  # open, nothing received
        except OSError:
            return True
        finally:
            sock.settimeout(5)
        self.answered += len(data)
        return True

    def _trickle(self) -> None:
        n = 0
        while not self._stop.wait(1.0):
            n += 1
            open_now = 0
            for i, sock in enumerate(self.sockets):
                try:
                    if not self._closed(sock):
                        sock.sendall(f"X-Slow-{n}: a\r\n".encode())
                        open_now += 1
                        continue
                except OSError:
                    pass
                sock.close()
                self.sockets[i] = self._connect()
                self.reconnects += 1
                open_now += 1
            self.open_per_round.append(open_now)

    def __enter__(self) -> Tricklers:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        for sock in self.sockets:
            sock.close()


def require_nginx() -> None:
    if not Path(NGINX).exists():
        message = f"nginx is not installed at {NGINX} (Debian: apt-get install nginx)"
        if IN_CI:
            pytest.fail(message, pytrace=False)
        pytest.skip(message)


@pytest.fixture
def server_env_with_admin(tmp_path) -> dict[str, str]:
    database_url = f"sqlite:///{tmp_path / 'credit.sqlite3'}"
    upgrade(database_url)
    env = server_env(database_url, "memory://", tmp_path)
    settings = load_settings(environ={}, **{k.removeprefix("CREDIT_").lower(): v for k, v in env.items()})
    container = build_container(settings)
    container.user_service().ensure_admin("root", "root@example.com", DEFAULT_PASSWORD)
    container.database().dispose()
    return env


@contextmanager
def setup(kind: str, env: dict[str, str], tmp_path: Path):
    """(url, port) clients connect to: "nginx" (the shipped proxy config in front of 2 sync
    workers), "gevent" (2 gevent workers alone) or "sync" (2 sync workers alone)."""
    worker_class = "gevent" if kind == "gevent" else "sync"
    log = tmp_path / "server.log"
    with ServerProcess(env, workers=2, threads=1, log_path=log, worker_class=worker_class) as server:
        if kind != "nginx":
            yield server.url, server.port
            return
        with NginxProcess(f"127.0.0.1:{server.port}", tmp_path / "nginx") as nginx:
            yield nginx.url, nginx.port


def timed(call) -> tuple[float, int]:
    started = time.monotonic()
    try:
        status = call()
    except requests.RequestException:
        status = 0
    return time.monotonic() - started, status


@pytest.mark.e2e
@pytest.mark.parametrize("kind", ["nginx", "gevent"])
def test_fifty_trickling_connections_do_not_stall_health_checks_or_transfers(kind, server_env_with_admin, tmp_path):
    if kind == "nginx":
        require_nginx()
    with setup(kind, server_env_with_admin, tmp_path) as (url, port):
        samples, during, answered = measure_under_attack(url, port)
    # The attack really was on during the measurement: each second, all fifty slow
    # connections were open and had sent one more line, and none was ever answered.
    assert len(during) >= MEASURE_SECONDS - 1 and set(during) == {SLOW_CLIENTS}, during
    assert answered == 0

    statuses = [status for _, status in samples]
    assert statuses.count(200) + statuses.count(201) == len(samples), sorted(set(statuses))
    latencies = sorted(seconds for seconds, _ in samples)
    p50, p99 = (latencies[min(len(latencies) - 1, int(len(latencies) * q))] for q in (0.5, 0.99))
    line = (
        f"{kind}: {SLOW_CLIENTS} slow connections open; {len(samples)} requests (/livez and transfers "
        f"alternately) in {MEASURE_SECONDS} s, all answered; p50 {p50 * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms, "
        f"max {latencies[-1] * 1000:.1f} ms"
    )
    print(line)  # the README quotes these lines (pytest -s, or test-artifacts/)
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / f"slow_clients_{kind}.txt").write_text(line + "\n")
    assert len(samples) >= 20 and p99 < P99_LIMIT, (len(samples), p99, latencies[-5:])


@pytest.mark.e2e
def test_the_same_attack_stalls_sync_workers_without_the_proxy(server_env_with_admin, tmp_path):
    """The control: what the test above would see if the proxy did not buffer."""
    with setup("sync", server_env_with_admin, tmp_path) as (url, port), Tricklers(port):
        time.sleep(2)
        with pytest.raises(requests.Timeout):
            requests.get(url + "/livez", timeout=3, headers={"Connection": "close"})


def measure_under_attack(url: str, port: int) -> tuple[list[tuple[float, int]], list[int], int]:
    """(seconds and status of each request, open slow connections each second, bytes answered to them)."""
    http = requests.Session()

    def post(path: str, body: dict, token: str | None = None) -> requests.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return http.post(url + path, json=body, headers=headers, timeout=5)

    users = []
    for name in ("payer", "payee"):
        users.append(post("/users", {"username": name, "email": f"{name}@example.com", "password": DEFAULT_PASSWORD}))
    payer, payee = (response.json()["id"] for response in users)
    admin = post("/auth/login", {"username": "root", "password": DEFAULT_PASSWORD}).json()["access_token"]
    assert post("/wallet/deposit", {"user_id": payer, "amount": 1_000_000}, admin).status_code == 201
    token = post("/auth/login", {"username": "payer", "password": DEFAULT_PASSWORD}).json()["access_token"]

    def livez() -> int:
        # A new connection each time: the server must still accept and serve new clients.
        return requests.get(url + "/livez", timeout=5, headers={"Connection": "close"}).status_code

    def transfer() -> int:
        headers = {"Authorization": f"Bearer {token}", "Idempotency-Key": uuid.uuid4().hex}
        body = {"from_user_id": payer, "to_user_id": payee, "amount": 1}
        return requests.post(url + "/transactions", json=body, headers=headers, timeout=5).status_code

    with Tricklers(port) as slow:
        time.sleep(2)  # every slow connection accepted and stuck in its headers
        rounds_before = len(slow.open_per_round)
        samples: list[tuple[float, int]] = []
        deadline = time.monotonic() + MEASURE_SECONDS
        while time.monotonic() < deadline:
            samples.append(timed(livez))
            samples.append(timed(transfer))
        during = slow.open_per_round[rounds_before:]
    return samples, during, slow.answered
