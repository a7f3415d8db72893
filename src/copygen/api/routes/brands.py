"""The brand routes: tenant-scoped CRUD with ETag / If-Match (a stale write is a 412), and
examples added directly or promoted from feedback."""

from __future__ import annotations

import dataclasses
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Response, status

from copygen.api.brand_schemas import (
    BrandIn,
    BrandOut,
    BrandPage,
    BrandPatch,
    PromoteIn,
    brand_etag,
    parse_if_match,
)
from copygen.api.deps import BookDep, TenantDep
from copygen.api.schemas import ErrorBody, RecordId
from copygen.domain import Brand
from copygen.errors import InvalidRequest

router = APIRouter(tags=["brands"])

ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorBody} for code in (404, 412, 422, 503)
}
IfMatch = Annotated[
    str | None,
    Header(description='The version read (its ETag, e.g. "3"): a stale write answers 412.'),
]


def _answer(brand: Brand, response: Response) -> BrandOut:
    response.headers["ETag"] = brand_etag(brand)
    return BrandOut.of(brand)


@router.post(
    "/v1/brands", status_code=status.HTTP_201_CREATED, response_model=BrandOut, responses=ERRORS
)
async def create_brand(
    body: BrandIn, book: BookDep, tenant: TenantDep, response: Response
) -> BrandOut:
    await book.ready()
    brand = await book.brands.create(tenant, body.to_profile())
    book.changed()
    response.headers["Location"] = f"/v1/brands/{brand.id}"
    return _answer(brand, response)


@router.get("/v1/brands", response_model=BrandPage, responses=ERRORS)
async def list_brands(
    book: BookDep,
    tenant: TenantDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    after: Annotated[RecordId | None, Query(description="the previous page's `next`")] = None,
) -> BrandPage:
    """The tenant's brands, oldest first, ``limit`` per page."""
    await book.ready()
    brands = await book.brands.page(tenant, after, limit)
    next_after = brands[-1].id if len(brands) == limit else None
    return BrandPage(data=[BrandOut.of(b) for b in brands], next=next_after)


@router.get("/v1/brands/{brand_id}", response_model=BrandOut, responses=ERRORS)
async def get_brand(
    brand_id: RecordId, book: BookDep, tenant: TenantDep, response: Response
) -> BrandOut:
    await book.ready()
    return _answer(await book.brands.get(tenant, brand_id), response)


@router.put("/v1/brands/{brand_id}", response_model=BrandOut, responses=ERRORS)
async def replace_brand(
    brand_id: RecordId,
    body: BrandIn,
    book: BookDep,
    tenant: TenantDep,
    response: Response,
    if_match: IfMatch = None,
) -> BrandOut:
    await book.ready()
    brand = await book.brands.replace(tenant, brand_id, body.to_profile(), parse_if_match(if_match))
    book.changed()
    return _answer(brand, response)


@router.patch("/v1/brands/{brand_id}", response_model=BrandOut, responses=ERRORS)
async def patch_brand(
    brand_id: RecordId,
    body: BrandPatch,
    book: BookDep,
    tenant: TenantDep,
    response: Response,
    if_match: IfMatch = None,
) -> BrandOut:
    """The fields sent replace the stored ones; the others stay."""
    changes = body.changes()
    await book.ready()
    brand = await book.brands.update(
        tenant,
        brand_id,
        lambda profile: dataclasses.replace(profile, **changes),
        parse_if_match(if_match),
    )
    book.changed()
    return _answer(brand, response)


@router.delete("/v1/brands/{brand_id}", status_code=status.HTTP_204_NO_CONTENT, responses=ERRORS)
async def delete_brand(
    brand_id: RecordId, book: BookDep, tenant: TenantDep, if_match: IfMatch = None
) -> Response:
    await book.ready()
    await book.brands.delete(tenant, brand_id, parse_if_match(if_match))
    book.changed()
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/v1/brands/{brand_id}/examples",
    status_code=status.HTTP_201_CREATED,
    response_model=BrandOut,
    responses=ERRORS,
)
async def add_example(
    brand_id: RecordId,
    body: PromoteIn,
    book: BookDep,
    tenant: TenantDep,
    response: Response,
    if_match: IfMatch = None,
) -> BrandOut:
    """Add an example: ``feedback_id`` promotes a rated variant (its edit when it has one),
    ``example`` gives one directly. At most 50 per brand."""
    if (body.feedback_id is None) == (body.example is None):
        raise InvalidRequest("send exactly one of feedback_id and example", field="feedback_id")
    await book.ready()
    expected = parse_if_match(if_match)
    if body.feedback_id is not None:
        brand = await book.promote(tenant, brand_id, body.feedback_id, expected)
    else:
        assert body.example is not None
        brand = await book.brands.add_example(tenant, brand_id, body.example.to_example(), expected)
        book.changed()
    return _answer(brand, response)
