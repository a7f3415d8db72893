"""FastAPI dependencies: the one way routes reach the copywriter, the engine and the caller."""

from __future__ import annotations

from typing import Annotated, cast

from fastapi import Depends, Request

from copygen.api import state
from copygen.errors import StoreUnavailable
from copygen.generation import Generator
from copygen.service.brands import BrandBook
from copygen.service.copywriter import Copywriter
from copygen.service.jobs import JobRunner


# async on purpose: FastAPI runs a plain ``def`` dependency in a worker thread, which costs a
# thread hand-off on every request (a quarter of a cache hit's time).
async def get_copywriter(request: Request) -> Copywriter:
    return cast(Copywriter, request.app.state.copywriter)


async def get_engine(request: Request) -> Generator:
    return cast(Copywriter, request.app.state.copywriter).engine


async def get_book(request: Request) -> BrandBook:
    book = cast(Copywriter, request.app.state.copywriter).book
    if book is None:
        raise StoreUnavailable("this server keeps no brands or feedback")
    return book


async def get_jobs(request: Request) -> JobRunner:
    jobs = getattr(request.app.state, "jobs", None)
    if jobs is None:
        raise StoreUnavailable("this server runs no jobs")
    return cast(JobRunner, jobs)


async def get_tenant(request: Request) -> str:
    """The caller's tenant, resolved by the auth middleware ("anonymous" without keys)."""
    return state.tenant(request.scope)


CopywriterDep = Annotated[Copywriter, Depends(get_copywriter)]
EngineDep = Annotated[Generator, Depends(get_engine)]
TenantDep = Annotated[str, Depends(get_tenant)]
BookDep = Annotated[BrandBook, Depends(get_book)]
JobsDep = Annotated[JobRunner, Depends(get_jobs)]
