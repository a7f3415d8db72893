"""POST /v1/copy: one brief → N checked variants."""

from __future__ import annotations

from fastapi import APIRouter

from copygen.api.deps import EngineDep
from copygen.api.schemas import CopyRequest, CopyResponse, ErrorBody
from copygen.errors import InvalidBrief

router = APIRouter(tags=["copy"])

ERRORS: dict[int | str, dict[str, object]] = {
    code: {"model": ErrorBody} for code in (400, 422, 503, 504)
}


@router.post("/v1/copy", response_model=CopyResponse, responses=ERRORS)
async def create_copy(body: CopyRequest, engine: EngineDep) -> CopyResponse:
    if body.stream:
        raise InvalidBrief("streaming is not available yet; send stream=false", field="stream")
    result = await engine.generate_copy(body.to_brief())
    return CopyResponse.from_result(result)
