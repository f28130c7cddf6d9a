"""The one access rule: owner or admin, and for reads anyone who may read everything."""

from __future__ import annotations

import pytest

from app.services.errors import Forbidden
from app.services.principal import OWN_ACCOUNT_ONLY, Principal, require_owner_or_admin

ALICE, ADMIN = Principal("alice", "user"), Principal("root", "admin")


@pytest.mark.parametrize("read", [False, True])
def test_owner_and_admin_may_act_for_a_user_others_may_not(read):
    assert ALICE.may_act_for("alice", read=read)
    assert ADMIN.may_act_for("alice", read=read)
    assert not ALICE.may_act_for("bob", read=read)


def test_any_of_several_owners_qualifies_and_a_missing_one_is_no_one():
    assert ALICE.may_act_for(None, "alice", read=True)
    assert not ALICE.may_act_for("bob", None, read=True)
    assert not ALICE.may_act_for()


def test_reads_follow_can_read_all_writes_do_not():
    auditor = Principal("eve", "auditor")
    assert auditor.can_read_all and auditor.read_only and not auditor.is_admin
    assert auditor.may_act_for("alice", read=True) and auditor.may_act_for(read=True)
    assert not auditor.may_act_for("alice")
    assert not auditor.may_act_for("eve")  # read-only: not even for itself
    assert auditor.may_act_for("eve", read=True)
    assert ADMIN.can_read_all and not ALICE.can_read_all
    assert not ADMIN.read_only and not ALICE.read_only


def test_require_owner_or_admin_refuses_with_the_callers_message():
    require_owner_or_admin(ALICE, "alice")
    require_owner_or_admin(ADMIN, "bob", "only for you", read=True)
    with pytest.raises(Forbidden) as refused:
        require_owner_or_admin(ALICE, "bob")
    assert refused.value.message == OWN_ACCOUNT_ONLY
    with pytest.raises(Forbidden, match="only an admin may read"):
        require_owner_or_admin(ALICE, "bob", "only an admin may read another user's history", read=True)
