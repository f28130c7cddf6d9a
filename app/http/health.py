"""Kernel endpoints: liveness, readiness, health and module status."""

from __future__ import annotations

from flask import jsonify

from app.http.blueprint import Blueprint
from app.http.docs import errors
from app.http.principal import viewer_reads_all
from app.schemas.health import HealthSchema, LivenessSchema, ModuleHealthSchema, ModulesStatusSchema, ReadinessSchema
from app.services.errors import NotFound

_PUBLIC_HEALTH_KEYS = ("status", "module", "dependencies", "last_check", "uptime", "critical")
# What anyone may see of a module's status; its source (a Python path), its routes and why
# it failed are for admins.
_PUBLIC_STATUS_KEYS = ("status", "dependencies", "dependents", "load_position", "init_ms", "critical")


def build_health_blueprint(manager) -> Blueprint:
    blp = Blueprint("system", __name__, description="Liveness, readiness and module health")

    @blp.route("/livez")
    @blp.response(200, LivenessSchema)
    @errors(backend=False)
    @blp.doc(summary="Liveness: the process can serve; touches no backend")
    def livez():
        return jsonify({"status": "alive"})

    @blp.route("/readyz")
    @blp.response(200, ReadinessSchema)
    @blp.alt_response(503, schema=ReadinessSchema, description="A critical module is unhealthy")
    @errors(backend=False)
    @blp.doc(summary="Readiness: 200 when every critical module is healthy (or degraded)")
    def readyz():
        ready, reason = manager.readiness()
        if ready:
            return jsonify({"status": "ready"})
        return jsonify({"status": "not_ready", "reason": reason}), 503

    @blp.route("/health")
    @blp.response(200, HealthSchema, description="healthy, or degraded (e.g. the cache is down)")
    @blp.alt_response(503, schema=HealthSchema, description="unhealthy: a critical module or the database is down")
    @errors(backend=False)
    @blp.doc(summary="Aggregated health; 503 when a critical module or the database is down")
    def health():
        status, reports = manager.overall_health()
        admin = viewer_reads_all()
        modules = {
            name: (report if admin else {k: report[k] for k in _PUBLIC_HEALTH_KEYS if k in report})
            for name, report in reports.items()
        }
        return jsonify({"status": status, "modules": modules}), 503 if status == "unhealthy" else 200

    @blp.route("/modules/status")
    @blp.response(200, ModulesStatusSchema)
    @errors(backend=False)
    @blp.doc(summary="Load order and each module's status, dependencies and init time")
    def module_status():
        admin = viewer_reads_all()
        report = manager.status_report(include_reasons=admin)
        if not admin:
            for name, status in report["modules"].items():
                report["modules"][name] = {k: status[k] for k in _PUBLIC_STATUS_KEYS}
        return jsonify(report)

    @blp.route("/modules/<string(maxlength=64):name>/health")
    @blp.response(200, ModuleHealthSchema)
    @blp.alt_response(503, schema=ModuleHealthSchema, description="The module is unhealthy")
    @errors("not_found", backend=False)
    @blp.doc(summary="One module's health; 503 when unhealthy")
    def module_health(name: str):
        if name not in manager.states:
            raise NotFound(f"no module named '{name}'")
        report = manager.get_module_health(name)
        if not viewer_reads_all():
            report = {k: report[k] for k in _PUBLIC_HEALTH_KEYS if k in report}
        return jsonify(report), 503 if report["status"] == "unhealthy" else 200

    return blp
