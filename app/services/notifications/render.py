"""Messages from Jinja2 templates: each topic's title and body (`<topic>.txt`: the first line
is the title), the email around them (`email.txt`, `email.html`, autoescaped) and the SMS
(`sms.txt`). A folder named by CREDIT_NOTIFICATIONS_TEMPLATES overrides any of them by name.
"""

from __future__ import annotations

from email import policy
from email.contentmanager import raw_data_manager
from email.message import EmailMessage
from email.utils import formatdate
from pathlib import Path
from typing import Any

from jinja2 import ChoiceLoader, Environment, FileSystemLoader, PackageLoader, select_autoescape

PRODUCT = "Credit System"
MAX_TITLE, MAX_SMS = 200, 480


def plain_header(value: str) -> bool:
    """ASCII on one line: a header value that needs no parsing, encoding or care when folded.

    policy.default parses every header into objects and folds it again when the message is
    written: 0.9 ms a message, more than rendering it, writing it out and recording it
    together. The values here (our title, a checked address, our Message-ID) are plain
    almost always: those are set under compat32, which stores the strings as they are, and
    the message then takes the default policy, which parses a stored string only when it is
    read and writes a short one as it is (0.1 ms in all). A name or an address outside ASCII
    gets the default policy's care from the start.
    """
    return value.isascii() and "\r" not in value and "\n" not in value


class Renderer:
    def __init__(self, override_folder: str | None = None) -> None:
        loaders: list = [PackageLoader("app.services.notifications", "templates")]
        if override_folder:
            loaders.insert(0, FileSystemLoader(Path(override_folder)))
        # HTML is escaped (a transfer's description is anyone's text); text and SMS are not HTML.
        self.env = Environment(
            loader=ChoiceLoader(loaders),
            autoescape=select_autoescape(enabled_extensions=("html",), default_for_string=False),
            keep_trailing_newline=False,
        )

    def _render(self, name: str, context: dict[str, Any]) -> str:
        return self.env.get_template(name).render(product=PRODUCT, **context)

    def inbox(self, topic: str, context: dict[str, Any]) -> tuple[str, str]:
        """(title, body) of a topic's notification."""
        title, _, body = self._render(f"{topic}.txt", context).strip().partition("\n")
        # A header line: no line breaks (a header injection), bounded like the column.
        return " ".join(title.split())[:MAX_TITLE], body.strip()

    def email(
        self, *, sender: str, to: str, message_id: str, title: str, body: str, context: dict[str, Any]
    ) -> EmailMessage:
        """A text message with an HTML alternative, Message-ID and Date."""
        parts = {"title": title, "body": body, **context}
        headers = {
            "Subject": title,
            "From": sender,
            "To": to,
            "Date": formatdate(usegmt=True),
            "Message-ID": message_id,
            "Auto-Submitted": "auto-generated",  # RFC 3834: no auto-replies to this
        }
        plain = all(map(plain_header, headers.values()))
        message = EmailMessage(policy=policy.compat32 if plain else policy.default)
        for name, value in headers.items():
            message[name] = value
        message.set_content(self._render("email.txt", parts) + "\n", content_manager=raw_data_manager)
        message.add_alternative(self._render("email.html", parts), subtype="html", content_manager=raw_data_manager)
        for part in message.walk():  # from here on a message like any other: read, written, sent
            part.policy = policy.default
        return message

    def sms(self, title: str, body: str, context: dict[str, Any]) -> str:
        text = " ".join(self._render("sms.txt", {"title": title, "body": body, **context}).split())
        return text[:MAX_SMS]
