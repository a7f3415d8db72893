"""Blind A/B of what `POST /v1/copy` returns, for the copy-worth issue: the held-out gold briefs
(tests/data/gold/briefs.jsonl, split "heldout") sent with default settings (3 variants, strict
grounding, a fixed seed each) to a running copygen; the returned variants are kept with the
setting's name. `pack` mixes two settings' variants brief by brief, shuffled, into labelling
packets that show the brief and the text only (the key stays in a separate file); `score` reads
the labels back and reports usable / unusable shares per setting.

    python bench/worth_ab.py send --url http://127.0.0.1:8011 --name after --out /tmp/after.jsonl
    python bench/worth_ab.py pack /tmp/before.jsonl /tmp/after.jsonl --dir /tmp/ab
    python bench/worth_ab.py score /tmp/ab/key.jsonl /tmp/ab/labels-*.jsonl

Tuning runs on the calibration split (`--split calibration` for send and pack), reporting on
the held-out one; `--set KEY=JSON` adds a field to every request (`--set temperature=0.4`).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import httpx

GOLD = Path(__file__).resolve().parents[1] / "tests" / "data" / "gold"
FIELDS = ("product", "description", "facts", "audience", "tone", "channel", "framework",
          "keywords", "banned_words", "language", "seed")  # fmt: skip


def gold_briefs(split: str = "heldout") -> list[dict[str, Any]]:
    lines = (GOLD / "briefs.jsonl").read_text().splitlines()
    return [b for b in map(json.loads, lines) if b["split"] == split]


def send(
    url: str, name: str, out: Path, split: str = "heldout", extra: dict[str, Any] | None = None
) -> None:
    rows, requested, delivered, seconds = [], 0, 0, []
    with httpx.Client(timeout=300) as client:
        for brief in gold_briefs(split):
            body = {k: brief[k] for k in FIELDS if brief.get(k) is not None}
            body |= {"variants": 3, "cache": "bypass", **(extra or {})}
            started = time.perf_counter()
            response = client.post(f"{url}/v1/copy", json=body)
            seconds.append(time.perf_counter() - started)
            requested += 3
            if response.status_code != 200:
                print(f"{brief['id']}: {response.status_code}", file=sys.stderr)
                continue
            variants = response.json()["variants"]
            delivered += len(variants)
            rows += [{"brief": brief["id"], "setting": name, "text": v["text"]} for v in variants]
    out.write_text("".join(json.dumps(row) + "\n" for row in rows))
    print(
        json.dumps(
            {
                "setting": name,
                "briefs": len(seconds),
                "requested": requested,
                "delivered": delivered,
                "mean_s": round(sum(seconds) / len(seconds), 2),
            }
        )
    )


def pack(files: list[Path], folder: Path, packets: int = 2, split: str = "heldout") -> None:
    briefs = {b["id"]: b for b in gold_briefs(split)}
    by_brief: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for path in files:
        for row in map(json.loads, path.read_text().splitlines()):
            by_brief[row["brief"]].append(row)
    rng = random.Random(20261202)
    folder.mkdir(parents=True, exist_ok=True)
    key, pages = [], [[] for _ in range(packets)]
    for n, (brief_id, rows) in enumerate(sorted(by_brief.items())):
        rng.shuffle(rows)
        b = briefs[brief_id]
        page = pages[n % packets]
        page += [f"## Brief {brief_id}", ""]
        page += [f"- {k}: {b[k]}" for k in FIELDS[:-1] if b.get(k)]
        page.append("")
        for i, row in enumerate(rows, 1):
            vid = f"{brief_id}-v{i}"
            key.append({"id": vid, "setting": row["setting"]})
            page += [f"### {vid}", "", "```text", row["text"], "```", ""]
    for i, page in enumerate(pages, 1):
        head = [
            f"# Packet {i}",
            "",
            "Label every variant against its brief with the rubric "
            '(docs/quality.md, "Rubric"). One JSON line per variant: '
            '{"id": ..., "label": 0|1|2, "categories": [...]}.',
            "",
        ]
        (folder / f"packet-{i}.md").write_text("\n".join(head + page) + "\n")
    (folder / "key.jsonl").write_text("".join(json.dumps(k) + "\n" for k in key))


def score(key_path: Path, label_paths: list[Path]) -> None:
    key = {k["id"]: k["setting"] for k in map(json.loads, key_path.read_text().splitlines())}
    labels: dict[str, Counter[int]] = defaultdict(Counter)
    cats: dict[str, Counter[str]] = defaultdict(Counter)
    for path in label_paths:
        for row in map(json.loads, path.read_text().splitlines()):
            setting = key[row["id"]]
            labels[setting][int(row["label"])] += 1
            cats[setting].update(row.get("categories", []))
    for setting, counts in sorted(labels.items()):
        total = sum(counts.values())
        print(
            json.dumps(
                {
                    "setting": setting,
                    "variants": total,
                    "usable_as_is": round(counts[2] / total, 3),
                    "usable": round((counts[2] + counts[1]) / total, 3),
                    "unusable": round(counts[0] / total, 3),
                    "categories": dict(cats[setting].most_common()),
                }
            )
        )


def main() -> None:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command", required=True)
    s = sub.add_parser("send")
    s.add_argument("--url", default="http://127.0.0.1:8011")
    s.add_argument("--name", required=True)
    s.add_argument("--out", type=Path, required=True)
    s.add_argument("--split", default="heldout", choices=("calibration", "heldout"))
    s.add_argument("--set", action="append", default=[], help="KEY=JSON added to each request")
    p = sub.add_parser("pack")
    p.add_argument("files", type=Path, nargs="+")
    p.add_argument("--dir", type=Path, required=True)
    p.add_argument("--packets", type=int, default=2)
    p.add_argument("--split", default="heldout", choices=("calibration", "heldout"))
    c = sub.add_parser("score")
    c.add_argument("key", type=Path)
    c.add_argument("labels", type=Path, nargs="+")
    args = parser.parse_args()
    if args.command == "send":
        extra = {k: json.loads(v) for k, v in (item.split("=", 1) for item in args.set)}
        send(args.url, args.name, args.out, args.split, extra)
    elif args.command == "pack":
        pack(args.files, args.dir, args.packets, args.split)
    else:
        score(args.key, args.labels)


if __name__ == "__main__":
    main()
