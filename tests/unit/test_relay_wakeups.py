"""The relay's wake-ups: a process asks at most once per delay, and when another process's
wake-up was in flight it asks again after the delay rather than trusting that one (its
relay may have run before this process's commit was visible)."""

from __future__ import annotations

import time

from huey import MemoryHuey  # type: ignore[import-untyped]

from app.events.backbone import RELAY_TASK, EventBackbone
from app.events.policy import EventPolicy
from app.infrastructure.queue import EventQueue
from tests.helpers import eventually


class _Database:
    def on_events_committed(self, callback) -> None:
        pass


class _Queue:
    """A queue whose shared mark answers from a script: False means another process asked."""

    immediate = False

    def __init__(self, answers: list[bool]) -> None:
        self.huey = MemoryHuey("wakeups", immediate=False, results=False)
        self.answers = answers
        self.asked: list[str] = []

    def when_built(self, setup) -> None:
        setup(self.huey)

    def first_to_ask(self, wakeup: str, seconds: float) -> bool:
        self.asked.append(wakeup)
        return self.answers.pop(0) if self.answers else True


def _backbone(queue: _Queue, delay: float) -> EventBackbone:
    return EventBackbone(_Database(), queue, None, EventPolicy(relay_delay_seconds=delay))  # type: ignore[arg-type]


def test_a_wake_up_asked_elsewhere_is_asked_for_again_after_the_delay():
    queue = _Queue([False, False, True])
    backbone = _backbone(queue, delay=0.05)
    try:
        backbone.pull()
        assert eventually(lambda: queue.huey.pending_count() == 1)
        assert queue.asked == [RELAY_TASK] * 3  # twice someone else's, then ours: one task
        time.sleep(0.2)
        assert queue.huey.pending_count() == 1 and len(queue.asked) == 3  # nothing more was committed
    finally:
        backbone.stop()


def test_commits_within_the_delay_make_one_wake_up():
    queue = _Queue([])
    backbone = _backbone(queue, delay=0.5)
    try:
        for _ in range(50):
            backbone.pull()
        assert eventually(lambda: queue.huey.pending_count() == 1)
        time.sleep(0.1)
        assert queue.huey.pending_count() == 1 and queue.asked == [RELAY_TASK]
    finally:
        backbone.stop()


def test_queues_that_cannot_tell_let_each_process_pace_itself(tmp_path):
    for url in ("memory://", f"sqlite:///{tmp_path / 'queue.sqlite3'}"):
        queue = EventQueue(url)
        assert queue.first_to_ask(RELAY_TASK, 60) and queue.first_to_ask(RELAY_TASK, 60)
        queue.close()
