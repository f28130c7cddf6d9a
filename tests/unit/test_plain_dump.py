"""PlainDump and PlainSchema (app.schemas.dumping) must give exactly what marshmallow's own
Schema.dump gives (called as Schema.dump(schema, ...), so the fast path is not its own reference)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

import pytest
from marshmallow import Schema, fields, post_dump

from app.modules.transactions_module.routes import TransactionPageSchema
from app.schemas.common import EnumString, StrictInteger
from app.schemas.dumping import PlainDump, PlainSchema
from app.schemas.ledger import BalanceSchema, TransactionSchema
from app.services.balance_cache import Balance
from app.services.ledger import TransactionView
from app.vocabulary import TransactionType

MOMENTS = [
    datetime(2026, 11, 29, 19, 31, 27, 672947, tzinfo=UTC),
    datetime(2026, 1, 1, tzinfo=UTC),  # no microseconds: isoformat leaves them out
    datetime(2026, 6, 1, 12, 0, 0, 1, tzinfo=timezone(timedelta(hours=2))),
]


def same(dumped: dict, expected: dict) -> bool:
    """Equal, with the same keys in the same order (the JSON a client sees)."""
    return dumped == expected and list(dumped) == list(expected)


def marshmallow_dump(schema: Schema, obj, many: bool = False):
    return Schema.dump(schema, obj, many=many)


@pytest.mark.parametrize("moment", MOMENTS)
@pytest.mark.parametrize("amount", [0, 1, 1_000_000_000_000])
def test_a_balance_is_dumped_as_balance_schema_dumps_it(moment, amount):
    balance = Balance("5d1e9a7c-3b2f-4e8d-8c6a-1f0b2e4d6a9c", amount, moment, 7)
    assert same(BalanceSchema().dump(balance), marshmallow_dump(BalanceSchema(), balance))


@pytest.mark.parametrize("moment", MOMENTS)
@pytest.mark.parametrize(
    "view",
    [
        dict(type="transfer", from_user_id="a", to_user_id="b", description=None, reverses=None, reversed_by=None),
        dict(type=TransactionType.DEPOSIT, from_user_id=None, to_user_id="b", description="top-up", reverses=None),
        dict(type="reversal", from_user_id="b", to_user_id="a", description="é\x01", reverses="t-1", reversed_by=None),
        dict(type="transfer", from_user_id="a", to_user_id="b", description="", reverses=None, reversed_by="t-2"),
    ],
)
def test_a_transaction_is_dumped_as_transaction_schema_dumps_it(moment, view):
    transaction = TransactionView(id="t-0", amount=5, created_at=moment, **view)
    assert same(TransactionSchema().dump(transaction), marshmallow_dump(TransactionSchema(), transaction))
    assert type(TransactionSchema().dump(transaction)["type"]) is str  # an enum member is dumped as its value


def test_a_history_page_is_dumped_as_its_page_schema_dumps_it():
    items = [TransactionView(f"t-{i}", "transfer", i + 1, "a", "b", None, MOMENTS[i % 3]) for i in range(5)]
    page = {"items": [marshmallow_dump(TransactionSchema(), item) for item in items], "next_cursor": "abc"}
    assert page == TransactionPageSchema().dump({"items": items, "next_cursor": "abc"})
    assert TransactionSchema(many=True).dump(items) == page["items"]


class Renamed(Schema):
    key = fields.String(data_key="renamed")
    source = fields.Integer(attribute="other", as_string=True)
    day = fields.Date()
    strict = StrictInteger()
    kind = EnumString(TransactionType)
    when = fields.DateTime(format="rfc")


@pytest.mark.parametrize(
    "obj",
    [
        {"key": "k", "other": 12, "day": date(2026, 2, 3), "strict": 4, "kind": "transfer", "when": MOMENTS[0]},
        {"key": None, "other": None},  # None stays None; absent keys are left out
        {},
    ],
)
def test_data_keys_attributes_and_other_formats_follow_the_schema(obj):
    assert same(PlainDump(Renamed())(obj), marshmallow_dump(Renamed(), obj))


class WithNested(Schema):
    inner = fields.Nested(BalanceSchema)


class WithMethod(Schema):
    computed = fields.Method("compute")

    def compute(self, obj):
        return 1


class WithHook(Schema):
    name = fields.String()

    @post_dump
    def shout(self, data, **kwargs):
        return {k: v.upper() for k, v in data.items()}


class WithDefault(Schema):
    name = fields.String(dump_default="anonymous")


class OwnSerialize(fields.String):
    def _serialize(self, value, attr, obj, **kwargs):
        return f"<{value}>"


class WithOwnField(Schema):
    name = OwnSerialize()


@pytest.mark.parametrize("schema", [WithNested(), WithMethod(), WithHook(), WithDefault(), WithOwnField()])
def test_a_schema_it_cannot_dump_exactly_is_refused_when_the_dumper_is_built(schema):
    with pytest.raises(TypeError):
        PlainDump(schema)


def test_a_plain_schema_with_a_field_it_cannot_dump_fails_when_made():
    class NotPlain(PlainSchema):
        inner = fields.Nested(BalanceSchema)

    with pytest.raises(TypeError):
        NotPlain()
