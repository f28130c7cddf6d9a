"""Modules for lifecycle and health tests: failing, recording, hanging."""

from __future__ import annotations

import threading

from app.kernel import Module
from tests.fixtures_modules import RELEASE, record

HANG_SECONDS = 10.0


class Recorder(Module):
    """Records initialize and shutdown; depends on connection_api."""

    NAME = "recorder"
    DEPENDENCIES = ("connection_api",)

    def __init__(self, connection_api) -> None:
        self.connection_api = connection_api
        record("recorder.__init__")

    def initialize(self) -> bool:
        record("recorder.initialize")
        return True

    def shutdown(self) -> None:
        record("recorder.shutdown")


class RecorderTop(Module):
    """Depends on recorder and wallet_module, so it loads after both."""

    NAME = "recorder_top"
    DEPENDENCIES = ("recorder", "wallet_module")

    def __init__(self, recorder, wallet_module) -> None:
        self.recorder = recorder
        self.wallet_module = wallet_module

    def initialize(self) -> bool:
        record("recorder_top.initialize")
        return True

    def shutdown(self) -> None:
        record("recorder_top.shutdown")


class Exploding(Module):
    """A non-critical module whose initialize raises."""

    NAME = "exploding"
    CRITICAL = False

    def initialize(self) -> bool:
        raise RuntimeError("optional backend exploded")


class AfterExploding(Module):
    """Non-critical, depends on exploding: skipped when exploding fails."""

    NAME = "after_exploding"
    DEPENDENCIES = ("exploding",)
    CRITICAL = False

    def __init__(self, exploding) -> None:
        self.exploding = exploding


class ConstructorFails(Module):
    """Its provider raises while building it."""

    NAME = "constructor_fails"
    CRITICAL = False

    def __init__(self) -> None:
        raise ValueError("cannot build me")


class HangingHealth(Module):
    """A health check that blocks far longer than any health timeout used in tests."""

    NAME = "hanging"
    CRITICAL = False

    def health_check(self) -> dict:
        record("hanging.health_check")
        RELEASE.wait(HANG_SECONDS)
        return {"status": "healthy"}


class CountingHealth(Module):
    """Counts its health checks, to observe the health cache."""

    NAME = "counting"

    def health_check(self) -> dict:
        record("counting.health_check")
        return {"status": "healthy", "secret_detail": "only-for-admins"}


class BrokenHealth(Module):
    """Non-critical; its health check raises."""

    NAME = "broken_health"
    CRITICAL = False

    def health_check(self) -> dict:
        raise ConnectionError("probe failed")


class BogusHealth(Module):
    """Non-critical; its health check returns a status that is not one of the three."""

    NAME = "bogus_health"
    CRITICAL = False

    def health_check(self) -> dict:
        return {"status": "fine, probably"}


class ForeverHanging(Module):
    """A health check that never returns (its event is never set)."""

    NAME = "forever"
    CRITICAL = False

    def health_check(self) -> dict:
        threading.Event().wait()
        return {"status": "healthy"}
