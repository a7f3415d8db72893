"""Feedback on returned variants, and its export as preference pairs (DPO JSON lines)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Query, Response, status

from copygen.api.brand_schemas import MAX_ID, FeedbackIn, FeedbackOut
from copygen.api.deps import BookDep, TenantDep
from copygen.api.routes.brands import ERRORS
from copygen.api.schemas import RecordId

router = APIRouter(tags=["feedback"])

NDJSON = "application/x-ndjson"


@router.post(
    "/v1/feedback",
    status_code=status.HTTP_201_CREATED,
    response_model=FeedbackOut,
    responses=ERRORS,
)
async def create_feedback(body: FeedbackIn, book: BookDep, tenant: TenantDep) -> FeedbackOut:
    """Rate one variant of a /v1/copy response (kept COPYGEN_FEEDBACK_TTL_DAYS). With a brand:
    down-rated phrasing ranks lower for it from now on, and with the brand's ``auto_learn``
    an up-rated variant (its edit, when sent) becomes one of its examples."""
    feedback, learned = await book.rate(
        tenant, body.copy_id, body.variant, body.rating, body.edited_text, body.note
    )
    return FeedbackOut(
        id=feedback.id,
        copy_id=feedback.copy_id,
        variant=feedback.variant_index,
        rating=feedback.rating,
        brand=feedback.brand_id,
        learned=learned is not None,
        created_at=feedback.created_at.replace(tzinfo=UTC),
    )


@router.get(
    "/v1/feedback",
    response_class=Response,
    responses={**ERRORS, 200: {"content": {NDJSON: {}}}},
)
async def export_feedback(
    book: BookDep,
    tenant: TenantDep,
    brand: Annotated[RecordId | None, Query(description="only this brand's")] = None,
    since: Annotated[datetime | None, Query(description="ISO 8601; feedback from then on")] = None,
    after: Annotated[
        int, Query(ge=0, le=MAX_ID, description="the previous page's X-Next-Cursor")
    ] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 500,
) -> Response:
    """The tenant's feedback as JSON lines ``{prompt, chosen, rejected, ...}`` (the prompt as
    chat messages), ready for preference fine-tuning (TRL's DPOTrainer reads them). An edit
    is chosen over its original; an up-rated variant over another variant of its response; a
    down-rated one loses to another. ``X-Next-Cursor`` names the next page."""
    if since is not None and since.tzinfo is not None:
        try:
            since = since.astimezone(UTC).replace(tzinfo=None)
        except OverflowError:  # within hours of year 1 or 9999: as early or late as can be
            since = datetime.min if since.year == 1 else datetime.max
    pairs, cursor = await book.export(tenant, brand, since, after, limit)
    body = "".join(json.dumps(pair, ensure_ascii=False) + "\n" for pair in pairs)
    headers = {} if cursor is None else {"X-Next-Cursor": str(cursor)}
    return Response(body, media_type=NDJSON, headers=headers)
