"""Discovery: what copygen supports, read straight from the copywriting tables."""

from __future__ import annotations

from fastapi import APIRouter

from copygen.api.schemas import ChannelOut, FrameworkOut, ToneOut
from copygen.copywriting.channels import CHANNELS
from copygen.copywriting.frameworks import FRAMEWORKS, TONES

router = APIRouter(tags=["discovery"])


@router.get("/v1/channels")
async def list_channels() -> dict[str, list[ChannelOut]]:
    return {
        "channels": [
            ChannelOut(
                id=c.id,
                name=c.name,
                limit=c.limit,
                limit_kind=c.kind,
                counting=c.counting,
                recommended=c.recommended,
                note=c.note,
            )
            for c in CHANNELS.values()
        ]
    }


@router.get("/v1/tones")
async def list_tones() -> dict[str, list[ToneOut]]:
    return {"tones": [ToneOut(id=t.id, description=t.description) for t in TONES.values()]}


@router.get("/v1/frameworks")
async def list_frameworks() -> dict[str, list[FrameworkOut]]:
    return {
        "frameworks": [
            FrameworkOut(
                id=f.id,
                name=f.name,
                version=f.version,
                stages=list(f.stages),
                description=f.fragment,
            )
            for f in FRAMEWORKS.values()
        ]
    }
