"""FastAPI dependencies: the one way routes reach the engine."""

from __future__ import annotations

from typing import Annotated, cast

from fastapi import Depends, Request

from copygen.engine.engine import ANONYMOUS, Engine


async def get_engine(request: Request) -> Engine:
    # async on purpose: FastAPI runs a plain ``def`` dependency in a worker thread, which
    # costs a thread hand-off on every request (a quarter of a cache hit's time).
    return cast(Engine, request.app.state.engine)


EngineDep = Annotated[Engine, Depends(get_engine)]


async def get_tenant(request: Request) -> str:
    """The caller's tenant, resolved by the auth middleware ("anonymous" without keys)."""
    return str(getattr(request.state, "tenant", ANONYMOUS))


TenantDep = Annotated[str, Depends(get_tenant)]
