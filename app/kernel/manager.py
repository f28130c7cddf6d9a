"""Module lifecycle: build and initialize in load order, isolate failures, report health."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Protocol

from app.kernel import findings as codes
from app.kernel.findings import Finding, WiringError
from app.kernel.graph import ModulePlan

log = logging.getLogger(__name__)

HEALTHY, DEGRADED, UNHEALTHY = "healthy", "degraded", "unhealthy"
_RANK = {HEALTHY: 0, DEGRADED: 1, UNHEALTHY: 2}


class ModuleLifecycle(StrEnum):
    """Where a module is in its life; /modules/status, /health and the metrics report it."""

    PENDING = "pending"
    INITIALIZED = "initialized"
    FAILED = "failed"
    SKIPPED = "skipped"
    DISABLED = "disabled"


@dataclass
class ModuleState:
    name: str
    load_position: int
    status: ModuleLifecycle = ModuleLifecycle.PENDING
    reason: str | None = None
    init_ms: float | None = None
    instance: Any = None
    started_at: float | None = None
    routes: list[str] = field(default_factory=list)

    def uptime(self) -> float:
        """Seconds since its start was attempted, 0 before."""
        return 0.0 if self.started_at is None else round(time.monotonic() - self.started_at, 3)


# Builds the view that answers for a failed or skipped module's paths, given the module's
# name and state. The HTTP layer supplies it (app.http.errors.module_unavailable_view): the
# kernel knows modules and routes, not the API's error body.
UnavailableView = Callable[[str, ModuleState], Callable[..., Any]]


class InTransactionSubscriptions(Protocol):
    """The in-transaction event bus, as far as the kernel looks at it (app.infrastructure.database.EventBus)."""

    def snapshot(self) -> Any: ...
    def restore(self, snapshot: Any) -> None: ...


# `{backlog, oldest_pending_seconds, dead}` of a module's event deliveries (app.events).
EventHealth = Callable[[str], dict[str, Any]]


class ModuleManager:
    """Owns the modules of one app: order, status, routes, health and shutdown."""

    def __init__(
        self,
        plan: ModulePlan,
        health_timeout: float = 2.0,
        health_cache_seconds: float = 1.0,
        unavailable_view: UnavailableView | None = None,
        in_transaction: InTransactionSubscriptions | None = None,
        event_health: EventHealth | None = None,
    ) -> None:
        """Without unavailable_view, a failed or skipped module's paths are simply not routed (404).

        in_transaction: the bus a non-critical module must not subscribe to (it is then failed);
        event_health: each subscribing module's delivery backlog, for its health report.
        """
        self.plan = plan
        self._unavailable_view = unavailable_view
        self.states = {name: ModuleState(name, pos) for pos, name in enumerate(plan.load_order)}
        self._health_timeout = health_timeout
        self._health_ttl = health_cache_seconds
        self._health_cache: dict[str, tuple[float, dict]] = {}
        self._health_lock = threading.Lock()
        # At most one check per module runs at a time (see _cached_check), each on its own
        # daemon thread: a hung check can neither starve the others nor block process exit.
        self._running: dict[str, Future] = {}
        self.findings: list[Finding] = list(plan.findings)
        self._in_transaction = in_transaction
        self._event_health = event_health
        self._events_cache: dict[str, tuple[float, dict | None]] = {}
        self.on_shutdown: list[Callable[[], None]] = []  # run after every module has shut down

    @property
    def load_order(self) -> list[str]:
        return list(self.plan.load_order)

    # -- lifecycle ------------------------------------------------------------------
    def start(self, app) -> None:
        """Build, initialize and route every enabled module, dependencies first."""
        if self.plan.errors:
            raise WiringError(self.plan.findings)
        # The kernel's own routes (health, OpenAPI, static) are taken before any module's.
        owners: dict[tuple[str, str], str] = {
            (rule.rule, method): "kernel"
            for rule in app.url_map.iter_rules()
            for method in (rule.methods or set()) - {"HEAD", "OPTIONS"}
        }
        for name in self.plan.load_order:
            state, node = self.states[name], self.plan.nodes[name]
            if name in self.plan.disabled:
                state.status, state.reason = ModuleLifecycle.DISABLED, "disabled by configuration"
                continue
            blocked = [d for d in node.dependencies if self.states[d].status != ModuleLifecycle.INITIALIZED]
            if blocked:
                dep = blocked[0]
                state.status = ModuleLifecycle.SKIPPED
                state.reason = f"dependency {dep} {self.states[dep].status}"
                continue
            started = time.perf_counter()
            before = self._in_transaction.snapshot() if self._in_transaction and not node.critical else None
            try:
                state.instance = node.provider()
                if state.instance.initialize() is False:
                    raise RuntimeError("initialize() returned False")
                if before is not None:
                    self._refuse_in_transaction_subscriber(name, before)
                self._register_routes(app, state, owners)
                state.status = ModuleLifecycle.INITIALIZED
            except WiringError:  # a route collision is a wiring error, not this module's failure
                raise
            except Exception as exc:  # a module's failure must not take the others down
                state.status, state.reason = ModuleLifecycle.FAILED, f"{type(exc).__name__}: {exc}"
                log.error("module %s failed to start: %s", name, state.reason)
            state.init_ms = round((time.perf_counter() - started) * 1000, 3)
            state.started_at = time.monotonic()
        self._answer_for_unavailable_modules(app)

    def _refuse_in_transaction_subscriber(self, name: str, before: Any) -> None:
        """A non-critical module subscribed inside the writing transaction: undo it and fail the module."""
        assert self._in_transaction is not None
        if self._in_transaction.snapshot() == before:
            return
        self._in_transaction.restore(before)
        message = "a non-critical module subscribed to events inside the writing transaction"
        self.findings.append(
            Finding(
                codes.IN_TRANSACTION_SUBSCRIBER,
                message,
                "declare EVENT_TYPES and implement handle_event: events reach it after commit, and its failure "
                "cannot undo or block the change (in-transaction subscribers are for critical core modules)",
                name,
            )
        )
        raise RuntimeError(message + "; declare EVENT_TYPES and handle_event instead")

    def _answer_for_unavailable_modules(self, app) -> None:
        """A failed or skipped module's paths answer 503 module_unavailable, not a bare 404."""
        if self._unavailable_view is None:
            return
        for name in self.plan.load_order:
            state = self.states[name]
            if state.status not in (ModuleLifecycle.FAILED, ModuleLifecycle.SKIPPED):
                continue
            for prefix in getattr(self.plan.nodes[name].cls, "ROUTE_PREFIXES", ()):
                view = self._unavailable_view(name, state)
                for rule in (prefix, prefix.rstrip("/") + "/<path:rest>"):
                    app.add_url_rule(
                        rule,
                        endpoint=f"module_unavailable.{name}.{rule}",
                        view_func=view,
                        methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
                    )

    def _register_routes(self, app, state: ModuleState, owners: dict) -> None:
        before = {rule.endpoint for rule in app.url_map.iter_rules()}
        state.instance.register_routes(app)
        added = [rule for rule in app.url_map.iter_rules() if rule.endpoint not in before]
        for rule in added:
            for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
                owner = owners.setdefault((rule.rule, method), state.name)
                if owner != state.name:
                    finding = Finding(
                        codes.ROUTE_COLLISION,
                        f"{method} {rule.rule} is registered by both {owner} and {state.name}",
                        "change one module's path or URL prefix",
                        state.name,
                    )
                    self.findings.append(finding)
                    raise WiringError(self.findings)
        state.routes = sorted({rule.rule for rule in added})

    def shutdown(self) -> None:
        """Shut modules down in reverse load order; one failure does not stop the rest."""
        for name in reversed(self.plan.load_order):
            state = self.states[name]
            if state.instance is None:
                continue
            try:
                state.instance.shutdown()
            except Exception:
                log.exception("module %s failed to shut down", name)
        for callback in self.on_shutdown:
            try:
                callback()
            except Exception:
                log.exception("a shutdown callback failed")

    # -- runtime look-ups (for operators, health endpoints and tests) -----------------
    def is_module_loaded(self, name: str) -> bool:
        return name in self.states and self.states[name].status == ModuleLifecycle.INITIALIZED

    def get_module(self, name: str):
        return self.states[name].instance if self.is_module_loaded(name) else None

    def get_module_status(self, name: str, include_reason: bool = True) -> dict:
        state, node = self.states[name], self.plan.nodes[name]
        report = {
            "status": state.status,
            "dependencies": list(node.dependencies),
            "dependents": self.plan.dependents_of(name),
            "load_position": state.load_position,
            "init_ms": state.init_ms,
            "critical": node.critical,
            "source": node.source,
            "routes": state.routes,
        }
        if include_reason:
            report["reason"] = state.reason
        return report

    def status_report(self, include_reasons: bool) -> dict:
        return {
            "load_order": self.load_order,
            "modules": {name: self.get_module_status(name, include_reasons) for name in self.plan.load_order},
        }

    # -- health -------------------------------------------------------------------------
    def get_module_health(self, name: str) -> dict:
        """The module's own check (bounded, briefly cached) plus its dependencies' status."""
        state = self.states[name]
        report: dict[str, Any] = {
            "module": name,
            "critical": self.plan.nodes[name].critical,
            "last_check": datetime.now(UTC).isoformat(),
        }
        if state.status != ModuleLifecycle.INITIALIZED:
            report.update(
                status=UNHEALTHY if state.status != ModuleLifecycle.DISABLED else ModuleLifecycle.DISABLED.value,
                module_status=state.status,
                details={"reason": state.reason},
                uptime=0.0,
            )
        else:
            own = self._cached_check(state)
            report.update(
                status=own.get("status", UNHEALTHY),
                details={k: v for k, v in own.items() if not k.startswith("_")},
                last_check=own.get("_checked_at", report["last_check"]),
                uptime=state.uptime(),
            )
        deps = {}
        for dep in self.plan.nodes[name].dependencies:
            dep_state = self.states[dep]
            deps[dep] = (
                self._cached_check(dep_state).get("status", UNHEALTHY)
                if dep_state.status == ModuleLifecycle.INITIALIZED
                else dep_state.status
            )
        report["dependencies"] = deps
        if report["status"] != UNHEALTHY and any(s not in (HEALTHY, DEGRADED) for s in deps.values()):
            report["status"] = UNHEALTHY
        if self._event_health is not None and self.plan.nodes[name].cls.EVENT_TYPES:
            events = report["events"] = self._cached_events(name)
            if events and events.get("dead") and report["status"] == HEALTHY:
                report["status"] = DEGRADED  # dead deliveries wait for an operator's retry
        return report

    def _cached_events(self, name: str) -> dict | None:
        """The module's event backlog (None when it cannot be read), cached like its check."""
        assert self._event_health is not None
        cached = self._events_cache.get(name)
        if cached and time.monotonic() - cached[0] < self._health_ttl:
            return cached[1]
        try:
            events: dict | None = self._event_health(name)
        except Exception as exc:
            log.warning("event backlog of module %s unreadable: %s", name, type(exc).__name__)
            events = None
        self._events_cache[name] = (time.monotonic(), events)
        return events

    def _cached_check(self, state: ModuleState) -> dict:
        now = time.monotonic()
        with self._health_lock:
            cached = self._health_cache.get(state.name)
            if cached and now - cached[0] < self._health_ttl:
                return cached[1]
            future = self._running.get(state.name)
            if future is None or future.done():  # a check still running from before is awaited, not repeated
                future = self._running[state.name] = self._start_check(state)
        try:
            result = dict(future.result(timeout=self._health_timeout))
            if result.get("status") not in _RANK:
                result["status"] = UNHEALTHY
        except FutureTimeout:
            result = {"status": UNHEALTHY, "error": f"health check timed out after {self._health_timeout}s"}
        except Exception as exc:
            result = {"status": UNHEALTHY, "error": f"{type(exc).__name__}: {exc}"}
        result["_checked_at"] = datetime.now(UTC).isoformat()
        with self._health_lock:
            self._health_cache[state.name] = (time.monotonic(), result)
        return result

    @staticmethod
    def _start_check(state: ModuleState) -> Future:
        future: Future = Future()
        future.set_running_or_notify_cancel()

        def run() -> None:
            try:
                future.set_result(state.instance.health_check())
            except BaseException as exc:  # reported as unhealthy by the caller
                future.set_exception(exc)

        threading.Thread(target=run, name=f"health-{state.name}", daemon=True).start()
        return future

    def overall_health(self) -> tuple[str, dict[str, dict]]:
        """healthy / degraded / unhealthy over every enabled module."""
        reports = {
            name: self.get_module_health(name)
            for name in self.plan.load_order
            if self.states[name].status != ModuleLifecycle.DISABLED
        }
        overall = HEALTHY
        for report in reports.values():
            status = report["status"]
            if status == UNHEALTHY and report["critical"]:
                return UNHEALTHY, reports
            if status != HEALTHY:
                overall = DEGRADED
        return overall, reports

    def readiness(self) -> tuple[bool, str | None]:
        """Whether every critical module can serve, and if not why, in words anyone may read.

        The reason is the first unhealthy critical module's "public_reason" in load order (so
        a dependency's cause comes before its dependents'), or which module it is.
        """
        status, reports = self.overall_health()
        if status != UNHEALTHY:
            return True, None
        for name, report in reports.items():
            if report["critical"] and report["status"] == UNHEALTHY:
                reason = report.get("details", {}).get("public_reason")
                return False, reason or f"module {name}: {report.get('module_status', UNHEALTHY)}"
        return False, None
