"""The channels against real servers: SMTP (aiosmtpd) and a Twilio-compatible API over HTTP; failures
classed as passing or final, and never quoting the recipient back into what is stored or logged."""

from __future__ import annotations

import pytest

from medspa.engagement.channels import (
    Email,
    PermanentSendError,
    Sms,
    SmtpChannel,
    TransientSendError,
    TwilioChannel,
    configured,
    scrub,
)
from tests.engagement.conftest import Mailbox, SmsProvider, free_port


def email(to: str = "ana@example.org") -> Email:
    return Email(to=to, subject="Hello", text="plain", html="<p>html</p>", message_id="<1@medspa>")


def test_an_email_goes_with_its_text_html_and_message_id(mailbox: tuple[Mailbox, str]) -> None:
    box, url = mailbox
    SmtpChannel(url, sender="clinic@example.org").send(email())
    (message,) = box.to("ana@example.org")
    assert (message["From"], message["Message-ID"], message["Subject"]) == (
        "clinic@example.org",
        "<1@medspa>",
        "Hello",
    )
    assert Mailbox.text(message).strip() == "plain"
    html = message.get_body(preferencelist=("html",))
    assert html is not None
    assert "<p>html</p>" in str(html.get_content())


def test_an_smtp_server_that_is_down_or_refuses_for_now_is_tried_again(mailbox: tuple[Mailbox, str]) -> None:
    box, url = mailbox
    with pytest.raises(TransientSendError, match="could not be reached"):
        SmtpChannel(f"smtp://127.0.0.1:{free_port()}").send(email())
    box.refuse_with = "451 4.3.0 try again for ana@example.org"
    with pytest.raises(TransientSendError) as later:
        SmtpChannel(url).send(email())
    box.refuse_with = "550 5.1.1 <ana@example.org>: no such user"
    with pytest.raises(PermanentSendError) as never:
        SmtpChannel(url).send(email())
    assert "ana@example.org" not in str(later.value) + str(never.value)
    assert "[address]" in str(never.value)


def test_an_sms_goes_through_the_provider_and_its_refusals_are_classed(
    sms_provider: tuple[SmsProvider, str],
) -> None:
    provider, url = sms_provider
    channel = TwilioChannel(url)
    sid = channel.send(Sms(to="+15550100009", body="hello"))
    provider.status = 500
    with pytest.raises(TransientSendError):
        channel.send(Sms(to="+15550100009", body="again"))
    provider.status = 400
    with pytest.raises(PermanentSendError):
        channel.send(Sms(to="+15550100009", body="never"))
    assert sid.startswith("SM")
    assert provider.to("+15550100009") == ["hello"]
    assert provider.sent[0]["From"] == "+15550100000"


def test_malformed_channel_urls_are_refused_naming_what_to_write() -> None:
    with pytest.raises(ValueError, match="smtp://host:port"):
        configured({"MEDSPA_SMTP_URL": "http://mail.example.org"})
    with pytest.raises(ValueError, match="from="):
        configured({"MEDSPA_SMS_URL": "twilio://AC1:token@api.twilio.com"})
    with pytest.raises(ValueError, match="SID and auth token"):
        configured({"MEDSPA_SMS_URL": "twilio://api.twilio.com?from=%2B1555"})
    assert configured({}).email is None
    assert configured({}).sms is None


def test_scrub_removes_addresses_and_numbers() -> None:
    assert scrub("550 <ana.b+x@mail.example.org> and +1 (555) 010-0009 refused") == (
        "550 <[address]> and [number] refused"
    )
