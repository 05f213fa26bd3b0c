"""Run the app on a real HTTP server in a background thread, for tests that need real concurrency."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn
from sqlalchemy import Engine

from medspa.app import create_app
from medspa.kit import clock as clocks
from medspa.kit.clock import Clock


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextmanager
def running_server(engine: Engine, clock: Clock | None = None) -> Iterator[str]:
    """The base URL of a uvicorn server serving the app on `engine` (telling time by `clock`, else by the
    clock of the caller's context); stopped when the block ends."""
    port = free_port()
    app = create_app(engine, clock=clock or clocks.current())
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off", ws="none")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the test server did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
