"""Report payloads: query parameters (moments, zones, intervals) and the answers."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from marshmallow import Schema, ValidationError, fields, post_load, validate, validates_schema

from app.schemas.common import Moment, QuerySchema
from app.services.reports.periods import Interval, moment, on_quarter, zone

DEFAULT_TOP = 10
MAX_TOP = 100
_MOMENT_HELP = (
    "ISO 8601 date or date-time; without an offset it is local time in `tz`. Intervals are half-open `[from, to)`"
)


def _zone_field() -> fields.String:
    return fields.String(
        load_default="UTC",
        validate=validate.Length(min=1, max=64),
        metadata={"description": "An IANA time zone: bucket boundaries are its local midnights", "example": "UTC"},
    )


def _check_zone(data: dict) -> None:
    try:
        zone(data.get("tz") or "UTC")
    except ValueError:
        raise ValidationError("Not a known IANA time zone.", "tz") from None


class _RangeQuery(QuerySchema):
    """`from` < `to`, both resolved to aware UTC datetimes in `tz`."""

    start = Moment(data_key="from", required=True, metadata={"description": _MOMENT_HELP, "example": "2026-01-01"})
    end = Moment(data_key="to", required=True, metadata={"description": _MOMENT_HELP, "example": "2026-02-01"})
    tz = _zone_field()

    @validates_schema
    def known_zone(self, data: dict, **kwargs: Any) -> None:
        _check_zone(data)

    @post_load
    def resolve(self, data: dict, **kwargs: Any) -> dict:
        tz = zone(data.get("tz") or "UTC")
        data["zone"] = tz
        for name in ("start", "end"):
            if data.get(name) is not None:
                data[name] = moment(data[name], tz)
        data = self.finish(data)
        if data["start"] >= data["end"]:
            raise ValidationError("Must lie before `to`.", "from")
        return data

    def finish(self, data: dict) -> dict:
        return data


class SummaryQuerySchema(_RangeQuery):
    interval = fields.String(
        load_default=Interval.DAY.value,
        validate=validate.OneOf([member.value for member in Interval]),
        metadata={"description": "Bucket size (weeks start on Monday); at most 366 buckets"},
    )

    def finish(self, data: dict) -> dict:
        for name, key in (("start", "from"), ("end", "to")):
            if not on_quarter(data[name]):
                raise ValidationError("Must fall on a quarter hour (the aggregates' grain).", key)
        data["interval"] = Interval(data["interval"])
        return data


class TopUsersQuerySchema(_RangeQuery):
    by = fields.String(
        load_default="volume",
        validate=validate.OneOf(["volume", "count"]),
        metadata={"description": "Rank by credits moved in and out, or by transactions taken part in"},
    )
    limit = fields.Integer(load_default=DEFAULT_TOP, validate=validate.Range(min=1, max=MAX_TOP))


class StatementQuerySchema(_RangeQuery):
    start = Moment(data_key="from", metadata={"description": f"{_MOMENT_HELP}. Default: the beginning"})
    end = Moment(data_key="to", metadata={"description": f"{_MOMENT_HELP}. Default: now"})
    format = fields.String(
        load_default="json",
        validate=validate.OneOf(["json", "csv"]),
        metadata={"description": "`csv` streams the entries with the same columns"},
    )

    def finish(self, data: dict) -> dict:
        data["start"] = data.get("start") or datetime(1970, 1, 1, tzinfo=UTC)
        data["end"] = data.get("end") or datetime.now(UTC)
        return data


class BalancesQuerySchema(QuerySchema):
    as_of = Moment(metadata={"description": "ISO 8601, UTC unless an offset is given; not in the future. Default: now"})


class PanelQuerySchema(QuerySchema):
    days = fields.Integer(load_default=30, validate=validate.Range(min=1, max=366))
    tz = _zone_field()

    @validates_schema
    def known_zone(self, data: dict, **kwargs: Any) -> None:
        _check_zone(data)

    @post_load
    def resolve(self, data: dict, **kwargs: Any) -> dict:
        data["zone"] = zone(data.get("tz") or "UTC")
        return data


class PanelSchema(Schema):
    svg = fields.String(required=True, metadata={"description": "An SVG image rendered by the server"})


class Totals(Schema):
    count = fields.Integer(required=True)
    amount = fields.Integer(required=True)


class SummaryBucketSchema(Schema):
    start = fields.DateTime(required=True, format="iso")
    end = fields.DateTime(required=True, format="iso")
    deposits = fields.Nested(Totals, required=True)
    withdrawals = fields.Nested(Totals, required=True)
    transfers = fields.Nested(Totals, required=True)
    reversals = fields.Nested(Totals, required=True)
    new_users = fields.Integer(required=True)
    active_users = fields.Integer(required=True, metadata={"description": "Distinct users in a transaction"})


class SummarySchema(Schema):
    interval = fields.String(required=True)
    tz = fields.String(required=True)
    buckets = fields.List(fields.Nested(SummaryBucketSchema), required=True)


class BalancesSchema(Schema):
    as_of = fields.DateTime(required=True, format="iso")
    issued = fields.Integer(required=True, metadata={"description": "Credits deposited, net of reversals"})
    redeemed = fields.Integer(required=True, metadata={"description": "Credits withdrawn, net of reversals"})
    outstanding = fields.Integer(required=True, metadata={"description": "Sum of wallet balances: the liability"})
    wallets = fields.Integer(required=True)
    balanced = fields.Boolean(required=True, metadata={"description": "outstanding == issued - redeemed"})


class TopUserSchema(Schema):
    user_id = fields.String(required=True)
    username = fields.String(required=True)
    count = fields.Integer(required=True)
    volume = fields.Integer(required=True)


class TopUsersSchema(Schema):
    items = fields.List(fields.Nested(TopUserSchema), required=True)


class StatementEntrySchema(Schema):
    transaction_id = fields.String(required=True)
    type = fields.String(required=True)
    amount = fields.Integer(required=True, metadata={"description": "Signed: negative when credits left the wallet"})
    balance_after = fields.Integer(required=True)
    counterparty_id = fields.String(required=True, allow_none=True)
    created_at = fields.DateTime(required=True, format="iso")


class StatementSchema(Schema):
    user_id = fields.String(required=True)
    start = fields.DateTime(data_key="from", required=True, format="iso")
    end = fields.DateTime(data_key="to", required=True, format="iso")
    opening_balance = fields.Integer(required=True)
    closing_balance = fields.Integer(required=True)
    entries = fields.List(fields.Nested(StatementEntrySchema), required=True)
