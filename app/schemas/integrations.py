"""Webhook endpoints, their deliveries and received payments (API.md "Integrations")."""

from __future__ import annotations

from typing import ClassVar

from marshmallow import Schema, ValidationError, fields, validate

from app.schemas.common import EnumString, PageQuerySchema, no_nul, page_schema
from app.vocabulary import EndpointStatus, PaymentStatus, WebhookDeliveryStatus

URL = [validate.Length(min=1, max=2048), no_nul]
EVENT_PATTERN = [validate.Length(min=1, max=64), validate.Regexp(r"^(\*|[A-Za-z0-9_.]+)$", error="not an event type")]


class FlatList(fields.List):
    """A list whose items' errors are reported as the field's own messages, as the API's
    `validation_error` details promise (a field maps to a list of strings, never to indexes)."""

    def _deserialize(self, value, attr, data, **kwargs):
        try:
            return super()._deserialize(value, attr, data, **kwargs)
        except ValidationError as error:
            messages = error.messages
            if isinstance(messages, dict):
                flat = [f"item {index}: {text}" for index, texts in messages.items() for text in texts]
                raise ValidationError(flat) from None
            raise


def EventTypes(**kwargs) -> fields.List:
    return FlatList(
        fields.String(validate=EVENT_PATTERN),
        validate=validate.Length(max=50),
        metadata={
            "description": "Event types (`transaction.posted`), prefixes ending in `.` (`user.`) or `*`; "
            "empty: every type (GET /events/types lists them)",
            "example": ["transaction.posted"],
        },
        **kwargs,
    )


def EndpointDescription() -> fields.String:
    return fields.String(allow_none=True, validate=[validate.Length(max=500), no_nul])


class WebhookEndpointCreateSchema(Schema):
    EXAMPLE: ClassVar[dict] = {"url": "https://example.com/webhooks", "event_types": ["transaction.posted"]}

    url = fields.String(required=True, validate=URL, metadata={"description": "An http(s) URL on a public address"})
    event_types = EventTypes(load_default=list)
    description = EndpointDescription()


class WebhookEndpointUpdateSchema(Schema):
    EXAMPLE: ClassVar[dict] = {"status": "active"}

    url = fields.String(validate=URL)
    event_types = EventTypes()
    description = EndpointDescription()
    status = EnumString(EndpointStatus, metadata={"description": "`active` again clears the failure record"})


class WebhookEndpointSchema(Schema):
    id = fields.String(required=True)
    url = fields.String(required=True)
    event_types = fields.List(fields.String(), required=True)
    description = fields.String(required=True, allow_none=True)
    status = EnumString(EndpointStatus, required=True)
    created_at = fields.DateTime(required=True, format="iso")
    disabled_reason = fields.String(required=True, allow_none=True)


class WebhookEndpointWithSecretSchema(WebhookEndpointSchema):
    secret = fields.String(
        required=True,
        metadata={"description": "`whsec_...`: the signing secret, shown only here and on rotation"},
    )


class WebhookSecretSchema(Schema):
    secret = fields.String(required=True, metadata={"description": "The new `whsec_...` secret"})


class WebhookDeliveryQuerySchema(PageQuerySchema):
    status = EnumString(WebhookDeliveryStatus)


class WebhookDeliverySchema(Schema):
    id = fields.String(required=True)
    endpoint_id = fields.String(required=True)
    event_id = fields.String(required=True, metadata={"description": "The `webhook-id` header"})
    event_type = fields.String(required=True)
    status = EnumString(WebhookDeliveryStatus, required=True)
    attempts = fields.Integer(required=True)
    last_status_code = fields.Integer(required=True, allow_none=True)
    last_error = fields.String(required=True, allow_none=True)
    next_attempt_at = fields.DateTime(required=True, allow_none=True, format="iso")
    created_at = fields.DateTime(required=True, format="iso")


class PaymentQuerySchema(PageQuerySchema):
    status = EnumString(PaymentStatus)


class PaymentSchema(Schema):
    id = fields.String(required=True)
    provider = fields.String(required=True, metadata={"example": "stripe"})
    provider_id = fields.String(required=True, metadata={"description": "The checkout session (or event) id"})
    event_id = fields.String(required=True, allow_none=True, metadata={"description": "The provider's event id"})
    event_type = fields.String(required=True)
    status = EnumString(PaymentStatus, required=True)
    user_id = fields.String(required=True, allow_none=True, metadata={"description": "client_reference_id"})
    amount = fields.Integer(required=True, allow_none=True)
    transaction_id = fields.String(required=True, allow_none=True, metadata={"description": "The deposit"})
    reason = fields.String(required=True, allow_none=True, metadata={"description": "Why it was not credited"})
    received_at = fields.DateTime(required=True, format="iso")


class PaymentReceiptSchema(Schema):
    received = fields.Boolean(required=True)
    status = EnumString(PaymentStatus, required=True)
    duplicate = fields.Boolean(required=True, metadata={"description": "Received before: nothing was done now"})


WebhookEndpointPageSchema = page_schema(WebhookEndpointSchema, "WebhookEndpointPage")
WebhookDeliveryPageSchema = page_schema(WebhookDeliverySchema, "WebhookDeliveryPage")
PaymentPageSchema = page_schema(PaymentSchema, "PaymentPage")
