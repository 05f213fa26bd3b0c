"""The channels against real servers: SMTP (aiosmtpd; plain, and over STARTTLS with a login) and a
Twilio-compatible API over HTTP; failures classed as passing or final, and never quoting the recipient
back into what is stored or logged."""

from __future__ import annotations

import ipaddress
import ssl
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword
from aiosmtpd.smtp import Session as SmtpSession
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

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


# --- TLS and logging in ---------------------------------------------------------------------------------


def self_signed(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 signed by its own key: (certificate, key) files."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        # Valid whatever the instant the suite runs at (the tests' clock may be set; OpenSSL's is not).
        .not_valid_before(datetime(2000, 1, 1, tzinfo=UTC))
        .not_valid_after(datetime(2100, 1, 1, tzinfo=UTC))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = directory / "cert.pem", directory / "key.pem"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_file, key_file


@dataclass
class Logins:
    """An SMTP authenticator that lets in one user with one password, and records who tried."""

    user: str
    password: str
    tried: list[str] = field(default_factory=list)

    def __call__(
        self, _server: SMTP, _session: SmtpSession, _envelope: Envelope, _mechanism: str, data: object
    ) -> AuthResult:
        assert isinstance(data, LoginPassword)
        self.tried.append(data.login.decode())
        # Not `handled`: the server answers a refusal with 535 itself.
        return AuthResult(
            success=(data.login.decode(), data.password.decode()) == (self.user, self.password), handled=False
        )


# Mail only after STARTTLS, and only from a client logged in, which it may do over TLS only.
STRICT = {"require_starttls": True, "auth_required": True, "auth_require_tls": True}


@pytest.fixture
def tls_mailbox(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Mailbox, Logins, int]]:
    """An SMTP server on the loopback that requires STARTTLS (a self-signed certificate the client is
    made to trust) and a login once encrypted; its mailbox, its logins and its port."""
    cert_file, key_file = self_signed(tmp_path)
    monkeypatch.setenv("SSL_CERT_FILE", str(cert_file))  # the default context trusts it
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    box, logins, port = Mailbox(), Logins("clinic", "s3cret pass"), free_port()
    controller = Controller(box, "127.0.0.1", port, tls_context=context, authenticator=logins, **STRICT)
    controller.start()
    try:
        yield box, logins, port
    finally:
        controller.stop()


def test_an_email_goes_over_starttls_after_logging_in(tls_mailbox: tuple[Mailbox, Logins, int]) -> None:
    box, logins, port = tls_mailbox
    SmtpChannel(f"smtp://clinic:s3cret%20pass@127.0.0.1:{port}?starttls=true").send(email())
    # The server takes mail only over TLS, and only from a client logged in (which it allows over TLS only).
    (message,) = box.to("ana@example.org")
    assert message["Message-ID"] == "<1@medspa>"
    assert logins.tried == ["clinic"]


def test_a_refused_login_is_a_permanent_failure_saying_so(tls_mailbox: tuple[Mailbox, Logins, int]) -> None:
    box, logins, port = tls_mailbox
    with pytest.raises(PermanentSendError) as refused:
        SmtpChannel(f"smtp://clinic:wrong@127.0.0.1:{port}?starttls=true").send(email())
    assert str(refused.value).startswith("the mail server refused the login")
    assert "wrong" not in str(refused.value)
    assert logins.tried[-1] == "clinic"
    assert box.messages == []


def test_without_starttls_a_server_that_offers_login_only_over_tls_sends_nothing(
    tls_mailbox: tuple[Mailbox, Logins, int],
) -> None:
    box, logins, port = tls_mailbox
    with pytest.raises(PermanentSendError) as refused:
        SmtpChannel(f"smtp://clinic:s3cret%20pass@127.0.0.1:{port}").send(email())
    assert str(refused.value) == (
        "the mail server does not offer what sending needs: SMTP AUTH extension not supported by server."
    )
    assert logins.tried == []
    assert box.messages == []
