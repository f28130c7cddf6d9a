"""Notifications (notification_module's rules): which events concern whom (compose), what each
user wants (preferences), the rows a handler writes (recorder), the sending after commit with
retries (sender), and the inbox, preferences and delivery log the API serves (inbox)."""

from app.services.notifications.inbox import NotificationService
from app.services.notifications.recorder import Recorder
from app.services.notifications.render import Renderer
from app.services.notifications.sender import NOTIFICATION_FAILED, SEND_CHUNK, RetryPolicy, Sender

__all__ = ["NOTIFICATION_FAILED", "SEND_CHUNK", "NotificationService", "Recorder", "Renderer", "RetryPolicy", "Sender"]
