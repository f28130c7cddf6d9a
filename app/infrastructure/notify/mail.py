"""Mail out: smtplib over `smtp://`, `smtp+starttls://` or `smtps://` (logging in when the URL
has credentials), or `file://` (one `.eml` per message in a folder: the embedded default, so
`credit-system run` shows what would be sent) or `console://` (printed to standard output).

SMTP replies are classified as RFC 5321 has them: 4xx transient, 5xx permanent; a connection
that cannot be made or breaks is transient. The URL's password never appears in an error.
Messages sent inside `with mailer.connection():` share one SMTP connection (the sender's
chunk of deliveries), as a mail client would: a connection and a login per message cost more
than the message.
"""

from __future__ import annotations

import smtplib
import ssl
import sys
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from email.message import EmailMessage
from pathlib import Path
from typing import Protocol
from urllib.parse import unquote, urlsplit

from app.infrastructure.notify.failures import PermanentFailure, TransientFailure
from app.infrastructure.notify.files import folder_of, write_private
from app.infrastructure.notify.urls import check_transport_url

SMTP_SCHEMES = {"smtp": 25, "smtp+starttls": 587, "smtps": 465}
SCHEMES = (*SMTP_SCHEMES, "file", "console")
TIMEOUT_SECONDS = 10.0  # one SMTP conversation step; the sender's claim outlasts a whole send
PING_TIMEOUT_SECONDS = 1.5  # a health check's: within the kernel's health timeout


class Mailer(Protocol):
    backend: str

    def send(self, message: EmailMessage) -> None:
        """Hand the message over; TransientFailure or PermanentFailure when it cannot be."""

    def connection(self) -> AbstractContextManager[None]:
        """A block whose sends (on this thread) may share one connection to the server."""

    def ping(self) -> None:
        """Raise TransientFailure unless a message could be handed over now."""


def check_mail_url(url: str) -> None:
    """ValueError unless url names a mail transport this module knows."""
    check_transport_url(url, "mail", SCHEMES, SMTP_SCHEMES, "{scheme}://user:password@host:port")


def build_mailer(url: str, default_folder: Path = Path("instance") / "mail") -> Mailer:
    check_mail_url(url)
    scheme = urlsplit(url).scheme
    if scheme == "file":
        return FileMailer(folder_of(url, default_folder))
    if scheme == "console":
        return ConsoleMailer()
    return SmtpMailer(url)


class SmtpMailer:
    backend = "smtp"

    def __init__(self, url: str, timeout: float = TIMEOUT_SECONDS) -> None:
        parts = urlsplit(url)
        self.scheme = parts.scheme
        self.host = parts.hostname or ""
        self.port = parts.port or SMTP_SCHEMES[parts.scheme]
        self._username = unquote(parts.username) if parts.username else None
        self._password = unquote(parts.password) if parts.password else ""
        self.timeout = timeout
        self._held = threading.local()  # this thread's connection() block: `reuse`, `smtp`

    def _connect(self, timeout: float) -> smtplib.SMTP:
        if self.scheme == "smtps":
            smtp: smtplib.SMTP = smtplib.SMTP_SSL(
                self.host, self.port, timeout=timeout, context=ssl.create_default_context()
            )
        else:
            smtp = smtplib.SMTP(self.host, self.port, timeout=timeout)
        try:
            if self.scheme == "smtp+starttls":
                smtp.starttls(context=ssl.create_default_context())
            if self._username:
                smtp.login(self._username, self._password)
        except BaseException:
            _close(smtp)
            raise
        return smtp

    @contextmanager
    def connection(self) -> Iterator[None]:
        """Sends on this thread inside the block share one connection: opened by the first,
        closed at the end (or as soon as a send fails, the next one opening another)."""
        self._held.reuse = True
        try:
            yield
        finally:
            self._held.reuse = False
            self._drop()

    def send(self, message: EmailMessage) -> None:
        try:
            smtp = getattr(self._held, "smtp", None) or self._connect(self.timeout)
            try:
                smtp.send_message(message)
            except BaseException:
                self._held.smtp = None
                _close(smtp)  # whatever state a failed conversation left, the next send starts afresh
                raise
            if getattr(self._held, "reuse", False):
                self._held.smtp = smtp
            else:
                _close(smtp)
        except Exception as exc:
            raise classify(exc) from None

    def _drop(self) -> None:
        smtp, self._held.smtp = getattr(self._held, "smtp", None), None
        if smtp is not None:
            _close(smtp)

    def ping(self) -> None:
        try:
            smtp = self._connect(PING_TIMEOUT_SECONDS)
            try:
                code, _ = smtp.noop()
            finally:
                _close(smtp)
        except Exception as exc:
            raise TransientFailure(str(classify(exc))) from None
        if code != 250:
            raise TransientFailure(f"SMTP NOOP answered {code}")


def _close(smtp: smtplib.SMTP) -> None:
    try:
        smtp.quit()
    except Exception:  # the server is gone already: nothing to close politely
        smtp.close()


def classify(exc: Exception) -> TransientFailure | PermanentFailure:
    """An smtplib (or socket) error as a transient or permanent failure, with a short cause."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        codes = sorted({code for code, _reply in exc.recipients.values()})
        failure = PermanentFailure if all(code >= 500 for code in codes) else TransientFailure
        return failure(f"SMTP recipient refused ({', '.join(map(str, codes))})")
    if isinstance(exc, smtplib.SMTPResponseException):
        reply = exc.smtp_error.decode("utf-8", "replace") if isinstance(exc.smtp_error, bytes) else str(exc.smtp_error)
        text = f"SMTP {exc.smtp_code}: {' '.join(reply.split())[:200]}"
        return PermanentFailure(text) if 500 <= exc.smtp_code < 600 else TransientFailure(text)
    return TransientFailure(f"SMTP connection failed: {type(exc).__name__}")


class FileMailer:
    """Each message as an .eml file (RFC 5322, as it would go over the wire)."""

    backend = "file"

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def send(self, message: EmailMessage) -> None:
        name = str(message["Message-ID"] or "message").strip("<>").replace("@", "_").replace("/", "_")
        try:
            write_private(self.folder, f"{name}.eml", message.as_bytes())
        except OSError as exc:
            raise TransientFailure(f"cannot write the mail folder: {type(exc).__name__}") from None

    def connection(self) -> AbstractContextManager[None]:
        return nullcontext()

    def ping(self) -> None:
        if self.folder.exists() and not self.folder.is_dir():
            raise TransientFailure("the mail folder is not a directory")


class ConsoleMailer:
    backend = "console"

    def __init__(self) -> None:
        self._lock = threading.Lock()  # one message at a time, not interleaved lines

    def send(self, message: EmailMessage) -> None:
        with self._lock:
            sys.stdout.write(f"{message.as_string()}\n")
            sys.stdout.flush()

    def connection(self) -> AbstractContextManager[None]:
        return nullcontext()

    def ping(self) -> None:
        return None
