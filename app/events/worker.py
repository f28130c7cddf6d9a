"""A worker: huey's consumer running the backbone's tasks on N threads, plus the sweep.

`credit-system worker` runs one in the foreground (SIGTERM: the batches in hand finish and
their leases are released, then it exits 0; SIGINT likewise); `credit-system run` runs one
in its own process beside the development server, without signal handlers. Any number of
workers on any number of hosts may run at once: the relay lock and the modules' leases
keep them apart.
"""

from __future__ import annotations

import logging
import signal
import threading

from huey.consumer import Consumer  # type: ignore[import-untyped]

from app.events.backbone import EventBackbone

log = logging.getLogger(__name__)


class _Consumer(Consumer):
    """huey's consumer, telling the backbone when it stops, and installing signal handlers
    only when asked (they need the main thread; the dev server's worker has none)."""

    def __init__(self, huey, backbone: EventBackbone, signals: bool, **options) -> None:
        self._backbone, self._signals = backbone, signals
        super().__init__(huey, **options)

    def _set_signal_handlers(self) -> None:
        if self._signals:
            super()._set_signal_handlers()

    def stop(self, graceful: bool = False) -> None:
        self._backbone.stop()  # drains finish their batch, release their lease and return
        super().stop(graceful=graceful)


class EventWorker:
    def __init__(self, backbone: EventBackbone, concurrency: int = 2, signals: bool = True) -> None:
        self.backbone, self.concurrency, self._signals = backbone, concurrency, signals
        self._consumer: _Consumer | None = None
        self._sweeper: threading.Thread | None = None

    def start(self) -> None:
        """Start the consumer's threads (none with the immediate queue) and the sweep; return."""
        self._prepare()
        if self._consumer is not None:
            self._consumer.start()

    def run(self) -> None:
        """Serve until SIGTERM or SIGINT (main thread only), then stop gracefully."""
        self._prepare()
        if self._consumer is not None:
            self._consumer.run()  # starts it; returns once stopped, the running batches finished
        else:
            if self._signals:
                signal.signal(signal.SIGTERM, lambda *_: self.backbone.stop())
            try:
                self.backbone.stopping.wait()
            except KeyboardInterrupt:
                pass
        self.stop()

    def _prepare(self) -> None:
        queue = self.backbone.queue
        if not queue.immediate:
            self._consumer = _Consumer(
                queue.huey,
                self.backbone,
                self._signals,
                workers=self.concurrency,
                worker_type="thread",
                periodic=False,  # the sweep is ours: huey's periodic tasks are minute-granular
                graceful_signal="TERM",
                initial_delay=0.05,
                max_delay=1.0,
            )
        self._sweeper = threading.Thread(target=self._sweep_loop, name="events-sweep", daemon=True)
        self._sweeper.start()
        log.info(
            "event worker %s: %d thread(s) on the %s queue, sweep every %ss",
            self.backbone.owner,
            self.concurrency if self._consumer else 0,
            queue.backend,
            self.backbone.policy.sweep_seconds,
        )

    def stop(self) -> None:
        self.backbone.stop()
        if self._consumer is not None and not self._consumer.stop_flag.is_set():
            self._consumer.stop(graceful=True)
        if self._sweeper is not None:
            self._sweeper.join(timeout=self.backbone.policy.sweep_seconds + 5)
        log.info("event worker %s stopped", self.backbone.owner)

    def _sweep_loop(self) -> None:
        backbone = self.backbone
        while not backbone.stopping.is_set():  # first at once: catch up on what waited meanwhile
            try:
                backbone.sweep()
            except Exception:  # the database or the queue is down: next time
                log.warning("event sweep failed; retrying in %ss", backbone.policy.sweep_seconds, exc_info=True)
            backbone.stopping.wait(backbone.policy.sweep_seconds)
