"""Event feed and delivery payloads (API.md "Events")."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from app.schemas.common import EnumString, PageQuerySchema, QuerySchema, no_nul, page_schema
from app.services.pagination import DEFAULT_LIMIT, MAX_LIMIT
from app.vocabulary import DeliveryStatus


class ActorSchema(Schema):
    type = fields.String(required=True, validate=validate.OneOf(["user", "system"]), metadata={"example": "user"})
    id = fields.String(required=True, allow_none=True, metadata={"description": "The user's id; null for the system"})


class EventSchema(Schema):
    id = fields.String(required=True, metadata={"description": "The event's id (stable across deliveries)"})
    sequence = fields.Integer(required=True, metadata={"description": "Gap-free, in the order events became visible"})
    type = fields.String(required=True, metadata={"example": "transaction.posted"})
    occurred_at = fields.String(required=True, metadata={"format": "date-time"})
    actor = fields.Nested(ActorSchema, required=True)
    request_id = fields.String(required=True, allow_none=True)
    data = fields.Dict(required=True, metadata={"description": "The type's own fields (GET /events/types)"})


class EventFeedQuerySchema(QuerySchema):
    after = fields.Integer(
        load_default=0,
        validate=validate.Range(min=0),
        metadata={"description": "Only events with a greater sequence: the previous page's `last_sequence`"},
    )
    type = fields.String(
        validate=[validate.Length(min=1, max=64), no_nul],
        metadata={"description": "Only types starting with this (`transaction.` or `transaction.posted`)"},
    )
    limit = fields.Integer(load_default=DEFAULT_LIMIT, validate=validate.Range(min=1, max=MAX_LIMIT))


class EventFeedSchema(Schema):
    items = fields.List(fields.Nested(EventSchema), required=True)
    last_sequence = fields.Integer(
        required=True, metadata={"description": "The last item's sequence (or `after` when none): pass it as `after`"}
    )


class EventTypeSchema(Schema):
    type = fields.String(required=True, metadata={"example": "user.created"})
    description = fields.String(required=True)


class DeliveryQuerySchema(PageQuerySchema):
    status = EnumString(DeliveryStatus)
    subscriber = fields.String(validate=[validate.Length(min=1, max=64), no_nul], metadata={"description": "A module"})


class DeliverySchema(Schema):
    id = fields.String(required=True)
    event_id = fields.String(required=True)
    event_type = fields.String(required=True)
    subscriber = fields.String(required=True, metadata={"description": "The module the event is owed to"})
    status = EnumString(DeliveryStatus, required=True)
    attempts = fields.Integer(required=True)
    last_error = fields.String(required=True, allow_none=True)
    next_attempt_at = fields.DateTime(required=True, allow_none=True, format="iso")


DeliveryPageSchema = page_schema(DeliverySchema, "DeliveryPage")
