"""Adapters that carry notifications out of the process: mail (smtplib) and SMS (an HTTP form
POST), each also as `file://` (what would be sent, one file per message) and `console://`.

Every adapter raises TransientFailure (try again later) or PermanentFailure (never will
work) and nothing else; the sender (app.services.notifications.sender) decides what follows.
"""

from app.infrastructure.notify.failures import DeliveryFailure, PermanentFailure, TransientFailure
from app.infrastructure.notify.mail import Mailer, build_mailer, check_mail_url
from app.infrastructure.notify.sms import SmsGateway, build_sms_gateway, check_sms_url

__all__ = [
    "DeliveryFailure",
    "Mailer",
    "PermanentFailure",
    "SmsGateway",
    "TransientFailure",
    "build_mailer",
    "build_sms_gateway",
    "check_mail_url",
    "check_sms_url",
]
