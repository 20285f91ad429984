"""The FastAPI application factory and its lifespan."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from redis.exceptions import RedisError

from config import Settings
from storage import open_storage
from storage.exceptions import StorageError
from storage.migrate import upgrade
from supervisor.api import errors
from supervisor.api.middleware import security
from supervisor.api.middleware.access import AccessLogMiddleware
from supervisor.api.middleware.body_limit import BodyLimitMiddleware
from supervisor.api.middleware.language import LanguageMiddleware
from supervisor.api.middleware.security import CSRFMiddleware, SecurityHeadersMiddleware
from supervisor.api.pages import common as pages_common
from supervisor.api.pages import console as pages_console
from supervisor.api.pages import docs as pages_docs
from supervisor.api.pages import inspect as pages_inspect
from supervisor.api.pages import public as pages_public
from supervisor.api.ratelimit import RateLimiter
from supervisor.api.routes import appeals as routes_appeals
from supervisor.api.routes import claims as routes_claims
from supervisor.api.routes import classes as routes_classes
from supervisor.api.routes import dispatch as routes_dispatch
from supervisor.api.routes import inspect as routes_inspect
from supervisor.api.routes import live as routes_live
from supervisor.api.routes import privacy as routes_privacy
from supervisor.api.routes import records as routes_records
from supervisor.api.routes import registry as routes_registry
from supervisor.api.routes import roster as routes_roster
from supervisor.api.routes import sessions as routes_sessions
from supervisor.api.routes import subsidy as routes_subsidy
from supervisor.checks.pool import VerificationPool
from supervisor.checks.queue import CheckQueue
from supervisor.checks.worker import EmbeddedWorkers
from supervisor.context import Context
from supervisor.i18n import Language, LocalTime, Speech
from supervisor.online.live import LiveManager
from supervisor.online.recorder import SessionRecorder
from supervisor.online.sessions import SessionService
from supervisor.privacy.service import PrivacyService
from supervisor.registry.records import RecordsService
from supervisor.registry.service import RegistryService
from supervisor.runtime.redis import open_redis
from supervisor.subsidy.appeals import AppealService
from supervisor.subsidy.claims import ClaimService
from supervisor.subsidy.dispatch import DispatchService
from supervisor.subsidy.service import SubsidyService
from supervisor.subsidy.summary_refresh import SummaryRefresher
from supervisor.web import STATIC_DIR
from verification.engines import check_models

log = logging.getLogger(__name__)

# Multipart framing around the largest accepted image; a fallback post carries
# several frames of a check.
MULTIPART_OVERHEAD = 64 * 1024
# How long /health waits for the database and for Redis.
HEALTH_TIMEOUT_S = 3.0


def create_app(settings: Settings, *, migrate: bool = True) -> FastAPI:
    """Build the app. Storage, Redis, the verification pool and live supervision
    start in the lifespan and stop, in reverse order, when it ends."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # A missing or altered face model file stops the service here, naming the file
        # and the package to install; never another engine in its place.
        await asyncio.to_thread(check_models, settings.face)
        if migrate:
            await asyncio.to_thread(upgrade, settings.database.url)
        storage = await asyncio.to_thread(
            open_storage,
            settings.database,
            settings.evidence,
            settings.security.template_key.get_secret_value(),
        )
        redis = None
        pool = VerificationPool(
            settings.face,
            settings.images,
            settings.server.verify_processes,
            jpeg_quality=settings.evidence.jpeg_quality,
        )
        live: LiveManager | None = None
        refresher: SummaryRefresher | None = None
        ctx: Context | None = None
        workers: EmbeddedWorkers | None = None
        try:
            # On the loop's thread: the embedded redis-server and the workers end when
            # this thread's process ends, however it ends (supervisor.runtime.lifeline).
            redis = await open_redis(settings.redis)
            await redis.client.ping()
            app.state.redis = redis
            app.state.redis_url = redis.url
            queue = CheckQueue(redis.client, settings.workers)
            await queue.ensure_group()
            if settings.workers.embedded:
                workers = EmbeddedWorkers(settings, redis.url, settings.workers.embedded)
                workers.start()
                app.state.workers = workers
            await pool.start()
            ctx = Context(settings, storage, pool, queue)
            recorder = SessionRecorder(ctx)
            live = LiveManager(ctx, recorder, redis.client)
            sessions = SessionService(ctx, recorder, live)
            await live.start()
            app.state.ctx = ctx
            app.state.ratelimit = RateLimiter(redis.client, settings.web)
            app.state.registry = RegistryService(ctx)
            app.state.sessions = sessions
            app.state.privacy = PrivacyService(ctx, sessions)
            app.state.subsidy = SubsidyService(ctx)
            app.state.records = RecordsService(ctx)
            app.state.claims = ClaimService(ctx)
            app.state.appeals = AppealService(ctx)
            app.state.dispatch = DispatchService(ctx)
            app.state.live = live
            refresher = SummaryRefresher(ctx, redis.client)
            await refresher.start()
            log.info(
                "service started: database %s, redis %s",
                settings.database.url.split("@")[-1],
                redis.url,
            )
            yield
        finally:
            if refresher is not None:
                await refresher.stop()
            if live is not None:
                await live.stop()
            if workers is not None:
                await asyncio.to_thread(workers.stop)
            await pool.stop()
            if redis is not None:
                await redis.close()
            if ctx is not None:
                await asyncio.to_thread(ctx.close)
            await asyncio.to_thread(storage.close)

    app = FastAPI(
        title="Training supervisor",
        version="0.1.0",
        description=(
            "Supervision of subsidised vocational training: real-name learners, face checks "
            "at server-chosen moments, and a tamper-evident learning ledger from which "
            "credited hours are computed. Every refusal is a 4xx with a machine-readable "
            "`reason`."
        ),
        lifespan=lifespan,
        responses=security.COMMON_RESPONSES,
        # Served offline by supervisor.api.pages.docs instead of FastAPI's CDN pages.
        docs_url=None,
        redoc_url=None,
    )
    errors.install(app)
    default_language = Language(settings.web.default_language)
    app.state.speech = Speech(
        default_language, LocalTime(settings.web.timezone), pages_common.FILTERS
    )
    app.add_middleware(AccessLogMiddleware)
    app.add_middleware(CSRFMiddleware, settings=settings.web)
    app.add_middleware(
        BodyLimitMiddleware,
        max_bytes=settings.images.max_upload_bytes * 4 + MULTIPART_OVERHEAD,
    )
    # Outside the middlewares that refuse requests, so that their refusals speak the
    # request's language too.
    app.add_middleware(LanguageMiddleware, default=default_language)
    # Added last, so outermost: every response, refusals from the middlewares included.
    app.add_middleware(SecurityHeadersMiddleware, settings=settings.web)
    app.include_router(routes_registry.router)
    app.include_router(routes_roster.router)
    app.include_router(routes_sessions.router)
    app.include_router(routes_live.router)
    app.include_router(routes_classes.router)
    app.include_router(routes_privacy.router)
    app.include_router(routes_privacy.pages)
    app.include_router(routes_inspect.router)
    app.include_router(routes_inspect.public)
    app.include_router(pages_inspect.router)
    app.include_router(pages_console.router)
    app.include_router(routes_subsidy.router)
    app.include_router(routes_records.router)
    app.include_router(routes_claims.router)
    app.include_router(routes_claims.public)
    app.include_router(routes_appeals.router)
    app.include_router(routes_dispatch.router)
    app.include_router(pages_public.router)
    pages_docs.install(app)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    @app.get(
        "/health",
        tags=["health"],
        responses={503: {"description": "the database cannot be reached"}},
    )
    async def health() -> JSONResponse:
        """200 "ok" when the database and Redis answer; 200 "degraded" when only Redis
        does not (requests are still answered: live state falls back to this process,
        checks are deferred, and an embedded Redis is being restarted); 503 when the
        database does not. `redis_restarts` counts restarts of the embedded Redis."""
        ctx: Context = app.state.ctx
        problems: dict[str, str] = {}
        try:
            await asyncio.wait_for(ctx.db(ctx.storage.db.ping), HEALTH_TIMEOUT_S)
        except (StorageError, TimeoutError) as exc:
            problems["database"] = type(exc).__name__
        try:
            await asyncio.wait_for(ctx.queue.client.ping(), HEALTH_TIMEOUT_S)
        except (RedisError, OSError, TimeoutError) as exc:
            problems["redis"] = type(exc).__name__
        restarts = app.state.redis.restarts
        if "database" in problems:
            body = {"status": "unavailable", "problems": problems, "redis_restarts": restarts}
            return JSONResponse(body, status_code=503)
        status = "degraded" if problems else "ok"
        return JSONResponse({"status": status, "problems": problems, "redis_restarts": restarts})

    @app.get("/metrics", include_in_schema=False)
    async def metrics_text() -> Response:
        """Prometheus metrics of this process and of the shared check queue (counts
        only, no personal data)."""
        ctx: Context = app.state.ctx
        live_manager: LiveManager = app.state.live
        try:
            queue_stats = await ctx.queue.stats()
        except RedisError:
            queue_stats = None  # Redis down: report what this process knows
        body = ctx.metrics.render(queue_stats, live_manager.hub.stats(), len(live_manager.live))
        return Response(body, media_type="text/plain; version=0.0.4; charset=utf-8")

    @app.get("/learn", include_in_schema=False)
    async def learner_page(request: Request) -> Response:
        # Rendered for its <html lang> and language switch; its words come from the
        # static scripts' message files (supervisor/web/templates/learner.html).
        return pages_common.render(request, "learner.html")

    @app.get("/operator", include_in_schema=False)
    async def operator_page(request: Request) -> Response:
        return pages_common.render(request, "operator.html")

    return app
