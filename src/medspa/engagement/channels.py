"""Channels that carry messages out: e-mail over SMTP and SMS through a Twilio-compatible HTTP API.

- E-mail: `MEDSPA_SMTP_URL=smtp://[user:password@]host[:port][?starttls=true]` (`smtps://` for TLS from
  the first byte); the sender is `MEDSPA_MAIL_FROM` (else `?from=` in the URL, else
  `clinic@localhost`). Each message carries a `Message-ID` derived from the message's id, so a copy
  the server already accepted can be recognised as such.
- SMS: `MEDSPA_SMS_URL=twilio://ACCOUNT_SID:AUTH_TOKEN@host[:port]?from=%2B15550100000` posts to
  `https://host/2010-04-01/Accounts/SID/Messages.json` with HTTP basic auth (`twilio+http://` speaks
  plain HTTP, for a provider on the loopback). Inbound replies are verified with the same auth token
  (`engagement.inbound`).

A failure that may pass (a refused connection, a timeout, a 4xx reply of the SMTP server, HTTP 429 or
5xx) raises `TransientSendError` and the message is tried again later; one that will not (a recipient
refused with 5xx, a login refused, a server without the login or STARTTLS asked for, HTTP 4xx) raises
`PermanentSendError`.
"""

from __future__ import annotations

import email.utils
import re
import smtplib
import ssl
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Protocol

import httpx

SMTP_TIMEOUT_SECONDS = 15.0
SMS_TIMEOUT_SECONDS = 10.0


class SendError(Exception):
    """A message could not be handed to its channel. Its text never holds the recipient's address or
    number (servers often quote them back): it is kept with the message and logged."""

    def __init__(self, text: str) -> None:
        super().__init__(scrub(text))


_ADDRESS = re.compile(r"[^\s<>'\"(),;:]+@[^\s<>'\"(),;:]+")
_NUMBER = re.compile(r"\+?\d[\d\s().-]{5,}\d")


def scrub(text: str) -> str:
    """`text` without e-mail addresses and phone numbers in it (a server's reply often quotes them)."""
    return _NUMBER.sub("[number]", _ADDRESS.sub("[address]", text))


class TransientSendError(SendError):
    """Worth trying again later."""


class PermanentSendError(SendError):
    """Trying again would fail the same way."""


class ChannelNotConfiguredError(PermanentSendError):
    def __init__(self, channel: str, variable: str) -> None:
        super().__init__(f"no {channel} channel: {variable} is not set")


@dataclass(frozen=True)
class Email:
    to: str
    subject: str
    text: str
    html: str
    message_id: str
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Sms:
    to: str
    body: str


class EmailChannel(Protocol):
    def send(self, message: Email) -> str:
        """Hand the message over; the identifier the server gave it."""


class SmsChannel(Protocol):
    @property
    def auth_token(self) -> str:
        """The secret inbound replies are signed with."""

    def send(self, message: Sms) -> str:
        """Hand the message over; the provider's identifier for it."""


def _query(url: urllib.parse.SplitResult) -> dict[str, str]:
    return {key: values[-1] for key, values in urllib.parse.parse_qs(url.query).items()}


class SmtpChannel:
    """E-mail through an SMTP server (one connection per message: messages are few and far between)."""

    def __init__(self, url: str, *, sender: str | None = None) -> None:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
            raise ValueError("MEDSPA_SMTP_URL must look like smtp://host:port or smtps://host:port")
        query = _query(parts)
        self.host = parts.hostname
        self.port = parts.port or (465 if parts.scheme == "smtps" else 25)
        self.implicit_tls = parts.scheme == "smtps"
        self.starttls = query.get("starttls", "").lower() in ("1", "true", "yes")
        self.username = urllib.parse.unquote(parts.username) if parts.username else None
        self.password = urllib.parse.unquote(parts.password) if parts.password else None
        self.sender = sender or query.get("from") or "clinic@localhost"

    def send(self, message: Email) -> str:
        mail = EmailMessage()
        mail["From"] = self.sender
        mail["To"] = message.to
        mail["Subject"] = message.subject
        mail["Date"] = email.utils.formatdate(usegmt=True)
        mail["Message-ID"] = message.message_id
        for name, value in message.headers.items():
            mail[name] = value
        mail.set_content(message.text)
        if message.html:
            mail.add_alternative(message.html, subtype="html")
        try:
            server: smtplib.SMTP
            if self.implicit_tls:
                server = smtplib.SMTP_SSL(
                    self.host, self.port, timeout=SMTP_TIMEOUT_SECONDS, context=ssl.create_default_context()
                )
            else:
                server = smtplib.SMTP(self.host, self.port, timeout=SMTP_TIMEOUT_SECONDS)
            with server:
                if self.starttls:
                    server.starttls(context=ssl.create_default_context())
                if self.username is not None:
                    server.login(self.username, self.password or "")
                refused = server.send_message(mail)
        except smtplib.SMTPAuthenticationError as error:
            raise PermanentSendError(
                f"the mail server refused the login ({error.smtp_code}): check the user and password in "
                "MEDSPA_SMTP_URL"
            ) from error
        except smtplib.SMTPNotSupportedError as error:  # no AUTH (before STARTTLS, say), no STARTTLS
            raise PermanentSendError(f"the mail server does not offer what sending needs: {error}") from error
        except smtplib.SMTPRecipientsRefused as error:
            codes = sorted({code for code, _ in error.recipients.values()})
            raise PermanentSendError(f"the mail server refused the recipient ({codes})") from error
        except smtplib.SMTPResponseException as error:
            kind = PermanentSendError if error.smtp_code >= 500 else TransientSendError
            raise kind(f"the mail server answered {error.smtp_code}: {error.smtp_error!r}") from error
        except (OSError, smtplib.SMTPException) as error:
            raise TransientSendError(f"the mail server could not be reached: {error}") from error
        if refused:
            raise PermanentSendError(
                f"the mail server refused the recipient ({sorted({c for c, _ in refused.values()})})"
            )
        return message.message_id


class TwilioChannel:
    """SMS through Twilio's Messages API (or a provider that speaks it)."""

    def __init__(self, url: str, *, transport: httpx.BaseTransport | None = None) -> None:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("twilio", "twilio+http") or not parts.hostname:
            raise ValueError("MEDSPA_SMS_URL must look like twilio://ACCOUNT_SID:AUTH_TOKEN@host?from=+1...")
        if not parts.username or not parts.password:
            raise ValueError("MEDSPA_SMS_URL must carry the account SID and auth token")
        sender = _query(parts).get("from")
        if not sender:
            raise ValueError("MEDSPA_SMS_URL must name the sending number: ?from=%2B15550100000")
        scheme = "http" if parts.scheme == "twilio+http" else "https"
        port = f":{parts.port}" if parts.port else ""
        self.account_sid = urllib.parse.unquote(parts.username)
        self._auth_token = urllib.parse.unquote(parts.password)
        self.sender = sender
        self.endpoint = (
            f"{scheme}://{parts.hostname}{port}/2010-04-01/Accounts/{self.account_sid}/Messages.json"
        )
        self.transport = transport

    @property
    def auth_token(self) -> str:
        return self._auth_token

    def send(self, message: Sms) -> str:
        try:
            with httpx.Client(transport=self.transport, timeout=SMS_TIMEOUT_SECONDS) as client:
                reply = client.post(
                    self.endpoint,
                    data={"To": message.to, "From": self.sender, "Body": message.body},
                    auth=(self.account_sid, self._auth_token),
                )
        except httpx.HTTPError as error:
            raise TransientSendError(f"the SMS provider could not be reached: {error}") from error
        if reply.status_code == 429 or reply.status_code >= 500:
            raise TransientSendError(f"the SMS provider answered {reply.status_code}")
        if reply.status_code >= 400:
            raise PermanentSendError(
                f"the SMS provider refused the message: {reply.status_code} {reply.text[:200]}"
            )
        try:
            return str(reply.json()["sid"])
        except (ValueError, KeyError, TypeError) as error:
            raise PermanentSendError("the SMS provider's answer has no message sid") from error


@dataclass(frozen=True)
class Channels:
    """The channels configured for this process (None: not configured, its messages fail saying so)."""

    email: EmailChannel | None
    sms: SmsChannel | None


def configured(environment: Mapping[str, str]) -> Channels:
    """The channels `MEDSPA_SMTP_URL` / `MEDSPA_SMS_URL` describe. ValueError for a malformed URL."""
    smtp_url, sms_url = environment.get("MEDSPA_SMTP_URL"), environment.get("MEDSPA_SMS_URL")
    return Channels(
        email=SmtpChannel(smtp_url, sender=environment.get("MEDSPA_MAIL_FROM")) if smtp_url else None,
        sms=TwilioChannel(sms_url) if sms_url else None,
    )
