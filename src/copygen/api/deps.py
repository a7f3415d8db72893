"""FastAPI dependencies: the one way routes reach the engine."""

from __future__ import annotations

from typing import Annotated, cast

from fastapi import Depends, Request

from copygen.engine.engine import Engine


def get_engine(request: Request) -> Engine:
    return cast(Engine, request.app.state.engine)


EngineDep = Annotated[Engine, Depends(get_engine)]
