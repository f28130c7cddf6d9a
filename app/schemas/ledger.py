"""Wallet and transaction payloads."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from app.schemas.common import Amount, Description, EnumString, PageQuerySchema, no_nul
from app.vocabulary import TransactionType

UserId = lambda **kw: fields.String(required=True, validate=[validate.Length(min=1, max=64), no_nul], **kw)  # noqa: E731


class MoneyMovementSchema(Schema):
    user_id = UserId()
    amount = Amount()
    description = Description()


class TransferSchema(Schema):
    from_user_id = UserId()
    to_user_id = UserId()
    amount = Amount()
    description = Description()


class ReverseSchema(Schema):
    reason = fields.String(load_default=None, allow_none=True, validate=[validate.Length(max=500), no_nul])


class HistoryQuerySchema(PageQuerySchema):
    user_id = fields.String(load_default=None, validate=[validate.Length(min=1, max=64), no_nul])
    # Absent means every type; a query string cannot send null.
    type = EnumString(TransactionType, load_default=None, allow_none=False)


class TransactionSchema(Schema):
    id = fields.String(required=True)
    type = EnumString(TransactionType, required=True)
    amount = fields.Integer(required=True)
    from_user_id = fields.String(required=True, allow_none=True)
    to_user_id = fields.String(required=True, allow_none=True)
    description = fields.String(required=True, allow_none=True)
    created_at = fields.DateTime(required=True, format="iso")
    reverses = fields.String(required=True, allow_none=True)
    reversed_by = fields.String(required=True, allow_none=True)


class BalanceSchema(Schema):
    user_id = fields.String(required=True)
    balance = fields.Integer(required=True)
    updated_at = fields.DateTime(required=True, format="iso")
