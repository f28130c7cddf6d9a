"""JsonWriter writes what the json module would (parsed back equal), including what orjson
refuses, and hands dates and dataclasses to `default` as the json module does."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, date, datetime

import pytest
from flask.json.provider import DefaultJSONProvider

from app.infrastructure.json_text import JsonWriter

write = JsonWriter(default=DefaultJSONProvider.default)


@dataclass
class Point:
    x: int
    y: int


@pytest.mark.parametrize(
    "value",
    [
        {"user_id": "u-1", "balance": 123, "updated_at": "2026-11-29T00:00:00+00:00"},
        {"items": [{"amount": 10**12, "description": "caf\u00e9 \U0001f600"}], "next_cursor": None},
        {"big": 2**64, "small": -(2**70)},  # beyond orjson's 64 bits
        {"text": "lone \ud800 surrogate"},  # not UTF-8: orjson refuses it
        {2: "int key", None: "none key", True: "bool key", 1.5: "float key"},
        {"when": datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC), "day": date(2026, 1, 2), "point": Point(1, 2)},
        [],
        "plain",
    ],
)
def test_the_same_json_as_the_json_module_writes(value):
    expected = json.dumps(value, default=DefaultJSONProvider.default)
    assert json.loads(write(value)) == json.loads(expected)


def test_compact_utf8_and_ascii_escapes_only_where_orjson_cannot_write():
    assert write({"a": [1, "é"]}) == '{"a":[1,"é"]}'.encode()
    assert write({"a": "\ud800", "n": 2**64}) == b'{"a":"\\ud800","n":18446744073709551616}'


def test_dates_go_through_default_as_flask_writes_them():
    assert json.loads(write({"d": datetime(2026, 1, 2, tzinfo=UTC)})) == {"d": "Fri, 02 Jan 2026 00:00:00 GMT"}
