"""Reads a request will make anyway, carried on its first cache round trip.

Inside scope() (the app opens one per HTTP request), keys announced with announce() are
fetched along with the next get_many() and then answered once, from memory, by get(); a
write to such a key drops it. Outside a scope, or for keys nobody announced, reads go to
the backend as usual. A value read ahead is as fresh as the round trip it came with, a
few microseconds earlier in the same request.

A backend owns one ReadAhead and consults it in four places: get() asks take() first,
get_many() adds pending() to the keys it sends and hands their values to keep(), and
every write calls forget() for the keys it touches.
"""

from __future__ import annotations

from collections.abc import Iterable
from contextvars import ContextVar, Token
from types import TracebackType
from typing import cast

_ANNOUNCED = object()


class ReadAhead:
    __slots__ = ("_scope",)

    def __init__(self) -> None:
        # One variable per cache: tests run several apps, each with its own cache, in a process.
        self._scope: ContextVar[dict[str, object] | None] = ContextVar(f"read_ahead_{id(self)}", default=None)

    def scope(self) -> _Scope:
        """A context manager: what is read ahead inside it is forgotten when it ends."""
        return _Scope(self._scope)

    def announce(self, *keys: str) -> None:
        """These keys will be read in this scope: fetch them with the next get_many()."""
        scope = self._scope.get()
        if scope is not None:
            for key in keys:
                scope.setdefault(key, _ANNOUNCED)

    def pending(self, asked: Iterable[str]) -> list[str]:
        """Announced keys still to fetch, to add to a get_many() of `asked` about to go out."""
        scope = self._scope.get()
        if not scope:
            return []
        excluded = set(asked)
        return [key for key, value in scope.items() if value is _ANNOUNCED and key not in excluded]

    def keep(self, keys: list[str], values: list[str | None]) -> None:
        """What the backend answered for pending() keys, to serve once."""
        scope = self._scope.get()
        if scope is not None:
            scope.update(zip(keys, values, strict=True))

    def take(self, key: str) -> tuple[bool, str | None]:
        """(True, value) if key was read ahead in this scope; each value is served once."""
        scope = self._scope.get()
        if not scope or scope.get(key, _ANNOUNCED) is _ANNOUNCED:
            return False, None
        return True, cast("str | None", scope.pop(key))

    def forget(self, keys: Iterable[str]) -> None:
        """A write to these keys: what was read ahead for them is no longer true."""
        scope = self._scope.get()
        if scope:
            for key in keys:
                scope.pop(key, None)


class _Scope:
    """A class rather than @contextmanager: it is entered on every request."""

    __slots__ = ("_var", "_token")

    def __init__(self, var: ContextVar[dict[str, object] | None]) -> None:
        self._var = var

    def __enter__(self) -> None:
        self._token: Token[dict[str, object] | None] = self._var.set({})

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self._var.reset(self._token)
