"""The outside world of integration_module: where a webhook URL leads (the SSRF guard) and
the HTTP POST that delivers one message."""

from app.infrastructure.webhooks.guard import AddressGuard, Target, UnsafeUrl
from app.infrastructure.webhooks.sender import Response, WebhookSender

__all__ = ["AddressGuard", "Response", "Target", "UnsafeUrl", "WebhookSender"]
