"""Security headers on every response: no sniffing, no caching of what a token unlocked,
and a Content-Security-Policy on HTML pages (the /docs page)."""

from __future__ import annotations

import base64
import hashlib
import re

from flask import Flask, Response

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


_NOSNIFF = ("X-Content-Type-Options", "nosniff")
_NO_STORE = ("Cache-Control", "no-store")
_REPLACED = frozenset({"x-content-type-options"})
_REPLACED_WITH_NO_STORE = _REPLACED | {"cache-control"}


class SecurityHeaders:
    """WSGI middleware: `nosniff` on every response, `no-store` on every answer to a request
    that carried a token (or asked for one), replacing whatever the app had set.

    Added to the header list the response is started with, not through Flask's Headers in an
    after-request hook: two `headers[...] = ...` there cost 3 us a request (each scans and
    validates), as much as the rest of this module's work on a JSON response.
    """

    def __init__(self, app) -> None:
        self.app = app

    def __call__(self, environ, start_response):
        # the path as werkzeug's Request.path reads it, slashes in front collapsed
        no_store = "HTTP_AUTHORIZATION" in environ or "/" + environ.get("PATH_INFO", "").lstrip("/") in NO_STORE_PATHS
        replaced = _REPLACED_WITH_NO_STORE if no_store else _REPLACED

        def start(status, headers, exc_info=None):
            if any(name.lower() in replaced for name, _ in headers):
                headers = [header for header in headers if header[0].lower() not in replaced]
            headers.append(_NOSNIFF)
            if no_store:
                headers.append(_NO_STORE)
            return start_response(status, headers, exc_info)

        return self.app(environ, start)


def add_content_security_policy(response: Response) -> Response:
    """HTML pages (the /docs page, the dashboard): their own inline scripts only, no framing."""
    # The header's prefix first: parsing the mimetype of every JSON response costs more.
    if (
        response.headers.get("Content-Type", "").startswith("text/html")
        and response.mimetype == "text/html"
        and not response.direct_passthrough
    ):
        response.headers["Content-Security-Policy"] = content_security_policy(response.get_data())
        response.headers["X-Frame-Options"] = "DENY"
    return response


def install_security_headers(app: Flask) -> None:
    app.after_request(add_content_security_policy)
    app.wsgi_app = SecurityHeaders(app.wsgi_app)  # type: ignore[method-assign]  # Flask's documented way to wrap it
