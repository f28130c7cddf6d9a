"""Domain errors: one class per broken rule under one base; the HTTP edge maps codes to statuses."""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    """A business rule refused the request; `code` is the API error code."""

    code = "bad_request"
    message = "the request was refused"

    def __init__(self, message: str | None = None, details: dict[str, Any] | None = None) -> None:
        super().__init__(message or self.message)
        self.message = message or self.message
        self.details = details or {}


class ValidationFailed(DomainError):
    code = "validation_error"
    message = "the request has invalid fields"

    @classmethod
    def field(cls, name: str, problem: str) -> ValidationFailed:
        return cls(details={name: [problem]})


class NotFound(DomainError):
    code = "not_found"
    message = "not found"


class Unauthorized(DomainError):
    code = "unauthorized"
    message = "a valid access token is required"


class InvalidCredentials(DomainError):
    code = "invalid_credentials"
    message = "wrong username or password"


class Forbidden(DomainError):
    code = "forbidden"
    message = "you are not allowed to do this"


class UsernameTaken(DomainError):
    code = "username_taken"
    message = "that username is taken"


class EmailTaken(DomainError):
    code = "email_taken"
    message = "that email is already registered"


class InsufficientFunds(DomainError):
    code = "insufficient_funds"
    message = "the balance is too low for this debit"

    def __init__(self, balance: int, requested: int) -> None:
        super().__init__(details={"balance": balance, "requested": requested})


class AlreadyReversed(DomainError):
    code = "already_reversed"
    message = "this transaction has already been reversed"


class IdempotencyConflict(DomainError):
    code = "idempotency_conflict"
    message = "a request with this idempotency key is in progress; retry later"


class IdempotencyKeyReused(DomainError):
    code = "idempotency_key_reused"
    message = "this idempotency key was used with a different request"


class RateLimited(DomainError):
    code = "rate_limited"
    message = "too many attempts; retry later"

    def __init__(self, retry_after: int) -> None:
        super().__init__(details={"retry_after": retry_after})
        self.retry_after = retry_after


class ServiceUnavailable(DomainError):
    code = "service_unavailable"
    message = "a required backend is unavailable; retry later"
