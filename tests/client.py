"""HTTP client helpers for tests that talk to the app in process."""

from __future__ import annotations

import asyncio

import httpx


async def wait_ready(client: httpx.AsyncClient) -> None:
    for _ in range(200):
        if (await client.get("/health/ready")).status_code == 200:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("never became ready")


def parse_sse(text: str) -> list[tuple[str | None, str]]:
    events = []
    for block in text.replace("\r\n", "\n").strip().split("\n\n"):
        name, data = None, []
        for line in block.split("\n"):
            if line.startswith("event:"):
                name = line.split(":", 1)[1].strip()
            elif line.startswith("data:"):
                data.append(line.split(":", 1)[1].strip())
        if data:
            events.append((name, "\n".join(data)))
    return events
