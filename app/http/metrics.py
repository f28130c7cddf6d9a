"""GET /metrics: Prometheus text exposition of request metrics and module health."""

from __future__ import annotations

from flask import Response
from prometheus_client import CONTENT_TYPE_LATEST

from app.http.blueprint import Blueprint
from app.http.docs import errors
from app.kernel.manager import ModuleManager
from app.observability.metrics import Metrics


def build_metrics_blueprint(metrics: Metrics, manager: ModuleManager) -> Blueprint:
    """The /metrics blueprint; registered through the Api so it is in the OpenAPI document."""
    blp = Blueprint("metrics", __name__, description="Prometheus metrics")

    @blp.route("/metrics")
    @errors(backend=False)
    @blp.doc(
        operationId="metrics",
        summary="Prometheus metrics: requests by module, route, method and status; module health",
        responses={
            200: {
                "description": "Prometheus text exposition format",
                "content": {"text/plain": {"schema": {"type": "string"}}},
            }
        },
    )
    def metrics_view():
        # Public like /health: it holds counts and states, never request data; restrict it at the proxy.
        return Response(metrics.exposition(manager), content_type=CONTENT_TYPE_LATEST)

    return blp
