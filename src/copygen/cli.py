"""Command line: ``copygen serve``, ``copygen generate``, ``copygen prepare-model``,
``copygen migrate``."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Sequence
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
    from copygen.service.copywriter import Copywriter

    settings = _settings(args).model_copy(update={"warmup": False})
    _configure_logging("warning")
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
        copywriter = Copywriter.from_settings(settings)
        await copywriter.start()
        try:
            return CopyResponse.from_result(await copywriter.generate(brief))
        finally:
            await copywriter.stop()

    response = asyncio.run(run())
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


def cmd_prepare_model(args: argparse.Namespace) -> int:
    from copygen.engine.model.weights import resolve_model_source

    settings = _settings(args)
    _configure_logging("info")
    source, local = resolve_model_source(settings.model, settings.model_cache_dir)
    print(json.dumps({"model": settings.model, "source": source, "local": local}))
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
    gen.add_argument("--product", required=True)
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
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except ValidationError as exc:
        print(f"error: invalid configuration: {exc.errors()[0]['msg']}", file=sys.stderr)
        return 2
