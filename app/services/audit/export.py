"""The export files (CSV and JSONL) and reading one back to verify it offline.

JSONL: one entry per line exactly as the API serves it (compact JSON, the API's key order),
then `{"head":{"sequence":N,"hash":H}}`. CSV: a header row, one row per entry (`actor` and
`target` as `*_type`/`*_id` columns, `data` as its canonical JSON, null as an empty field),
then `head,N,H`. A file verifies when it reads back into entries that render to exactly its
bytes, link and hash as the chain says, and end at the head its last line names.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator
from typing import Any

from app.services.audit.chain import ALTERED, GENESIS, Break, Walk

FORMATS = {"jsonl": "application/x-ndjson", "csv": "text/csv"}
CSV_COLUMNS = (
    "sequence",
    "event_id",
    "occurred_at",
    "action",
    "actor_type",
    "actor_id",
    "target_type",
    "target_id",
    "request_id",
    "remote_addr",
    "data",
    "prev_hash",
    "hash",
)


def render(entries: Iterable[dict[str, Any]], fmt: str, head: dict[str, Any] | None = None) -> Iterator[str]:
    """The file, a line at a time; the head line comes last: the last entry's (0 and 64 zeros
    when the range was empty), or `head` (reading a file back: the one it named)."""
    last = {"sequence": 0, "hash": GENESIS}
    if fmt == "csv":
        yield _csv_row(CSV_COLUMNS)
    for entry in entries:
        last = {"sequence": entry["sequence"], "hash": entry["hash"]}
        yield _jsonl(entry) if fmt == "jsonl" else _csv_row(_csv_values(entry))
    last = head if head is not None else last
    yield _jsonl({"head": last}) if fmt == "jsonl" else _csv_row(("head", last["sequence"], last["hash"]))


def _jsonl(value: dict[str, Any]) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False) + "\n"


def _csv_row(values: Iterable[Any]) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerow(["" if v is None else v for v in values])
    return out.getvalue()


def _csv_values(entry: dict[str, Any]) -> list[Any]:
    flat = {
        **entry,
        "actor_type": entry["actor"]["type"],
        "actor_id": entry["actor"]["id"],
        "target_type": entry["target"]["type"],
        "target_id": entry["target"]["id"],
        "data": json.dumps(entry["data"], sort_keys=True, separators=(",", ":"), ensure_ascii=False),
    }
    return [flat[column] for column in CSV_COLUMNS]


class UnreadableExport(ValueError):
    """Not an export this server wrote (or one edited out of shape)."""


def read(text: str) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """(entries, head) of an export file's text; UnreadableExport when it is none."""
    try:
        entries, head = _read_jsonl(text) if text.startswith("{") else _read_csv(text)
    except (ValueError, KeyError, TypeError, IndexError, csv.Error) as exc:
        raise UnreadableExport(f"not an audit export: {type(exc).__name__}: {exc}"[:300]) from None
    fmt = "jsonl" if text.startswith("{") else "csv"
    try:
        rendered = "".join(render(entries, fmt, head))
    except (KeyError, TypeError, ValueError) as exc:
        raise UnreadableExport(f"not an audit export: {type(exc).__name__}: {exc}"[:300]) from None
    if rendered != text:
        raise UnreadableExport("the file differs from what its entries render to: edited, or not an export")
    return entries, head


def _read_jsonl(text: str) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    # Not splitlines(): a JSON string may hold U+2028 and friends unescaped; only "\n" ends a line.
    lines = [json.loads(line) for line in text.split("\n")[:-1]]
    *entries, last = lines
    return entries, last["head"]


def _read_csv(text: str) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    header, *rows, last = list(csv.reader(io.StringIO(text, newline="")))
    if tuple(header) != CSV_COLUMNS or last[0] != "head" or len(last) != 3:
        raise ValueError("no CSV header or head row")
    entries = []
    for row in rows:
        value: dict[str, Any] = dict(zip(CSV_COLUMNS, [None if cell == "" else cell for cell in row], strict=True))
        entries.append(
            {
                "sequence": int(value["sequence"]),
                "event_id": value["event_id"],
                "occurred_at": value["occurred_at"],
                "action": value["action"],
                "actor": {"type": value["actor_type"], "id": value["actor_id"]},
                "target": {"type": value["target_type"], "id": value["target_id"]},
                "request_id": value["request_id"],
                "remote_addr": value["remote_addr"],
                "data": json.loads(value["data"]),
                "prev_hash": value["prev_hash"],
                "hash": value["hash"],
            }
        )
    return entries, {"sequence": int(last[1]), "hash": last[2]}


def verify_text(text: str) -> dict[str, Any]:
    """The verdict on an export file (as GET /audit/verify answers), starting where the file
    starts: at 64 zeros when it begins at sequence 1, else at its first entry's prev_hash."""
    entries, head = read(text)
    first: dict[str, Any] = entries[0] if entries else {"sequence": 1, "prev_hash": GENESIS}
    start = first["sequence"] if isinstance(first.get("sequence"), int) else 1
    walk = Walk(start, GENESIS if start == 1 else str(first.get("prev_hash")))
    walk.feed(entries)
    if walk.verified and (head.get("sequence"), head.get("hash")) != (walk.head_sequence, walk.head_hash):
        if isinstance(head.get("sequence"), int) and head["sequence"] > walk.head_sequence:
            walk.missing_after(head["sequence"])  # the last entries were cut off
        else:
            walk.broken = Break(walk.head_sequence, ALTERED)
    return walk.verdict()
