"""The one check of a transport URL that mail and SMS configuration both go through."""

from __future__ import annotations

from collections.abc import Collection
from urllib.parse import urlsplit


def check_transport_url(url: str, kind: str, schemes: Collection[str], networked: Collection[str], shape: str) -> None:
    """ValueError unless `url`'s scheme is one of `schemes`, a `networked` one names a host,
    and its port (if any) is a number. `shape` shows a good URL; `{scheme}` is filled in."""
    parts = urlsplit(url)
    if parts.scheme not in schemes:
        known = ", ".join(f"{scheme}://" for scheme in schemes)
        raise ValueError(f"unknown {kind} scheme {parts.scheme + '://' if parts.scheme else url!r}; known: {known}")
    if parts.scheme in networked and not parts.hostname:
        raise ValueError(f"{parts.scheme}:// needs a host, as {shape.format(scheme=parts.scheme)}")
    try:
        parts.port  # noqa: B018 - raises on a port that is no number
    except ValueError as exc:
        raise ValueError(f"bad port in the {kind} URL: {exc}") from None
