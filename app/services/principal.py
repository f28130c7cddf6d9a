"""Who is acting, and the one rule of whose data they may act on.

Plain data: no Flask here. How a request's bearer token becomes a Principal is the HTTP
edge's business (app.http.principal, app.http.guard).
"""

from __future__ import annotations

from dataclasses import dataclass

from app.services.errors import Forbidden
from app.vocabulary import Role

OWN_ACCOUNT_ONLY = "you may only act on your own account"


@dataclass(frozen=True)
class Principal:
    user_id: str
    role: str

    @property
    def is_admin(self) -> bool:
        return self.role == Role.ADMIN

    @property
    def is_auditor(self) -> bool:
        return self.role == Role.AUDITOR

    @property
    def can_read_all(self) -> bool:
        """May read every user's data: an admin, or an auditor (read-only)."""
        return self.is_admin or self.is_auditor

    @property
    def read_only(self) -> bool:
        """Changes nothing, not even its own data (its own password is the one exception,
        granted where passwords change: app.services.users)."""
        return self.is_auditor

    def may_act_for(self, *owners: str | None, read: bool = False) -> bool:
        """Owner or admin: True if this principal is one of `owners` or an admin.

        With read=True, anyone who may read everything (can_read_all) qualifies too; without
        it a read-only principal (an auditor) qualifies for no one, itself included.
        """
        if read:
            return self.user_id in owners or self.can_read_all
        return (self.user_id in owners and not self.read_only) or self.is_admin


def require_owner_or_admin(
    actor: Principal, user_id: str, refusal: str = OWN_ACCOUNT_ONLY, *, read: bool = False
) -> None:
    """403 `forbidden` (with `refusal` as its message) unless actor.may_act_for(user_id, read=read)."""
    if not actor.may_act_for(user_id, read=read):
        raise Forbidden(refusal)
