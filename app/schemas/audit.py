"""Audit trail payloads (API.md "Audit trail")."""

from __future__ import annotations

from datetime import UTC

from marshmallow import Schema, ValidationError, fields, validate

from app.schemas.common import PageQuerySchema, QuerySchema, no_nul, page_schema
from app.schemas.events import ActorSchema
from app.services.audit.chain import ALTERED, MISSING, RELINKED
from app.services.audit.export import FORMATS
from app.services.pagination import BIGINT_MAX

HASH = validate.Regexp(r"^[0-9a-f]{64}$", error="64 lowercase hex digits (a SHA-256).")


class UtcDateTime(fields.AwareDateTime):
    """ISO 8601; without an offset it is UTC. Converted to UTC here, so a date the database
    cannot hold (an offset pushing it past year 9999) is a 422, not a 500."""

    def __init__(self, **kwargs) -> None:
        super().__init__(format="iso", default_timezone=UTC, **kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        moment = super()._deserialize(value, attr, data, **kwargs)
        try:
            return moment.astimezone(UTC)
        except (OverflowError, ValueError):
            raise ValidationError("Not a date and time this server can hold.") from None


def _since() -> UtcDateTime:
    return UtcDateTime(
        metadata={"description": "Only entries that occurred at or after this (ISO 8601; UTC if no offset)"}
    )


def _until() -> UtcDateTime:
    return UtcDateTime(metadata={"description": "Only entries that occurred before this (ISO 8601; UTC if no offset)"})


class AuditQuerySchema(PageQuerySchema):
    actor_id = fields.String(validate=[validate.Length(min=1, max=36), no_nul], metadata={"description": "Who acted"})
    action = fields.String(
        validate=[validate.Length(min=1, max=64), no_nul],
        metadata={
            "description": "An event type, or a prefix of known ones (`transaction.`); one that matches no known "
            "type is 422"
        },
    )
    target_id = fields.String(
        validate=[validate.Length(min=1, max=64), no_nul], metadata={"description": "What it was about"}
    )
    since = _since()
    until = _until()


class VerifyQuerySchema(QuerySchema):
    from_sequence = fields.Integer(
        validate=validate.Range(min=1, max=BIGINT_MAX),
        metadata={"description": "A trusted checkpoint's sequence (with from_hash)"},
    )
    from_hash = fields.String(
        validate=HASH, metadata={"description": "A trusted checkpoint's hash (with from_sequence)"}
    )


class ExportQuerySchema(QuerySchema):
    format = fields.String(
        load_default="jsonl", validate=validate.OneOf(sorted(FORMATS)), metadata={"description": "jsonl or csv"}
    )
    since = _since()
    until = _until()


class TargetSchema(Schema):
    type = fields.String(required=True, allow_none=True, metadata={"example": "user"})
    id = fields.String(required=True, allow_none=True)


class EntrySchema(Schema):
    sequence = fields.Integer(required=True, metadata={"description": "The chain's own, gap-free"})
    event_id = fields.String(required=True, metadata={"description": "The event this entry records"})
    occurred_at = fields.String(required=True, metadata={"format": "date-time"})
    action = fields.String(required=True, metadata={"description": "The event type", "example": "transaction.posted"})
    actor = fields.Nested(ActorSchema, required=True)
    target = fields.Nested(TargetSchema, required=True)
    request_id = fields.String(required=True, allow_none=True)
    remote_addr = fields.String(required=True, allow_none=True, metadata={"description": "The client's address"})
    data = fields.Dict(required=True, metadata={"description": "The event's data; credentials never appear"})
    prev_hash = fields.String(required=True, metadata={"description": "The previous entry's hash (64 zeros first)"})
    hash = fields.String(required=True, metadata={"description": "SHA-256 hex of prev_hash + the canonical content"})


EntryPageSchema = page_schema(EntrySchema, "AuditEntryPage")


class HeadSchema(Schema):
    sequence = fields.Integer(required=True)
    hash = fields.String(required=True)


class BrokenSchema(Schema):
    sequence = fields.Integer(required=True)
    reason = fields.String(required=True, validate=validate.OneOf([ALTERED, RELINKED, MISSING]))


class VerifySchema(Schema):
    verified = fields.Boolean(required=True)
    entries_checked = fields.Integer(required=True)
    head = fields.Nested(HeadSchema, required=True, metadata={"description": "The last entry that verified"})
    first_broken = fields.Nested(BrokenSchema, required=True, allow_none=True)
