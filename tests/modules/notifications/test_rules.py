"""The rules without a database: who hears of what (compose), preferences and masking."""

from __future__ import annotations

import email
import email.policy

import pytest

from app.services.errors import ValidationFailed
from app.services.notifications.compose import intents
from app.services.notifications.masking import mask_email, mask_phone, scrub
from app.services.notifications.preferences import Preferences
from app.services.notifications.render import Renderer


def tx(kind: str, amount: int, from_user: str | None, to_user: str | None, **extra) -> dict:
    return {
        "id": "t1",
        "type": kind,
        "amount": amount,
        "from_user_id": from_user,
        "to_user_id": to_user,
        "description": None,
        "reverses": None,
        **extra,
    }


def topics(event_type: str, data: dict, threshold: int = 100) -> list[tuple[str, str]]:
    return [(i.user_id, i.topic.value) for i in intents(event_type, data, lambda _user: threshold)]


def test_each_transaction_type_concerns_its_parties_under_its_topic():
    posted = "transaction.posted"
    assert topics(posted, {"transaction": tx("deposit", 5, None, "a"), "balances": {"a": 500}}) == [("a", "deposit")]
    assert topics(posted, {"transaction": tx("withdrawal", 5, "a", None), "balances": {"a": 500}}) == [
        ("a", "withdrawal")
    ]
    assert topics(posted, {"transaction": tx("transfer", 5, "a", "b"), "balances": {"a": 500, "b": 5}}) == [
        ("a", "transfer_sent"),
        ("b", "transfer_received"),
    ]
    assert topics(posted, {"transaction": tx("reversal", 5, "b", "a"), "balances": {"a": 500, "b": 500}}) == [
        ("b", "reversal"),
        ("a", "reversal"),
    ]


@pytest.mark.parametrize(
    "before, amount, fires",
    [
        (150, 60, True),  # 150 -> 90 crosses 100
        (100, 1, True),  # at the threshold counts as above
        (150, 50, False),  # 150 -> 100: not below
        (90, 10, False),  # already below: no repeat (hysteresis)
        (99, 99, False),
    ],
)
def test_low_balance_fires_only_on_the_debit_that_crosses_below(before, amount, fires):
    data = {"transaction": tx("withdrawal", amount, "a", None), "balances": {"a": before - amount}}
    assert (("a", "low_balance") in topics("transaction.posted", data)) is fires


def test_low_balance_fires_again_only_after_the_balance_was_back_at_or_above():
    sequence = [(150, -60), (90, -10), (80, +30), (110, -20)]  # (balance before, change)
    fired = []
    for before, change in sequence:
        kind, parties = ("withdrawal", ("a", None)) if change < 0 else ("deposit", (None, "a"))
        data = {"transaction": tx(kind, abs(change), *parties), "balances": {"a": before + change}}
        fired.append(("a", "low_balance") in topics("transaction.posted", data))
    assert fired == [True, False, False, True]


def test_security_covers_password_role_and_deactivation_only():
    user = {"id": "u", "role": "admin", "is_active": True}
    assert topics("user.updated", {"changed": ["email"], "user": user}) == []
    assert topics("user.updated", {"changed": ["phone"], "user": user}) == []
    assert topics("user.updated", {"changed": ["email", "password"], "user": user}) == [("u", "security")]
    assert topics("user.updated", {"changed": ["role"], "user": user}) == [("u", "security")]
    assert topics("user.deactivated", {"user": user}) == [("u", "security")]
    assert topics("auth.login_failed", {"identifier": "u"}) == []


def test_defaults_match_the_contract():
    public = Preferences().public()
    assert public["low_balance_threshold"] == 100
    email_on = {topic for topic, channels in public["topics"].items() if channels["email"]}
    assert email_on == {"security", "deposit", "transfer_received", "low_balance"}
    assert all(channels["in_app"] for channels in public["topics"].values())
    assert not any(channels["sms"] for channels in public["topics"].values())


def test_security_email_cannot_be_turned_off_and_nothing_is_applied():
    with pytest.raises(ValidationFailed) as refused:
        Preferences().merged({"topics": {"deposit": {"email": False}, "security": {"email": False}}})
    assert "topics.security.email" in refused.value.details
    merged = Preferences().merged({"topics": {"security": {"in_app": False, "sms": True}}})
    assert merged.wants("security", "email") and not merged.wants("security", "in_app")


def test_masks_keep_little():
    assert mask_email("alice@example.com") == "a***e@example.com"
    assert mask_email("al@example.com") == "a***@example.com"
    assert mask_phone("+4915112345678") == "+49*******5678"
    assert "bob@example.com" not in scrub("550 5.1.1 <bob@example.com>: no such user", "bob@example.com")


def test_html_is_escaped_and_titles_stay_on_one_line():
    renderer = Renderer()
    context = {"amount": 5, "balance": 5, "counterparty": "mallory", "description": "<script>x</script>"}
    title, body = renderer.inbox("transfer_received", context)
    assert title == "You received 5 credits" and "<script>" in body  # plain text is not HTML
    message = renderer.email(sender="s@x", to="r@x", message_id="<m@x>", title=title, body=body, context=context)
    html = message.get_body(("html",)).get_content()
    assert "<script>" not in html and "&lt;script&gt;" in html


def _written_and_read_back(**headers):
    context = {"amount": 5, "balance": 5, "counterparty": "bob", "description": None}
    message = Renderer().email(body="bob sent you 5 credits.", context=context, **headers)
    return email.message_from_bytes(message.as_bytes(), policy=email.policy.default)


@pytest.mark.parametrize(
    "sender, title",
    [
        ("Credits <credits@bank.example>", "You received 5 credits"),  # plain: set as they are
        ("Crédits Bancaires <credits@bank.example>", "Vous avez reçu 5 crédits"),  # the default policy's care
    ],
)
def test_an_email_reads_back_as_it_was_written(sender, title):
    read = _written_and_read_back(sender=sender, to="alice@example.com", message_id="<d1@bank.example>", title=title)
    assert str(read["Subject"]) == title
    assert read["From"].addresses[0].display_name == sender.split(" <")[0]
    assert read["From"].addresses[0].addr_spec == "credits@bank.example"
    assert read["To"].addresses[0].addr_spec == "alice@example.com"
    assert read["Message-ID"] == "<d1@bank.example>" and read["Date"].datetime is not None
    assert read["Auto-Submitted"] == "auto-generated"
    assert read.get_content_type() == "multipart/alternative"
    assert "bob sent you 5 credits." in read.get_body(("plain",)).get_content()
    assert "bob sent you 5 credits." in read.get_body(("html",)).get_content()


def test_a_header_value_with_a_line_break_is_refused():
    with pytest.raises(ValueError):
        _written_and_read_back(sender="s@x", to="r@x", message_id="<m@x>", title="Hi\r\nBcc: eve@example.com")


def test_a_template_folder_overrides_by_name(tmp_path):
    (tmp_path / "deposit.txt").write_text("Money! {{ amount }}\nYou got {{ amount }}.")
    assert Renderer(str(tmp_path)).inbox("deposit", {"amount": 7, "balance": 7}) == ("Money! 7", "You got 7.")
    assert Renderer(str(tmp_path)).inbox("withdrawal", {"amount": 7, "balance": 0})[0] == "7 credits were withdrawn"
