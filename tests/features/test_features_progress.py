"""The features step tells what it is doing: windows, then notes and images counted as they go
(the CLI turns these into a bar inside the step: toolkit/cli/progress.py)."""

from __future__ import annotations

import re
from pathlib import Path

from toolkit.cohort.run import run_cohort
from toolkit.features.fusion import build_features
from toolkit.registry import Registry
from toolkit.study.spec import load_study

REPO = Path(__file__).resolve().parents[2]


def _counts(heard: list[str], what: str) -> list[tuple[int, int]]:
    return [(int(m[1]), int(m[2])) for h in heard if (m := re.fullmatch(rf"{what} (\d+)/(\d+)", h))]


def test_notes_and_images_are_counted_to_their_totals(hf_registry: Path) -> None:
    spec, base = load_study(REPO / "studies/hf_mortality")
    heard: list[str] = []
    with Registry(hf_registry) as reg:
        cohort = run_cohort(spec.cohort, reg).cohort
        build_features(cohort, reg, spec.features, base=base, progress=heard.append)
        persons = ",".join(str(int(p)) for p in cohort["person_id"].unique())
        n_notes = int(reg.sql(f"SELECT COUNT(*) AS n FROM notes WHERE person_id IN ({persons})")["n"][0])
        n_images = int(reg.sql(f"SELECT COUNT(*) AS n FROM images WHERE person_id IN ({persons})")["n"][0])
    assert heard[0] == "windows" and "notes" in heard
    for what, total in (("notes", n_notes), ("images", n_images)):
        counts = _counts(heard, what)
        assert total > 0 and counts, (what, heard[:5])
        assert {n for _, n in counts} == {total}
        done = [i for i, _ in counts]
        assert done == sorted(done) and done[-1] == total
    assert len(_counts(heard, "images")) <= 102  # about a hundred reports, not one per image
