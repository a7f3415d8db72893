"""Raw material for a labelled gold set of copy quality (docs/quality.md, "Rubric").

Sends every brief of tests/data/gold/briefs.jsonl to a running copygen, one at a time, with
the cache bypassed, a fixed seed per brief and ``grounding: off`` (the model's candidates as the
checks would see them), and writes:

- ``variants.jsonl``: one line per returned variant, ``{"id": "<brief>-<n>", "brief", "text"}``;
  ``n`` is a seeded shuffle of the returned order, so an id does not give the ranking away
  (``run.json`` keeps the ranked order);
- ``run.json``: the run's settings, model, duration and, per brief, rounds, delivery and time;
- ``channels.json``: GET /v1/channels as served (the limits the packets show);
- a ``split`` field on every brief in ``briefs.jsonl`` (per brief, deterministic, stratified by
  channel: about 60% ``calibration``, 40% ``heldout``);
- ``packets/packet-{1,2,3}.md``: the variants for blind labelling, per brief its fields and then
  its variants in shuffled order, id and text only.

    python bench/gold.py all                # split + generate + packets
    python bench/gold.py generate --resume  # keep briefs already in variants.jsonl
    python bench/gold.py generate --only g004,g017
    python bench/gold.py packets

Only the standard library and httpx.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

GOLD = Path(__file__).resolve().parent.parent / "tests" / "data" / "gold"
#: Fields of a line in briefs.jsonl that are not part of the /v1/copy body.
META = ("id", "split", "seed")
CALIBRATION_SHARE = 0.6
PACKETS = 3
MAX_VARIANTS = 10  # CopyRequest.variants' upper bound; no channel sets a lower one


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    text = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)


def stable(text: str) -> int:
    """A hash that does not change between runs (``hash()`` does)."""
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")


def seed_of(brief: dict[str, Any]) -> int:
    return int(brief["seed"]) if "seed" in brief else stable(brief["id"]) % 2**31


def body_of(brief: dict[str, Any], variants: int) -> dict[str, Any]:
    body = {k: v for k, v in brief.items() if k not in META}
    body.update(
        variants=min(variants, MAX_VARIANTS),
        cache="bypass",
        seed=seed_of(brief),
        grounding="off",
        stream=False,
    )
    return body


# --- split -------------------------------------------------------------------------------


def assign_splits(briefs: list[dict[str, Any]]) -> None:
    """Per brief, stratified by channel: in each channel the briefs are ordered by a hash of
    their id, and the first ones are calibration; each channel's count is rounded so that the
    running total stays at 60% (every channel within one brief of 60%, the whole near it)."""
    by_channel: dict[str, list[dict[str, Any]]] = {}
    for brief in briefs:
        by_channel.setdefault(brief["channel"], []).append(brief)
    seen = calibrated = 0
    for channel in sorted(by_channel):
        group = sorted(by_channel[channel], key=lambda b: stable("split:" + b["id"]))
        seen += len(group)
        take = round(CALIBRATION_SHARE * seen) - calibrated
        calibrated += take
        for index, brief in enumerate(group):
            brief["split"] = "calibration" if index < take else "heldout"


def save_briefs(path: Path, briefs: list[dict[str, Any]]) -> None:
    """briefs.jsonl with ``split`` right after ``id``."""
    rows = [
        {
            "id": b["id"],
            "split": b["split"],
            **{k: v for k, v in b.items() if k not in ("id", "split")},
        }
        for b in briefs
    ]
    write_jsonl(path, rows)


# --- generate ----------------------------------------------------------------------------


def number_variants(brief_id: str, texts: list[str]) -> tuple[list[dict[str, str]], list[str]]:
    """Rows for variants.jsonl, numbered in a seeded shuffle of the returned order, and the
    ids in the returned (ranked) order."""
    order = list(range(len(texts)))
    random.Random(stable("number:" + brief_id)).shuffle(order)
    ids = [""] * len(texts)
    for n, index in enumerate(order, start=1):
        ids[index] = f"{brief_id}-{n}"
    rows = sorted(
        ({"id": ids[i], "brief": brief_id, "text": texts[i]} for i in range(len(texts))),
        key=lambda row: int(row["id"].rsplit("-", 1)[1]),
    )
    return rows, ids


def generate(args: argparse.Namespace, briefs: list[dict[str, Any]]) -> int:
    out = GOLD / "variants.jsonl"
    run_path = GOLD / "run.json"
    only = set(filter(None, (args.only or "").split(",")))
    unknown = only - {b["id"] for b in briefs}
    if unknown:
        sys.exit(f"unknown brief ids: {', '.join(sorted(unknown))}")
    kept: dict[str, list[dict[str, str]]] = {}
    for row in read_jsonl(out) if (args.resume or only) else []:
        kept.setdefault(row["brief"], []).append(row)
    run: dict[str, Any] = (
        json.loads(run_path.read_text()) if (args.resume or only) and run_path.exists() else {}
    )
    per_brief: dict[str, Any] = run.get("briefs", {})
    if only:
        todo = [b for b in briefs if b["id"] in only]
    else:
        todo = [b for b in briefs if not (args.resume and b["id"] in kept)]
    failures: list[str] = []
    model = run.get("model")
    began = time.perf_counter()
    with httpx.Client(
        base_url=args.url, timeout=httpx.Timeout(args.timeout, connect=10.0)
    ) as client:
        ready = client.get("/health/ready")
        ready.raise_for_status()
        channels = client.get("/v1/channels").json()
        (GOLD / "channels.json").write_text(
            json.dumps(channels, indent=1, ensure_ascii=False) + "\n"
        )
        for position, brief in enumerate(todo, start=1):
            body = body_of(brief, args.variants)
            start = time.perf_counter()
            try:
                response = client.post("/v1/copy", json=body)
                response.raise_for_status()
                result = response.json()
            except (httpx.HTTPError, ValueError) as error:
                detail = (
                    error.response.text[:300] if isinstance(error, httpx.HTTPStatusError) else ""
                )
                print(
                    f"{brief['id']}: FAILED {type(error).__name__} {error} {detail}",
                    file=sys.stderr,
                )
                failures.append(brief["id"])
                continue
            seconds = time.perf_counter() - start
            model = result.get("model", model)
            texts: list[str] = []
            for variant in result["variants"]:
                if variant["text"] not in texts:
                    texts.append(variant["text"])
            rows, ranked = number_variants(brief["id"], texts)
            kept[brief["id"]] = rows
            per_brief[brief["id"]] = {
                "channel": brief["channel"],
                "requested": body["variants"],
                "delivered": len(rows),
                "rounds": result.get("rounds"),
                "seconds": round(seconds, 2),
                "ranked": ranked,
            }
            order = [b["id"] for b in briefs]
            write_jsonl(out, [row for bid in order for row in kept.get(bid, [])])
            total = sum(len(v) for v in kept.values())
            print(
                f"[{position}/{len(todo)}] {brief['id']} {brief['channel']}: "
                f"{len(rows)}/{body['variants']} in {seconds:.1f} s (total {total})",
                flush=True,
            )
    elapsed = time.perf_counter() - began
    runs = run.get("runs", [])
    runs.append(
        {
            "finished": datetime.now(UTC).isoformat(timespec="seconds"),
            "url": args.url,
            "briefs": len(todo),
            "failed": failures,
            "seconds": round(elapsed, 1),
        }
    )
    run.update(
        model=model,
        body={
            "variants": args.variants,
            "cache": "bypass",
            "grounding": "off",
            "seed": "per brief",
        },
        runs=runs,
        briefs=per_brief,
    )
    run_path.write_text(json.dumps(run, indent=1, ensure_ascii=False) + "\n")
    total = sum(len(v) for v in kept.values())
    print(f"{len(todo) - len(failures)} briefs in {elapsed:.0f} s; {total} variants in {out}")
    if failures:
        print(f"failed: {','.join(failures)} (rerun with --only)", file=sys.stderr)
    return 1 if failures else 0


# --- packets -----------------------------------------------------------------------------


def describe_channel(channel: str, channels: dict[str, Any]) -> str:
    info = channels.get(channel)
    if not info or info.get("limit") is None:
        return f"{channel} (no length limit)"
    return f"{channel} (limit {info['limit']} characters, {info['limit_kind']})"


def fence(text: str) -> str:
    ticks = "```"
    while ticks in text:
        ticks += "`"
    return f"{ticks}text\n{text}\n{ticks}"


def brief_section(
    brief: dict[str, Any], rows: list[dict[str, str]], channels: dict[str, Any]
) -> str:
    lines = [f"## Brief {brief['id']}", "", f"- product: {brief['product']}"]
    if brief.get("description"):
        lines.append(f"- description: {brief['description']}")
    for fact in brief.get("facts", []):
        lines.append(f"- fact: {fact}")
    lines += [
        f"- audience: {brief.get('audience') or '(any)'}",
        f"- tone: {brief.get('tone', 'friendly')}",
        f"- channel: {describe_channel(brief['channel'], channels)}",
        f"- required keywords: {', '.join(brief.get('keywords', [])) or '(none)'}",
    ]
    if brief.get("banned_words"):
        lines.append(f"- banned words: {', '.join(brief['banned_words'])}")
    lines += [f"- language: {brief.get('language', 'en')}", ""]
    shuffled = list(rows)
    random.Random(stable("packet:" + brief["id"])).shuffle(shuffled)
    for row in shuffled:
        lines += [f"### {row['id']}", "", fence(row["text"]), ""]
    return "\n".join(lines)


def packets(briefs: list[dict[str, Any]]) -> None:
    rows = read_jsonl(GOLD / "variants.jsonl")
    channels_path = GOLD / "channels.json"
    served = json.loads(channels_path.read_text()) if channels_path.exists() else []
    served = served.get("channels", served) if isinstance(served, dict) else served
    channels = {c["id"]: c for c in served}
    by_brief: dict[str, list[dict[str, str]]] = {}
    for row in rows:
        by_brief.setdefault(row["brief"], []).append(row)
    # Largest first into the emptiest packet: sizes within one brief of each other.
    order = sorted(
        (b for b in briefs if by_brief.get(b["id"])),
        key=lambda b: (-len(by_brief[b["id"]]), stable("order:" + b["id"])),
    )
    bins: list[list[dict[str, Any]]] = [[] for _ in range(PACKETS)]
    sizes = [0] * PACKETS
    for brief in order:
        target = sizes.index(min(sizes))
        bins[target].append(brief)
        sizes[target] += len(by_brief[brief["id"]])
    folder = GOLD / "packets"
    folder.mkdir(parents=True, exist_ok=True)
    for number, (group, size) in enumerate(zip(bins, sizes, strict=True), start=1):
        group.sort(key=lambda b: stable("shuffle:" + b["id"]))
        head = [
            f"# Gold set, packet {number} of {PACKETS}: {len(group)} briefs, {size} variants",
            "",
            "Label every variant against its brief with the rubric in docs/quality.md "
            '("Rubric"). Return one JSON line per variant:',
            '`{"id": "<variant id>", "label": 0|1|2, "categories": [...]}`.',
            "Each variant's text is shown exactly as returned, between the fences.",
            "",
        ]
        body = [brief_section(b, by_brief[b["id"]], channels) for b in group]
        (folder / f"packet-{number}.md").write_text("\n".join(head + body).rstrip() + "\n")
        print(f"packet-{number}.md: {len(group)} briefs, {size} variants")


# --- main --------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "step", nargs="?", default="all", choices=("all", "split", "generate", "packets")
    )
    parser.add_argument("--url", default="http://127.0.0.1:8011")
    parser.add_argument("--variants", type=int, default=7, help="per brief (at most 10)")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds per request")
    parser.add_argument("--only", help="comma list of brief ids to (re)generate")
    parser.add_argument("--resume", action="store_true", help="skip briefs already generated")
    args = parser.parse_args()
    briefs_path = GOLD / "briefs.jsonl"
    briefs = read_jsonl(briefs_path)
    ids = [b["id"] for b in briefs]
    if len(set(ids)) != len(ids):
        sys.exit("duplicate brief ids in briefs.jsonl")
    status = 0
    if args.step in ("all", "split"):
        assign_splits(briefs)
        save_briefs(briefs_path, briefs)
        counts = {s: sum(b["split"] == s for b in briefs) for s in ("calibration", "heldout")}
        print(f"split: {counts}")
    if args.step in ("all", "generate"):
        status = generate(args, briefs)
    if args.step in ("all", "packets"):
        packets(briefs)
    return status


if __name__ == "__main__":
    sys.exit(main())
