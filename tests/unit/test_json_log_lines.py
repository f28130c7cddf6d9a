"""The JSON log formatter: its timestamp is datetime's, extras of any type are written, and an
integer orjson refuses still makes a line."""

from __future__ import annotations

import io
import json
import logging
import random
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from app.observability.logging import InfoWriter, JsonFormatter, _UtcStamps


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


# -- InfoWriter: the access line written straight to the JSON handler ----------------------------


@pytest.fixture
def json_logger(request, monkeypatch):
    """Makes a logger whose only handler is a JsonFormatter StreamHandler on a StringIO (as
    `serve` configures the root logger). Call it in the test body: while the test runs,
    pytest has already attached its capturing handlers to the non-propagating loggers."""

    def make() -> tuple[logging.Logger, io.StringIO]:
        logger = logging.getLogger(f"app.test.{request.node.name}")
        stream = io.StringIO()
        handler = logging.StreamHandler(stream)
        handler.setFormatter(JsonFormatter())
        monkeypatch.setattr(logger, "handlers", [handler])
        monkeypatch.setattr(logger, "propagate", False)
        monkeypatch.setattr(logger, "level", logging.INFO)
        return logger, stream

    return make


FIELDS = {"method": "GET", "path": "/livez", "status": 200, "duration_ms": 0.25, "module": "kernel"}


def test_the_line_written_straight_is_the_formatters_line_for_the_same_record(json_logger, monkeypatch):
    logger, stream = json_logger()
    monkeypatch.setattr(logger, "handle", lambda record: pytest.fail("went through logging"))
    InfoWriter(logger).info("%s %s %s", ("GET", "/livez", 200), FIELDS)
    straight = json.loads(stream.getvalue())
    expected = json.loads(
        JsonFormatter().format(
            logger.makeRecord(
                logger.name,
                logging.INFO,
                "x",
                0,
                "%s %s %s",
                ("GET", "/livez", 200),
                None,
                extra={("module_name" if key == "module" else key): value for key, value in FIELDS.items()},
            )
        )
    )
    assert list(straight) == list(expected)  # same fields, same order
    assert {**straight, "timestamp": None} == {**expected, "timestamp": None}
    assert straight["module"] == "kernel" and straight["message"] == "GET /livez 200"
    assert stream.getvalue().endswith("}\n") and stream.getvalue().count("\n") == 1


@contextmanager
def second_handler(logger: logging.Logger) -> Iterator[list[logging.LogRecord]]:
    """The records a second handler on `logger` receives while the block runs."""
    seen: list[logging.LogRecord] = []
    other = logging.Handler()
    other.emit = seen.append  # type: ignore[method-assign]
    logger.addHandler(other)
    try:
        yield seen
    finally:
        logger.removeHandler(other)


def test_a_second_handler_sends_the_line_through_logging_to_both(json_logger):
    logger, stream = json_logger()
    with second_handler(logger) as seen:
        InfoWriter(logger).info("%s", ("hello",), {"status": 200})
    assert [(r.getMessage(), r.status) for r in seen] == [("hello", 200)]  # type: ignore[attr-defined]
    assert json.loads(stream.getvalue())["status"] == 200


def test_through_logging_the_module_field_travels_as_module_name(json_logger):
    logger, stream = json_logger()
    with second_handler(logger) as seen:
        InfoWriter(logger).info("%s", ("hello",), {"module": "wallet_module"})  # `module` is LogRecord's own
    assert seen[0].module_name == "wallet_module"  # type: ignore[attr-defined]
    assert json.loads(stream.getvalue())["module"] == "wallet_module"


def test_filters_levels_and_record_factories_keep_their_say(json_logger):
    logger, stream = json_logger()
    writer = InfoWriter(logger)
    logger.addFilter(lambda record: record.status != 500)
    writer.info("%s", ("dropped",), {"status": 500})
    writer.info("%s", ("kept",), {"status": 200})
    logger.filters.clear()
    assert [json.loads(line)["message"] for line in stream.getvalue().splitlines()] == ["kept"]

    logger.setLevel(logging.WARNING)
    writer.info("%s", ("below the level",), {})
    logger.setLevel(logging.INFO)
    assert "below the level" not in stream.getvalue()

    previous = logging.getLogRecordFactory()

    def factory(*args, **kwargs):
        made = previous(*args, **kwargs)
        made.hostname = "web-1"
        return made

    logging.setLogRecordFactory(factory)
    try:
        writer.info("%s", ("from the factory",), {})
    finally:
        logging.setLogRecordFactory(previous)
    assert json.loads(stream.getvalue().splitlines()[-1])["hostname"] == "web-1"


def test_another_formatter_on_the_handler_is_used(json_logger):
    logger, stream = json_logger()
    logger.handlers[0].setFormatter(logging.Formatter("%(levelname)s %(message)s %(status)s"))
    InfoWriter(logger).info("%s %s", ("GET", "/x"), {"status": 404})
    assert stream.getvalue() == "INFO GET /x 404\n"


def test_a_failing_stream_is_reported_not_raised(json_logger, monkeypatch):
    logger, stream = json_logger()
    reported: list[logging.LogRecord] = []
    handler = logger.handlers[0]
    monkeypatch.setattr(handler, "handleError", reported.append)
    stream.close()  # writing now raises ValueError
    InfoWriter(logger).info("%s", ("lost",), {})
    assert [r.getMessage() for r in reported] == ["lost"]
