"""Addresses as the delivery log shows them: enough to recognise, not enough to harvest."""

from __future__ import annotations


def mask_email(address: str) -> str:
    """`alice@example.com` -> `a***e@example.com` (one letter each end; `a***@...` when short)."""
    local, at, domain = address.rpartition("@")
    if not at:
        return "***"
    if len(local) <= 2:
        return f"{local[:1]}***@{domain}"
    return f"{local[0]}***{local[-1]}@{domain}"


def mask_phone(number: str) -> str:
    """`+4915112345678` -> `+49*******5678`: the country prefix and the last four digits."""
    if len(number) <= 7:
        return "***"
    return number[:3] + "*" * (len(number) - 7) + number[-4:]


def mask(channel: str, address: str | None) -> str | None:
    if address is None:
        return None
    return mask_email(address) if channel == "email" else mask_phone(address)


def scrub(text: str, address: str | None) -> str:
    """An error text without the full address in it (an SMTP reply may quote the recipient)."""
    if not address:
        return text
    return text.replace(address, "<recipient>")
