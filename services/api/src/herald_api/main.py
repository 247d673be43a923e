"""``herald-api``: the FastAPI application and its entry point."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import structlog
import uvicorn
from fastapi import Depends, FastAPI
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy.ext.asyncio import async_sessionmaker

from herald_api import health
from herald_api.admin.app import MOUNT as ADMIN_MOUNT
from herald_api.admin.app import create_admin_app
from herald_api.apidocs import install_docs
from herald_api.clients.router import router as clients_router
from herald_api.deps import require_token
from herald_api.errors import install_error_handlers
from herald_api.events import EventPublisher
from herald_api.mailings.router import router as mailings_router
from herald_api.observability import RequestObservability
from herald_api.openapi import TAGS, install_openapi, operation_id
from herald_api.security import BodyLimit, SecurityHeaders, install_cors
from herald_api.settings import ApiSettings
from herald_common.db import create_engine
from herald_common.logs import configure_logging
from herald_common.rules.backoff import retry_tiers
from herald_common.settings import QueueSettings, RetrySettings, settings_or_exit
from herald_common.topology import QueueLimits

log = structlog.get_logger()

DESCRIPTION = """
Herald delivers one message per matching client for each mailing, through an external
sending API, and keeps every message's fate for statistics.

Every `/api/v1` call needs `Authorization: Bearer <HERALD_API_TOKEN>`.
Lists are paged by id: pass the returned `next_after` as `after`.
Errors: `{"detail": "...", "code": "..."}`; validation errors (422) name the field and reason.
"""


# The bulk import streams files far larger than any JSON body; it has its own limit.
IMPORT_PATHS = frozenset({"/api/v1/clients/import"})
ADMIN_IMPORT_PATH = "/admin/clients/import"
# The admin upload is a multipart form: the file, plus room for the form's other fields.
FORM_OVERHEAD_BYTES = 1024 * 1024


def create_app(settings: ApiSettings | None = None) -> FastAPI:
    settings = settings or ApiSettings()
    retry = RetrySettings()
    limits = QueueLimits.of(QueueSettings())
    admin = create_admin_app(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = create_engine(settings)
        app.state.settings = settings
        app.state.tokens = settings.tokens
        app.state.engine = engine
        app.state.sessionmaker = async_sessionmaker(engine, expire_on_commit=False)
        app.state.events = EventPublisher(
            settings.amqp_url,
            retry_tiers(retry.retry_base_ms, retry.retry_max_ms),
            limits,
            settings.publish_timeout_s,
        )
        app.state.events.start()
        # A mounted app's lifespan does not run: it shares the API's engine and publisher.
        admin.state.sessionmaker = app.state.sessionmaker
        admin.state.events = app.state.events
        try:
            yield
        finally:
            await app.state.events.close()
            await engine.dispose()
            # After uvicorn has answered the requests in hand: the end of a clean stop.
            log.info("api_stopped")

    app = FastAPI(
        title="Herald",
        version="1.0.0",
        description=DESCRIPTION,
        # Served by install_docs, from this origin: FastAPI's own pages load theirs from a CDN.
        docs_url=None,
        redoc_url=None,
        openapi_tags=TAGS,
        generate_unique_id_function=operation_id,
        lifespan=lifespan,
    )
    install_error_handlers(app)
    # Added innermost first: RequestObservability, the outermost, logs even a 413.
    app.add_middleware(
        BodyLimit,
        limit=settings.max_body_bytes,
        exempt=IMPORT_PATHS,
        limits={ADMIN_IMPORT_PATH: settings.import_max_bytes + FORM_OVERHEAD_BYTES},
    )
    app.add_middleware(SecurityHeaders)
    install_cors(app, settings.cors_origin_list)
    app.add_middleware(RequestObservability)
    app.include_router(health.router)
    secured = [Depends(require_token)]
    app.include_router(clients_router, prefix="/api/v1", dependencies=secured)
    app.include_router(mailings_router, prefix="/api/v1", dependencies=secured)

    install_openapi(app)
    install_docs(app)
    app.mount(ADMIN_MOUNT, admin)

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return app


def run() -> None:
    settings = settings_or_exit(ApiSettings, "api")
    configure_logging("api", settings.service_instance, settings.log_level)
    uvicorn.run(
        create_app(settings),
        host=settings.api_host,
        port=settings.api_port,
        log_config=None,
        access_log=False,
        proxy_headers=True,
    )
