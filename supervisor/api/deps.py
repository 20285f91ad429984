"""FastAPI dependencies: the services of the running app and the caller's principal."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request, UploadFile
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from supervisor.api.ratelimit import RateLimiter
from supervisor.auth import Principal
from supervisor.context import Context
from supervisor.errors import PayloadTooLarge, Unauthenticated
from supervisor.online.sessions import SessionService
from supervisor.registry.service import RegistryService

bearer = HTTPBearer(auto_error=False, description="A token from `supervisor token create`.")


def get_ctx(request: Request) -> Context:
    ctx: Context = request.app.state.ctx
    return ctx


def get_registry(request: Request) -> RegistryService:
    service: RegistryService = request.app.state.registry
    return service


def get_sessions(request: Request) -> SessionService:
    service: SessionService = request.app.state.sessions
    return service


def get_limiter(request: Request) -> RateLimiter:
    limiter: RateLimiter = request.app.state.ratelimit
    return limiter


async def get_principal(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Principal:
    if credentials is None or not credentials.credentials:
        raise Unauthenticated("a bearer token is required")
    ctx = get_ctx(request)
    limiter = get_limiter(request)
    client = request.client.host if request.client else "unknown"
    await limiter.check_auth_allowed(client)
    token = await ctx.db(ctx.storage.registry.resolve_token, credentials.credentials)
    if token is None:
        await limiter.auth_failed(client)
        raise Unauthenticated("the token is unknown or revoked")
    principal = Principal.from_token(token)
    request.state.principal = principal
    return principal


CtxDep = Annotated[Context, Depends(get_ctx)]
PrincipalDep = Annotated[Principal, Depends(get_principal)]
RegistryDep = Annotated[RegistryService, Depends(get_registry)]
SessionsDep = Annotated[SessionService, Depends(get_sessions)]


async def read_upload(request: Request, upload: UploadFile) -> bytes:
    """The bytes of one uploaded image, refused past `images.max_upload_bytes`."""
    principal: Principal | None = getattr(request.state, "principal", None)
    if principal is not None and not getattr(request.state, "upload_counted", False):
        request.state.upload_counted = True  # one request of several frames counts once
        await get_limiter(request).upload(principal.token_id)
    limit = get_ctx(request).settings.images.max_upload_bytes
    data = await upload.read(limit + 1)
    if len(data) > limit:
        raise PayloadTooLarge(f"an uploaded image may be at most {limit} bytes")
    return data
