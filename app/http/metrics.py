"""GET /metrics: Prometheus text exposition of request metrics and module health."""

from __future__ import annotations

import hmac

from flask import Response, request
from prometheus_client import CONTENT_TYPE_LATEST

from app.http.blueprint import Blueprint
from app.http.docs import errors
from app.http.principal import optional_principal
from app.kernel.manager import ModuleManager
from app.observability.metrics import Metrics
from app.services.errors import Forbidden, Unauthorized


def require_scraper(scrape_token: str) -> None:
    """Let through the scrape token (when one is configured) or an admin's bearer token.

    The counters tell business volume and attack telemetry (logins failed, deposits made):
    not for anonymous eyes. 401 without a valid token, 403 for a token that is not an admin's or an auditor's.
    """
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    if scrape_token and scheme.lower() == "bearer":
        if hmac.compare_digest(value.strip().encode(), scrape_token.encode()):
            return
    principal = optional_principal()
    if principal is None:
        raise Unauthorized()
    if not principal.can_read_all:
        raise Forbidden("an admin, an auditor or the metrics scrape token is required")


def build_metrics_blueprint(metrics: Metrics, manager: ModuleManager, scrape_token: str = "") -> Blueprint:
    """The /metrics blueprint; registered through the Api so it is in the OpenAPI document."""
    blp = Blueprint("metrics", __name__, description="Prometheus metrics")

    @blp.route("/metrics")
    @errors("forbidden", auth=True, backend=False)
    @blp.doc(
        operationId="metrics",
        summary="Prometheus metrics: requests by module, route, method and status; module health",
        description=(
            "For an admin's bearer token, or `Authorization: Bearer <CREDIT_METRICS_TOKEN>` (the scrape "
            "token, when the server has one configured)."
        ),
        responses={
            200: {
                "description": "Prometheus text exposition format",
                "content": {"text/plain": {"schema": {"type": "string"}}},
            }
        },
    )
    def metrics_view():
        require_scraper(scrape_token)
        return Response(metrics.exposition(manager), content_type=CONTENT_TYPE_LATEST)

    return blp
