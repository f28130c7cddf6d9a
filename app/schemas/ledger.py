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
    class Meta:
        description = "`to_user_id` must differ from `from_user_id` (else 422 `validation_error`)"

    from_user_id = UserId()
    to_user_id = UserId(metadata={"description": "Must differ from `from_user_id`"})
    amount = Amount()
    description = Description()


class ReverseSchema(Schema):
    reason = fields.String(load_default=None, allow_none=True, validate=[validate.Length(max=500), no_nul])


class HistoryQuerySchema(PageQuerySchema):
    user_id = fields.String(
        validate=[validate.Length(min=1, max=64), no_nul],
        metadata={"description": "Whose transactions (default: the caller's; another user's needs admin)"},
    )
    type = EnumString(TransactionType, metadata={"description": "Only this type (default: every type)"})


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
