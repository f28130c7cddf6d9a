"""Test-only module classes, loaded through CREDIT_MODULES_EXTRA import paths.

Nothing here is part of the product; each submodule holds the classes for one kind of
scenario (``tests.fixtures_modules.cycle:Alpha`` and so on). ``EVENTS`` records what the
kernel did to these modules (constructor calls, initialize, shutdown) so tests can assert
on order and on what was *not* called; ``reset()`` empties it between tests.
"""

from __future__ import annotations

import threading

EVENTS: list[str] = []
# Released by the tests that use lifecycle.HangingHealth, so its worker thread ends.
RELEASE = threading.Event()


def record(event: str) -> None:
    EVENTS.append(event)


def reset() -> None:
    EVENTS.clear()
    RELEASE.clear()
