"""Writes the German, French and Spanish word lists of the coherence check
(src/copygen/copywriting/data/words-{de,fr,es}.txt.gz) from wordfreq's "large" frequency lists.

Run once by hand, not at run time and not in the tests (wordfreq is a 57 MB wheel; copygen
ships only the lists):

    pip install --target /tmp/wordfreq wordfreq==3.1.1
    PYTHONPATH=/tmp/wordfreq python bench/build_lexicons.py

Each list holds the lower-case words written with letters (an apostrophe or hyphen allowed)
whose Zipf frequency is at least ``MIN_ZIPF`` (1.5: about once in 30 million words), sorted.
wordfreq's data is CC BY-SA 4.0 (Robyn Speer, wordfreq; sources in its README), and so are
these lists derived from it.
"""

from __future__ import annotations

import gzip
import math
from pathlib import Path

import wordfreq  # type: ignore[import-not-found]

LANGUAGES = ("de", "fr", "es")
MIN_ZIPF = 1.5
DATA = Path(__file__).resolve().parents[1] / "src" / "copygen" / "copywriting" / "data"


def words(language: str) -> list[str]:
    frequencies = wordfreq.get_frequency_dict(language, "large")
    return sorted(
        word
        for word, frequency in frequencies.items()
        if math.log10(frequency * 1e9) >= MIN_ZIPF
        and word.replace("'", "").replace("-", "").isalpha()
        and word == word.lower()
    )


def main() -> None:
    for language in LANGUAGES:
        found = words(language)
        path = DATA / f"words-{language}.txt.gz"
        # mtime 0: the same words give the same bytes.
        path.write_bytes(gzip.compress("\n".join(found).encode(), 9, mtime=0))
        print(f"{path.name}: {len(found)} words, {path.stat().st_size} bytes")


if __name__ == "__main__":
    main()
