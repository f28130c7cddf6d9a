"""Per-request hooks: the request id header, one access log line and the request metrics."""
from __future__ import annotations

import logging
import re
import time

from flask import Flask, Response, g, request

from app.kernel.manager import ModuleManager
from app.observability.metrics import Metrics
from app.observability.request_id import HEADER, current_request_id

access_log = logging.getLogger("app.access")

KERNEL = "kernel"
UNMATCHED = "<unmatched>"
_METHODS = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}
_CONVERTER = re.compile(r"<(?:[^:<>]+:)?([^<>]+)>")


def route_template(rule: str) -> str:
    """/transactions/<string:transaction_id> -> /transactions/<transaction_id>."""
    return _CONVERTER.sub(r"<\1>", rule)


def install_request_hooks(app: Flask, metrics: Metrics, manager: ModuleManager) -> None:
    """Register the hooks; call before modules add theirs so the timer starts first."""
    owners: dict[str, str] = {}

    def module_of(rule: str | None) -> str:
        """The module whose blueprint added this URL rule; "kernel" for the rest."""
        if rule is None:
            return KERNEL
        if not owners:  # every route exists before the first request; map them once
            owners.update({r: name for name, state in manager.states.items() for r in state.routes})
        return owners.get(rule, KERNEL)

    @app.before_request
    def start_timer() -> None:
        """Note the start time and fix the request id before any other hook can log."""
        g.request_started = time.perf_counter()
        current_request_id()

    @app.after_request
    def finish(response: Response) -> Response:
        """Echo the request id, count the request and write its access line."""
        response.headers[HEADER] = current_request_id()
        started = g.get("request_started", time.perf_counter())
        seconds = time.perf_counter() - started
        rule = request.url_rule.rule if request.url_rule is not None else None
        module = module_of(rule)
        route = route_template(rule) if rule else UNMATCHED  # the template, never the raw path
        # Client-chosen methods must not mint label values (cardinality).
        method = request.method if request.method in _METHODS else "OTHER"
        metrics.observe(module, route, method, response.status_code, seconds)
        # Path only: no query string, body or headers (Authorization!) ever reach the log.
        access_log.info("%s %s %s", method, request.path, response.status_code,
                        extra={"method": method, "path": request.path, "route": route,
                               "status": response.status_code, "duration_ms": round(seconds * 1000, 3),
                               "module_name": module})
        return response
