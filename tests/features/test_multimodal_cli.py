"""``regent notes evaluate`` / ``regent images evaluate`` and ``registry synth --no-notes --no-images``."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[2]


def regent(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "toolkit.cli.main", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=600,
        env={"PYTHONWARNINGS": "ignore", "PATH": "/usr/bin:/bin"},
    )


def test_synth_then_evaluate_both_extractors(tmp_path: Path) -> None:
    reg = tmp_path / "hf.duckdb"
    r = regent("registry", "synth", "--patients", "300", "--seed", "2", "--out", str(reg))
    assert r.returncode == 0, r.stderr
    r = regent("notes", "evaluate", str(reg), "--json")
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    overall = next(s for s in report["scores"] if s["concept"] == "all")
    assert overall["f1"] >= 0.9 and report["notes"] > 300  # the generator's phrasings are not the triggers
    r = regent("images", "evaluate", str(reg))
    assert r.returncode == 0, r.stderr
    assert re.search(r"^stenosis +measured \d+/\d+ .*MAE", r.stdout, re.MULTILINE), r.stdout
    # a hospital's own sample: note-level CSV without spans, a subset of notes
    truth = pd.read_parquet(tmp_path / "hf.note_annotations.parquet")
    sample = truth[truth["note_id"].isin(truth["note_id"].unique()[:20])][["note_id", "concept", "negated"]]
    sample.to_csv(tmp_path / "sample.csv", index=False)
    r = regent("notes", "evaluate", str(reg), "--annotations", str(tmp_path / "sample.csv"), "--json")
    assert r.returncode == 0 and json.loads(r.stdout)["notes"] == 20


def test_bad_annotation_tables_are_named(tmp_path: Path) -> None:
    reg = tmp_path / "bare.duckdb"
    r = regent("registry", "synth", "--patients", "50", "--no-notes", "--no-images", "--out", str(reg))
    assert r.returncode == 0, r.stderr
    assert not (tmp_path / "bare.images").exists()
    r = regent("notes", "evaluate", str(reg))
    assert r.returncode == 2 and "bare.note_annotations.parquet: annotation table not found" in r.stderr
    (tmp_path / "a.csv").write_text("note_id,concept\n1,mi\n")
    r = regent("notes", "evaluate", str(reg), "--annotations", str(tmp_path / "a.csv"))
    assert (
        r.returncode == 2
        and "needs at least one attribute column" in r.stderr
        and "Traceback" not in r.stderr
    )
