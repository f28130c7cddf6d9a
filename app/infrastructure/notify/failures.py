"""How a send failed: the one distinction the retry policy needs."""

from __future__ import annotations


class DeliveryFailure(Exception):
    """A message could not be handed over. The text names the cause, never an address or a secret."""


class TransientFailure(DeliveryFailure):
    """Worth trying again later: SMTP 4xx, a connection error or timeout, HTTP 429 or 5xx."""


class PermanentFailure(DeliveryFailure):
    """Will not work however often tried: SMTP 5xx, HTTP 4xx other than 429, a refused login."""
