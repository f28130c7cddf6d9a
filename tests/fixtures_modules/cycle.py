"""Modules whose dependencies form cycles; their constructors record any call."""

from __future__ import annotations

from app.kernel import Module
from tests.fixtures_modules import record


class Alpha(Module):
    NAME = "alpha"
    DEPENDENCIES = ("beta",)

    def __init__(self, beta) -> None:
        record("alpha.__init__")


class Beta(Module):
    NAME = "beta"
    DEPENDENCIES = ("gamma",)

    def __init__(self, gamma) -> None:
        record("beta.__init__")


class Gamma(Module):
    NAME = "gamma"
    DEPENDENCIES = ("alpha",)

    def __init__(self, alpha) -> None:
        record("gamma.__init__")


# A second, independent cycle: delta <-> epsilon.
class Delta(Module):
    NAME = "delta"
    DEPENDENCIES = ("epsilon",)

    def __init__(self, epsilon) -> None:
        record("delta.__init__")


class Epsilon(Module):
    NAME = "epsilon"
    DEPENDENCIES = ("delta",)

    def __init__(self, delta) -> None:
        record("epsilon.__init__")


class Selfish(Module):
    """Depends on itself."""

    NAME = "selfish"
    DEPENDENCIES = ("selfish",)

    def __init__(self, selfish) -> None:
        record("selfish.__init__")
