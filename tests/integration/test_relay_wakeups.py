"""On Redis the processes sharing a queue wake the relay once per delay between them: the
mark is one SET NX PX, seen by every process (here two EventQueues, as two servers)."""

from __future__ import annotations

import time

import pytest

from app.events.backbone import DRAIN_TASK, RELAY_TASK
from app.infrastructure.queue import EventQueue
from tests import backends

pytestmark = pytest.mark.integration


def test_the_first_process_to_ask_wins_until_the_delay_is_over(redis_url):
    backends.flush_redis(redis_url)
    one, other = EventQueue(redis_url), EventQueue(redis_url)
    try:
        assert one.first_to_ask(RELAY_TASK, 0.3)
        assert not other.first_to_ask(RELAY_TASK, 0.3)
        assert not one.first_to_ask(RELAY_TASK, 0.3)
        assert other.first_to_ask(DRAIN_TASK, 0.3)  # another wake-up has its own mark
        time.sleep(0.4)
        assert other.first_to_ask(RELAY_TASK, 0.3)
    finally:
        one.close()
        other.close()
        backends.flush_redis(redis_url)
