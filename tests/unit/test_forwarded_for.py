"""`serve` takes the client's address from X-Forwarded-For only when a trusted proxy sent it
(app.serving.ForwardedFor, over gunicorn's forwarded_allow_ips)."""

from __future__ import annotations

import pytest

from app.serving import ForwardedFor


def seen_address(allowed: list[str], peer: str, forwarded: str | None) -> str:
    """REMOTE_ADDR as the app behind ForwardedFor sees it."""
    seen = {}

    def app(environ, start_response):
        seen["address"] = environ["REMOTE_ADDR"]
        return []

    environ = {"REMOTE_ADDR": peer, "wsgi.url_scheme": "http", "HTTP_HOST": "x"}
    if forwarded is not None:
        environ["HTTP_X_FORWARDED_FOR"] = forwarded
    ForwardedFor(app, allowed)(environ, lambda *args: None)
    return seen["address"]


@pytest.mark.parametrize(
    ("allowed", "peer", "forwarded", "address"),
    [
        (["127.0.0.1", "::1"], "127.0.0.1", "203.0.113.7", "203.0.113.7"),  # the proxy on loopback
        (["127.0.0.1", "::1"], "::1", "203.0.113.7", "203.0.113.7"),
        (["10.0.0.0/8"], "10.2.3.4", "203.0.113.7", "203.0.113.7"),  # a network of proxies
        (["*"], "198.51.100.1", "203.0.113.7", "203.0.113.7"),
        # The address the proxy added is the last one; what the client wrote before it is not believed.
        (["127.0.0.1"], "127.0.0.1", "10.9.9.9, 203.0.113.7", "203.0.113.7"),
        (["127.0.0.1"], "127.0.0.1", None, "127.0.0.1"),  # no header: the peer itself
        (["127.0.0.1"], "127.0.0.1", "203.0.113.7, ", "127.0.0.1"),  # nothing last: the peer
        (["127.0.0.1"], "", "203.0.113.7", "203.0.113.7"),  # a Unix socket, as gunicorn trusts it
        # Anyone else cannot choose its address.
        (["127.0.0.1", "::1"], "198.51.100.1", "203.0.113.7", "198.51.100.1"),
        (["10.0.0.0/8"], "11.0.0.1", "203.0.113.7", "11.0.0.1"),
        ([], "127.0.0.1", "203.0.113.7", "127.0.0.1"),
    ],
)
def test_the_address_comes_from_the_header_only_from_a_trusted_proxy(allowed, peer, forwarded, address):
    assert seen_address(allowed, peer, forwarded) == address
