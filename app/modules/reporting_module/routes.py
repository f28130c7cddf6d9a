"""HTTP routes for reports, statements and the dashboard's page and panels."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from flask import Blueprint as FlaskBlueprint
from flask import Response, stream_with_context

from app.http.blueprint import Blueprint
from app.http.docs import errors
from app.http.guard import AccessGuard
from app.modules.reporting_module.panels import module_graph_svg, volumes_svg
from app.schemas.reports import (
    BalancesQuerySchema,
    BalancesSchema,
    PanelQuerySchema,
    PanelSchema,
    StatementQuerySchema,
    StatementSchema,
    SummaryQuerySchema,
    SummarySchema,
    TopUsersQuerySchema,
    TopUsersSchema,
)
from app.services.errors import Forbidden, ValidationFailed
from app.services.principal import Principal
from app.services.reports.periods import Interval, last_days
from app.services.reports.reads import ReportService, StatementLine

STATIC = Path(__file__).resolve().parent / "static"
CSV_COLUMNS = ("transaction_id", "type", "amount", "balance_after", "counterparty_id", "created_at")
CSV_DOC = {
    "responses": {
        200: {
            "content": {
                "text/csv": {"schema": {"type": "string"}},
            }
        }
    }
}


def _reader(guard: AccessGuard) -> Principal:
    principal = guard.principal()
    if not principal.can_read_all:
        raise Forbidden("reports are for admins and auditors")
    return principal


def _csv_lines(lines: Iterator[StatementLine]) -> Iterator[str]:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    for n, line in enumerate(lines, start=1):
        writer.writerow(
            (
                line.transaction_id,
                line.type,
                line.amount,
                line.balance_after,
                line.counterparty_id or "",
                line.created_at.isoformat(),
            )
        )
        if n % 500 == 0:
            yield out.getvalue()
            out.seek(0)
            out.truncate()
    yield out.getvalue()


def build_blueprint(reports: ReportService, guard: AccessGuard, manager) -> Blueprint:
    blp = Blueprint("reports", __name__, description="Reports: summaries, balances, statements (admin, auditor)")

    @blp.before_request
    def authenticate():
        """Every route here needs a caller: a missing token is 401 before any query is validated."""
        guard.principal()

    @blp.route("/reports/summary")
    @blp.arguments(SummaryQuerySchema, location="query")
    @blp.response(200, SummarySchema)
    @errors("forbidden", "validation_error", auth=True)
    def get_summary(query):
        """Deposits, withdrawals, transfers and reversals (count, amount), new and active users
        per day, week or month of [from, to) in a time zone; at most 366 buckets."""
        _reader(guard)
        buckets = reports.summary(query["start"], query["end"], query["interval"], query["zone"])
        return {"interval": query["interval"].value, "tz": query["tz"], "buckets": buckets}

    @blp.route("/reports/balances")
    @blp.arguments(BalancesQuerySchema, location="query")
    @blp.response(200, BalancesSchema)
    @errors("forbidden", "validation_error", auth=True)
    def get_balances(query):
        """The trial balance at a moment (default now): credits issued, redeemed, and held in
        wallets (outstanding), which must equal issued - redeemed."""
        _reader(guard)
        return reports.balances(_past_moment(query["as_of"]))

    @blp.route("/reports/top-users")
    @blp.arguments(TopUsersQuerySchema, location="query")
    @blp.response(200, TopUsersSchema)
    @errors("forbidden", "validation_error", auth=True)
    def get_top_users(query):
        """The users who moved the most credits (or took part in the most transactions) in [from, to)."""
        _reader(guard)
        return {"items": reports.top_users(query["start"], query["end"], query["by"], query["limit"])}

    @blp.route("/wallet/statement/<string(maxlength=64):user_id>")
    @blp.arguments(StatementQuerySchema, location="query")
    @blp.response(200, StatementSchema)
    @blp.doc(**CSV_DOC)
    @errors("forbidden", "not_found", "validation_error", auth=True)
    def get_statement(query, user_id):
        """A wallet's entries in [from, to) with the balance after each, and the opening and
        closing balances (owner, admin or auditor); `format=csv` streams them."""
        head, lines = reports.statement(guard.principal(), user_id, query["start"], query["end"])
        if query["format"] == "csv":
            response = Response(stream_with_context(_csv_lines(lines)), mimetype="text/csv")
            response.headers["Content-Disposition"] = f'attachment; filename="statement-{user_id[:36]}.csv"'
            return response
        return {**head, "entries": list(lines)}

    @blp.route("/dashboard/panels/volumes.svg")
    @blp.arguments(PanelQuerySchema, location="query")
    @blp.response(200, PanelSchema)
    @errors("forbidden", "validation_error", auth=True)
    def get_volumes_panel(query):
        """The dashboard's chart: credits moved per day over the last `days` days, by type (SVG)."""
        _reader(guard)
        start, end = last_days(query["days"], query["zone"])
        buckets = reports.summary(start, end, Interval.DAY, query["zone"])
        return {"svg": volumes_svg(buckets, query["zone"])}

    @blp.route("/dashboard/panels/modules.svg")
    @blp.response(200, PanelSchema)
    @errors("forbidden", auth=True)
    def get_modules_panel():
        """The dashboard's module graph: each module's status and event backlog (SVG)."""
        _reader(guard)
        status = manager.status_report(include_reasons=False)
        health = {name: manager.get_module_health(name) for name in status["load_order"]}
        return {"svg": module_graph_svg(status, health)}

    return blp


def _past_moment(as_of: datetime | None) -> datetime:
    now = datetime.now(UTC)
    if as_of is None:
        return now
    as_of = as_of.replace(tzinfo=UTC) if as_of.tzinfo is None else as_of.astimezone(UTC)
    if as_of > now:
        raise ValidationFailed.field("as_of", "Must not lie in the future.")
    return as_of


def build_dashboard_blueprint() -> FlaskBlueprint:
    """/dashboard and its assets: a page, not an API operation (like /docs, it stays out of
    the OpenAPI document). Everything it loads comes from this app."""
    page = FlaskBlueprint("dashboard", __name__)
    html = (STATIC / "dashboard.html").read_bytes()  # a body, not a file passthrough: it gets its CSP

    @page.route("/dashboard")
    def dashboard():
        return Response(html, mimetype="text/html")

    assets = {name: (STATIC / name).read_bytes() for name in ("dashboard.js", "dashboard.css")}  # small, read once
    types = {"dashboard.js": "text/javascript", "dashboard.css": "text/css"}

    @page.route("/dashboard/assets/<any('dashboard.js', 'dashboard.css'):filename>")
    def dashboard_asset(filename: str):
        response = Response(assets[filename], mimetype=types[filename])
        response.cache_control.max_age = 300
        return response

    return page
