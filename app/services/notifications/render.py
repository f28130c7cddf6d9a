"""Messages from Jinja2 templates: each topic's title and body (`<topic>.txt`: the first line
is the title), the email around them (`email.txt`, `email.html`, autoescaped) and the SMS
(`sms.txt`). A folder named by CREDIT_NOTIFICATIONS_TEMPLATES overrides any of them by name.
"""

from __future__ import annotations

import uuid
from email import policy
from email.contentmanager import raw_data_manager
from email.message import EmailMessage
from email.utils import formatdate
from pathlib import Path
from typing import Any

from jinja2 import ChoiceLoader, Environment, FileSystemLoader, PackageLoader, select_autoescape

PRODUCT = "Credit System"
MAX_TITLE, MAX_SMS = 200, 480


class PlainHeaders(policy.Compat32):
    """compat32 (header values kept as the strings they were set to) with the content
    manager of the default policy, so the message reads like any EmailMessage.

    policy.default parses every header into objects when it is set and again when it is
    read (writing a message reads its Content-Type a dozen times) and folds it when written:
    1.1 ms a message, more than rendering it, writing it out and recording it together. The
    values here (our title, a checked address, our Message-ID) are plain almost always, and
    need none of that: 0.2 ms. Anything else gets the default policy's care (plain_header).
    """

    content_manager = raw_data_manager


PLAIN_HEADERS = PlainHeaders()


def plain_header(value: str) -> bool:
    """ASCII on one line: a header value that needs no parsing, encoding or care when folded."""
    return value.isascii() and "\r" not in value and "\n" not in value


def boundary_for(*texts: str) -> str:
    """A multipart boundary in none of the texts (the generator's own check compiles a
    regular expression per message)."""
    while True:
        boundary = f"=_{uuid.uuid4().hex}"
        if not any(boundary in text for text in texts):
            return boundary


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
        message = EmailMessage(policy=PLAIN_HEADERS if all(map(plain_header, headers.values())) else policy.default)
        for name, value in headers.items():
            message[name] = value
        text, html = self._render("email.txt", parts) + "\n", self._render("email.html", parts)
        message.set_content(text)
        message.add_alternative(html, subtype="html")
        message.set_boundary(boundary_for(text, html))
        return message

    def sms(self, title: str, body: str, context: dict[str, Any]) -> str:
        text = " ".join(self._render("sms.txt", {"title": title, "body": body, **context}).split())
        return text[:MAX_SMS]
