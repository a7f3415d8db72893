"""POST /v1/copy: one brief → N checked variants; POST /v1/copy/batch: many briefs at once."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Sequence
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import StreamingResponse
from pydantic import ValidationError

from copygen.api import state
from copygen.api.deps import DeadlineDep, RuntimeDep, TenantDep, WorkflowDep
from copygen.api.exports import (
    BATCH_HEADER,
    CSV,
    NDJSON,
    accepts,
    batch_rows,
    csv_response,
    csv_text,
)
from copygen.api.responses import GENERATION_ERRORS, STREAM_OK, validation_detail
from copygen.api.schemas import (
    CopyBatchItem,
    CopyBatchRequest,
    CopyBatchResponse,
    CopyRequest,
    CopyResponse,
    ErrorDetail,
    copy_response,
)
from copygen.api.sse import sse_response
from copygen.deadline import Deadline
from copygen.domain import CopyBrief
from copygen.errors import CopygenError, NotFound, NotReady, StoreUnavailable
from copygen.generation import RowEvent
from copygen.observability.logging import copy_log_fields
from copygen.service.brands import BrandBook, with_brand
from copygen.service.drafts import DraftMasker, Phrase, draft_phrases
from copygen.service.workflow import CopyWorkflow

log = logging.getLogger("copygen.api")
router = APIRouter(tags=["copy"])

STREAM_IN_BATCH = "items of a batch cannot stream; send stream=false or use POST /v1/copy"


@router.post(
    "/v1/copy",
    response_model=CopyResponse,
    responses={**GENERATION_ERRORS, **STREAM_OK},
)
async def create_copy(
    body: CopyRequest,
    runtime: RuntimeDep,
    workflow: WorkflowDep,
    deadline: DeadlineDep,
    tenant: TenantDep,
    request: Request,
) -> Response:
    """``stream: true`` answers with Server-Sent Events: ``draft`` events carry every
    candidate's text as it is decoded (round, row, delta), unchecked except that what the
    banned and brand-safety lists catch is masked as ``•••`` (a word being written is held
    until it ends); then one ``result`` event carries the checked, ranked response, then
    ``data: [DONE]``."""
    brief = await brief_of(body, runtime.book, tenant)
    if body.stream:
        if not runtime.generators.for_channel(brief.channel).ready:
            raise NotReady("the model is still loading; retry shortly")
        phrases = draft_phrases(brief, runtime.settings)
        return sse_response(_stream_copy(workflow, brief, deadline, tenant, phrases))
    result = await workflow.generate(brief, deadline, tenant=tenant)
    if brief.brand is None:
        # the fast path may answer these bytes next time (not with a brand: the same bytes
        # mean new copy once the brand changes)
        state.state(request.scope)[state.COPY_BRIEF] = brief
    state.set_log_fields(request.scope, copy_log_fields(result))
    return copy_response(result)


async def brief_of(body: CopyRequest, book: BrandBook | None, tenant: str) -> CopyBrief:
    """The domain brief of ``body``, with its brand (the tenant's, from ``book``) resolved."""
    brief = body.to_brief()
    if body.brand is None:
        return brief
    if book is None:
        raise StoreUnavailable("this server keeps no brands")
    voice = await book.voice(tenant, body.brand)
    return with_brand(brief, voice, body.model_fields_set)


async def _stream_copy(
    workflow: CopyWorkflow,
    brief: CopyBrief,
    deadline: Deadline,
    tenant: str,
    phrases: Sequence[Phrase],
) -> AsyncIterator[tuple[str | None, Any]]:
    drafts: asyncio.Queue[tuple[int, RowEvent] | None] = asyncio.Queue()
    task = asyncio.create_task(
        workflow.generate(
            brief,
            deadline,
            on_event=lambda rnd, event: drafts.put_nowait((rnd, event)),
            tenant=tenant,
        ),
        name="copygen-copy-stream",
    )
    # Every draft is queued before the task finishes, so the end marker comes last.
    task.add_done_callback(lambda _: drafts.put_nowait(None))
    rows: dict[tuple[int, int], DraftMasker] = {}
    try:
        while (item := await drafts.get()) is not None:
            round_index, event = item
            key, ended = (round_index, event.key[2]), event.finish_reason is not None
            masker = rows.get(key) or rows.setdefault(key, DraftMasker(phrases))
            delta = masker.feed(event.delta, final=ended)
            if ended:
                del rows[key]
            elif not delta:
                continue  # held: it may be the start of a banned word
            yield (
                "draft",
                {
                    "round": round_index + 1,
                    "row": event.key[2],
                    "delta": delta,
                    "finish_reason": event.finish_reason,
                },
            )
        yield "result", CopyResponse.from_result(task.result()).model_dump()
        yield None, "[DONE]"
    finally:
        if not task.done():
            task.cancel()


@router.post(
    "/v1/copy/batch",
    response_model=CopyBatchResponse,
    responses={**GENERATION_ERRORS, 200: {"content": {CSV: {}, NDJSON: {}}}},
)
async def create_copy_batch(
    body: CopyBatchRequest,
    runtime: RuntimeDep,
    workflow: WorkflowDep,
    deadline: DeadlineDep,
    tenant: TenantDep,
    http: Request,
) -> Any:
    """Every valid item goes through the engine together, so they share forward passes;
    invalid items get their own error and do not hold the others back. ``Accept:
    application/x-ndjson`` streams one JSON line per item as soon as it is ready (invalid items
    first); ``Accept: text/csv`` answers a variant per row."""
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
            items.append(_failed(index, "invalid_request", STREAM_IN_BATCH, "stream"))
            continue
        try:
            valid.append((index, await brief_of(request, runtime.book, tenant)))
        except (NotFound, StoreUnavailable) as exc:
            items.append(_failed(index, exc.type, exc.message, exc.field))
    if accepts(http, NDJSON):
        state.set_log_fields(http.scope, {"briefs": len(valid)})
        lines = _lines(workflow, items, valid, deadline, tenant)
        return StreamingResponse(lines, media_type=NDJSON)
    if valid:
        briefs = [brief for _, brief in valid]
        results = await workflow.generate_many(briefs, deadline, tenant=tenant)
        state.set_log_fields(http.scope, {
            "briefs": len(results),
            "prompt_tokens": sum(r.usage.prompt_tokens for r in results),
            "completion_tokens": sum(r.usage.completion_tokens for r in results),
        })  # fmt: skip
        for (index, _), result in zip(valid, results, strict=True):
            items.append(CopyBatchItem(index=index, result=CopyResponse.from_result(result)))
    items.sort(key=lambda item: item.index)
    if accepts(http, CSV):
        products = {index: brief.product for index, brief in valid}
        return csv_response(csv_text(BATCH_HEADER, batch_rows(items, products)), "copy-batch.csv")
    failed = sum(1 for item in items if item.error is not None)
    return CopyBatchResponse(results=items, succeeded=len(items) - failed, failed=failed)


async def _lines(
    workflow: CopyWorkflow,
    failed: list[CopyBatchItem],
    valid: list[tuple[int, CopyBrief]],
    deadline: Deadline,
    tenant: str,
) -> AsyncIterator[str]:
    """The batch as JSON lines, each item as soon as it is ready. Each brief is its own
    generation, so a finished one need not wait for the others; they still share forward
    passes in the engine. A client that leaves cancels what is still running."""
    for item in failed:
        yield item.model_dump_json() + "\n"
    running = {
        asyncio.create_task(
            workflow.generate(brief, deadline, tenant=tenant), name="copygen-batch-item"
        ): index
        for index, brief in valid
    }
    try:
        while running:
            done, _ = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                index = running.pop(task)
                if (error := task.exception()) is None:
                    item = CopyBatchItem(
                        index=index, result=CopyResponse.from_result(task.result())
                    )
                elif isinstance(error, CopygenError):
                    item = _failed(index, error.type, error.message, error.field)
                else:
                    log.error("batch item failed: %s", type(error).__name__, exc_info=error)
                    item = _failed(index, "internal_error", "internal error", None)
                yield item.model_dump_json() + "\n"
    finally:
        for task in running:
            task.cancel()


def _failed(index: int, type_: str, message: str, field: str | None) -> CopyBatchItem:
    return CopyBatchItem(index=index, error=ErrorDetail(type=type_, message=message, field=field))
