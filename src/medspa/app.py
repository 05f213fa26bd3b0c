"""The FastAPI application: the REST API under /api/v1 and the server-rendered web pages."""

from __future__ import annotations

from fastapi import FastAPI

from medspa import __version__


def create_app() -> FastAPI:
    app = FastAPI(title="medspa", version=__version__, docs_url="/docs", openapi_url="/openapi.json")

    @app.get("/api/v1/health", tags=["health"])
    def health() -> dict[str, str]:
        return {"status": "ok", "version": __version__}

    return app
