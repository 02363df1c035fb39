"""Email over SMTP: plain, STARTTLS or SSL, with a login when configured."""

from __future__ import annotations

import smtplib
import ssl
from datetime import datetime, tzinfo
from email import policy
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from typing import Final

from collector.notify import message
from collector.notify.events import Notice
from collector.notify.http import DeliveryError
from collector.notify.settings import EmailChannel, Security

# Python folds a header longer than 78 characters by moving its whole value to the next
# line, which receivers unfold into a subject starting with a space: lines up to the
# RFC 5322 limit instead (a subject is one short line).
_POLICY: Final = policy.SMTP.clone(max_line_length=998)


def build(channel: EmailChannel, notice: Notice, tz: tzinfo, now: datetime) -> EmailMessage:
    mail = EmailMessage(policy=_POLICY)
    mail["Subject"] = message.subject(notice)
    mail["From"] = channel.sender
    mail["To"] = ", ".join(channel.to)
    mail["Date"] = format_datetime(now)
    mail["Message-ID"] = make_msgid(domain=channel.sender.rpartition("@")[2])
    mail.set_content("\n".join(message.lines(notice, tz)) + "\n")
    return mail


def _context(channel: EmailChannel) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=channel.ca_file)


def send(channel: EmailChannel, notice: Notice, tz: tzinfo, now: datetime) -> None:
    mail = build(channel, notice, tz, now)
    port = channel.effective_port
    try:
        client: smtplib.SMTP
        if channel.security is Security.SSL:
            client = smtplib.SMTP_SSL(
                channel.host, port, timeout=channel.timeout, context=_context(channel)
            )
        else:
            client = smtplib.SMTP(channel.host, port, timeout=channel.timeout)
        with client:
            if channel.security is Security.STARTTLS:
                client.starttls(context=_context(channel))
            if channel.username is not None and channel.password is not None:
                client.login(channel.username, channel.password.get_secret_value())
            client.send_message(mail)
    except smtplib.SMTPAuthenticationError as exc:
        raise DeliveryError(f"SMTP login refused ({exc.smtp_code})", retry=False) from None
    except smtplib.SMTPRecipientsRefused:
        raise DeliveryError("SMTP server refused every recipient", retry=False) from None
    except smtplib.SMTPResponseException as exc:
        raise DeliveryError(f"SMTP error {exc.smtp_code}", retry=exc.smtp_code < 500) from None
    except smtplib.SMTPNotSupportedError as exc:
        raise DeliveryError(f"SMTP server: {exc}", retry=False) from None
    except (smtplib.SMTPException, ssl.SSLError, OSError) as exc:
        raise DeliveryError(f"SMTP {type(exc).__name__}: {exc}") from None
