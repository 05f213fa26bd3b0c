"""The FastAPI application: the REST API under /api/v1 (OpenAPI at /docs) and the web pages."""

from __future__ import annotations

import gc

from fastapi import FastAPI
from sqlalchemy import Engine

from medspa import __version__
from medspa.api import install_error_handlers
from medspa.catalog.routes import router as catalog_router
from medspa.clients.routes import router as clients_router
from medspa.kit.db import default_engine
from medspa.resources.routes import router as resources_router
from medspa.scheduling.routes import router as scheduling_router
from medspa.security.routes import router as security_router
from medspa.web.pages import install_pages


def create_app(engine: Engine | None = None) -> FastAPI:
    """The application, bound to `engine` (the configured database by default)."""
    app = FastAPI(title="medspa", version=__version__, docs_url="/docs", openapi_url="/openapi.json")
    app.state.engine = engine or default_engine()
    install_error_handlers(app)

    @app.get("/api/v1/health", tags=["health"])
    def health() -> dict[str, str]:
        return {"status": "ok", "version": __version__}

    for router in (security_router, resources_router, catalog_router, clients_router, scheduling_router):
        app.include_router(router)
    install_pages(app)
    return app


def serving_app() -> FastAPI:
    """The application as `medspa serve` runs it: after start-up, everything alive so far (modules,
    the app) is moved out of the garbage collector's view (`gc.freeze`), so full collections no longer
    walk it and requests do not stall for them (measured: availability p99 55 ms -> 17 ms)."""
    app = create_app()
    gc.collect()
    gc.freeze()
    return app
