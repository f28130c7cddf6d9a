"""Structured logs: one JSON object a line, configured once by the CLI's server commands."""

from __future__ import annotations

import logging.config
import math
from datetime import UTC, date, datetime, time
from itertools import islice
from time import time as epoch_seconds
from typing import Any

from app.infrastructure.json_text import JsonWriter
from app.observability.request_id import current_request_id

# What every LogRecord carries; anything else on a record came from `extra=` and is printed.
_SET_BY_INIT = tuple(vars(logging.makeLogRecord({})))
_RECORD_ATTRIBUTES = frozenset(_SET_BY_INIT) | {"message", "asctime", "taskName"}
# `module` is a built-in LogRecord attribute, so callers pass module_name for ours.
_RENAMED = {"module_name": "module"}
_AS_EXTRA = {line_name: extra_name for extra_name, line_name in _RENAMED.items()}


def _jsonable(value: Any) -> Any:
    """Dates as ISO 8601, anything else json cannot write as its str()."""
    if isinstance(value, (datetime, date, time)):
        return value.isoformat()
    return str(value)


_encode = JsonWriter(default=_jsonable)


class _UtcStamps:
    """ISO 8601 UTC timestamps with microseconds, the date and time formatted once a second."""

    def __init__(self) -> None:
        self._formatted = (-1, "")  # (second, its date and time): one tuple, swapped whole between threads

    def __call__(self, created: float) -> str:
        # as datetime.fromtimestamp rounds: the fraction alone to the nearest microsecond
        fraction, whole = math.modf(created)
        second, micro = divmod(round(fraction * 1_000_000), 1_000_000)
        second += int(whole)
        cached, prefix = self._formatted
        if second != cached:
            prefix = datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S")
            self._formatted = (second, prefix)
        return f"{prefix}.{micro:06d}+00:00"


class JsonFormatter(logging.Formatter):
    """level, logger, message, the record's extras, exc_info, timestamp, request_id inside a request.

    Written here rather than taken from python-json-logger: an access line is written on
    every request, and that library's general formatter (format-string parsing, renames
    looked up per field, a JSON encoder built per line) cost a balance read 36,000 more
    instructions than this one, 3% of the request (counted with callgrind). Writing it with
    orjson (app.infrastructure.json_text) and the date once a second took a line from 7.5 us
    to 3.5 us.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._stamp = _UtcStamps()

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {"level": record.levelname, "logger": record.name, "message": record.getMessage()}
        # LogRecord.__init__ sets its own attributes first and `extra=` adds its keys after
        # them: the scan starts past them (an access line: 6 keys looked at, not 26).
        for key, value in islice(record.__dict__.items(), len(_SET_BY_INIT), None):
            if key not in _RECORD_ATTRIBUTES:  # what a record factory or another formatter added
                line[_RENAMED.get(key, key)] = value
        if record.exc_info:
            line["exc_info"] = self.formatException(record.exc_info)
        if record.stack_info:
            line["stack_info"] = self.formatStack(record.stack_info)
        return self._finish(line, record.created)

    def info_line(self, name: str, message: str, fields: dict[str, Any], created: float) -> str:
        """What format() writes for an INFO record of logger `name` with `fields` (named as in
        the line: `module`, not `module_name`) as its extras."""
        return self._finish({"level": "INFO", "logger": name, "message": message, **fields}, created)

    def _finish(self, line: dict[str, Any], created: float) -> str:
        line["timestamp"] = self._stamp(created)
        request_id = current_request_id()
        if request_id is not None:
            line["request_id"] = request_id
        return _encode(line).decode()


class InfoWriter:
    """One logger's INFO lines, written straight to the JSON handler when that handler is
    the only place logging would send them, and through logging otherwise.

    The access line is written on every request, and logging's path to a handler (a
    LogRecord with 25 attributes, extras copied onto it, Logger.handle, callHandlers,
    Handler.handle) cost 8% of a cached balance read's instructions (68,000 of 857,000,
    counted by bench.instructions), for a line the JSON formatter writes from six fields.
    The line written straight is the one JsonFormatter.format writes for the same record
    (tested). Whenever the configuration is anything else — another handler (pytest's
    caplog, a user's dictConfig), a filter, a record factory, the level off — the line goes
    through logging as before, so the logging configuration keeps the last word.
    """

    def __init__(self, logger: logging.Logger) -> None:
        self._logger = logger

    def info(self, msg: str, args: tuple, fields: dict[str, Any]) -> None:
        """Log `msg % args` with `fields`, named as the JSON line names them."""
        logger = self._logger
        if not logger.isEnabledFor(logging.INFO):
            return
        handler = self._sole_json_handler()
        if handler is None:
            logger.info(msg, *args, extra={_AS_EXTRA.get(key, key): value for key, value in fields.items()})
            return
        formatter: JsonFormatter = handler.formatter  # type: ignore[assignment]  # checked by _sole_json_handler
        text = formatter.info_line(logger.name, msg % args, fields, epoch_seconds())
        try:
            with handler.lock:  # type: ignore[union-attr]  # StreamHandler creates it
                stream = handler.stream
                stream.write(text + handler.terminator)
                stream.flush()
        except Exception:  # as StreamHandler.emit: report it, never fail the request
            handler.handleError(logger.makeRecord(logger.name, logging.INFO, "(unknown file)", 0, msg, args, None))

    def _sole_json_handler(self) -> logging.StreamHandler | None:
        """The JsonFormatter StreamHandler an INFO record of this logger would reach, when it
        is the only handler it would reach and nothing could filter or add to the record."""
        if logging.getLogRecordFactory() is not logging.LogRecord:
            return None
        found = None
        logger: logging.Logger | None = self._logger
        while logger is not None:
            if logger.filters:
                return None
            for handler in logger.handlers:
                if (
                    found is not None
                    or type(handler) is not logging.StreamHandler
                    or type(handler.formatter) is not JsonFormatter
                    or handler.filters
                    or handler.level > logging.INFO
                ):
                    return None
                found = handler
            if not logger.propagate:
                break
            logger = logger.parent
        return found


def logging_config(level: str = "INFO") -> dict[str, Any]:
    """A dictConfig for the root logger and gunicorn's loggers, all through one JSON handler."""
    level = level.upper()
    return {
        "version": 1,
        "disable_existing_loggers": False,  # module loggers are created at import time
        "formatters": {"json": {"()": JsonFormatter}},
        "handlers": {"json": {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr"}},
        "root": {"level": level, "handlers": ["json"]},
        "loggers": {
            # gunicorn attaches its own plain-text handlers; these replace them and propagate to root.
            "gunicorn.error": {"level": level, "handlers": [], "propagate": True},
            # Its access lines are INFO: silenced, as app.access already writes one line per request.
            "gunicorn.access": {"level": "WARNING", "handlers": [], "propagate": True},
            "alembic.runtime.plugins": {"level": "WARNING"},
        },
    }


def configure_logging(level: str = "INFO") -> None:
    """Send every log line through the JSON handler; call from entry points, never at import."""
    logging.config.dictConfig(logging_config(level))
    skip_unlogged_record_attributes()


def skip_unlogged_record_attributes() -> None:
    """Stop every LogRecord from collecting what these JSON lines never print.

    Finding the caller's file and line walks the stack, and inside a request the stack is
    deep: measured at about 20 us of the ~50 us an access line cost. The logging HOWTO's
    "Optimization" section lists these switches for exactly this.
    """
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False


def quiet_request_handler():
    """The dev server's request handler without its own access line (the app writes a JSON
    one) and without its version banner."""
    from werkzeug.serving import WSGIRequestHandler

    class QuietRequestHandler(WSGIRequestHandler):
        def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
            """Skip: app.access already logged this request."""

        def version_string(self) -> str:
            """The `Server` header: no Werkzeug and Python versions for anyone to look up."""
            return "credit-system"

    return QuietRequestHandler
