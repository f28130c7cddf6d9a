"""The SSRF guard: a webhook URL must be http(s) and lead only to public addresses.

The host is resolved and every address it resolves to is checked: loopback, private
(RFC 1918, unique local), link-local (where cloud metadata services live, 169.254.169.254
and fe80::/10), carrier-grade NAT (100.64.0.0/10, Alibaba's metadata 100.100.100.200),
multicast, reserved and unspecified addresses are refused, and so is an IPv4 address
wrapped in IPv6. It runs at registration and again before every delivery (DNS can change
in between); the delivery then connects to the address that was checked (`Target.address`),
so a second lookup cannot lead elsewhere (DNS rebinding). With allow_private (tests, private
networks) only the scheme and host are checked and the URL is used as it is.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

# Metadata services outside the ranges above (AWS's IPv6 one is unique-local, refused anyway).
METADATA_ADDRESSES = frozenset({ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254")})

Resolver = Callable[[str, int], list[str]]


class UnsafeUrl(ValueError):
    """A URL the guard refuses; the message says why (shown to the admin who registered it)."""


@dataclass(frozen=True)
class Target:
    """Where a delivery goes: the URL, and the checked address to connect to (None: resolve
    as usual, when private addresses are allowed)."""

    url: str
    host: str
    address: str | None = None


def resolve(host: str, port: int) -> list[str]:
    """Every address host resolves to (both families)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def refused_because(address: str) -> str | None:
    """Why an address is not a public one, or None when it is."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])  # an IPv6 zone id is no part of the address
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip in METADATA_ADDRESSES:
        return "a cloud metadata address"
    if ip.is_loopback:
        return "a loopback address"
    if ip.is_link_local:
        return "a link-local address"
    if ip.is_private:
        return "a private address"
    if ip.is_multicast or ip.is_unspecified or ip.is_reserved or not ip.is_global:
        return "not a public address"
    return None


class AddressGuard:
    def __init__(self, allow_private: bool = False, resolver: Resolver = resolve) -> None:
        self.allow_private = allow_private
        self._resolve = resolver

    def check(self, url: str) -> Target:
        """The target of a URL the guard allows; UnsafeUrl otherwise."""
        try:
            parts = urlsplit(url)
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError as exc:
            raise UnsafeUrl(f"not a valid URL: {exc}") from None
        if parts.scheme not in ("http", "https"):
            raise UnsafeUrl("must be an http or https URL")
        host = parts.hostname
        if not host:
            raise UnsafeUrl("must name a host")
        if self.allow_private:
            return Target(url, host)
        try:
            addresses = self._resolve(host, port)
        except (OSError, UnicodeError) as exc:
            raise UnsafeUrl(f"the host {host} does not resolve ({type(exc).__name__})") from None
        if not addresses:
            raise UnsafeUrl(f"the host {host} does not resolve")
        for address in addresses:
            why = refused_because(address)
            if why:
                raise UnsafeUrl(f"the host {host} resolves to {address}, {why}")
        return Target(url, host, addresses[0])
