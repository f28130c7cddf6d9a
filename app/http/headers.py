"""Security headers on every response: no sniffing, no caching of what a token unlocked,
and a Content-Security-Policy on HTML pages (the /docs page)."""

from __future__ import annotations

import base64
import hashlib
import re

from flask import Flask, Response, request

# Tokens (the login answer) and whatever a bearer token unlocked must not sit in a shared or
# browser cache.
NO_STORE_PATHS = frozenset({"/auth/login"})
_INLINE_SCRIPT = re.compile(rb"<script>(.*?)</script>", re.DOTALL)
# Swagger UI: its files from this server, inline style attributes, SVG icons as data: URIs,
# "Try it out" requests to this server; nothing else, and no framing.
_CSP = (
    "default-src 'none'; script-src 'self'{scripts}; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'"
)


def content_security_policy(html: bytes) -> str:
    """The policy for one page: its own inline scripts are allowed by their hash, no others."""
    hashes = "".join(
        f" 'sha256-{base64.b64encode(hashlib.sha256(script).digest()).decode()}'"
        for script in _INLINE_SCRIPT.findall(html)
    )
    return _CSP.format(scripts=hashes)


def add_security_headers(response: Response) -> Response:
    headers = response.headers
    headers["X-Content-Type-Options"] = "nosniff"
    req = request._get_current_object()  # type: ignore[attr-defined]  # one context lookup
    if "HTTP_AUTHORIZATION" in req.environ or req.path in NO_STORE_PATHS:
        headers["Cache-Control"] = "no-store"
    if response.mimetype == "text/html" and not response.direct_passthrough:
        headers["Content-Security-Policy"] = content_security_policy(response.get_data())
        headers["X-Frame-Options"] = "DENY"
    return response


def install_security_headers(app: Flask) -> None:
    app.after_request(add_security_headers)
