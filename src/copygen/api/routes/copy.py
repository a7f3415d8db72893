"""POST /v1/copy: one brief → N checked variants; POST /v1/copy/batch: many briefs at once."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import ValidationError

from copygen.api.deps import EngineDep
from copygen.api.errors import validation_detail
from copygen.api.schemas import (
    CopyBatchItem,
    CopyBatchRequest,
    CopyBatchResponse,
    CopyRequest,
    CopyResponse,
    ErrorBody,
    ErrorDetail,
)
from copygen.domain import CopyBrief
from copygen.errors import InvalidBrief

router = APIRouter(tags=["copy"])

ERRORS: dict[int | str, dict[str, object]] = {
    code: {"model": ErrorBody} for code in (400, 422, 503, 504)
}
STREAM_UNSUPPORTED = "streaming is not available yet; send stream=false"


@router.post("/v1/copy", response_model=CopyResponse, responses=ERRORS)
async def create_copy(body: CopyRequest, engine: EngineDep) -> CopyResponse:
    if body.stream:
        raise InvalidBrief(STREAM_UNSUPPORTED, field="stream")
    result = await engine.generate_copy(body.to_brief())
    return CopyResponse.from_result(result)


@router.post("/v1/copy/batch", response_model=CopyBatchResponse, responses=ERRORS)
async def create_copy_batch(body: CopyBatchRequest, engine: EngineDep) -> CopyBatchResponse:
    """Every valid item goes through the engine together, so they share forward passes;
    invalid items get their own error and do not hold the others back."""
    items: list[CopyBatchItem] = []
    valid: list[tuple[int, CopyBrief]] = []
    for index, raw in enumerate(body.items):
        try:
            request = CopyRequest.model_validate(raw)
        except ValidationError as exc:
            message, field = validation_detail(exc.errors())
            items.append(_failed(index, "validation_error", message, field))
            continue
        if request.stream:
            items.append(_failed(index, "invalid_request", STREAM_UNSUPPORTED, "stream"))
            continue
        valid.append((index, request.to_brief()))
    if valid:
        results = await engine.generate_copy_many([brief for _, brief in valid])
        for (index, _), result in zip(valid, results, strict=True):
            items.append(CopyBatchItem(index=index, result=CopyResponse.from_result(result)))
    items.sort(key=lambda item: item.index)
    failed = sum(1 for item in items if item.error is not None)
    return CopyBatchResponse(results=items, succeeded=len(items) - failed, failed=failed)


def _failed(index: int, type_: str, message: str, field: str | None) -> CopyBatchItem:
    return CopyBatchItem(index=index, error=ErrorDetail(type=type_, message=message, field=field))
