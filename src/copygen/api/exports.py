"""CSV exports in the columns ad tools import: Google Ads Editor (a responsive search ad per
row), Meta's bulk sheet (an ad per row), and /v1/copy/batch (a variant per row).

RFC 4180 (quotes where needed, CRLF), UTF-8 with a byte-order mark so spreadsheet apps read
the encoding, and a guard against formula injection: a text cell starting with = + - @ (or a
tab or CR) gets a leading apostrophe, so no spreadsheet evaluates copy as a formula.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator, Sequence

from fastapi import Request, Response

from copygen.api.schemas import CopyBatchItem

BOM = "\ufeff"
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
CSV = "text/csv"
NDJSON = "application/x-ndjson"

Cell = str | int | float | bool | None


def guard(cell: str) -> str:
    return "'" + cell if cell.startswith(FORMULA_START) else cell


def csv_text(header: Sequence[str], rows: Iterable[Sequence[Cell]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(header)
    for row in rows:
        writer.writerow(["" if c is None else guard(c) if isinstance(c, str) else c for c in row])
    return BOM + out.getvalue()


def accepts(request: Request, media_type: str) -> bool:
    """Whether the client's Accept header names ``media_type`` (parameters and q ignored: a
    client asking for CSV at all gets it)."""
    accept = request.headers.get("accept", "")
    return any(part.split(";")[0].strip() == media_type for part in accept.split(","))


def csv_response(text: str, filename: str) -> Response:
    return Response(
        text.encode("utf-8"),
        media_type=f"{CSV}; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


def google_ads_editor(
    headlines: Sequence[tuple[str, int | None]],
    descriptions: Sequence[str],
    final_url: str,
    paths: Sequence[str],
    campaign: str,
    ad_group: str,
) -> str:
    """One responsive search ad in Google Ads Editor's columns (headline pins as positions)."""
    header = ["Campaign", "Ad group", "Ad type"]
    header += [f"Headline {i}" for i in range(1, 16)]
    header += [f"Headline {i} position" for i in range(1, 16)]
    header += [f"Description {i}" for i in range(1, 5)] + ["Final URL", "Path 1", "Path 2"]
    texts = [text for text, _ in headlines] + [""] * (15 - len(headlines))
    pins = [pin for _, pin in headlines] + [None] * (15 - len(headlines))
    row: list[Cell] = [campaign, ad_group, "Responsive search ad", *texts, *pins]
    row += [*descriptions, *[""] * (4 - len(descriptions)), final_url, *paths]
    return csv_text(header, [row])


def meta_bulk(
    primary_texts: Sequence[str],
    headlines: Sequence[str],
    descriptions: Sequence[str],
    link: str,
    campaign: str,
    ad_set: str,
) -> str:
    """Meta's bulk sheet: ad i pairs the i-th primary text, headline and link description."""
    count = max(len(primary_texts), len(headlines), len(descriptions))

    def at(texts: Sequence[str], i: int) -> str:
        return texts[i] if i < len(texts) else ""

    rows = [
        [campaign, ad_set, f"Ad {i + 1}", at(headlines, i), at(primary_texts, i),
         at(descriptions, i), link]
        for i in range(count)
    ]  # fmt: skip
    header = ["Campaign Name", "Ad Set Name", "Ad Name", "Title", "Body", "Link Description",
              "Link"]  # fmt: skip
    return csv_text(header, rows)


BATCH_HEADER = ["Item", "Channel", "Product", "Rank", "Text", "Characters", "Limit", "Fits",
                "Score", "Error"]  # fmt: skip


def batch_rows(items: list[CopyBatchItem], products: dict[int, str]) -> Iterator[list[Cell]]:
    """A /v1/copy/batch answer as rows: a variant per row (an empty one for an item none of
    whose variants passed), an error row per failed item."""
    for item in items:
        if item.result is None:
            error = item.error.type if item.error else "error"
            yield [item.index, None, None, None, None, None, None, None, None, error]
            continue
        result = item.result
        if not result.variants:  # none passed: the item still has its row
            yield [item.index, result.channel, products.get(item.index), None, None, None,
                   None, None, None, None]  # fmt: skip
        for rank, v in enumerate(result.variants, start=1):
            yield [item.index, result.channel, products.get(item.index), rank, v.text, v.chars,
                   v.limit, v.fits, v.score, None]  # fmt: skip
