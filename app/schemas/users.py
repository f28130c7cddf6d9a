"""User and authentication payloads."""

from __future__ import annotations

from typing import ClassVar

from marshmallow import Schema, fields, validate

from app.schemas.common import EnumString, StrictBoolean, no_nul
from app.vocabulary import Role

USERNAME = validate.Regexp(r"^[A-Za-z0-9_.\-]{3,32}$", error="3-32 characters of letters, digits, '_', '.' or '-'.")
PASSWORD = validate.Length(min=8, max=1024)
# E.164: "+", a country code not starting with 0, at most 15 digits in all (no spaces).
PHONE = validate.Regexp(r"^\+[1-9][0-9]{6,14}$", error="An E.164 number such as +4915112345678, or null.")


def phone_field(**kwargs) -> fields.String:
    return fields.String(
        allow_none=True,
        validate=PHONE,
        metadata={"description": "E.164, where SMS notifications go; null for none", "example": "+4915112345678"},
        **kwargs,
    )


class UserCreateSchema(Schema):
    EXAMPLE: ClassVar[dict] = {"username": "alice", "email": "alice@example.com", "password": "correct-horse-battery"}

    username = fields.String(required=True, validate=USERNAME)
    email = fields.Email(required=True, validate=validate.Length(max=254))
    password = fields.String(required=True, load_only=True, validate=PASSWORD)
    phone = phone_field()


class LoginSchema(Schema):
    EXAMPLE: ClassVar[dict] = {"username": "admin", "password": "change-me-now"}  # the README's quick start

    username = fields.String(
        required=True, validate=[validate.Length(min=1, max=254), no_nul], metadata={"description": "Username or email"}
    )
    password = fields.String(required=True, load_only=True, validate=validate.Length(min=1, max=1024))


class UserUpdateSchema(Schema):
    class Meta:
        description = (
            "Self: `email`, `phone` (null removes it), `password` (changing one's own needs `current_password`: "
            "else 422, and 401 when wrong). Admin: also `role` and `is_active`, and another user's `password` "
            "without it."
        )

    EXAMPLE: ClassVar[dict] = {"email": "admin@example.org"}

    email = fields.Email(validate=validate.Length(max=254))
    phone = phone_field()
    password = fields.String(load_only=True, validate=PASSWORD)
    current_password = fields.String(
        load_only=True,
        validate=validate.Length(min=1, max=1024),
        metadata={"description": "Required to change your own password"},
    )
    role = EnumString(Role, metadata={"description": "Admin only"})
    is_active = StrictBoolean(metadata={"description": "Admin only"})


class UserSchema(Schema):
    id = fields.String(required=True, dump_only=True)
    username = fields.String(required=True)
    email = fields.String(required=True)
    phone = fields.String(required=True, allow_none=True, metadata={"description": "E.164, or null"})
    role = EnumString(Role, required=True)
    is_active = fields.Boolean(required=True)
    created_at = fields.DateTime(required=True, format="iso")


class TokenSchema(Schema):
    access_token = fields.String(required=True)
    token_type = fields.String(required=True, metadata={"example": "Bearer"})
    expires_in = fields.Integer(required=True, metadata={"description": "Seconds until the token expires"})
