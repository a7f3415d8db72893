"""The worth checks against the blind editor's labels of the gold set (docs/quality.md, "Gold
set").

For every labelled variant of tests/data/gold (variants.jsonl, labels.jsonl) it runs each check
against the variant's own brief (briefs.jsonl; each line is a /v1/copy body, read through
CopyRequest.to_brief() and checked the way copywriting/rounds.py does), and reports, separately
for the calibration split (where thresholds are tuned) and the held-out split (report only):

- per check, precision and recall against the label categories it stands for, and against
  label 0 (unusable);
- the share of variants labelled 0 that at least one check catches, and of those labelled 2
  that some check wrongly rejects (strict would throw them away);
- Spearman's correlation of the score with the labels (the score before this set of checks,
  for comparison, and the score now).

No model is needed; it takes seconds.

    python bench/gold_eval.py            # print the section
    python bench/gold_eval.py --write    # and replace (or append) it in docs/quality.md
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from copygen.api.schemas import CopyRequest
from copygen.copywriting.channels import CHANNELS
from copygen.copywriting.grounding import Evidence
from copygen.copywriting.postprocess import Checked, check_variant
from copygen.domain import CopyBrief

ROOT = Path(__file__).resolve().parent.parent
GOLD = ROOT / "tests" / "data" / "gold"
QUALITY = ROOT / "docs" / "quality.md"
SECTION = "## Gold set"
#: Fields of a line in briefs.jsonl that are not part of the /v1/copy body.
META = ("id", "split", "seed")
SPLITS = ("calibration", "heldout")
GROUNDING = ("unsupported_entity", "unsupported_number", "risky_claim")
#: Each check (a flag type, or grounding's three together) and the label categories it
#: stands for.
CHECKS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "off_topic": (("off_topic",), ("off_topic",)),
    "misspelt_name": (("misspelt_name",), ("misspelt_name",)),
    "fragment": (("fragment",), ("fragment",)),
    "unsafe": (("unsafe",), ("unsafe",)),
    "invented_claim": (("invented_claim",), ("invented_claim",)),
    "grounding (entity, number, risky claim)": (GROUNDING, ("invented_claim",)),
    "incoherent": (("incoherent",), ("nonsense", "repetitive")),
    "wrong_language": (("wrong_language",), ("wrong_language",)),
}


@dataclass(frozen=True, slots=True)
class Row:
    """One labelled variant, checked."""

    id: str
    split: str
    label: int
    categories: frozenset[str]
    flags: frozenset[str]
    hard: tuple[str, ...]
    score: float
    score_before: float


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def brief_of(line: dict[str, Any]) -> CopyBrief:
    return CopyRequest(**{k: v for k, v in line.items() if k not in META}).to_brief()


def check(text: str, brief: CopyBrief, evidence: Evidence) -> tuple[Checked, Checked]:
    """The variant under ``flag`` (every flag shown, the score as ranked under it) and under
    ``strict`` (what would be thrown away)."""
    channel = CHANNELS[brief.channel]
    checked = {
        policy: check_variant(
            text,
            channel,
            brief.keywords,
            brief.max_chars,
            brief.banned_words,
            evidence=evidence,
            grounding=policy,
            language=brief.language,
        )  # fmt: skip
        for policy in ("flag", "strict")
    }
    return checked["flag"], checked["strict"]


def score_before(checked: Checked, keywords: int) -> float:
    """The score as it was before relevance and coherence entered it: 0.45 fit + 0.30
    keywords + 0.10 readability + 0.15 call to action - 0.1 per grounding flag."""
    v = checked.variant
    if v.limit is None:
        fit = 1.0
    elif v.fits:
        fit = 1.0 if v.chars >= 0.3 * v.limit else 0.5 + v.chars / (0.6 * v.limit)
    else:
        fit = max(0.0, 1.0 - (v.chars - v.limit) / v.limit)
    coverage = 1.0 if keywords == 0 else (keywords - len(v.keywords_missing)) / keywords
    reads = min(1.0, max(0.0, v.readability.ease / 100)) if v.readability else 0.6
    grounding = sum(flag.type in GROUNDING for flag in v.flags)
    score = 0.45 * fit + 0.30 * coverage + 0.10 * reads + 0.15 * (v.cta is not False)
    return max(0.0, score - 0.1 * grounding)


def labels() -> list[dict[str, Any]]:
    """labels.jsonl, or while the packets are labelled one by one, labels-*.jsonl together."""
    if (GOLD / "labels.jsonl").exists():
        return read_jsonl(GOLD / "labels.jsonl")
    return [line for path in sorted(GOLD.glob("labels-*.jsonl")) for line in read_jsonl(path)]


def load() -> list[Row]:
    briefs = {line["id"]: line for line in read_jsonl(GOLD / "briefs.jsonl")}
    texts = {line["id"]: line for line in read_jsonl(GOLD / "variants.jsonl")}
    evidence: dict[str, tuple[CopyBrief, Evidence]] = {}
    rows = []
    for label in labels():
        variant = texts.get(label["id"])
        if variant is None:
            continue
        line = briefs[variant["brief"]]
        if line["id"] not in evidence:
            brief = brief_of(line)
            evidence[line["id"]] = (brief, Evidence.of(brief))
        brief, found = evidence[line["id"]]
        flagged, strict = check(variant["text"], brief, found)
        rows.append(
            Row(
                id=label["id"],
                split=line["split"],
                label=int(label["label"]),
                categories=frozenset(label.get("categories") or ()),
                flags=frozenset(flag.type for flag in flagged.flags),
                hard=strict.hard_failures,
                score=flagged.variant.score,
                score_before=score_before(flagged, len(brief.keywords)),
            )
        )
    return rows


# --- figures -------------------------------------------------------------------------------


def ratio(hits: int, total: int) -> str:
    return f"{hits / total:.0%} ({hits}/{total})" if total else "–"


def spearman(xs: Sequence[float], ys: Sequence[float]) -> float | None:
    if len(xs) < 3:
        return None
    rx, ry = _ranks(xs), _ranks(ys)
    mx, my = sum(rx) / len(rx), sum(ry) / len(ry)
    cov = sum((a - mx) * (b - my) for a, b in zip(rx, ry, strict=True))
    vx = sum((a - mx) ** 2 for a in rx) ** 0.5
    vy = sum((b - my) ** 2 for b in ry) ** 0.5
    return cov / (vx * vy) if vx and vy else None


def _ranks(values: Sequence[float]) -> list[float]:
    """Ranks from 1, ties sharing their mean rank."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    ranks = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return ranks


def check_table(rows: Sequence[Row]) -> list[str]:
    lines = [
        "| check | flags | precision (its categories) | recall (its categories) "
        "| precision (label 0) | recall (label 0) |",
        "|---|---|---|---|---|---|",
    ]
    zeros = sum(row.label == 0 for row in rows)
    for name, (types, categories) in CHECKS.items():
        flagged = [row for row in rows if row.flags & set(types)]
        relevant = [row for row in rows if row.categories & set(categories)]
        hits = sum(bool(row.categories & set(categories)) for row in flagged)
        unusable = sum(row.label == 0 for row in flagged)
        lines.append(
            f"| `{name}` | {len(flagged)} | {ratio(hits, len(flagged))} "
            f"| {ratio(hits, len(relevant))} | {ratio(unusable, len(flagged))} "
            f"| {ratio(unusable, zeros)} |"
        )
    return lines


def summary(rows: Sequence[Row]) -> list[str]:
    zeros = [row for row in rows if row.label == 0]
    twos = [row for row in rows if row.label == 2]
    worth = set(CHECKS) - {"grounding (entity, number, risky claim)"}
    caught = sum(bool(row.flags & worth) for row in zeros)
    strict_caught = sum(bool(row.hard) for row in zeros)
    wrong = sum(bool(row.flags & worth) for row in twos)
    strict_wrong = sum(bool(row.hard) for row in twos)
    before = spearman([row.score_before for row in rows], [row.label for row in rows])
    after = spearman([row.score for row in rows], [row.label for row in rows])
    labels = {n: sum(row.label == n for row in rows) for n in (0, 1, 2)}
    return [
        f"- variants: {len(rows)} (label 2: {labels[2]}, 1: {labels[1]}, 0: {labels[0]})",
        f"- labelled 0 and caught by a worth check: {ratio(caught, len(zeros))}; "
        f"by any rule strict enforces (limits, banned words, grounding, worth): "
        f"{ratio(strict_caught, len(zeros))}",
        f"- labelled 2 and rejected by a worth check: {ratio(wrong, len(twos))}; "
        f"by any rule strict enforces: {ratio(strict_wrong, len(twos))}",
        f"- Spearman's ρ of the score with the label: {_rho(after)} "
        f"(the score before relevance and coherence entered it: {_rho(before)})",
    ]


def _rho(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}"


def section(rows: Sequence[Row]) -> str:
    out = [
        SECTION,
        "",
        "`python bench/gold_eval.py` (`--write` puts this section here): every labelled variant "
        "of `tests/data/gold` checked against its own brief as `POST /v1/copy` would, under "
        "`grounding: flag` (every flag shown; the score as ranked) and `strict` (what would "
        "be thrown away). A check's categories are the rubric's (`incoherent` stands for "
        "`nonsense` and `repetitive`; grounding's entity, number and risky-claim checks for "
        "`invented_claim`). Thresholds are tuned on the calibration split only; the held-out "
        "split is reported as it falls.",
    ]
    for split in SPLITS:
        chosen = [row for row in rows if row.split == split]
        briefs = len({row.id.rsplit("-", 1)[0] for row in chosen})
        out += ["", f"### {split.capitalize()} ({briefs} briefs)", ""]
        out += summary(chosen)
        out += ["", *check_table(chosen)]
    return "\n".join(out) + "\n"


def write(text: str, path: Path = QUALITY) -> None:
    """Replace the section in ``path`` (up to the next "## " heading), or append it."""
    doc = path.read_text()
    start = doc.find(SECTION + "\n")
    if start < 0:
        path.write_text(doc.rstrip("\n") + "\n\n" + text)
        return
    end = doc.find("\n## ", start + len(SECTION))
    rest = doc[end + 1 :] if end >= 0 else ""
    path.write_text(doc[:start] + text + ("\n" + rest if rest else ""))


def main(argv: Iterable[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--write", action="store_true", help="update docs/quality.md")
    args = parser.parse_args(list(argv) if argv is not None else None)
    rows = load()
    if not rows:
        print("no labelled variants (tests/data/gold/labels*.jsonl)", file=sys.stderr)
        return 1
    text = section(rows)
    print(text)
    if args.write:
        write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
