"""FastAPI dependencies: the one way routes reach the running service (service/runtime.py)
and its parts, the request's deadline and the caller."""

from __future__ import annotations

from typing import Annotated, cast

from fastapi import Depends, Request

from copygen.api import state
from copygen.deadline import Deadline
from copygen.errors import StoreUnavailable
from copygen.generation import Generator
from copygen.service.brands import BrandBook
from copygen.service.jobs import JobRunner
from copygen.service.runtime import Runtime
from copygen.service.workflow import CopyWorkflow

#: A caller's own timeout in seconds (optional): the request's deadline is the sooner of it
#: and COPYGEN_REQUEST_TIMEOUT_S. Values that are not positive numbers are ignored.
TIMEOUT_HEADER = b"x-request-timeout"


# async on purpose: FastAPI runs a plain ``def`` dependency in a worker thread, which costs a
# thread hand-off on every request (a quarter of a cache hit's time).
async def get_runtime(request: Request) -> Runtime:
    return cast(Runtime, request.app.state.runtime)


async def get_workflow(request: Request) -> CopyWorkflow:
    return cast(Runtime, request.app.state.runtime).workflow


async def get_generator(request: Request) -> Generator:
    """The default generator (the OpenAI routes, readiness)."""
    return cast(Runtime, request.app.state.runtime).default


async def get_book(request: Request) -> BrandBook:
    book = cast(Runtime, request.app.state.runtime).book
    if book is None:
        raise StoreUnavailable("this server keeps no brands or feedback")
    return book


async def get_jobs(request: Request) -> JobRunner:
    jobs = cast(Runtime, request.app.state.runtime).jobs
    if jobs is None:
        raise StoreUnavailable("this server runs no jobs")
    return jobs


async def get_deadline(request: Request) -> Deadline:
    """This request's one deadline, made as it enters."""
    runtime = cast(Runtime, request.app.state.runtime)
    return runtime.deadline(_caller_timeout(state.header(request.scope, TIMEOUT_HEADER)))


def _caller_timeout(raw: bytes | None) -> float | None:
    if raw is None:
        return None
    try:
        seconds = float(raw)
    except ValueError:
        return None
    return seconds if 0 < seconds < float("inf") else None


async def get_tenant(request: Request) -> str:
    """The caller's tenant, resolved by the auth middleware ("anonymous" without keys)."""
    return state.tenant(request.scope)


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
WorkflowDep = Annotated[CopyWorkflow, Depends(get_workflow)]
GeneratorDep = Annotated[Generator, Depends(get_generator)]
DeadlineDep = Annotated[Deadline, Depends(get_deadline)]
TenantDep = Annotated[str, Depends(get_tenant)]
BookDep = Annotated[BrandBook, Depends(get_book)]
JobsDep = Annotated[JobRunner, Depends(get_jobs)]
