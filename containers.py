"""The dependency-injector containers: infrastructure first, then one provider per module.

Only declarations live here. Nothing is built at import time; create_app() reads the
graph, checks it, and then builds modules in load order.
"""

from dependency_injector import containers, providers

from app.events.backbone import EventBackbone
from app.events.catalog import EventCatalog
from app.events.policy import EventPolicy
from app.http.api import CreditApi
from app.http.guard import AccessGuard
from app.http.idempotency import TransactionRenderer
from app.infrastructure.cache import build_cache, limits_storage_url
from app.infrastructure.database import Database, EventBus, build_engine
from app.infrastructure.notify import build_mailer, build_sms_gateway
from app.infrastructure.posting import FunctionWriter, StepByStepWriter, writer_for
from app.infrastructure.queue import EventQueue
from app.infrastructure.webhooks import AddressGuard, WebhookSender
from app.modules.audit_module import AuditModule
from app.modules.connection_api import ConnectionApiModule
from app.modules.integration_module import IntegrationModule
from app.modules.notification_module import NotificationModule
from app.modules.reporting_module import ReportingModule
from app.modules.transactions_module import TransactionsModule
from app.modules.user_management import UserManagementModule
from app.modules.wallet_module import WalletModule
from app.observability.metrics import Metrics, multiprocess_dir
from app.services.audit.trail import AuditTrail
from app.services.auth import AuthService
from app.services.auth_state import AuthStateCache
from app.services.balance_cache import BalanceCache
from app.services.events import EventFeed
from app.services.idempotency import IdempotencyStore
from app.services.integrations.payments import PaymentService
from app.services.integrations.webhooks import WebhookPolicy, WebhookService
from app.services.ledger import Ledger
from app.services.login_throttle import LoginThrottle
from app.services.notifications import NotificationService, Recorder, Renderer, RetryPolicy, Sender
from app.services.passwords import Passwords
from app.services.reports.aggregates import ReportAggregator
from app.services.reports.reads import ReportService
from app.services.tokens import Tokens
from app.services.transactions import TransactionService
from app.services.users import UserService
from app.services.wallets import WalletService


class Container(containers.DeclarativeContainer):
    config = providers.Configuration(strict=True)

    # -- infrastructure -------------------------------------------------------------
    engine = providers.Singleton(build_engine, url=config.database_url)
    event_bus = providers.Singleton(EventBus)
    database = providers.Singleton(Database, engine=engine, bus=event_bus)
    cache = providers.Singleton(build_cache, url=config.cache_url)
    queue = providers.Singleton(EventQueue, url=config.queue_url)
    api = providers.Singleton(CreditApi)

    # -- observability ----------------------------------------------------------------
    metrics = providers.Singleton(Metrics, multiprocess_dir=providers.Callable(multiprocess_dir))

    # -- events: recorded with each change, relayed and delivered to modules after commit ----
    event_catalog = providers.Singleton(EventCatalog)  # filled by create_app from the planned modules
    event_policy = providers.Singleton(
        EventPolicy,
        batch_size=config.events_batch_size,
        lease_seconds=config.events_lease_seconds,
        max_attempts=config.events_max_attempts,
        retry_base_seconds=config.events_retry_base_seconds,
        retry_max_seconds=config.events_retry_max_seconds,
        sweep_seconds=config.events_sweep_seconds,
        relay_delay_seconds=config.events_relay_delay_seconds,
    )
    event_backbone = providers.Singleton(
        EventBackbone, database=database, queue=queue, catalog=event_catalog, policy=event_policy, observer=metrics
    )
    event_feed = providers.Singleton(EventFeed, database=database, backbone=event_backbone)

    # -- users and authentication ---------------------------------------------------
    passwords = providers.Singleton(Passwords)
    tokens = providers.Singleton(Tokens, secret_key=config.secret_key, ttl_seconds=config.token_ttl)
    auth_state = providers.Singleton(AuthStateCache, cache=cache)
    login_throttle = providers.Singleton(
        LoginThrottle,
        storage_url=providers.Callable(limits_storage_url, config.cache_url),
        max_failures=config.login_max_failures,
        window_seconds=config.login_window_seconds,
        registrations_per_address=config.registrations_per_address,
        registration_window_seconds=config.registration_window_seconds,
    )
    user_service = providers.Singleton(
        UserService, database=database, passwords=passwords, auth_state=auth_state, throttle=login_throttle
    )
    auth_service = providers.Singleton(
        AuthService,
        database=database,
        passwords=passwords,
        tokens=tokens,
        throttle=login_throttle,
        auth_state=auth_state,
    )
    access_guard = providers.Singleton(AccessGuard, auth=auth_service)

    # -- the ledger ----------------------------------------------------------------------
    idempotency_store = providers.Singleton(IdempotencyStore, ttl_seconds=config.idempotency_ttl_seconds)
    balance_cache = providers.Singleton(BalanceCache, cache=cache, ttl_seconds=config.balance_cache_seconds)
    step_by_step_writer = providers.Singleton(StepByStepWriter)
    function_writer = providers.Singleton(FunctionWriter)
    # PostgreSQL makes a posting one call of a database function; other databases one statement at a time.
    posting_writer = providers.Selector(
        providers.Callable(writer_for, config.database_url),
        function=function_writer,
        step_by_step=step_by_step_writer,
    )
    transaction_renderer = providers.Singleton(TransactionRenderer)
    ledger = providers.Singleton(
        Ledger,
        database=database,
        idempotency=idempotency_store,
        balances=balance_cache,
        renderer=transaction_renderer,
        writer=posting_writer,
        step_by_step=step_by_step_writer,
    )
    wallet_service = providers.Singleton(WalletService, database=database, ledger=ledger, balances=balance_cache)
    transaction_service = providers.Singleton(TransactionService, database=database, ledger=ledger)

    # -- the audit trail ---------------------------------------------------------------
    audit_trail = providers.Singleton(
        AuditTrail, database=database, secret_key=config.secret_key, catalog=event_catalog
    )

    # -- modules ----------------------------------------------------------------------
    connection_api = providers.Singleton(
        ConnectionApiModule,
        database=database,
        cache=cache,
        api=api,
        queue=queue,
        event_feed=event_feed,
        guard=access_guard,
    )
    user_management = providers.Singleton(
        UserManagementModule,
        connection_api=connection_api,
        users=user_service,
        auth=auth_service,
        guard=access_guard,
        throttle=login_throttle,
    )
    wallet_module = providers.Singleton(
        WalletModule, connection_api=connection_api, user_management=user_management, wallets=wallet_service
    )
    transactions_module = providers.Singleton(
        TransactionsModule,
        connection_api=connection_api,
        user_management=user_management,
        wallet_module=wallet_module,
        transactions=transaction_service,
    )

    # -- integrations: outgoing webhooks and inbound payments ------------------------------------
    webhook_service = providers.Singleton(
        WebhookService,
        database=database,
        queue=queue,
        catalog=event_catalog,
        backbone=event_backbone,
        guard=providers.Singleton(AddressGuard, allow_private=config.webhook_allow_private),
        sender=providers.Singleton(WebhookSender, timeout_seconds=config.webhook_timeout_seconds),
        policy=providers.Singleton(
            WebhookPolicy.of,
            retry_schedule=config.webhook_retry_schedule,
            disable_after_seconds=config.webhook_disable_after_seconds,
        ),
    )
    payment_service = providers.Singleton(
        PaymentService,
        database=database,
        ledger=ledger,
        stripe_secret=config.stripe_webhook_secret,
        credits_per_unit=config.payments_credits_per_unit,
    )
    integration_module = providers.Singleton(
        IntegrationModule,
        connection_api=connection_api,
        user_management=user_management,
        wallet_module=wallet_module,
        transactions_module=transactions_module,
        webhooks=webhook_service,
        payments=payment_service,
        event_backbone=event_backbone,
    )
    audit_module = providers.Singleton(
        AuditModule, connection_api=connection_api, user_management=user_management, audit_trail=audit_trail
    )

    # -- reports: aggregates kept by the module's event handler, reads of the ledger -----
    report_service = providers.Singleton(ReportService, database=database)
    report_aggregator = providers.Singleton(ReportAggregator)
    reporting_module = providers.Singleton(
        ReportingModule,
        connection_api=connection_api,
        user_management=user_management,
        wallet_module=wallet_module,
        transactions_module=transactions_module,
        reports=report_service,
        aggregator=report_aggregator,
    )

    # -- notifications (notification_module) ------------------------------------------------
    notification_renderer = providers.Singleton(Renderer, override_folder=config.notifications_templates)
    notification_mailer = providers.Singleton(build_mailer, url=config.mail_url)
    notification_sms = providers.Singleton(build_sms_gateway, url=config.sms_url)
    notification_sender = providers.Singleton(
        Sender,
        database=database,
        mailer=notification_mailer,
        sms=notification_sms,
        renderer=notification_renderer,
        mail_from=config.mail_from,
        sms_from=config.sms_from,
        policy=providers.Singleton(
            RetryPolicy,
            max_attempts=config.notifications_max_attempts,
            base_seconds=config.notifications_retry_base_seconds,
        ),
    )
    notification_module = providers.Singleton(
        NotificationModule,
        connection_api=connection_api,
        user_management=user_management,
        wallet_module=wallet_module,
        notifications=providers.Singleton(NotificationService, database=database),
        recorder=providers.Singleton(Recorder, renderer=notification_renderer),
        sender=notification_sender,
        queue=queue,
        event_backbone=event_backbone,
    )
