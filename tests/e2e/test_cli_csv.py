"""`copygen generate --briefs FILE --csv OUT`: a JSON-lines file of briefs into the batch CSV,
with a progress bar, by a real process and a real (tiny) model."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

from tests.tiny_model import build_tiny_model


def test_generate_writes_the_batch_csv_with_a_progress_bar(tmp_path: Path) -> None:
    model = build_tiny_model(tmp_path / "tiny", chat=True)
    briefs = tmp_path / "briefs.jsonl"
    lines = [json.dumps({"product": f"lamp {i}", "channel": "sms", "variants": 2,
                         "grounding": "off", "seed": i}) for i in range(10)]  # fmt: skip
    lines.insert(3, json.dumps({"product": ""}))
    briefs.write_text("\n".join(lines) + "\n")
    out = tmp_path / "copy.csv"
    done = subprocess.run(
        [sys.executable, "-m", "copygen", "generate", "--briefs", str(briefs), "--csv", str(out)],
        env={**os.environ, "COPYGEN_MODEL": str(model)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "11/11 briefs" not in done.stderr  # the invalid line is not generated
    assert "10/10 briefs" in done.stderr
    rows = list(csv.DictReader(out.read_text(encoding="utf-8-sig").splitlines()))
    assert [r["Error"] for r in rows if r["Item"] == "3"] == ["validation_error"]
    assert {r["Item"] for r in rows} == {str(i) for i in range(11)}
    assert all(r["Channel"] == "sms" for r in rows if r["Item"] != "3")
