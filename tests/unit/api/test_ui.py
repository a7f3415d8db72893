"""The playground's page and files: served with a strict CSP, open without a key, optional."""

from __future__ import annotations

import re

import httpx
from fastapi import FastAPI

from copygen.api.app import create_app
from copygen.api.routes.ui import UI_DIR
from copygen.config import Settings
from copygen.engine.engine import Engine
from tests.fakes import FakeRunner

KEY = "plain-key-0123456789abcdef"


def _app(**settings: object) -> FastAPI:
    config = Settings(warmup=False, **settings)  # type: ignore[arg-type]
    return create_app(config, engine=Engine(config, FakeRunner()))


async def _get(app: FastAPI, path: str) -> httpx.Response:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        return await c.get(path)


async def test_the_page_and_its_files_come_with_a_strict_policy() -> None:
    app = _app()
    page = await _get(app, "/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    policy = page.headers["content-security-policy"]
    assert "default-src 'none'" in policy
    assert "script-src 'self'" in policy
    assert "connect-src 'self'" in policy
    assert "unsafe-inline" not in policy
    script = await _get(app, "/ui/app.js")
    assert script.headers["content-type"].startswith("text/javascript")
    assert (await _get(app, "/ui/style.css")).status_code == 200
    assert (await _get(app, "/ui/../config.py")).status_code == 404
    assert (await _get(app, "/ui/index.css")).status_code == 404


def test_the_page_has_no_inline_script_or_style_and_no_other_origin() -> None:
    html = (UI_DIR / "index.html").read_text()
    assert not re.search(r"<script(?![^>]*\bsrc=)", html)
    assert "<style" not in html
    assert " style=" not in html
    for name in ("index.html", "app.js", "style.css"):
        text = (UI_DIR / name).read_text()
        assert not re.search(r"https?://", text), name


async def test_the_page_needs_no_key_but_the_api_still_does() -> None:
    app = _app(api_keys=f"web:{KEY}")
    assert (await _get(app, "/")).status_code == 200
    assert (await _get(app, "/ui/app.js")).status_code == 200
    assert (await _get(app, "/v1/channels")).status_code == 401


async def test_ui_off_removes_the_page() -> None:
    assert (await _get(_app(ui=False), "/")).status_code == 404
