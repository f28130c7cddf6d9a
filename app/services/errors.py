"""Domain errors: one class per broken rule under one base.

Each class that declares a `code` carries everything the API says about it: its HTTP
status (a plain int: services know no web framework), its default message, and the
description and `details` example the OpenAPI document shows. The HTTP edge derives its
tables from these classes (app.http.errors.error_catalog), so a new error code is one
class here and nothing else.
"""

from __future__ import annotations

from typing import Any, ClassVar

# What a class that declares its own `code` must declare with it, so that it cannot
# silently inherit its parent's status or documentation.
_DECLARED_WITH_CODE = ("status", "description")


class DomainError(Exception):
    """A business rule refused the request; `code` is the API error code."""

    code: ClassVar[str] = "bad_request"
    status: ClassVar[int] = 400
    message = "the request was refused"
    description: ClassVar[str] = "the request was refused"
    example: ClassVar[dict[str, Any]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        missing = [name for name in _DECLARED_WITH_CODE if "code" in vars(cls) and name not in vars(cls)]
        if missing:
            raise TypeError(f"{cls.__name__} declares code {cls.code!r} but not its own {', '.join(missing)}")

    def __init__(self, message: str | None = None, details: dict[str, Any] | None = None) -> None:
        super().__init__(message or self.message)
        self.message = message or self.message
        self.details = details or {}


class ValidationFailed(DomainError):
    code = "validation_error"
    status = 422
    message = "the request has invalid fields"
    description = "a field is missing or invalid; `details` maps each bad field to its messages"
    example = {"amount": ["Must be a JSON integer."]}

    @classmethod
    def field(cls, name: str, problem: str) -> ValidationFailed:
        return cls(details={name: [problem]})


class NotFound(DomainError):
    code = "not_found"
    status = 404
    message = "not found"
    description = "no such resource (or not yours to see)"


class Unauthorized(DomainError):
    code = "unauthorized"
    status = 401
    message = "a valid access token is required"
    description = "no valid bearer token: missing, malformed, expired or revoked"


class InvalidCredentials(DomainError):
    code = "invalid_credentials"
    status = 401
    message = "wrong username or password"
    description = "wrong username or password (the same answer for an unknown user)"


class Forbidden(DomainError):
    code = "forbidden"
    status = 403
    message = "you are not allowed to do this"
    description = "authenticated, but not allowed to do this"


class UsernameTaken(DomainError):
    code = "username_taken"
    status = 409
    message = "that username is taken"
    description = "that username is taken (case-insensitively)"


class EmailTaken(DomainError):
    code = "email_taken"
    status = 409
    message = "that email is already registered"
    description = "that email is already registered"


class LastAdmin(DomainError):
    code = "last_admin"
    status = 409
    message = "this is the last active admin: make another user an admin first"
    description = "the change would leave no active admin; make another user an admin first"


class InsufficientFunds(DomainError):
    code = "insufficient_funds"
    status = 409
    message = "the balance is too low for this debit"
    description = "the balance is too low for this debit"
    example = {"balance": 50, "requested": 100}

    def __init__(self, balance: int, requested: int) -> None:
        super().__init__(details={"balance": balance, "requested": requested})


class AlreadyReversed(DomainError):
    code = "already_reversed"
    status = 409
    message = "this transaction has already been reversed"
    description = "this transaction has already been reversed"


class AlreadyDelivered(DomainError):
    code = "already_delivered"
    status = 409
    message = "this delivery is done; there is nothing to retry"
    description = "the event delivery is already done; only a failed or dead one can be retried"


class IdempotencyConflict(DomainError):
    code = "idempotency_conflict"
    status = 409
    message = "a request with this idempotency key is in progress; retry later"
    description = "a request with this Idempotency-Key is in progress; retry later"


class IdempotencyKeyReused(DomainError):
    code = "idempotency_key_reused"
    status = 422
    message = "this idempotency key was used with a different request"
    description = "this Idempotency-Key was used with a different request"


class RateLimited(DomainError):
    code = "rate_limited"
    status = 429
    message = "too many attempts; retry later"
    description = "too many failed attempts; retry after Retry-After seconds"
    example = {"retry_after": 30}

    def __init__(self, retry_after: int) -> None:
        super().__init__(details={"retry_after": retry_after})
        self.retry_after = retry_after


class InvalidSignature(DomainError):
    code = "invalid_signature"
    status = 400
    message = "the signature of this payment event is missing, invalid or stale"
    description = "an inbound provider event whose signature is missing, does not match its body, or is stale"


class EndpointDisabled(DomainError):
    code = "endpoint_disabled"
    status = 409
    message = "this webhook endpoint is disabled; enable it first (PATCH status active)"
    description = "the webhook endpoint is disabled: nothing is sent to it until an admin enables it again"
