"""integration_module's rules: outgoing webhooks (app.services.integrations.webhooks) and
inbound payment top-ups (app.services.integrations.payments)."""
