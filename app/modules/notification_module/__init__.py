"""notification_module: email, SMS and an in-app inbox, per the user's preferences, with a
delivery log.

Its handler only writes rows (inbox items, queued deliveries) in the event's transaction;
the sending runs after commit in a huey task of its own (`notifications.send`), with its
retries, and in each worker's sweep (lost wake-ups, retries falling due, deliveries of a
worker that died). docs/notifications.md tells the whole story.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from app.events.backbone import EventBackbone
from app.infrastructure.queue import EventQueue
from app.infrastructure.tables import utcnow
from app.kernel import Module
from app.modules.connection_api import ConnectionApiModule
from app.modules.notification_module.routes import build_blueprint
from app.modules.user_management import UserManagementModule
from app.modules.wallet_module import WalletModule
from app.services.notifications import NOTIFICATION_FAILED, SEND_CHUNK, NotificationService, Recorder, Sender

log = logging.getLogger(__name__)

SEND_TASK = "notifications.send"


def chunks(delivery_ids: list[str]) -> list[list[str]]:
    """One send task per SEND_CHUNK deliveries: what one claim covers."""
    return [delivery_ids[i : i + SEND_CHUNK] for i in range(0, len(delivery_ids), SEND_CHUNK)]


class NotificationModule(Module):
    NAME = "notification_module"
    DEPENDENCIES = ("connection_api", "user_management", "wallet_module")
    CRITICAL = False
    DESCRIPTION = "Email, SMS and in-app notifications, with preferences and a delivery log"
    ROUTE_PREFIXES = ("/notifications",)
    EVENT_TYPES = ("transaction.posted", "user.updated", "user.deactivated")
    EMITS = {
        NOTIFICATION_FAILED: "an email or SMS was not delivered: a permanent failure, or the last attempt failed; "
        "data names the delivery (address masked)",
    }

    def __init__(
        self,
        connection_api: ConnectionApiModule,
        user_management: UserManagementModule,
        wallet_module: WalletModule,
        notifications: NotificationService,
        recorder: Recorder,
        sender: Sender,
        queue: EventQueue,
        event_backbone: EventBackbone,
    ) -> None:
        self.connection, self.users, self.wallets = connection_api, user_management, wallet_module
        self.notifications, self.recorder, self.sender = notifications, recorder, sender
        self.queue, self.backbone = queue, event_backbone
        self._send_task: Any = None  # huey's task, once the queue is built

    def initialize(self) -> bool:
        self.queue.when_built(self._register_task)
        self.sender.schedule_retry = self._schedule
        self.backbone.add_sweep(self.sweep)
        return True

    def _register_task(self, huey) -> None:
        self._send_task = huey.task(name=SEND_TASK)(self._send)

    # -- events in, work rows out -------------------------------------------------------------
    def handle_events(self, uow, events) -> None:
        recorded = self.recorder.record(uow.session, [(event.id, event.type, event.data) for event in events])
        if recorded.queued:
            queued = recorded.queued
            uow.after_commit(lambda: self.enqueue(queued))

    # -- sending, off the request path --------------------------------------------------------
    def enqueue(self, delivery_ids: list[str]) -> None:
        """Wake a sender for each chunk of deliveries; when the queue is down the sweep sends them."""
        try:
            huey = self.queue.huey
            for chunk in chunks(delivery_ids):
                huey.enqueue(self._send_task.s(chunk))
        except Exception as exc:
            log.warning("queue unavailable (%s): notifications wait for the sweep", type(exc).__name__)

    def _schedule(self, delivery_id: str, when: datetime) -> None:
        delay = max((when - utcnow()).total_seconds(), 0.0)
        try:
            self.queue.huey  # noqa: B018 - builds it and registers the task
            self._send_task.schedule(([delivery_id],), delay=delay)
        except Exception as exc:  # the sweep finds it when it falls due
            log.warning("queue unavailable (%s): a notification retry waits for the sweep", type(exc).__name__)

    def _send(self, delivery_ids: list[str] | str) -> None:
        ids = (
            [delivery_ids] if isinstance(delivery_ids, str) else delivery_ids
        )  # a task queued before sends went in chunks
        try:
            self.sender.send_many(ids)
        except Exception:  # the database is down: the deliveries stay queued for the sweep
            log.exception("sending notification deliveries %s failed", ", ".join(ids))

    def sweep(self) -> None:
        """Each worker's sweep: wake a sender for every lost wake-up (sending here if the queue is down)."""
        due = self.sender.lost_wakeups()
        if not due:
            return
        try:
            huey = self.queue.huey
            for chunk in chunks(due):
                huey.enqueue(self._send_task.s(chunk))
        except Exception:
            self._send(due)

    # -- the API and health -------------------------------------------------------------------
    def register_routes(self, app) -> None:
        self.connection.register_blueprint(build_blueprint(self.notifications, self.users.guard))

    def health_check(self) -> dict:
        report: dict = {"mail": self.sender.mailer.backend, "sms": self.sender.sms.backend}
        try:
            self.sender.mailer.ping()
        except Exception as exc:  # deliveries wait and retry; nothing else is affected
            return {**report, "status": "degraded", "error": f"mail unavailable: {exc}"[:200]}
        return {**report, "status": "healthy"}

    def shutdown(self) -> None:
        self.backbone.remove_sweep(self.sweep)
        close = getattr(self.sender.sms, "close", None)
        if close is not None:
            close()
