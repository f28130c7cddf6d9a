"""`credit-system run` (and `make run`) as a newcomer starts it: on a terminal one plain line says
where it serves; read by a program, its output stays JSON log lines, which also warn about a
misspelled CREDIT_* variable."""

from __future__ import annotations

import json
import os
import pty
import select
import signal
import subprocess
import time
from pathlib import Path

import pytest
import requests

from tests.servers import BIN, free_port

ROOT = Path(__file__).resolve().parents[2]


def dev_server(tmp_path: Path, port: int, stdout, **extra: str) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CREDIT_")}
    env.update(
        CREDIT_DATABASE_URL=f"sqlite:///{tmp_path / 'credit.sqlite3'}",
        CREDIT_INSTANCE_PATH=str(tmp_path),
        CREDIT_SECRET_KEY="dev-server-secret-key-0123456789abcdef",
        **extra,
    )
    return subprocess.Popen(
        [str(BIN / "credit-system"), "run", "--port", str(port)],
        env=env,
        stdout=stdout,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )


def wait_live(url: str, proc: subprocess.Popen, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the server exited"
        try:
            if requests.get(url + "/livez", timeout=1).status_code == 200:
                return
        except requests.RequestException:
            time.sleep(0.1)
    raise AssertionError("the server did not come up")


def stop(proc: subprocess.Popen) -> tuple[bytes, bytes]:
    """Stop the server; what it wrote on stdout (if piped) and stderr."""
    os.killpg(proc.pid, signal.SIGTERM)
    out, err = proc.communicate(timeout=30)
    return out or b"", err


def read_terminal(fd: int, until: bytes, timeout: float = 30) -> bytes:
    seen = b""
    deadline = time.monotonic() + timeout
    while until not in seen and time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            seen += os.read(fd, 4096)
    return seen


@pytest.mark.e2e
def test_on_a_terminal_one_plain_line_says_where_it_serves(tmp_path):
    port = free_port()
    terminal, terminal_side = pty.openpty()
    proc = dev_server(tmp_path, port, terminal_side)
    os.close(terminal_side)
    try:
        seen = read_terminal(terminal, b"\n")
    finally:
        stop(proc)
        os.close(terminal)
    url = f"http://127.0.0.1:{port}"
    assert seen.decode().splitlines() == [f"Serving on {url} (docs: {url}/docs)"]


@pytest.mark.e2e
def test_read_by_a_program_its_output_is_json_lines_only(tmp_path):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = dev_server(tmp_path, port, subprocess.PIPE, CREDIT_DATABSE_URL="sqlite:////elsewhere.sqlite3")
    try:
        wait_live(url, proc)
    finally:
        out, err = stop(proc)
    assert out == b""
    records = [json.loads(line) for line in err.decode().splitlines()]  # every line is one JSON object
    messages = {(r["level"], r["message"]) for r in records}
    assert ("INFO", f"development server on {url} (for production: credit-system serve)") in messages
    assert (
        "WARNING",
        "unknown variable CREDIT_DATABSE_URL is ignored (did you mean CREDIT_DATABASE_URL?)",
    ) in messages
    assert not any("\x1b[" in r["message"] for r in records)  # no terminal colour codes


def test_make_run_takes_the_port_and_host_from_the_command_line():
    dry_run = subprocess.run(
        ["make", "--dry-run", "--no-print-directory", "run", "PORT=8123", "HOST=0.0.0.0"],
        cwd=ROOT,
        env={**os.environ, "HOST": "not-this-one", "PORT": "1"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert dry_run.returncode == 0, dry_run.stderr
    commands = [line for line in dry_run.stdout.splitlines() if "credit-system run" in line]
    assert commands == [".venv/bin/credit-system run --host 0.0.0.0 --port 8123"]
