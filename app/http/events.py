"""Routes of the event feed and the deliveries (served by connection_api): parse, call, return."""

from __future__ import annotations

from app.http.blueprint import Blueprint
from app.http.docs import errors
from app.http.guard import AccessGuard
from app.schemas.events import (
    DeliveryPageSchema,
    DeliveryQuerySchema,
    DeliverySchema,
    EventFeedQuerySchema,
    EventFeedSchema,
    EventTypeSchema,
)
from app.services.events import EventFeed


def build_events_blueprint(feed: EventFeed, guard: AccessGuard) -> Blueprint:
    blp = Blueprint("events", __name__, description="Events: the feed, their types and their deliveries to modules")

    @blp.route("/events")
    @blp.arguments(EventFeedQuerySchema, location="query")
    @blp.response(200, EventFeedSchema)
    @errors("forbidden", "validation_error", auth=True)
    def list_events(query):
        """Events after a sequence, oldest first, without gaps (admin, auditor): page with `after=last_sequence`."""
        page = feed.events(guard.principal(), query["after"], query["type"], query["limit"])
        return {"items": page.items, "last_sequence": page.last_sequence}

    @blp.route("/events/types")
    @blp.response(200, EventTypeSchema(many=True))
    @errors(auth=True, backend=False)
    def list_event_types():
        """Every event type, the core's and the modules', with a one-line description."""
        guard.principal()
        return feed.types()

    @blp.route("/events/deliveries")
    @blp.arguments(DeliveryQuerySchema, location="query")
    @blp.response(200, DeliveryPageSchema)
    @errors("forbidden", "validation_error", auth=True)
    def list_event_deliveries(query):
        """Deliveries of events to modules, newest first (admin); `status=dead` lists what needs a retry."""
        page = feed.deliveries(guard.principal(), query["status"], query["subscriber"], query["limit"], query["cursor"])
        return {"items": page.items, "next_cursor": page.next_cursor}

    @blp.route("/events/deliveries/<string(maxlength=32):delivery_id>/retry", methods=["POST"])
    @blp.response(202, DeliverySchema)
    @errors("forbidden", "not_found", "already_delivered", auth=True, empty_body=True)
    def retry_event_delivery(delivery_id):
        """Try a failed or dead delivery again now, with a fresh set of attempts (admin)."""
        return feed.retry(guard.principal(), delivery_id)

    return blp
