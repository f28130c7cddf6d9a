"""The JSON log formatter: its timestamp is datetime's, extras of any type are written, and an
integer orjson refuses still makes a line."""

from __future__ import annotations

import json
import logging
import random
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from app.observability.logging import JsonFormatter, _UtcStamps


def record(**extra) -> logging.LogRecord:
    return logging.getLogger("app.test").makeRecord(
        "app.test", logging.INFO, "(unknown file)", 0, "%s paid %d", ("alice", 5), None, extra=extra
    )


def test_timestamps_match_datetime_isoformat_to_the_microsecond():
    stamp = _UtcStamps()
    moments = [1_764_458_500 + random.random() * 100 for _ in range(20_000)]
    moments += [1_764_458_500 + second + 0.9999996 for second in range(50)]  # rounds up into the next second
    moments += [0.0, 1_764_458_500.0, 4_102_444_799.999999]
    for created in moments:
        assert stamp(created) == datetime.fromtimestamp(created, UTC).isoformat(timespec="microseconds"), created


def test_a_line_carries_the_message_extras_renamed_and_a_utc_timestamp():
    line = json.loads(
        JsonFormatter().format(record(module_name="wallet_module", amount=5, when=datetime(2026, 1, 2, tzinfo=UTC)))
    )
    assert line["message"] == "alice paid 5" and (line["level"], line["logger"]) == ("INFO", "app.test")
    assert line["module"] == "wallet_module" and "module_name" not in line
    assert line["amount"] == 5 and line["when"] == "2026-01-02T00:00:00+00:00"
    assert datetime.fromisoformat(line["timestamp"]).utcoffset().total_seconds() == 0
    assert "request_id" not in line  # outside a request


@pytest.mark.parametrize(
    ("value", "written"),
    [
        (2**64 + 1, 2**64 + 1),  # beyond orjson's 64 bits: the json module writes it
        (Decimal("1.50"), "1.50"),  # neither encoder knows it: its str()
        ({"nested": [1, "two"]}, {"nested": [1, "two"]}),
    ],
)
def test_extras_of_any_type_are_written(value, written):
    assert json.loads(JsonFormatter().format(record(extra_value=value)))["extra_value"] == written


def test_extras_are_found_after_what_a_record_factory_or_another_formatter_added():
    previous = logging.getLogRecordFactory()

    def factory(*args, **kwargs):
        made = previous(*args, **kwargs)
        made.hostname = "web-1"  # a factory's own attribute, printed like an extra
        return made

    logging.setLogRecordFactory(factory)
    try:
        made = record(amount=5)
    finally:
        logging.setLogRecordFactory(previous)
    logging.Formatter("%(asctime)s %(message)s").format(made)  # sets .message and .asctime on the record
    line = json.loads(JsonFormatter().format(made))
    assert (line["hostname"], line["amount"]) == ("web-1", 5)
    assert "asctime" not in line and line["message"] == "alice paid 5"
    assert not set(line) & {"args", "msg", "levelno", "pathname", "created", "msecs", "thread"}
