"""integration_module: signed outgoing webhooks (Standard Webhooks) and inbound payment top-ups."""

from __future__ import annotations

from typing import Any

from app.events.backbone import EventBackbone
from app.kernel import Module
from app.modules.connection_api import ConnectionApiModule
from app.modules.integration_module.routes import build_payments_blueprint, build_webhooks_blueprint
from app.modules.transactions_module import TransactionsModule
from app.modules.user_management import UserManagementModule
from app.modules.wallet_module import WalletModule
from app.services.integrations.payments import PaymentService
from app.services.integrations.webhooks import ENDPOINT_DISABLED, WebhookService


class IntegrationModule(Module):
    NAME = "integration_module"
    DEPENDENCIES = ("connection_api", "user_management", "wallet_module", "transactions_module")
    CRITICAL = False
    DESCRIPTION = "Signed outgoing webhooks and inbound payment top-ups"
    ROUTE_PREFIXES = ("/webhooks", "/integrations")
    EVENT_TYPES = ("*",)  # each endpoint filters for itself
    EMITS = {ENDPOINT_DISABLED: "a webhook endpoint was disabled (410 Gone, days of failures, or an admin)"}

    def __init__(
        self,
        connection_api: ConnectionApiModule,
        user_management: UserManagementModule,
        wallet_module: WalletModule,
        transactions_module: TransactionsModule,
        webhooks: WebhookService,
        payments: PaymentService,
        event_backbone: EventBackbone,
    ) -> None:
        self.connection, self.users = connection_api, user_management
        # Deposits go into wallets through the ledger the transactions share.
        self.wallet_module, self.transactions_module = wallet_module, transactions_module
        self.webhooks, self.payments, self.backbone = webhooks, payments, event_backbone

    def initialize(self) -> bool:
        # Retries falling due and wake-ups lost with a worker: the workers' sweep finds them.
        self.backbone.add_sweep(self.webhooks.sweep)
        return True

    def register_routes(self, app) -> None:
        self.connection.register_blueprint(build_webhooks_blueprint(self.webhooks, self.users.guard))
        self.connection.register_blueprint(build_payments_blueprint(self.payments, self.users.guard))

    def handle_events(self, uow, events) -> None:
        self.webhooks.handle_events(uow, events)

    def health_check(self) -> dict[str, Any]:
        return {
            "status": "healthy",
            "webhooks": self.webhooks.counts(),
            "payments": {"unmatched": self.payments.unmatched_count(), "configured": self.payments.configured},
        }

    def shutdown(self) -> None:
        self.backbone.remove_sweep(self.webhooks.sweep)
        self.webhooks.close()
