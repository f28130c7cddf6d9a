"""gunicorn with sensible defaults; each worker builds its own app after the fork."""
from __future__ import annotations

import multiprocessing

from gunicorn.app.base import BaseApplication

from app.config import Settings


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

        return create_app(self.settings)


def _worker_exit(server, worker) -> None:
    """Run module shutdown in reverse load order when a worker stops gracefully."""
    app = getattr(worker, "wsgi", None)
    manager = getattr(app, "module_manager", None)
    if manager is not None:
        manager.shutdown()


def gunicorn_options(bind: str, workers: int | None, threads: int, timeout: int) -> dict:
    return {
        "bind": bind,
        "workers": workers or default_workers(),
        "threads": threads,
        "worker_class": "gthread" if threads > 1 else "sync",
        "timeout": timeout,
        "graceful_timeout": 30,  # in-flight requests get this long to finish on SIGTERM
        "keepalive": 5,
        "max_requests": 0,
        "preload_app": False,  # engines and pools must be created after the fork
        "worker_exit": _worker_exit,
        "accesslog": None,
        "errorlog": "-",
    }


def serve(settings: Settings, bind: str, workers: int | None, threads: int, timeout: int) -> None:
    CreditServer(settings, gunicorn_options(bind, workers, threads, timeout)).run()
