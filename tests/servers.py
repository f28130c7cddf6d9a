"""Real server processes for end-to-end tests: gunicorn (or the dev server) on a free port,
and the admin their clients log in as."""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests

from app import build_container
from app.config import load_settings
from tests.helpers import DEFAULT_PASSWORD, METRICS_TOKEN

BIN = Path(sys.executable).parent
ROOT = Path(__file__).resolve().parent.parent  # on PYTHONPATH for workers: test modules load from tests/


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ServerProcess:
    """`credit-system serve` in its own process group, stopped (gracefully) by stop()."""

    def __init__(
        self,
        env: dict[str, str],
        workers: int = 2,
        threads: int = 4,
        log_path: Path | None = None,
        command: str = "serve",
        worker_class: str | None = None,
        extra_args: list[str] | None = None,
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {**os.environ, **env}
        self.workers, self.threads, self.worker_class = workers, threads, worker_class
        self.command = command
        self.extra_args = extra_args or []
        self.log_path = log_path
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 30) -> ServerProcess:
        if self.command == "serve":
            args = [
                str(BIN / "credit-system"),
                "serve",
                "--bind",
                f"127.0.0.1:{self.port}",
                "--workers",
                str(self.workers),
                "--threads",
                str(self.threads),
                *(["--worker-class", self.worker_class] if self.worker_class else []),
                *self.extra_args,
            ]
        else:
            args = [str(BIN / "credit-system"), "run", "--host", "127.0.0.1", "--port", str(self.port)]
        log = open(self.log_path, "ab") if self.log_path else None
        try:
            proc = self.proc = subprocess.Popen(
                args, env=self.env, stdout=log or subprocess.DEVNULL, stderr=subprocess.STDOUT, start_new_session=True
            )
        finally:
            if log:
                log.close()  # the child holds its own descriptor
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"server exited with {proc.returncode}; log: {self.log_path}")
            try:
                if requests.get(self.url + "/livez", timeout=1).status_code == 200:
                    return self
            except requests.RequestException:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"server did not come up in {timeout}s; log: {self.log_path}")

    def worker_pids(self) -> list[int]:
        assert self.proc is not None, "not started"
        out = subprocess.run(["pgrep", "-P", str(self.proc.pid)], capture_output=True, text=True).stdout
        return [int(p) for p in out.split()]

    def stop(self, timeout: float = 30) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            return self.proc.wait()

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


class WorkerProcess:
    """`credit-system worker` in its own process group: kill() it, or stop() it with SIGTERM."""

    def __init__(self, env: dict[str, str], concurrency: int = 2, log_path: Path | None = None) -> None:
        self.env = {**os.environ, "PYTHONPATH": str(ROOT), **env}
        self.concurrency = concurrency
        self.log_path = log_path
        self.proc: subprocess.Popen | None = None

    def start(self) -> WorkerProcess:
        log = open(self.log_path, "ab") if self.log_path else None
        try:
            self.proc = subprocess.Popen(
                [str(BIN / "credit-system"), "worker", "--concurrency", str(self.concurrency)],
                env=self.env,
                stdout=log or subprocess.DEVNULL,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        finally:
            if log:
                log.close()
        return self

    def kill(self) -> None:
        """SIGKILL: no batch finishes, no lease is released."""
        assert self.proc is not None, "not started"
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def stop(self, timeout: float = 30) -> int | None:
        """SIGTERM and wait; its exit status."""
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
            return None

    def __enter__(self) -> WorkerProcess:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


NGINX = os.environ.get("CREDIT_TEST_NGINX") or shutil.which("nginx") or "/usr/sbin/nginx"
NGINX_MAIN = """\
daemon off;
worker_processes 1;
{user}pid {root}/nginx.pid;
error_log {root}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {root}/body;
    proxy_temp_path {root}/proxy;
    fastcgi_temp_path {root}/fastcgi;
    uwsgi_temp_path {root}/uwsgi;
    scgi_temp_path {root}/scgi;
    include {root}/credit-system.conf;
}}
"""


class NginxProcess:
    """A real nginx in front of `upstream` (host:port), configured by `credit-system nginx-config`.

    What that command prints is included unchanged in a main file of the test's own (its
    paths in `root`, in the foreground), as /etc/nginx/nginx.conf includes conf.d/.
    """

    def __init__(self, upstream: str, root: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.root = root
        self.proc: subprocess.Popen | None = None
        printed = subprocess.run(
            [str(BIN / "credit-system"), "nginx-config", "--upstream", upstream, "--listen", f"127.0.0.1:{self.port}"],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        ).stdout
        root.mkdir(parents=True, exist_ok=True)
        (root / "credit-system.conf").write_text(printed)
        # As root, nginx's worker would switch to `nobody`, which cannot write to pytest's 0700 folders.
        user = f"user {pwd.getpwuid(os.geteuid()).pw_name};\n" if os.geteuid() == 0 else ""
        (root / "nginx.conf").write_text(NGINX_MAIN.format(root=root, user=user))

    def start(self, timeout: float = 15) -> NginxProcess:
        args = [NGINX, "-p", str(self.root), "-e", str(self.root / "error.log"), "-c", str(self.root / "nginx.conf")]
        check = subprocess.run([*args, "-t"], capture_output=True, text=True, timeout=30)
        assert check.returncode == 0, check.stderr
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"nginx exited with {self.proc.returncode}; log: {self.root / 'error.log'}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"nginx did not listen in {timeout}s; log: {self.root / 'error.log'}")

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGQUIT)  # graceful: in-flight requests finish
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def __enter__(self) -> NginxProcess:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def server_env(database_url: str, cache_url: str, instance_path: Path, **extra: str) -> dict[str, str]:
    env = {
        "CREDIT_DATABASE_URL": database_url,
        "CREDIT_CACHE_URL": cache_url,
        "CREDIT_SECRET_KEY": "e2e-secret-key-0123456789abcdef0123",
        "CREDIT_INSTANCE_PATH": str(instance_path),
        "CREDIT_METRICS_TOKEN": METRICS_TOKEN,
        # Every client of these servers is 127.0.0.1 and workloads register dozens of users;
        # the sign-up limit has tests of its own (tests/api/test_login_throttling.py).
        "CREDIT_REGISTRATIONS_PER_ADDRESS": "100000",
    }
    env.update(extra)
    return env


def ensure_admin(database_url: str, instance_path: Path, cache_url: str = "memory://") -> None:
    """Create the `admin` user (password DEFAULT_PASSWORD) in the servers' database."""
    container = build_container(
        load_settings(
            environ={},
            database_url=database_url,
            cache_url=cache_url,
            instance_path=str(instance_path),
            secret_key="unused-here-0123456789abcdef012345",
        )
    )
    try:
        container.user_service().ensure_admin("admin", "admin@example.com", DEFAULT_PASSWORD)
    finally:
        container.database().dispose()
