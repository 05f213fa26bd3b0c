"""The web pages."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.responses import HTMLResponse


def install_pages(app: FastAPI) -> None:
    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def home() -> str:
        return "<!doctype html><title>medspa</title><p>medspa</p>"
