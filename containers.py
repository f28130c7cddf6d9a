"""The dependency-injector containers: infrastructure first, then one provider per module.

Only declarations live here. Nothing is built at import time; create_app() reads the
graph, checks it, and then builds modules in load order.
"""
from dependency_injector import containers, providers

from app.http.api import CreditApi
from app.infrastructure.cache import build_cache
from app.infrastructure.database import Database, EventBus, build_engine
from app.modules.connection_api import ConnectionApiModule
from app.modules.transactions_module import TransactionsModule
from app.modules.user_management import UserManagementModule
from app.modules.wallet_module import WalletModule


class Container(containers.DeclarativeContainer):
    config = providers.Configuration(strict=True)

    # -- infrastructure -------------------------------------------------------------
    engine = providers.Singleton(build_engine, url=config.database_url)
    event_bus = providers.Singleton(EventBus)
    database = providers.Singleton(Database, engine=engine, bus=event_bus)
    cache = providers.Singleton(build_cache, url=config.cache_url)
    api = providers.Singleton(CreditApi)

    # -- modules ----------------------------------------------------------------------
    connection_api = providers.Singleton(ConnectionApiModule, database=database, cache=cache, api=api)
    user_management = providers.Singleton(UserManagementModule, connection_api=connection_api)
    wallet_module = providers.Singleton(WalletModule, connection_api=connection_api, user_management=user_management)
    transactions_module = providers.Singleton(
        TransactionsModule,
        connection_api=connection_api,
        user_management=user_management,
        wallet_module=wallet_module,
    )
