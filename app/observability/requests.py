"""Per-request hooks: the request id header, one access log line and the request metrics."""

from __future__ import annotations

import logging
import re
import time

from flask import Flask, Response, g, request

from app.infrastructure.outbox import begin_event_context
from app.kernel.manager import ModuleManager
from app.observability.logging import InfoWriter
from app.observability.metrics import Metrics
from app.observability.request_id import HEADER, begin_request_id, current_request_id, end_request_id

access_log = InfoWriter(logging.getLogger("app.access"))

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
    labels: dict[str | None, tuple[str, str]] = {}

    def labels_of(rule: str | None) -> tuple[str, str]:
        """(module, route template) of a URL rule: the module whose blueprint added it
        ("kernel" for the rest) and the rule's template, never the raw path."""
        if rule not in labels:
            if not owners:  # every route exists before the first request; map them once
                owners.update({r: name for name, state in manager.states.items() for r in state.routes})
            labels[rule] = (owners.get(rule, KERNEL), route_template(rule)) if rule else (KERNEL, UNMATCHED)
        return labels[rule]

    @app.before_request
    def start_timer() -> None:
        """Note the start time and fix the request id before any other hook can log."""
        g.request_started = time.perf_counter()
        # One context lookup, not one per attribute (Flask types the proxy as the Request itself).
        req = request._get_current_object()  # type: ignore[attr-defined]
        begin_event_context(begin_request_id(req.environ.get("HTTP_X_REQUEST_ID", "")), req.remote_addr)

    @app.teardown_request
    def end_event_context(_exc: BaseException | None) -> None:
        begin_event_context(None, None)  # nothing recorded after the request is attributed to it
        end_request_id()

    @app.after_request
    def finish(response: Response) -> Response:
        """Echo the request id, count the request and write its access line."""
        response.headers[HEADER] = current_request_id()
        started = g.get("request_started", time.perf_counter())
        seconds = time.perf_counter() - started
        # One context lookup, not one per attribute (Flask types the proxy as the Request itself).
        req = request._get_current_object()  # type: ignore[attr-defined]
        module, route = labels_of(req.url_rule.rule if req.url_rule is not None else None)
        # Client-chosen methods must not mint label values (cardinality).
        method = req.method if req.method in _METHODS else "OTHER"
        status, path = response.status_code, req.path
        metrics.observe(module, route, method, status, seconds)
        # Path only: no query string, body or headers (Authorization!) ever reach the log.
        access_log.info(
            "%s %s %s",
            (method, path, status),
            {
                "method": method,
                "path": path,
                "route": route,
                "status": status,
                "duration_ms": round(seconds * 1000, 3),
                "module_name": module,
            },
        )
        return response
