"""Jobs: a batch too long to hold an HTTP call open, run in the background and stored (it
survives a restart). POST answers 202 at once; GET shows progress and results; DELETE cancels;
a webhook gets one signed POST when the job ends."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Response, status
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from copygen.api.asset_schemas import MetaRequest, MetaResponse, RsaRequest, RsaResponse
from copygen.api.deps import JobsDep, RuntimeDep, TenantDep
from copygen.api.responses import validation_detail
from copygen.api.routes.assets import meta_response, rsa_response
from copygen.api.routes.copy import brief_of
from copygen.api.schemas import (
    CopyBatchItem,
    CopyRequest,
    CopyResponse,
    ErrorBody,
    ErrorDetail,
    RecordId,
)
from copygen.cache.codec import result_from_dict
from copygen.domain import Job
from copygen.errors import InvalidRequest
from copygen.service.assets import asset_from_dict
from copygen.service.brands import BrandBook
from copygen.service.jobs import ASSET_FIELDS, JobRunner
from copygen.webhooks import SIGNATURE_HEADER, check_url

router = APIRouter(tags=["jobs"])

MAX_ITEMS = 1000
ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorBody} for code in (404, 422, 429, 503)
}
JobId = Annotated[RecordId, Path()]


class JobIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: Literal["batch", "google-ads-rsa", "meta-ad"] = Field(
        "batch", description="batch: `items`; an asset kind: `request`, as its route takes it"
    )
    items: list[dict[str, Any]] | None = Field(
        None, min_length=1, max_length=MAX_ITEMS, description="Briefs, as POST /v1/copy takes them."
    )
    request: dict[str, Any] | None = Field(
        None, description="For google-ads-rsa or meta-ad: the body /v1/assets/... takes."
    )
    webhook_url: str | None = Field(
        None, max_length=2048, description=f"Gets a POST signed in {SIGNATURE_HEADER} at the end."
    )


class DeliveryOut(BaseModel):
    attempt: int
    outcome: Literal["delivered", "failed"] = Field(
        description="what the receiver's answer came to; the status or error met is never "
        "shown (it would map a private network for whoever names the URL)"
    )
    error: str | None = Field(description="`failed`, or null when delivered")
    at: datetime


class JobOut(BaseModel):
    id: str
    status: str = Field(
        description="queued, running, succeeded, cancelled or failed (the job met a bug)"
    )
    total: int
    done: int
    failed: int
    progress: float = Field(description="Items done / total.")
    created_at: datetime
    finished_at: datetime | None
    webhook_url: str | None
    results: list[CopyBatchItem] | None = Field(None, description="Finished items, by index.")
    asset: RsaResponse | MetaResponse | None = Field(
        None, description="An asset job's set, once made."
    )
    deliveries: list[DeliveryOut] | None = None


class SecretOut(BaseModel):
    secret: str = Field(description=f"Your key for checking {SIGNATURE_HEADER}.")


def _out(job: Job, **extra: Any) -> JobOut:
    finished = job.finished_at.replace(tzinfo=UTC) if job.finished_at else None
    return JobOut(
        id=job.id, status=job.status, total=job.total, done=job.done, failed=job.failed,
        progress=round(job.done / job.total, 4) if job.total else 1.0,
        created_at=job.created_at.replace(tzinfo=UTC), finished_at=finished,
        webhook_url=job.webhook_url, **extra,
    )  # fmt: skip


@router.post("/v1/jobs", status_code=status.HTTP_202_ACCEPTED, response_model=JobOut,
             responses=ERRORS)  # fmt: skip
async def create_job(
    body: JobIn, runtime: RuntimeDep, jobs: JobsDep, tenant: TenantDep, response: Response
) -> JobOut:
    """Every item is validated now (a bad one refuses the job, naming it); the job is stored
    and answered at once."""
    if body.webhook_url is not None:
        check_url(body.webhook_url)
    if body.kind != "batch":
        return await _asset_job(body, runtime.book, jobs, tenant, response)
    if body.items is None or body.request is not None:
        raise InvalidRequest("a batch job takes items (and no request)", field="items")
    briefs = []
    for index, raw in enumerate(body.items):
        try:
            request = CopyRequest.model_validate(raw)
        except ValidationError as exc:
            message, field = validation_detail(exc.errors())
            raise InvalidRequest(message, field=_within(f"items.{index}", field)) from None
        if request.stream:
            raise InvalidRequest("job items cannot stream", field=f"items.{index}.stream")
        briefs.append((await brief_of(request, runtime.book, tenant), request.brand))
    job = await jobs.submit(tenant, briefs, body.webhook_url)
    response.headers["Location"] = f"/v1/jobs/{job.id}"
    return _out(job)


async def _asset_job(
    body: JobIn, book: BrandBook | None, jobs: JobRunner, tenant: str, response: Response
) -> JobOut:
    if body.request is None or body.items is not None:
        raise InvalidRequest(f"a {body.kind} job takes request (and no items)", field="request")
    schema = RsaRequest if body.kind == "google-ads-rsa" else MetaRequest
    try:
        request = schema.model_validate(body.request)
    except ValidationError as exc:
        message, field = validation_detail(exc.errors())
        raise InvalidRequest(message, field=_within("request", field)) from None
    brief = await brief_of(request, book, tenant)
    asset = request.model_dump(exclude=set(CopyRequest.model_fields))
    job = await jobs.submit(tenant, [(brief, request.brand)], body.webhook_url, body.kind, asset)
    response.headers["Location"] = f"/v1/jobs/{job.id}"
    return _out(job)


@router.get("/v1/jobs/webhook-secret", response_model=SecretOut, responses=ERRORS)
async def webhook_secret(jobs: JobsDep, tenant: TenantDep) -> SecretOut:
    """The key your webhook receiver checks signatures with: HMAC-SHA256 over
    ``<t>.<body>``, sent as ``t=<unix seconds>,v1=<hex>``."""
    return SecretOut(secret=jobs.secret_for(tenant))


@router.get("/v1/jobs/{job_id}", response_model=JobOut, responses=ERRORS)
async def get_job(job_id: JobId, jobs: JobsDep, tenant: TenantDep) -> JobOut:
    job = await jobs.repo.get(tenant, job_id)
    if job.kind != "batch":
        return _out(job, asset=await _asset(jobs, job), deliveries=await _deliveries(jobs, job))
    return _out(job, results=await _results(jobs, job), deliveries=await _deliveries(jobs, job))


@router.delete("/v1/jobs/{job_id}", response_model=JobOut, responses=ERRORS)
async def cancel_job(job_id: JobId, jobs: JobsDep, tenant: TenantDep) -> JobOut:
    """Stops the job after the items in progress; finished items stay; the webhook hears."""
    return _out(await jobs.cancel(tenant, job_id))


def _within(prefix: str, field: str | None) -> str:
    return prefix if field is None else f"{prefix}.{field}"


async def _deliveries(jobs: JobRunner, job: Job) -> list[DeliveryOut]:
    return [
        DeliveryOut(
            attempt=d.attempt,
            outcome="delivered" if d.error is None else "failed",
            error=d.error,
            at=d.at.replace(tzinfo=UTC),
        )
        for d in await jobs.repo.deliveries(job.id)
    ]


async def _asset(jobs: JobRunner, job: Job) -> RsaResponse | MetaResponse | None:
    """The stored set in its route's answer shape (None until made, or when it failed)."""
    found = await jobs.repo.items(job.id)
    if not found or found[0].result is None:
        return None
    item = found[0]
    assert item.result is not None
    made = asset_from_dict(item.result)
    fields = job.request[0][ASSET_FIELDS]
    if job.kind == "google-ads-rsa":
        return rsa_response(made, item.result["paths"], fields["final_url"])
    return meta_response(made, fields.get("link"))


async def _results(jobs: JobRunner, job: Job) -> list[CopyBatchItem]:
    items = []
    for item in await jobs.repo.items(job.id):
        if item.result is not None:
            result = CopyResponse.from_result(result_from_dict(item.result))
            items.append(CopyBatchItem(index=item.index, result=result))
        else:
            items.append(CopyBatchItem(index=item.index, error=ErrorDetail(**(item.error or {}))))
    return items
