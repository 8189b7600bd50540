"""The dependency every endpoint but ``/healthz`` declares: the caller's token, checked for a
permission (401 without a known token, 403 when its role does not allow the action)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from .access import Caller, Permission, Tokens

REALM = 'Bearer realm="meshbridge"'
bearer = HTTPBearer(
    auto_error=False,
    description="A [[web.tokens]] secret: `Authorization: Bearer <secret>`; its role decides what it may do.",
)


def allowed(permission: Permission) -> Callable[..., Awaitable[Caller]]:
    """A dependency giving the request's :class:`Caller` if its token allows ``permission``."""

    async def caller(
        request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
    ) -> Caller:
        tokens: Tokens = request.app.state.tokens
        if credentials is None:
            raise HTTPException(401, "a token is needed: Authorization: Bearer <token>", {"WWW-Authenticate": REALM})
        found = tokens.caller(f"Bearer {credentials.credentials}")
        if found is None:
            challenge = f'{REALM}, error="invalid_token"'
            raise HTTPException(401, "unknown token", {"WWW-Authenticate": challenge})
        if not found.may(permission):
            raise HTTPException(403, f"token {found.name!r} ({found.role}) may not {permission}")
        return found

    return caller
