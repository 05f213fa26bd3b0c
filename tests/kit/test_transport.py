"""The server listens in the clear only on loopback; elsewhere with TLS of its own or behind a TLS proxy.
And a PostgreSQL URL's `sslmode` reaches the driver (so `verify-full` is enforced, not dropped)."""

from __future__ import annotations

import http.client
import shutil
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import make_url, text
from sqlalchemy.exc import OperationalError
from typer.testing import CliRunner

from medspa.cli import app
from medspa.kit.db import make_engine
from medspa.kit.transport import TransportError, check_listening, is_loopback
from tests.conftest import POSTGRES_URL

runner = CliRunner()


@pytest.mark.parametrize("host", ["127.0.0.1", "127.8.9.10", "::1", "[::1]", "localhost", "LOCALHOST"])
def test_loopback_addresses_are_served_in_the_clear(host: str) -> None:
    assert is_loopback(host)
    assert not check_listening(host, certfile=None, keyfile=None, behind_tls_proxy=False).secure


@pytest.mark.parametrize(
    "host", ["0.0.0.0", "::", "192.168.1.20", "10.0.0.5", "clinic.example", "", "127.0.0.1.evil"]
)
def test_any_other_address_needs_tls_or_a_tls_proxy(host: str) -> None:
    assert not is_loopback(host)
    with pytest.raises(TransportError, match="without TLS"):
        check_listening(host, certfile=None, keyfile=None, behind_tls_proxy=False)
    assert check_listening(host, certfile=None, keyfile=None, behind_tls_proxy=True).secure


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and its key (made with the system's openssl)."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is missing")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key


def test_tls_settings_that_cannot_work_are_refused(certificate: tuple[Path, Path], tmp_path: Path) -> None:
    cert, key = certificate
    with pytest.raises(TransportError, match="go together"):
        check_listening("0.0.0.0", certfile=cert, keyfile=None, behind_tls_proxy=False)
    with pytest.raises(TransportError, match="is not a file"):
        check_listening("0.0.0.0", certfile=tmp_path / "missing.pem", keyfile=key, behind_tls_proxy=False)
    with pytest.raises(TransportError, match="exclude each other"):
        check_listening("0.0.0.0", certfile=cert, keyfile=key, behind_tls_proxy=True)
    assert check_listening("0.0.0.0", certfile=cert, keyfile=key, behind_tls_proxy=False).tls


def test_serve_refuses_to_start_on_an_open_address_without_tls(monkeypatch: pytest.MonkeyPatch) -> None:
    started: list[object] = []
    monkeypatch.setattr("uvicorn.run", lambda *args, **kwargs: started.append(args))
    result = runner.invoke(app, ["serve", "--host", "0.0.0.0", "--port", "8799"])
    assert result.exit_code == 2
    assert "refusing to serve on 0.0.0.0 without TLS" in " ".join(result.output.split())
    assert started == []


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _listening(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def _plain_get(port: int) -> int:
    clear = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        clear.request("GET", "/api/v1/health")
        return clear.getresponse().status
    finally:
        clear.close()


@pytest.fixture
def tls_server(certificate: tuple[Path, Path], tmp_path: Path) -> Iterator[tuple[int, Path]]:
    cert, key = certificate
    port = _free_port()
    medspa = Path(sys.executable).parent / "medspa"
    env = {"MEDSPA_DATABASE_URL": f"sqlite:///{tmp_path / 'tls.db'}", "PATH": "/usr/bin:/bin"}
    tls = ["--tls-certfile", str(cert), "--tls-keyfile", str(key)]
    process = subprocess.Popen(
        [str(medspa), "serve", "--port", str(port), "--no-worker", *tls],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while not _listening(port):
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError("the TLS server did not start")
            time.sleep(0.1)
        yield port, cert
    finally:
        process.terminate()
        process.wait(timeout=20)


def test_the_server_speaks_https_with_its_certificate(tls_server: tuple[int, Path]) -> None:
    port, cert = tls_server
    context = ssl.create_default_context(cafile=str(cert))
    secure = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=10)
    secure.request("GET", "/api/v1/health")
    assert secure.getresponse().status == 200
    secure.close()
    with pytest.raises((http.client.HTTPException, ConnectionError)):
        _plain_get(port)


@pytest.mark.skipif(POSTGRES_URL is None, reason="needs MEDSPA_TEST_DATABASE_URL (PostgreSQL)")
def test_a_postgresql_urls_sslmode_reaches_the_driver() -> None:
    """`sslmode=verify-full` is passed to libpq as given: against a server without TLS (this machine's)
    the connection is refused rather than silently made in the clear; without it, it is made."""
    assert POSTGRES_URL is not None
    plain = make_engine(POSTGRES_URL)
    try:
        with plain.connect() as connection:
            server_has_tls = connection.execute(text("SHOW ssl")).scalar_one() == "on"
    finally:
        plain.dispose()
    if server_has_tls:
        pytest.skip("this PostgreSQL server has TLS: the refusal of verify-full cannot be shown against it")
    url = make_url(POSTGRES_URL).update_query_dict({"sslmode": "verify-full"})
    strict = make_engine(url.render_as_string(hide_password=False))
    try:
        with pytest.raises(OperationalError, match=r"(?i)ssl"):
            strict.connect().close()
    finally:
        strict.dispose()
