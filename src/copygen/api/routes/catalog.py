"""Discovery: what copygen supports, read straight from the copywriting tables."""

from __future__ import annotations

from fastapi import APIRouter

from copygen.api.schemas import ChannelOut, FrameworkOut, ToneOut, TonesOut
from copygen.copywriting.channels import CHANNELS
from copygen.copywriting.frameworks import FRAMEWORKS, TONES
from copygen.copywriting.prompts import FIELD_CAPS

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
                temperature=c.temperature,
            )
            for c in CHANNELS.values()
        ]
    }


@router.get("/v1/tones")
async def list_tones() -> TonesOut:
    """The presets; any other text up to ``max_length`` characters works as a tone too
    ("quirky but professional"), passed to the model as delimited data."""
    return TonesOut(
        tones=[ToneOut(id=t.id, description=t.description) for t in TONES.values()],
        free_text=True,
        max_length=FIELD_CAPS["tone"],
    )


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
