"""The composition root: create_app() builds the container, checks the module graph and serves."""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask
from flask.json.provider import DefaultJSONProvider
from werkzeug.sansio.response import Response

from app.config import Settings, load_settings
from app.events.backbone import EventBackbone
from app.events.catalog import EventCatalog
from app.http.api import api_settings
from app.http.errors import module_unavailable_view, register_error_handlers
from app.http.headers import install_security_headers
from app.http.health import build_health_blueprint
from app.http.metrics import build_metrics_blueprint
from app.infrastructure.cache import Cache
from app.infrastructure.json_text import JsonWriter
from app.kernel.discovery import extra_modules, scan_package
from app.kernel.findings import WiringError
from app.kernel.graph import ModulePlan, build_plan, wire_extra_modules
from app.kernel.manager import ModuleManager
from app.kernel.module import batch_handler
from app.observability.metrics import EventsCollector
from app.observability.requests import install_request_hooks

log = logging.getLogger(__name__)


class _InsertionOrderJSON(DefaultJSONProvider):
    """Flask's JSON, with bodies in schema order, compact, UTF-8, written by orjson."""

    sort_keys = False  # bodies keep their fields in schema order

    def __init__(self, app: Flask) -> None:
        super().__init__(app)
        self._write = JsonWriter(default=self.default)
        self._response_class = app.response_class  # typed as Flask's (self._app is the sans-IO App)

    def response(self, *args: Any, **kwargs: Any) -> Response:
        """The default's body and headers, written by orjson (0.2 us a balance, not 2 us)."""
        if self.compact is False or (self.compact is None and self._app.debug):
            return super().response(*args, **kwargs)  # indented, as the default does
        body = self._write(self._prepare_response_obj(args, kwargs))
        return self._response_class(body + b"\n", mimetype=self.mimetype)


class CreditApp(Flask):
    """The Flask app, with what create_app hangs on it declared."""

    json_provider_class = _InsertionOrderJSON
    container: Any
    settings: Settings
    module_manager: ModuleManager
    events: EventBackbone

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._synchronous: set[Any] = set()  # hooks and views seen to be plain functions

    def ensure_sync(self, func):
        """Flask asks, for every hook and view of every request (about 11 a request here),
        whether it is a coroutine function, through inspect (~2 us each); ask once per function."""
        if func in self._synchronous:
            return func
        wrapped = super().ensure_sync(func)
        if wrapped is func:
            self._synchronous.add(func)
        return wrapped


def build_container(settings: Settings):
    """The application container configured from settings; nothing in it is called yet."""
    # Imported here, not at the top: containers.py (outside the package) imports classes from
    # every app package, so app -> containers -> app would be an import cycle, which worked
    # or failed depending on which side was imported first (`import containers` first failed
    # while app/__init__.py imported this module eagerly). Inside the function, the package
    # never depends on containers at import time.
    from containers import Container

    container = Container()
    container.config.from_dict(settings.as_dict())
    return container


def plan_modules(container, settings: Settings):
    """Discover modules, give extras their providers, then check the whole graph."""
    extras, problems = extra_modules(settings.modules_extra)
    problems += wire_extra_modules(container, extras)
    plan = build_plan(container, settings.modules_disabled, scan_package(), extras)
    plan.findings[:0] = problems
    return plan


def create_app(settings: Settings | None = None, container=None, **overrides) -> CreditApp:
    """Build the app: check the module graph first, then build modules in load order."""
    settings = settings or load_settings(**overrides)
    container = container or build_container(settings)
    plan = plan_modules(container, settings)
    if plan.errors:
        raise WiringError(plan.findings)

    # Named after the package, as when this lived in app/__init__.py (Flask's logger and root path).
    app = CreditApp("app", instance_path=settings.instance_path)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    # No SECRET_KEY for Flask: the API keeps no cookie session (bearer tokens are signed by
    # app.services.tokens), and without one Flask skips building a signer on every request.
    app.container = container
    app.settings = settings
    api_settings(app)
    container.api().init_app(app)
    register_error_handlers(app)

    _declare_events(container.event_catalog(), plan)
    backbone = app.events = container.event_backbone()
    manager = ModuleManager(
        plan,
        settings.health_timeout,
        settings.health_cache_seconds,
        unavailable_view=module_unavailable_view,
        in_transaction=container.event_bus(),
        event_health=backbone.health,
    )
    manager.on_shutdown.append(backbone.stop)
    app.module_manager = manager
    container.metrics().add_collector(EventsCollector(backbone))
    container.api().register_blueprint(build_health_blueprint(manager))
    container.api().register_blueprint(build_metrics_blueprint(container.metrics(), manager, settings.metrics_token))
    install_request_hooks(app, container.metrics(), manager)  # before the modules' hooks
    install_security_headers(app)
    _scope_cache_read_ahead(app, container.cache())
    try:
        manager.start(app)
    except WiringError:  # a route collision: the graph was fine, the routes are not
        manager.shutdown()  # release what the modules built so far acquired
        raise
    # Delivered to a module's handle_event(s) while it runs in this process (none while failed).
    container.event_catalog().set_handler_lookup(
        lambda name: getattr(manager.get_module(name), "handle_event", None),
        lambda name: batch_handler(module) if (module := manager.get_module(name)) is not None else None,
    )
    for finding in manager.findings:
        log.warning("%s", finding)
    return app


def _declare_events(catalog: EventCatalog, plan: ModulePlan) -> None:
    """The enabled modules' own event types (EMITS) and subscriptions (EVENT_TYPES).

    Every enabled module that declares EVENT_TYPES is owed its events, running or not: a
    module that failed to start in one process is drained by another where it runs, and its
    backlog shows in its health meanwhile.
    """
    for name in plan.load_order:
        if name in plan.disabled:
            continue
        cls = plan.nodes[name].cls
        catalog.add_types(dict(getattr(cls, "EMITS", {}) or {}))
        if getattr(cls, "EVENT_TYPES", ()):
            catalog.subscribe(name, cls.EVENT_TYPES)


def _scope_cache_read_ahead(app: Flask, cache: Cache) -> None:
    """One read-ahead scope per request (app.infrastructure.cache.read_ahead)."""
    handle = app.wsgi_app
    read_ahead = cache.read_ahead

    def wsgi_app(environ, start_response):
        with read_ahead.scope():
            return handle(environ, start_response)

    app.wsgi_app = wsgi_app  # type: ignore[method-assign]  # Flask's documented way to wrap it
