"""Command line: ``copygen serve``, ``copygen generate``, ``copygen prepare-model``,
``copygen migrate``."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from copygen.config import Settings
from copygen.errors import CopygenError

if TYPE_CHECKING:
    from copygen.observability.logging import LogFormat


def _configure_logging(level: str, fmt: LogFormat = "console") -> None:
    from copygen.observability.logging import configure_logging

    configure_logging(level, fmt)


def _settings(args: argparse.Namespace) -> Settings:
    overrides = {
        key: value
        for key in ("host", "port", "model", "device", "dtype")
        if (value := getattr(args, key, None)) is not None
    }
    return Settings(**overrides)


def cmd_serve(args: argparse.Namespace) -> int:
    from copygen.api.server import serve

    settings = _settings(args)
    _configure_logging(settings.log_level, settings.log_format)
    serve(settings)
    return 0


def cmd_generate(args: argparse.Namespace) -> int:
    from copygen.api.schemas import CopyRequest, CopyResponse
    from copygen.service.runtime import Runtime

    settings = _settings(args).model_copy(update={"warmup": False})
    _configure_logging("warning")
    if args.briefs is not None:
        return generate_csv(settings, args.briefs, args.csv or "-")
    if args.product is None:
        print("error: --product (or --briefs FILE) is required", file=sys.stderr)
        return 2
    fields: dict[str, Any] = {
        "product": args.product,
        "channel": args.channel,
        "tone": args.tone,
        "variants": args.variants,
        "keywords": args.keyword or [],
    }
    optional = ("description", "audience", "framework", "seed", "temperature", "max_chars")
    fields.update({k: v for k in optional if (v := getattr(args, k)) is not None})
    try:
        brief = CopyRequest(**fields).to_brief()
    except ValidationError as exc:
        for error in exc.errors():
            where = ".".join(str(p) for p in error["loc"])
            print(f"error: {where}: {error['msg']}", file=sys.stderr)
        return 2

    async def run() -> CopyResponse:
        runtime = Runtime.from_settings(settings)
        await runtime.start()
        try:
            return CopyResponse.from_result(
                await runtime.workflow.generate(brief, runtime.deadline())
            )
        finally:
            await runtime.stop()

    response = asyncio.run(run())
    if args.csv:
        from copygen.api.exports import BATCH_HEADER, batch_rows, csv_text
        from copygen.api.schemas import CopyBatchItem

        rows = batch_rows([CopyBatchItem(index=0, result=response)], {0: brief.product})
        _write(args.csv, csv_text(BATCH_HEADER, rows))
        return 0
    if args.json:
        print(response.model_dump_json(indent=2))
        return 0
    for number, variant in enumerate(response.variants, 1):
        limit = "" if variant.limit is None else f"/{variant.limit}"
        flag = "ok" if variant.fits else "too long"
        print(f"{number}. {variant.text}  [{variant.chars}{limit} {flag}, score {variant.score}]")
    if response.delivered < response.requested:
        print(f"({response.delivered} of {response.requested} variants were distinct)")
    return 0


def generate_csv(settings: Settings, source: str, target: str) -> int:
    """Every brief of a JSON-lines file (``-``: stdin) into /v1/copy/batch's CSV, a chunk of
    briefs at a time (they share forward passes), with a progress bar on stderr."""
    from copygen.api.exports import BATCH_HEADER, batch_rows, csv_text
    from copygen.api.responses import validation_detail
    from copygen.api.schemas import CopyBatchItem, CopyRequest, CopyResponse, ErrorDetail
    from copygen.service.runtime import Runtime

    text = sys.stdin.read() if source == "-" else Path(source).read_text(encoding="utf-8")
    lines = text.splitlines()
    items: list[CopyBatchItem] = []
    briefs = []
    for index, line in enumerate(line for line in lines if line.strip()):
        try:
            briefs.append((index, CopyRequest.model_validate_json(line).to_brief()))
        except ValidationError as exc:
            message, field = validation_detail(exc.errors())
            error = ErrorDetail(type="validation_error", message=message, field=field)
            items.append(CopyBatchItem(index=index, error=error))

    async def run() -> None:
        runtime = Runtime.from_settings(settings)
        await runtime.start()
        try:
            for start in range(0, len(briefs), CSV_CHUNK):
                chunk = briefs[start : start + CSV_CHUNK]
                results = await runtime.workflow.generate_many(
                    [brief for _, brief in chunk], runtime.deadline()
                )
                for (index, _), result in zip(chunk, results, strict=True):
                    items.append(
                        CopyBatchItem(index=index, result=CopyResponse.from_result(result))
                    )
                _progress(start + len(chunk), len(briefs))
        finally:
            await runtime.stop()

    asyncio.run(run())
    items.sort(key=lambda item: item.index)
    products = {index: brief.product for index, brief in briefs}
    _write(target, csv_text(BATCH_HEADER, batch_rows(items, products)))
    return 0


CSV_CHUNK = 8


def _progress(done: int, total: int, width: int = 30) -> None:
    filled = width * done // max(1, total)
    end = "\n" if done >= total else ""
    print(f"\r[{'#' * filled}{'-' * (width - filled)}] {done}/{total} briefs", end=end,
          file=sys.stderr, flush=True)  # fmt: skip


def _write(target: str, text: str) -> None:
    if target == "-":
        sys.stdout.write(text)
    else:
        Path(target).write_text(text, encoding="utf-8", newline="")


def cmd_prepare_model(args: argparse.Namespace) -> int:
    from copygen.engine.model.kernels import cpu_ops
    from copygen.engine.model.weights import resolve_model_source

    settings = _settings(args)
    _configure_logging("info")
    source, local = resolve_model_source(settings.model, settings.model_cache_dir)
    kernels = settings.cpu_kernels and cpu_ops(settings.model_cache_dir).compiled
    print(json.dumps({"model": settings.model, "source": source, "local": local,
                      "cpu_kernels": kernels}))  # fmt: skip
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    """Bring the database (COPYGEN_DATABASE_URL, else the SQLite file) to the newest schema;
    ``serve`` does this at start too, so this is for a deploy step that runs it once."""
    from copygen.store.database import Database

    settings = Settings()
    _configure_logging("info")
    database = Database.from_settings(settings)

    async def run() -> None:
        try:
            await database.migrate()
        finally:
            await database.close()

    try:
        asyncio.run(run())
    except CopygenError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 1
    print(json.dumps({"database": database.kind, "migrated": True}))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="copygen", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    def model_options(p: argparse.ArgumentParser) -> None:
        p.add_argument("--model", help="hub id or local directory (default: embedded SmolLM2)")
        p.add_argument("--device", choices=["auto", "cpu", "cuda"])
        p.add_argument("--dtype", choices=["auto", "float32", "bfloat16", "float16"])

    serve = sub.add_parser("serve", help="serve the HTTP API")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    model_options(serve)
    serve.set_defaults(func=cmd_serve)

    gen = sub.add_parser("generate", help="write copy for one brief, without a server")
    gen.add_argument("--product", help="what is sold (or --briefs)")
    gen.add_argument("--briefs", help="a JSON-lines file of /v1/copy bodies (- for stdin)")
    gen.add_argument("--csv", help="write /v1/copy/batch's CSV to this file (- for stdout)")
    gen.add_argument("--channel", default="google_ads_headline")
    gen.add_argument("--tone", default="friendly")
    gen.add_argument("--framework")
    gen.add_argument("--description")
    gen.add_argument("--audience")
    gen.add_argument("--keyword", action="append", help="a word that must appear (repeatable)")
    gen.add_argument("--variants", type=int, default=3)
    gen.add_argument("--max-chars", type=int)
    gen.add_argument("--temperature", type=float)
    gen.add_argument("--seed", type=int)
    gen.add_argument("--json", action="store_true", help="print the API's JSON response")
    model_options(gen)
    gen.set_defaults(func=cmd_generate)

    prep = sub.add_parser("prepare-model", help="convert the embedded model once, then exit")
    model_options(prep)
    prep.set_defaults(func=cmd_prepare_model)

    migrate = sub.add_parser("migrate", help="migrate the database to the newest schema, then exit")
    migrate.set_defaults(func=cmd_migrate)

    listing = sub.add_parser("settings", help="list every COPYGEN_* variable by section")
    listing.set_defaults(func=cmd_settings)
    return parser


def cmd_settings(args: argparse.Namespace) -> int:
    from copygen.config_sections import describe_sections

    print(describe_sections())
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except ValidationError as exc:
        print(f"error: invalid configuration: {exc.errors()[0]['msg']}", file=sys.stderr)
        return 2
