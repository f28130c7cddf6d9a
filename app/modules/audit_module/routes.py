"""Routes of the audit trail (admins and auditors): parse, call, return."""

from __future__ import annotations

from flask import Response, stream_with_context

from app.http.blueprint import Blueprint
from app.http.docs import errors
from app.http.guard import AccessGuard
from app.schemas.audit import (
    AuditQuerySchema,
    EntryPageSchema,
    EntrySchema,
    ExportQuerySchema,
    VerifyQuerySchema,
    VerifySchema,
)
from app.services.audit.export import FORMATS
from app.services.audit.trail import AuditTrail, Filters
from app.services.errors import NotFound
from app.services.pagination import BIGINT_MAX
from app.vocabulary import ascii_int


def build_blueprint(trail: AuditTrail, guard: AccessGuard) -> Blueprint:
    blp = Blueprint("audit", __name__, description="Audit trail: every event, hash-chained (admins and auditors)")

    @blp.route("/audit/entries")
    @blp.arguments(AuditQuerySchema, location="query")
    @blp.response(200, EntryPageSchema)
    @errors("forbidden", "validation_error", auth=True)
    def list_audit_entries(query):
        """Audit entries, newest first, filtered by actor, action (type or prefix), target and time
        (admin, auditor). Reading is itself audited (`audit.read`)."""
        filters = Filters(query["actor_id"], query["action"], query["target_id"], query["since"], query["until"])
        page = trail.entries(guard.principal(), filters, query["limit"], query["cursor"])
        return {"items": page.items, "next_cursor": page.next_cursor}

    @blp.route("/audit/entries/<string(maxlength=32):sequence>")
    @blp.response(200, EntrySchema)
    @errors("forbidden", "not_found", auth=True)
    def get_audit_entry(sequence):
        """One audit entry by its sequence (admin, auditor); audited (`audit.read`)."""
        principal = guard.principal()
        number = ascii_int(sequence, max_digits=19)
        if number is None or number > BIGINT_MAX:
            raise NotFound("no audit entry with that sequence")
        return trail.entry(principal, number)

    @blp.route("/audit/verify")
    @blp.arguments(VerifyQuerySchema, location="query")
    @blp.response(200, VerifySchema)
    @errors("forbidden", "validation_error", auth=True)
    def verify_audit_chain(query):
        """Recompute the chain and name its first broken entry (admin, auditor): from its start, or
        from a trusted checkpoint (`from_sequence` and `from_hash` together), which also catches the
        newest entries deleted and a rewritten chain. Audited (`audit.read`)."""
        return trail.verify(guard.principal(), query["from_sequence"], query["from_hash"])

    @blp.route("/audit/export")
    @blp.arguments(ExportQuerySchema, location="query")
    @errors("forbidden", "validation_error", auth=True)
    @blp.doc(
        responses={
            200: {
                "description": "The entries from the first at or after `since` to the last before `until`, every "
                "entry between included, oldest first, streamed; the last line carries the head `{sequence, "
                'hash}` (JSONL: `{"head": {...}}`; CSV: `head,N,H`) so the file verifies offline '
                "(`credit-system audit verify --file`)",
                "content": {media: {"schema": {"type": "string"}} for media in FORMATS.values()},
            }
        }
    )
    def export_audit_trail(query):
        """Export the audit trail as JSONL or CSV (admin, auditor); audited (`audit.exported`)."""
        lines = trail.export(guard.principal(), query["format"], query["since"], query["until"])
        filename = f"audit.{query['format']}"
        return Response(
            stream_with_context(lines),
            content_type=f"{FORMATS[query['format']]}; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{filename}"'},
        )

    return blp
