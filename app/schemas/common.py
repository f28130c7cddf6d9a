"""Fields and schemas shared by every module's API."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from marshmallow import Schema, ValidationError, fields, post_load, validate

from app.services.pagination import DEFAULT_LIMIT, MAX_LIMIT

MAX_AMOUNT = 1_000_000_000_000


class StrictInteger(fields.Integer):
    """A JSON integer only: no floats (not even 10.0), strings or booleans."""

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValidationError("Must be a JSON integer.")
        return value


class StrictBoolean(fields.Boolean):
    """true or false only; marshmallow would otherwise accept "yes", 1 and friends."""

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, bool):
            raise ValidationError("Must be true or false.")
        return value


class EnumString(fields.String):
    """One value of a StrEnum vocabulary (app.vocabulary), loaded and dumped as a plain string.

    The OpenAPI document shows it as a $ref to one component named after the enum
    (app.http.api.enum_component), so the values are listed once however many fields use them.
    """

    def __init__(self, enum: type[StrEnum], **kwargs: Any) -> None:
        super().__init__(validate=validate.OneOf([member.value for member in enum]), **kwargs)
        self.enum = enum


class Moment(fields.String):
    """An ISO 8601 date or date-time, with or without an offset (a query parameter); loaded as a
    datetime, naive when no offset was given (the caller says which zone that means)."""

    def _deserialize(self, value, attr, data, **kwargs):
        text = super()._deserialize(value, attr, data, **kwargs)
        if not 1 <= len(text) <= 64:
            raise ValidationError("Not an ISO 8601 date or date-time.")
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            raise ValidationError("Not an ISO 8601 date or date-time.") from None
        try:
            (moment if moment.tzinfo is None else moment.astimezone(UTC)).replace(tzinfo=UTC).astimezone(UTC)
        except (OverflowError, ValueError):
            raise ValidationError("Out of range.") from None
        return moment


# PostgreSQL text cannot hold NUL characters: refuse them as bad input, not a 500. A Regexp,
# so that the OpenAPI document says so too (as the field's `pattern`).
no_nul = validate.Regexp(r"^[^\x00]*$", error="Must not contain NUL characters.")


def Amount(**kwargs) -> StrictInteger:
    return StrictInteger(
        required=True,
        validate=validate.Range(min=1, max=MAX_AMOUNT),
        metadata={"description": f"Integer credits, 1..{MAX_AMOUNT}", "example": 100},
        **kwargs,
    )


def Description() -> fields.String:
    return fields.String(
        load_default=None,
        allow_none=True,
        validate=[validate.Length(max=500), no_nul],
        metadata={"description": "At most 500 characters", "example": "Lunch"},
    )


class QuerySchema(Schema):
    """Query parameters: an absent one is None for the view.

    Not `load_default=None`, which the OpenAPI document would show as `nullable` with
    `default: null`: a query string cannot carry null, and generated clients then typed
    every optional parameter as `None | str | Unset`.
    """

    @post_load
    def absent_is_none(self, data: dict, **kwargs: Any) -> dict:
        return {name: data.get(name) for name, field in self.load_fields.items()} | data


class PageQuerySchema(QuerySchema):
    limit = fields.Integer(load_default=DEFAULT_LIMIT, validate=validate.Range(min=1, max=MAX_LIMIT))
    cursor = fields.String(
        validate=[validate.Length(max=512), validate.Regexp(r"^[A-Za-z0-9_-]*$", error="invalid cursor")],
        metadata={
            "description": "`next_cursor` of the previous page (opaque). A cursor this server did not "
            "issue is 422 `validation_error`"
        },
    )


def page_schema(item_schema: type[Schema], name: str) -> type[Schema]:
    """A `{items, next_cursor}` page of item_schema."""
    return Schema.from_dict(
        {
            "items": fields.List(fields.Nested(item_schema), required=True),
            "next_cursor": fields.String(allow_none=True, required=True),
        },
        name=name,
    )
