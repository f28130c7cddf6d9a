"""Notification payloads (API.md "Notifications"): the inbox, preferences, the delivery log."""

from __future__ import annotations

from typing import ClassVar

from marshmallow import RAISE, Schema, ValidationError, fields, validate

from app.schemas.common import (
    MAX_AMOUNT,
    EnumString,
    PageQuerySchema,
    StrictBoolean,
    StrictInteger,
    no_nul,
    page_schema,
)
from app.vocabulary import NotificationChannel, NotificationStatus, NotificationTopic


class NotificationSchema(Schema):
    id = fields.String(required=True)
    topic = EnumString(NotificationTopic, required=True)
    title = fields.String(required=True)
    body = fields.String(required=True)
    data = fields.Dict(required=True, metadata={"description": "What the notification is about (amount, balance, ...)"})
    created_at = fields.DateTime(required=True, format="iso")
    read_at = fields.DateTime(required=True, allow_none=True, format="iso")


NotificationPageSchema = page_schema(NotificationSchema, "NotificationPage")


class InboxQuerySchema(PageQuerySchema):
    unread = fields.Boolean(
        load_default=False,
        truthy={"true"},
        falsy={"false"},
        metadata={"description": "`true`: only notifications not marked read"},
    )


class ChannelChoicesSchema(Schema):
    in_app = fields.Boolean(required=True)
    email = fields.Boolean(required=True)
    sms = fields.Boolean(required=True)


class ChannelChoicesPatchSchema(Schema):
    class Meta:
        unknown = RAISE

    in_app = StrictBoolean()
    email = StrictBoolean()
    sms = StrictBoolean()


TopicChoicesSchema = Schema.from_dict(
    {topic.value: fields.Nested(ChannelChoicesSchema, required=True) for topic in NotificationTopic},
    name="TopicChoices",
)
TopicChoicesPatchSchema = Schema.from_dict(
    {topic.value: fields.Nested(ChannelChoicesPatchSchema) for topic in NotificationTopic},
    name="TopicChoicesPatch",
)


class PreferencesSchema(Schema):
    topics = fields.Nested(TopicChoicesSchema, required=True, metadata={"description": "Per topic, per channel"})
    low_balance_threshold = fields.Integer(required=True)


class PreferencesPatchSchema(Schema):
    class Meta:
        description = (
            "Only what changes: `{topics: {topic: {channel: bool}}, low_balance_threshold}`. "
            "`security` email cannot be turned off (422)."
        )

    EXAMPLE: ClassVar[dict] = {"topics": {"transfer_sent": {"email": True}}, "low_balance_threshold": 50}

    topics = fields.Nested(TopicChoicesPatchSchema)
    low_balance_threshold = StrictInteger(
        validate=validate.Range(min=0, max=MAX_AMOUNT),
        metadata={"description": "low_balance fires when a debit takes the balance from at least this to below it"},
    )

    def handle_error(self, error: ValidationError, data, *, many: bool, **kwargs) -> None:
        """The error body maps each bad field to a list of messages: a nested field is named by
        its path (`topics.deposit.email`), not given as a nested object."""
        raise ValidationError(flatten(error.normalized_messages()))


def flatten(messages: dict, prefix: str = "") -> dict[str, list[str]]:
    flat: dict[str, list[str]] = {}
    for key, value in messages.items():
        name = prefix if key == "_schema" and prefix else f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, dict):
            flat.update(flatten(value, name))
        else:
            flat.setdefault(name, []).extend(str(item) for item in (value if isinstance(value, list) else [value]))
    return flat


class DeliveryLogQuerySchema(PageQuerySchema):
    user_id = fields.String(
        validate=[validate.Length(min=1, max=64), no_nul],
        metadata={"description": "Whose deliveries (default: your own; another user's needs an admin)"},
    )


class NotificationDeliverySchema(Schema):
    id = fields.String(required=True)
    notification_id = fields.String(required=True)
    channel = EnumString(NotificationChannel, required=True)
    to = fields.String(required=True, allow_none=True, metadata={"description": "Masked: `a***e@example.com`"})
    status = EnumString(NotificationStatus, required=True)
    attempts = fields.Integer(required=True)
    last_error = fields.String(required=True, allow_none=True)
    sent_at = fields.DateTime(required=True, allow_none=True, format="iso")


NotificationDeliveryPageSchema = page_schema(NotificationDeliverySchema, "NotificationDeliveryPage")
