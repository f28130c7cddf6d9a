"""`credit-system serve` with several gunicorn workers: /metrics adds up every worker's requests,
whichever worker answers the scrape; SIGTERM lets an in-flight request finish and exits 0."""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from app.infrastructure.migrations import upgrade
from tests.helpers import METRICS_TOKEN, bearer
from tests.servers import ServerProcess, server_env

REPO_ROOT = Path(__file__).resolve().parents[2]
LIVEZ_REQUESTS = 60
GRACEFUL_TIMEOUT = 30  # app.serving's graceful_timeout


def livez_count(url: str) -> float:
    """credit_http_requests_total summed over every /livez series, from one scrape."""
    response = requests.get(url + "/metrics", timeout=10, headers=bearer(METRICS_TOKEN))
    assert response.status_code == 200
    return sum(
        sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
        if sample.name == "credit_http_requests_total" and sample.labels["route"] == "/livez"
    )


def fresh_get(url: str) -> int:
    """One GET on its own connection (no session), so any worker may accept it."""
    return requests.get(url, timeout=10, headers={"Connection": "close"}).status_code


@pytest.mark.e2e
@pytest.mark.parametrize("worker_class", [None, "gevent"], ids=["sync", "gevent"])
def test_metrics_add_up_across_workers_and_sigterm_is_graceful(tmp_path, worker_class):
    database_url = f"sqlite:///{tmp_path / 'credit.sqlite3'}"
    upgrade(database_url)
    private_tmp = tmp_path / "tmp"  # where `serve` makes its metrics dir, so the test can look at it
    private_tmp.mkdir()
    env = server_env(
        database_url,
        "memory://",
        tmp_path,
        TMPDIR=str(private_tmp),
        PYTHONPATH=str(REPO_ROOT),
        CREDIT_MODULES_EXTRA="tests.e2e.slow_module:SlowModule",
    )
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    server = ServerProcess(
        env, workers=3, threads=1, log_path=tmp_path / "server.log", worker_class=worker_class
    ).start()
    try:
        (metrics_dir,) = private_tmp.glob("credit-metrics-*")
        # A sync worker accepts only while idle: three overlapping slow requests land on
        # three different workers, so every worker has counters of its own to add up (a
        # gevent worker accepts while busy; the fresh connections below still spread).
        with ThreadPoolExecutor(max_workers=3) as pool:
            assert list(pool.map(fresh_get, [server.url + "/slow?seconds=1"] * 3)) == [200] * 3
        before = livez_count(server.url)  # start() polled /livez: those count too
        with ThreadPoolExecutor(max_workers=6) as pool:  # concurrent, so sync workers share them
            statuses = list(pool.map(fresh_get, [server.url + "/livez"] * LIVEZ_REQUESTS))
        assert statuses == [200] * LIVEZ_REQUESTS
        counts = [livez_count(server.url) - before for _ in range(12)]
        assert counts == [LIVEZ_REQUESTS] * 12
        writers = {path.stem.rsplit("_", 1)[1] for path in metrics_dir.glob("histogram_*.db")}  # request latencies
        assert len(writers) >= 2, f"only worker(s) {writers} served; the sum proved nothing"

        slow: dict = {}
        request = threading.Thread(
            target=lambda: slow.update(status=requests.get(server.url + "/slow?seconds=2", timeout=30).status_code)
        )
        request.start()
        time.sleep(0.5)  # let a worker pick it up before the signal
        started = time.monotonic()
        assert server.stop(timeout=GRACEFUL_TIMEOUT + 5) == 0
        assert time.monotonic() - started < GRACEFUL_TIMEOUT
        request.join(timeout=10)
        assert slow.get("status") == 200
        assert not metrics_dir.exists(), "the private metrics dir is removed on exit"
    finally:
        server.stop()
    records = [json.loads(line) for line in (tmp_path / "server.log").read_text().splitlines() if line.strip()]
    access = [r for r in records if r["logger"] == "app.access" and r["path"] == "/livez"]
    assert len(access) == before + LIVEZ_REQUESTS and all(r["request_id"] for r in access)
    assert not [r for r in records if r["logger"] == "gunicorn.access"], "one access line per request"
    assert any(r["logger"] == "gunicorn.error" for r in records)
