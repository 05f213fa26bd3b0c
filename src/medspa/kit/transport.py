"""Transport security of the server: where it may listen without TLS.

Protected health information crosses the network only encrypted. `medspa serve` listens in the clear on a
loopback address (the machine itself: the embedded default, a TLS proxy on the same host). Anywhere else
it needs either TLS of its own (a certificate and its key) or the operator's explicit word that a TLS
proxy fronts it; otherwise it refuses to start.
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})


class TransportError(ValueError):
    """The server's listening and TLS settings would expose it without encryption, or are unusable."""


@dataclass(frozen=True)
class Listening:
    """How the server listens: TLS of its own (`certfile`, `keyfile`), behind a TLS proxy, or neither
    (loopback only). `secure` says whether browsers reach it over HTTPS (its cookies are then Secure)."""

    host: str
    certfile: Path | None
    keyfile: Path | None
    behind_tls_proxy: bool

    @property
    def tls(self) -> bool:
        return self.certfile is not None

    @property
    def secure(self) -> bool:
        return self.tls or self.behind_tls_proxy


def is_loopback(host: str) -> bool:
    """Whether `host` names this machine only (127.0.0.0/8, ::1, localhost). The unspecified addresses
    (0.0.0.0, ::) listen on every interface and are not loopback; nor is any other name."""
    name = host.strip().strip("[]").lower()
    if name in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def _readable(option: str, value: Path) -> Path:
    if not value.is_file():
        raise TransportError(f"{option}: {value} is not a file")
    if not os.access(value, os.R_OK):
        raise TransportError(f"{option}: {value} cannot be read")
    return value


def check_listening(
    host: str, *, certfile: Path | None, keyfile: Path | None, behind_tls_proxy: bool
) -> Listening:
    """The checked settings, or TransportError naming what is wrong: a certificate without its key (or
    the reverse), a file that cannot be read, TLS and a TLS proxy both claimed, or a non-loopback address
    with neither."""
    if (certfile is None) != (keyfile is None):
        raise TransportError("--tls-certfile and --tls-keyfile go together: give both or neither")
    if certfile is not None and keyfile is not None:
        certfile, keyfile = _readable("--tls-certfile", certfile), _readable("--tls-keyfile", keyfile)
        if behind_tls_proxy:
            raise TransportError(
                "--behind-tls-proxy and --tls-certfile exclude each other: TLS ends in one place"
            )
    elif not behind_tls_proxy and not is_loopback(host):
        raise TransportError(
            f"refusing to serve on {host} without TLS: give --tls-certfile and --tls-keyfile, or "
            "--behind-tls-proxy when a TLS proxy fronts this server, or listen on 127.0.0.1"
        )
    return Listening(host=host, certfile=certfile, keyfile=keyfile, behind_tls_proxy=behind_tls_proxy)
