"""The yardstick for the cache-hit path: the barest FastAPI JSON POST route, served by uvicorn
with the same settings as copygen (one worker, no access log, no server header)."""

from __future__ import annotations

import sys

import uvicorn
from fastapi import FastAPI
from pydantic import BaseModel

app = FastAPI()


class Body(BaseModel):
    product: str
    variants: int = 1


@app.post("/v1/copy")
async def echo(body: Body) -> dict[str, object]:
    return {"product": body.product, "variants": body.variants}


if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning",
                access_log=False, server_header=False)  # fmt: skip
