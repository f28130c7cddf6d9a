"""HTTP routes of notifications: parse, call one service, return."""

from __future__ import annotations

from app.http.blueprint import Blueprint
from app.http.docs import errors
from app.http.guard import AccessGuard
from app.schemas.notifications import (
    DeliveryLogQuerySchema,
    InboxQuerySchema,
    NotificationDeliveryPageSchema,
    NotificationPageSchema,
    NotificationSchema,
    PreferencesPatchSchema,
    PreferencesSchema,
)
from app.services.notifications import NotificationService


def build_blueprint(notifications: NotificationService, guard: AccessGuard) -> Blueprint:
    blp = Blueprint("notifications", __name__, description="Notifications: inbox, preferences, delivery log")

    @blp.route("/notifications")
    @blp.arguments(InboxQuerySchema, location="query")
    @blp.response(200, NotificationPageSchema)
    @errors("validation_error", auth=True)
    def list_notifications(query):
        """Your in-app notifications, newest first; `unread=true` for those not marked read."""
        page = notifications.inbox(guard.principal(), query["unread"], query["limit"], query["cursor"])
        return {"items": page.items, "next_cursor": page.next_cursor}

    @blp.route("/notifications/<id:notification_id>/read", methods=["POST"])
    @blp.response(200, NotificationSchema)
    @errors("forbidden", "not_found", auth=True, empty_body=True)
    def mark_notification_read(notification_id):
        """Mark one of your notifications read (again: no change); another user's is 404."""
        return notifications.mark_read(guard.principal(), notification_id)

    @blp.route("/notifications/read-all", methods=["POST"])
    @blp.response(204)
    @errors("forbidden", auth=True, empty_body=True)
    def mark_all_notifications_read():
        """Mark every one of your notifications read."""
        notifications.mark_all_read(guard.principal())

    @blp.route("/notifications/preferences")
    @blp.response(200, PreferencesSchema)
    @errors(auth=True)
    def get_notification_preferences():
        """Your choices per topic and channel (the defaults until you change one), and the low-balance threshold."""
        return notifications.preferences(guard.principal())

    @blp.route("/notifications/preferences", methods=["PATCH"])
    @blp.arguments(PreferencesPatchSchema)
    @blp.response(200, PreferencesSchema)
    @errors("forbidden", auth=True, body=True)
    def update_notification_preferences(patch):
        """Change some choices; the answer is all of them. Turning off `security` email is 422; an auditor
        changes nothing (403)."""
        return notifications.change_preferences(guard.principal(), patch)

    @blp.route("/notifications/deliveries")
    @blp.arguments(DeliveryLogQuerySchema, location="query")
    @blp.response(200, NotificationDeliveryPageSchema)
    @errors("forbidden", "not_found", "validation_error", auth=True)
    def list_notification_deliveries(query):
        """Emails and SMS sent (or not) for your notifications, newest first, addresses masked;
        an admin may ask for any `user_id`."""
        page = notifications.deliveries(guard.principal(), query["user_id"], query["limit"], query["cursor"])
        return {"items": page.items, "next_cursor": page.next_cursor}

    return blp
