"""A schema's dump compiled to one loop, for the hot responses made of plain fields.

`PlainSchema` is a marshmallow Schema whose `dump` (what flask-smorest's `@blp.response`
and a `Nested` field call) goes through `PlainDump`, so views return objects as usual.

marshmallow's `Schema.dump` walks its machinery per field per object (a field's
`serialize`, `get_value`, `_serialize`, hooks): about 100,000 instructions for a
transaction's nine fields, 3% of a transfer and most of a history page's rendering
(counted with `python -m bench.instructions`). For schemas whose fields are strings,
integers and ISO date-times, `PlainDump(schema)` gives the same dict for about a fifth
of that, read off the schema's own fields, so the two cannot drift apart; anything else
is refused when the dumper is built, not silently dumped differently.
tests/unit/test_plain_dump.py holds it equal to marshmallow's own `Schema.dump`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from marshmallow import Schema, fields, missing

_MISSING = object()
_TEMPORAL = (fields.DateTime, fields.Date, fields.Time)  # their format names a SERIALIZATION_FUNCS entry


def _overrides_serialize(field: fields.Field, base: type[fields.Field]) -> bool:
    return any("_serialize" in vars(cls) for cls in type(field).__mro__[: type(field).__mro__.index(base)])


def _converter(name: str, field: fields.Field) -> Callable[[Any], Any]:
    """What marshmallow's field does to a value that is not None (its `_serialize`)."""
    temporal = next((base for base in _TEMPORAL if isinstance(field, base)), None)
    if temporal is not None and not _overrides_serialize(field, temporal):
        to_text = field.SERIALIZATION_FUNCS.get(field.format or field.DEFAULT_FORMAT)  # type: ignore[attr-defined]
        if to_text is not None:
            return to_text
    elif isinstance(field, fields.Integer) and not _overrides_serialize(field, fields.Integer):
        return (lambda value: str(int(value))) if field.as_string else int
    elif isinstance(field, fields.String) and not _overrides_serialize(field, fields.String):
        return str
    raise TypeError(f"{name}: a {type(field).__name__} field is not a plain string, integer or date-time")


class PlainDump:
    """`PlainDump(schema)(obj) == Schema.dump(schema, obj, many=False)`, obj an object or a dict."""

    def __init__(self, schema: Schema) -> None:
        if any(schema._hooks.values()):
            raise TypeError("a schema with pre/post-dump hooks is not plain")
        for name, field in schema.dump_fields.items():
            if field.dump_default is not missing or "." in (field.attribute or name):
                raise TypeError(f"{name}: a dump default or a dotted attribute is not plain")
        self._fields = tuple(
            (field.data_key or name, field.attribute or name, _converter(name, field))
            for name, field in schema.dump_fields.items()
        )

    def __call__(self, obj: Any) -> dict[str, Any]:
        body: dict[str, Any] = {}
        read = obj.get if isinstance(obj, dict) else functools.partial(getattr, obj)
        for key, attribute, convert in self._fields:
            value = read(attribute, _MISSING)
            if value is _MISSING:
                continue  # marshmallow leaves out what the object does not have
            body[key] = None if value is None else convert(value)
        return body


class PlainSchema(Schema):
    """A Schema of plain fields, dumped by PlainDump (built with the instance, so a schema
    it could not dump exactly fails when first made, not on a wrong body later)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._plain = PlainDump(self)

    def dump(self, obj: Any, *, many: bool | None = None) -> Any:
        if self.many if many is None else many:
            return [self._plain(item) for item in obj]
        return self._plain(obj)
