"""Wallet and transaction payloads."""

from __future__ import annotations

from typing import ClassVar

from marshmallow import Schema, fields, validate

from app.schemas.common import Amount, Description, EnumString, Moment, PageQuerySchema, QuerySchema, no_nul
from app.schemas.dumping import PlainSchema
from app.vocabulary import TransactionType

# Ids in the documentation's examples: placeholders for the caller's own id (after the README's
# steps, the admin's: `GET /users/me`) and another user's (`POST /users` answers with it).
YOUR_USER_ID = "0b6f5c8e-2f4a-4c3e-9a51-7d2e8f1c3b6a"
OTHER_USER_ID = "5d1e9a7c-3b2f-4e8d-8c6a-1f0b2e4d6a9c"


def UserId(example: str = YOUR_USER_ID, note: str = "") -> fields.String:
    description = "A user's id (a UUID): yours is the `id` in `GET /users/me`; `POST /users` answers with one"
    return fields.String(
        required=True,
        validate=[validate.Length(min=1, max=64), no_nul],
        metadata={"description": f"{note}. {description}" if note else description, "example": example},
    )


class MoneyMovementSchema(Schema):
    EXAMPLE: ClassVar[dict] = {"user_id": YOUR_USER_ID, "amount": 100, "description": "Welcome credit"}

    user_id = UserId()
    amount = Amount()
    description = Description()


class TransferSchema(Schema):
    class Meta:
        description = "`to_user_id` must differ from `from_user_id` (else 422 `validation_error`)"

    EXAMPLE: ClassVar[dict] = {
        "from_user_id": YOUR_USER_ID,
        "to_user_id": OTHER_USER_ID,
        "amount": 25,
        "description": "Lunch",
    }

    from_user_id = UserId()
    to_user_id = UserId(OTHER_USER_ID, note="Must differ from `from_user_id`")
    amount = Amount()
    description = Description()


class ReverseSchema(Schema):
    EXAMPLE: ClassVar[dict] = {"reason": "Charged twice"}

    reason = fields.String(load_default=None, allow_none=True, validate=[validate.Length(max=500), no_nul])


class HistoryQuerySchema(PageQuerySchema):
    user_id = fields.String(
        validate=[validate.Length(min=1, max=64), no_nul],
        metadata={"description": "Whose transactions (default: the caller's; another user's needs admin)"},
    )
    type = EnumString(TransactionType, metadata={"description": "Only this type (default: every type)"})


class TransactionSchema(PlainSchema):  # the hot responses: dumped by PlainDump
    id = fields.String(required=True)
    type = EnumString(TransactionType, required=True)
    amount = fields.Integer(required=True)
    from_user_id = fields.String(required=True, allow_none=True)
    to_user_id = fields.String(required=True, allow_none=True)
    description = fields.String(required=True, allow_none=True)
    created_at = fields.DateTime(required=True, format="iso")
    reverses = fields.String(required=True, allow_none=True)
    reversed_by = fields.String(required=True, allow_none=True)


class BalanceSchema(PlainSchema):
    user_id = fields.String(required=True)
    balance = fields.Integer(required=True)
    updated_at = fields.DateTime(format="iso", metadata={"description": "Without `as_of`: when it last changed"})
    as_of = fields.DateTime(format="iso", metadata={"description": "With `as_of`: the moment it was read at"})


class BalanceQuerySchema(QuerySchema):
    NO_QUERY_IS_CONSTANT = True  # no as_of: the same arguments every time (app.http.blueprint)

    as_of = Moment(
        metadata={
            "description": "The balance at this moment (ISO 8601, UTC unless an offset is given; not in the "
            "future): the balance after the wallet's last entry before it",
            "example": "2026-01-31T23:59:59Z",
        }
    )
