"""HTTP routes of integration_module: webhook endpoints (admin) and inbound payments."""

from __future__ import annotations

from flask import request, url_for

from app.http.blueprint import Blueprint
from app.http.docs import errors
from app.http.errors import error_response
from app.http.guard import AccessGuard
from app.schemas.common import PageQuerySchema
from app.schemas.integrations import (
    PaymentPageSchema,
    PaymentQuerySchema,
    PaymentReceiptSchema,
    WebhookDeliveryPageSchema,
    WebhookDeliveryQuerySchema,
    WebhookDeliverySchema,
    WebhookEndpointCreateSchema,
    WebhookEndpointPageSchema,
    WebhookEndpointSchema,
    WebhookEndpointUpdateSchema,
    WebhookEndpointWithSecretSchema,
    WebhookSecretSchema,
)
from app.services.integrations.payments import PaymentService
from app.services.integrations.webhooks import WebhookService

ENDPOINT_ID = "<string(maxlength=64):endpoint_id>"
STRIPE_SIGNATURE = {
    "in": "header",
    "name": "Stripe-Signature",
    "required": True,
    "description": '`t=<unix seconds>,v1=<hex HMAC-SHA256 of "{t}.{raw body}">` keyed by CREDIT_STRIPE_WEBHOOK_SECRET',
    "schema": {"type": "string"},
}


def build_webhooks_blueprint(webhooks: WebhookService, guard: AccessGuard) -> Blueprint:
    blp = Blueprint("webhooks", __name__, url_prefix="/webhooks", description="Outgoing webhooks (admin)")

    @blp.before_request
    def authenticate():
        guard.principal()

    @blp.route("/endpoints", methods=["POST"])
    @blp.arguments(WebhookEndpointCreateSchema)
    @blp.response(201, WebhookEndpointWithSecretSchema)
    @errors("forbidden", auth=True, body=True)
    def create_webhook_endpoint(body):
        """Register an endpoint (admin); its signing secret is shown only in this answer.

        The URL must be http(s) and resolve to public addresses only (422 otherwise, unless
        CREDIT_WEBHOOK_ALLOW_PRIVATE=true). It receives the events that occur from now on.
        """
        endpoint = webhooks.create_endpoint(
            guard.principal(), body["url"], body["event_types"], body.get("description")
        )
        return endpoint, {"Location": url_for("webhooks.get_webhook_endpoint", endpoint_id=endpoint["id"])}

    @blp.route("/endpoints")
    @blp.arguments(PageQuerySchema, location="query")
    @blp.response(200, WebhookEndpointPageSchema)
    @errors("forbidden", "validation_error", auth=True)
    def list_webhook_endpoints(query):
        """Webhook endpoints, newest first (admin)."""
        page = webhooks.endpoints(guard.principal(), query["limit"], query["cursor"])
        return {"items": page.items, "next_cursor": page.next_cursor}

    @blp.route(f"/endpoints/{ENDPOINT_ID}")
    @blp.response(200, WebhookEndpointSchema)
    @errors("forbidden", "not_found", auth=True)
    def get_webhook_endpoint(endpoint_id):
        """One webhook endpoint (admin)."""
        return webhooks.endpoint(guard.principal(), endpoint_id)

    @blp.route(f"/endpoints/{ENDPOINT_ID}", methods=["PATCH"])
    @blp.arguments(WebhookEndpointUpdateSchema)
    @blp.response(200, WebhookEndpointSchema)
    @errors("forbidden", "not_found", auth=True, body=True)
    def update_webhook_endpoint(changes, endpoint_id):
        """Change the URL, filter or description, or disable / enable the endpoint (admin).

        Disabling fails what it still owed; enabling clears its failure record (retry what
        failed with POST /webhooks/deliveries/{id}/retry).
        """
        return webhooks.update_endpoint(guard.principal(), endpoint_id, changes)

    @blp.route(f"/endpoints/{ENDPOINT_ID}", methods=["DELETE"])
    @blp.response(204)
    @errors("forbidden", "not_found", auth=True)
    def delete_webhook_endpoint(endpoint_id):
        """Delete an endpoint and its delivery log (admin)."""
        webhooks.delete_endpoint(guard.principal(), endpoint_id)

    @blp.route(f"/endpoints/{ENDPOINT_ID}/rotate-secret", methods=["POST"])
    @blp.response(200, WebhookSecretSchema)
    @errors("forbidden", "not_found", auth=True, empty_body=True)
    def rotate_webhook_secret(endpoint_id):
        """A new signing secret (admin); the old one keeps signing beside it for 24 hours."""
        return webhooks.rotate_secret(guard.principal(), endpoint_id)

    @blp.route(f"/endpoints/{ENDPOINT_ID}/test", methods=["POST"])
    @blp.response(202, WebhookDeliverySchema)
    @errors("forbidden", "not_found", "endpoint_disabled", auth=True, empty_body=True)
    def test_webhook_endpoint(endpoint_id):
        """Send a `webhook.test` event to this endpoint (admin); the delivery is in its log."""
        return webhooks.send_test(guard.principal(), endpoint_id)

    @blp.route(f"/endpoints/{ENDPOINT_ID}/deliveries")
    @blp.arguments(WebhookDeliveryQuerySchema, location="query")
    @blp.response(200, WebhookDeliveryPageSchema)
    @errors("forbidden", "not_found", "validation_error", auth=True)
    def list_webhook_deliveries(query, endpoint_id):
        """The endpoint's delivery log, newest first (admin)."""
        page = webhooks.deliveries(guard.principal(), endpoint_id, query["status"], query["limit"], query["cursor"])
        return {"items": page.items, "next_cursor": page.next_cursor}

    @blp.route("/deliveries/<string(maxlength=32):delivery_id>/retry", methods=["POST"])
    @blp.response(202, WebhookDeliverySchema)
    @errors("forbidden", "not_found", "endpoint_disabled", auth=True, empty_body=True)
    def retry_webhook_delivery(delivery_id):
        """Send a delivery again now, whatever its state, with a fresh retry schedule (admin)."""
        return webhooks.retry(guard.principal(), delivery_id)

    return blp


def build_payments_blueprint(payments: PaymentService, guard: AccessGuard) -> Blueprint:
    blp = Blueprint("payments", __name__, url_prefix="/integrations", description="Inbound payments (top-ups)")

    @blp.route("/payments/stripe", methods=["POST"])
    # The body (a Stripe event) is read raw and verified, not parsed against a schema.
    @blp.doc(parameters=[STRIPE_SIGNATURE])
    @blp.response(200, PaymentReceiptSchema)
    @errors("bad_request", "invalid_signature", "payload_too_large", "unsupported_media_type", "module_unavailable")
    def receive_stripe_event():
        """A Stripe webhook: a paid `checkout.session.completed` deposits into the wallet of its
        `client_reference_id`, once per session however often it is delivered.

        The body is the Stripe event as JSON (`data.object` the Checkout Session); its
        `metadata.credits` (digits) or else `amount_total` x CREDIT_PAYMENTS_CREDITS_PER_UNIT is
        the amount. Other event types are acknowledged and ignored; an unknown user is recorded
        `unmatched` (GET /integrations/payments?status=unmatched).

        The signature of the raw body is checked first (400 `invalid_signature`, nothing
        recorded); 503 `module_unavailable` while CREDIT_STRIPE_WEBHOOK_SECRET is not set.
        """
        if not payments.configured:
            return error_response(
                503,
                "module_unavailable",
                "inbound payments are off: CREDIT_STRIPE_WEBHOOK_SECRET is not set",
                {"module": "integration_module", "status": "not configured"},
            )
        receipt = payments.receive_stripe(request.headers.get("Stripe-Signature"), request.get_data(cache=True))
        return receipt.body()

    @blp.route("/payments")
    @blp.arguments(PaymentQuerySchema, location="query")
    @blp.response(200, PaymentPageSchema)
    @errors("forbidden", "validation_error", auth=True)
    def list_payments(query):
        """Received payment events, newest first (admin); `status=unmatched` lists what no wallet took."""
        items, next_cursor = payments.payments(guard.principal(), query["status"], query["limit"], query["cursor"])
        return {"items": items, "next_cursor": next_cursor}

    return blp
