"""Does the model's own likelihood tell usable copy from unusable? For every labelled variant of
the gold set (tests/data/gold) on one split, the mean log-probability per token of the text
under its brief (the relevance pass's prompt) and under its channel's instruction alone, with
the embedded model; then, against the blind labels (usable = 1 or 2):

- the AUC of the plain likelihood (channel prompt) and of relevance (brief minus channel);
- the same among the variants every other strict rule lets through (what a floor would add);
- per relevance floor, what strict would still return and how much of it is usable.

It chose COPYGEN_RELEVANCE_FLOOR's measured value (docs/quality.md, "Relevance floor"). About
ten minutes for the calibration split on a 2-core CPU.

    python bench/relevance_eval.py [calibration|heldout]
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from gold_eval import GOLD, brief_of, load, read_jsonl

from copygen.config import Settings
from copygen.copywriting.prompts import relevance_prompts
from copygen.domain import ScoreRequest
from copygen.engine.model.runner import TransformersRunner

FLOORS = (0.5, 1.0, 1.5, 2.0, 2.5, 3.0)


def auc(positive: Sequence[float], negative: Sequence[float]) -> float:
    """The chance that a positive outranks a negative (ties count half)."""
    pairs = [(p > n) + 0.5 * (p == n) for p in positive for n in negative]
    return sum(pairs) / len(pairs) if pairs else float("nan")


def main() -> None:
    split = sys.argv[1] if len(sys.argv) > 1 else "calibration"
    rows = {row.id: row for row in load() if row.split == split}
    briefs = {line["id"]: brief_of(line) for line in read_jsonl(GOLD / "briefs.jsonl")}
    variants = [v for v in read_jsonl(GOLD / "variants.jsonl") if v["id"] in rows]
    runner = TransformersRunner.of(Settings())
    runner.load()
    requests = []
    for variant in variants:
        with_brief, neutral = relevance_prompts(briefs[variant["brief"]])
        requests += [
            ScoreRequest(with_brief, variant["text"]),
            ScoreRequest(neutral, variant["text"]),
        ]
    scores = runner.score(requests)
    found = []  # (usable, passes every other strict rule, plain likelihood, relevance)
    for i, variant in enumerate(variants):
        row = rows[variant["id"]]
        found.append(
            (row.label >= 1, not row.hard, scores[2 * i + 1], scores[2 * i] - scores[2 * i + 1])
        )
    print(f"{split}: {len(found)} labelled variants, {sum(f[0] for f in found)} usable")
    for name, index in (("plain likelihood", 2), ("relevance", 3)):
        for scope, pool in (
            ("all", found),
            ("passing the other rules", [f for f in found if f[1]]),
        ):
            good = [f[index] for f in pool if f[0]]
            bad = [f[index] for f in pool if not f[0]]
            print(
                f"AUC of {name}, {scope}: {auc(good, bad):.3f} ({len(good)} usable, {len(bad)} not)"
            )
    passing = [f for f in found if f[1]]
    print("| floor | strict returns | usable among them | usable kept |")
    print("|---|---|---|---|")
    total = sum(f[0] for f in passing)
    for floor in (None, *FLOORS):
        kept = [f for f in passing if floor is None or f[3] >= floor]
        good = sum(f[0] for f in kept)
        print(
            f"| {floor or 'none'} | {len(kept)} | {good / max(1, len(kept)):.0%} | {good}/{total} |"
        )


if __name__ == "__main__":
    main()
