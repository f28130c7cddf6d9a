"""`python -m bench.profile transfer|balance|history|livez|hello`: where one request's CPU goes, in process.

Builds the app on a scratch PostgreSQL database and the bench Redis database, drives the
route through the WSGI interface (no HTTP server, no load generator sharing the CPU), and
prints the CPU time per request (median of 7 batches; process time, so waiting on
PostgreSQL or Redis does not count) and a cProfile of the app's own frames. It is the
tool behind the before/after figures in the README; run it before and after a change.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import logging
import os
import pstats
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import create_engine

from bench import seed
from bench.seed import PASSWORD, REDIS, scratch_database, settings_for


def call(app, method: str, path: str, token: str, body: dict | None = None, key: str | None = None) -> int:
    """One request straight through the WSGI callable, as gunicorn would make it; its status."""
    raw = json.dumps(body).encode() if body is not None else b""
    path, _, query = path.partition("?")
    environ = {
        "REQUEST_METHOD": method,
        "PATH_INFO": path,
        "QUERY_STRING": query,
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(raw),
        "wsgi.errors": sys.stderr,
        "wsgi.version": (1, 0),
        "wsgi.multithread": False,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
        "REMOTE_ADDR": "127.0.0.1",
        "HTTP_HOST": "127.0.0.1:8000",
        "CONTENT_LENGTH": str(len(raw)),
        "HTTP_AUTHORIZATION": f"Bearer {token}",
    }
    if body is not None:
        environ["CONTENT_TYPE"] = "application/json"
    if key is not None:
        environ["HTTP_IDEMPOTENCY_KEY"] = key
    status: list[str] = []
    b"".join(app(environ, lambda s, headers, exc_info=None: status.append(s)))
    return int(status[0].split()[0])


def scenario(name: str, app, token: str, users: list[str], history_user: str):
    if name == "transfer":

        def request() -> int:
            a, b = random.sample(users, 2)
            return call(
                app,
                "POST",
                "/transactions",
                token,
                {"from_user_id": a, "to_user_id": b, "amount": 1},
                key=uuid.uuid4().hex,
            )

        return request, 201
    if name == "balance":
        hot = users[:50]  # cached balances, as under steady load
        return (lambda: call(app, "GET", f"/wallet/balance/{random.choice(hot)}", token)), 200
    if name == "history":
        return (lambda: call(app, "GET", f"/transactions?user_id={history_user}&limit=50", token)), 200
    if name == "livez":
        return (lambda: call(app, "GET", "/livez", token)), 200
    if name == "hello":
        from bench.hello import app as hello

        return (lambda: call(hello, "GET", f"/balance/{random.choice(users)}", token)), 200
    raise SystemExit(f"unknown scenario {name!r}")


SCENARIOS = ("transfer", "balance", "history", "livez", "hello")


@contextmanager
def prepared(name: str) -> Iterator[tuple[Callable[[], int], int]]:
    """(one request of the scenario, its expected status), on a seeded scratch database and
    the bench Redis database, warmed up; `hello` is bench/hello.py's Flask ceiling and
    `livez` the app's cheapest route (every request hook, no backend)."""
    import redis

    from app import build_container, create_app
    from app.observability.logging import configure_logging
    from app.services.passwords import Passwords

    workdir = Path(tempfile.mkdtemp(prefix="credit-profile-"))
    with scratch_database("credit_profile") as db_url:
        engine = create_engine(db_url)
        users = seed.seed_users(engine, "prof", 200, 1_000_000_000, Passwords().hash(PASSWORD))
        (history_user,) = seed.seed_users(engine, "hist", 1, 1, Passwords().hash(PASSWORD))
        seed.add_deposits(engine, history_user, 1_000, 1)
        seed.analyze(engine)
        engine.dispose()
        redis.Redis.from_url(REDIS).flushdb()
        settings = settings_for(db_url, REDIS, workdir)
        container = build_container(settings)
        container.user_service().ensure_admin("benchadmin", "benchadmin@example.com", PASSWORD)
        container.database().dispose()

        configure_logging(settings.log_level if hasattr(settings, "log_level") else "INFO")
        for handler in logging.getLogger().handlers:  # format every line as `serve` does, write nowhere
            if isinstance(handler, logging.StreamHandler):
                handler.setStream(open(os.devnull, "w"))
        app = create_app(settings)
        token = (
            app.test_client()
            .post("/auth/login", json={"username": "benchadmin", "password": PASSWORD})
            .get_json()["access_token"]
        )
        request, expected = scenario(name, app, token, users, history_user)
        for _ in range(200):  # warm: pools, prepared statements, caches
            assert request() == expected
        try:
            yield request, expected
        finally:
            app.module_manager.shutdown()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("scenario", choices=SCENARIOS)
    parser.add_argument("--requests", type=int, default=2100)
    parser.add_argument("--top", type=int, default=35, help="rows of the profile to print")
    parser.add_argument("--all", action="store_true", help="every frame by own time, not just the app's")
    args = parser.parse_args()

    with prepared(args.scenario) as (request, _expected):
        batch = max(args.requests // 7, 1)
        per_request = []
        for _ in range(7):
            started = time.process_time()
            for _ in range(batch):
                request()
            per_request.append((time.process_time() - started) / batch)
        profiler = cProfile.Profile(time.process_time)
        profiler.runcall(lambda: [request() for _ in range(batch)])
        if os.environ.get("PROFILE_DUMP"):
            profiler.dump_stats(os.environ["PROFILE_DUMP"])

    print(
        f"{args.scenario}: {statistics.median(per_request) * 1e6:.0f} us CPU per request "
        f"(median of 7 batches of {batch}; min {min(per_request) * 1e6:.0f} us)"
    )
    print(
        "\ncProfile (process time; inflates call-heavy code), cumulative, app frames and the libraries' entry points:"
    )
    stats = pstats.Stats(profiler)
    if args.all:
        stats.sort_stats("tottime").print_stats(args.top)
    else:
        stats.sort_stats("cumulative").print_stats(
            r"app/|sqlalchemy/orm/session.py.*\(execute\)|"
            r"redis/client.py.*execute_command|webargs/core.py.*parse",
            args.top,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
