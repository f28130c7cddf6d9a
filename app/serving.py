"""gunicorn with sensible defaults; each worker builds its own app after the fork."""

from __future__ import annotations

import functools
import gc
import importlib.util
import ipaddress
import multiprocessing
import os
import shutil
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

from gunicorn.app.base import BaseApplication
from gunicorn.glogging import Logger

from app.config import Settings
from app.http.wire_errors import install as install_wire_errors
from app.observability.logging import logging_config
from app.observability.metrics import MULTIPROC_ENV

# `sync` (the default; `gthread` with several threads) reads a request with the whole
# process and assumes a buffering proxy in front (`credit-system nginx-config`, app.proxy).
# `gevent` gives each connection a greenlet, so a client sending its request slowly holds a
# few kilobytes, not a process, at a cost in throughput and tail latency measured in the
# README ("Serving"); it is an extra, installed with credit-system[gevent].
WORKER_CLASSES = ("sync", "gthread", "gevent")
WORKER_CONNECTIONS = 1000  # open connections (greenlets) per gevent worker
EXTRA_OF_WORKER_CLASS = {"gevent": "gevent"}  # worker class -> the package it needs, an extra of ours


def missing_worker_package(worker_class: str | None) -> str | None:
    """What to install before `serve --worker-class worker_class` can start, or None."""
    package = EXTRA_OF_WORKER_CLASS.get(worker_class or "")
    if package is None or _importable(package):
        return None
    return f"--worker-class {worker_class} needs {package}: pip install 'credit-system[{package}]'"


def _importable(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):  # ValueError: a None left in sys.modules (imports of it fail)
        return False


def choose_worker_class(worker_class: str | None, threads: int) -> str:
    """The one asked for; by default sync, or gthread when there are several threads."""
    chosen = worker_class or ("gthread" if threads > 1 else "sync")
    if chosen not in WORKER_CLASSES:
        raise ValueError(f"worker class must be one of {', '.join(WORKER_CLASSES)}")
    return chosen


def default_workers() -> int:
    return multiprocessing.cpu_count() * 2 + 1


class CreditServer(BaseApplication):
    def __init__(self, settings: Settings, options: dict) -> None:
        self.settings = settings
        self.options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self):
        from app import create_app

        app = create_app(self.settings)
        app.wsgi_app = ForwardedFor(app.wsgi_app, self.cfg.forwarded_allow_ips)  # type: ignore[method-assign]
        return app


class ForwardedFor:
    """The client's address from X-Forwarded-For, when the request comes from a trusted proxy.

    Behind a proxy every request comes from the proxy's address, so the per-address limits
    (sign-ups, password checks) would count all clients as one. gunicorn's own
    `forwarded_allow_ips` (`serve --forwarded-allow-ips`, default 127.0.0.1,::1) names the
    proxies trusted; from them the address the proxy appended last (one hop, werkzeug
    ProxyFix's rule) becomes REMOTE_ADDR. From anyone else the header is ignored: a client
    cannot pick its own address. A peer without an IP address (a Unix socket) is trusted,
    as gunicorn trusts it. Done here rather than by ProxyFix, which copies the environ's
    forwarding keys on every request: this costs a dict lookup when there is no header and
    a cached lookup of the peer when there is.
    """

    def __init__(self, app, allowed: list[str]) -> None:
        self.app = app
        self.anyone = "*" in allowed
        self.networks = [ipaddress.ip_network(address, strict=False) for address in allowed if address != "*"]
        self.trusted = functools.lru_cache(maxsize=1024)(self._trusted)  # few proxies, many requests

    def _trusted(self, peer: str) -> bool:
        if self.anyone:
            return True
        try:
            address = ipaddress.ip_address(peer)
        except ValueError:
            return not peer  # no IP address: a Unix socket
        return any(address in network for network in self.networks)

    def __call__(self, environ, start_response):
        forwarded = environ.get("HTTP_X_FORWARDED_FOR")
        if forwarded and self.trusted(environ.get("REMOTE_ADDR") or ""):
            client = forwarded.rsplit(",", 1)[-1].strip()
            if client:
                environ["REMOTE_ADDR"] = client
        return self.app(environ, start_response)


class AppAccessLogger(Logger):
    """gunicorn's logger minus its access lines: the app writes one JSON line per request.

    With a logging config set, gunicorn formats every request's access atoms (all headers
    included) before the level check drops them; this skips that work entirely.
    """

    def access(self, resp, req, environ, request_time) -> None:
        """Nothing: see app.observability.requests."""


def _worker_exit(server, worker) -> None:
    """Run module shutdown in reverse load order when a worker stops gracefully."""
    app = getattr(worker, "wsgi", None)
    manager = getattr(app, "module_manager", None)
    if manager is not None:
        manager.shutdown()


def _post_worker_init(worker) -> None:
    """Freeze what the app built at start-up out of the garbage collector's reach.

    Start-up leaves ~125,000 tracked objects (SQLAlchemy, marshmallow, the routes) that
    live as long as the worker; every full collection walked them all, a ~60 ms pause
    landing on whichever request triggered it. Frozen, a full collection only sees
    objects made since.
    """
    gc.freeze()


def _child_exit(server, worker) -> None:
    """Drop a dead worker's live gauges from the shared metrics directory (its counters stay)."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


@contextmanager
def multiprocess_metrics_dir() -> Iterator[str]:
    """PROMETHEUS_MULTIPROC_DIR for the workers: the operator's, or a fresh private one removed on exit."""
    given = os.environ.get(MULTIPROC_ENV)
    if given:
        os.makedirs(given, exist_ok=True)
        yield given  # the operator's directory; emptying it between runs is theirs to do
        return
    # Set before any fork and before prometheus_client is imported: it picks its mode at import.
    path = os.environ[MULTIPROC_ENV] = tempfile.mkdtemp(prefix="credit-metrics-")
    owner = os.getpid()
    try:
        yield path
    finally:
        if os.getpid() == owner:  # workers are forked inside this block and leave through it too
            shutil.rmtree(path, ignore_errors=True)
            os.environ.pop(MULTIPROC_ENV, None)


def gunicorn_options(
    bind: str,
    workers: int | None,
    threads: int,
    timeout: int,
    log_level: str = "INFO",
    worker_class: str | None = None,
    forwarded_allow_ips: str | None = None,
) -> dict:
    trusted = {} if forwarded_allow_ips is None else {"forwarded_allow_ips": forwarded_allow_ips}
    return {
        **trusted,  # else gunicorn's default: $FORWARDED_ALLOW_IPS, or 127.0.0.1,::1
        "bind": bind,
        "workers": workers or default_workers(),
        "threads": threads,
        "worker_class": choose_worker_class(worker_class, threads),
        "worker_connections": WORKER_CONNECTIONS,
        "timeout": timeout,
        "graceful_timeout": 30,  # in-flight requests get this long to finish on SIGTERM
        "keepalive": 5,
        "limit_request_line": 8190,  # room for a long cursor and filters; longer is 414 (JSON body)
        "max_requests": 0,
        "preload_app": False,  # engines and pools must be created after the fork
        # gunicorn's control socket has one default path per user: several servers on one
        # host (scale-out, tests) would fight over it, and nothing here uses gunicornc.
        "control_socket_disable": True,
        "post_worker_init": _post_worker_init,
        "worker_exit": _worker_exit,
        "child_exit": _child_exit,
        "accesslog": None,  # the app writes one JSON access line per request (app.access)
        "logger_class": AppAccessLogger,
        "errorlog": "-",
        "loglevel": log_level.lower(),
        "logconfig_dict": logging_config(log_level),  # gunicorn's own lines as JSON too
    }


def serve(
    settings: Settings,
    bind: str,
    workers: int | None,
    threads: int,
    timeout: int,
    log_level: str = "INFO",
    worker_class: str | None = None,
    forwarded_allow_ips: str | None = None,
) -> None:
    install_wire_errors()  # gunicorn's own 400/414/431 pages get the API's error body
    if worker_class == "gevent":
        # Each gevent worker patches the standard library first thing, and warns (in plain
        # text, outside the JSON logs) that `ssl` was imported before: this process loaded it
        # with redis-py's asyncio client (through `limits`), which nothing here uses, and
        # opened no SSL socket before the fork. Sockets opened after the patch are gevent's.
        warnings.filterwarnings("ignore", message="Monkey-patching ssl after ssl has already been imported")
    with multiprocess_metrics_dir():
        options = gunicorn_options(bind, workers, threads, timeout, log_level, worker_class, forwarded_allow_ips)
        CreditServer(settings, options).run()
