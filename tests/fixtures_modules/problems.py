"""Modules that each trip one wiring check."""

from __future__ import annotations

from app.kernel import Module


class Typo(Module):
    """Declares a dependency with a typo: MOD-E002 with a suggestion."""

    NAME = "typo_module"
    DEPENDENCIES = ("walet_module",)


class Sneaky(Module):
    """Receives wallet_module without declaring it: MOD-E003."""

    NAME = "sneaky"
    DEPENDENCIES = ("connection_api",)

    def __init__(self, connection_api, wallet_module) -> None:
        self.connection_api = connection_api
        self.wallet_module = wallet_module


class Lazy(Module):
    """Declares wallet_module but never receives it: MOD-W004 (a warning)."""

    NAME = "lazy"
    DEPENDENCIES = ("connection_api", "wallet_module")

    def __init__(self, connection_api) -> None:
        self.connection_api = connection_api


class Impostor(Module):
    """Reuses a shipped module's name: MOD-E005."""

    NAME = "wallet_module"


class OtherImpostor(Module):
    """Reuses another extra module's name: MOD-E005."""

    NAME = "lazy"


class NeedsMissing(Module):
    """A constructor parameter that matches no provider: MOD-E010."""

    NAME = "needs_missing"

    def __init__(self, payment_gateway) -> None:
        self.payment_gateway = payment_gateway


class NotAModule:
    """Importable, but not a module class: MOD-E009."""

    NAME = "not_a_module"


class Plain(Module):
    """A well-behaved extra module with one dependency."""

    NAME = "plain"
    DEPENDENCIES = ("connection_api",)

    def __init__(self, connection_api) -> None:
        self.connection_api = connection_api


def _collide():
    return {"ok": True}


class RoutesA(Module):
    NAME = "routes_a"

    def register_routes(self, app) -> None:
        app.add_url_rule("/collide", "routes_a_collide", _collide)


class RoutesB(Module):
    """Registers the same path and method as RoutesA: MOD-E006."""

    NAME = "routes_b"

    def register_routes(self, app) -> None:
        app.add_url_rule("/collide", "routes_b_collide", _collide)


class NamedLikeInfrastructure(Module):
    """Its NAME is taken by an infrastructure provider (the cache): MOD-E005."""

    NAME = "cache"


def _health_impostor():
    return {"status": "not the kernel"}


class KernelRouteImpostor(Module):
    """Registers GET /health, which the kernel already serves: MOD-E006."""

    NAME = "health_impostor"

    def register_routes(self, app) -> None:
        app.add_url_rule("/health", "health_impostor", _health_impostor)
