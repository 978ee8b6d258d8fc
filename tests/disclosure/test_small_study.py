"""Issue 15's "done when": a 120-person study with groups of 4-12 persons leaves nothing derivable.

A synthetic heart-failure registry whose cohort has ~120 persons, age bands cut so that two bands
hold about ten persons each and their cells by sex 4-9: Table 1 by sex (age band rows) and by age
band (sex rows), Kaplan-Meier and cumulative incidence by age band, and a cross-validated Cox
model with subgroup metrics (sex, age band, site), run by the full runner with a real MLflow
tracker (sqlite under a tmp mlruns/).  The scanner then reads every artifact — results.json,
report.html, attrition.csv and every other file in OUT, every file MLflow stored, and the params,
metrics and tags of every MLflow run — and finds no count 1..k-1, no withheld cell that the
margins (or the margins and the markers) determine or bound inside 1..k-1, and no survival
estimate for a group below k.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest
import yaml

from tests.disclosure.test_disclosure_scan import _mlflow_findings
from tests.federated.conftest import REPO
from toolkit.disclosure.scan import scan_outputs

pytestmark = pytest.mark.slow

ANALYSES = [
    {
        "name": "t1_sex",
        "type": "table1",
        "by": "sex",
        "variables": ["age_band", "age", "lvef", "diabetes", "copd"],
    },
    {
        "name": "t1_age",
        "type": "table1",
        "by": "age_band",
        "variables": ["sex", "age", "lvef", "diabetes", "copd"],
    },
    {"name": "km_age", "type": "kaplan_meier", "by": "age_band", "times": [90, 365, 730]},
    {"name": "cif_age", "type": "cumulative_incidence", "by": "age_band", "times": [180, 365, 730]},
]


def small_study(folder: Path, registry: Path) -> Path:
    """The competing-risks template's cohort and features with bands 60/70/80/85 (two small)."""
    spec = yaml.safe_load((REPO / "studies/competing_risks/study.yaml").read_text())
    cohort = {**spec["cohort"], "age_bands": [60, 70, 80, 85]}
    study = {
        "name": "small_groups",
        "title": "A study with groups of 4-12 persons",
        "registry": {"path": str(registry)},
        "cohort": cohort,
        "features": spec["features"],
        "analyses": ANALYSES,
        "models": [
            {"name": "cox_1y", "type": "cox", "horizon": "365d", "features": ["age", "sex", "lvef", "copd"]}
        ],
        "validation": {"cv_folds": 3, "bootstrap": 20, "optimism_bootstrap": 0},
        "seed": 7,
    }
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "study.yaml").write_text(yaml.safe_dump(study, sort_keys=False))
    return folder


def test_a_120_person_study_with_groups_of_4_to_12_leaves_nothing_derivable(tmp_path: Path) -> None:
    from toolkit.registry.store import Registry
    from toolkit.registry.synth.heart_failure import SynthConfig, synthesize
    from toolkit.study.data import build_study_data
    from toolkit.study.plan import plan_study
    from toolkit.study.runner import run_study
    from toolkit.tracking.mlflow_tracker import MLflowTracker

    registry = synthesize(tmp_path / "hf.duckdb", SynthConfig(130, 3, 2, notes=False, images=False))
    study = small_study(tmp_path / "study", registry)
    with Registry(registry) as reg:
        frame = build_study_data(plan_study(study), reg).frame
    cells = frame.groupby(["age_band", "sex"]).size()
    bands = frame["age_band"].value_counts()
    assert 100 <= len(frame) <= 140
    assert bands.min() <= 12 and 4 <= cells.min() <= 9  # the study really has groups of 4-12

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # MLflow's own deprecation notices
        run = run_study(
            study, out=tmp_path / "out", tracker=MLflowTracker(tmp_path / "mlruns"), use_cache=False
        )
    findings = (
        scan_outputs(tmp_path / "out")
        + scan_outputs(tmp_path / "mlruns")
        + _mlflow_findings(tmp_path / "mlruns")
    )
    assert findings == []

    results = json.loads((tmp_path / "out" / "results.json").read_text())
    t1 = results["analyses"]["t1_age"]
    shown = [c for r in t1["rows"] for c in r["cells"].values()]
    assert "<10" in shown and "withheld" in shown and t1["disclosure_note"]  # suppression is visible
    small_bands = set(bands[bands < 10].index) | {str(b) for b in cells[cells < 10].index.get_level_values(0)}
    km = {g["group"]: g for g in results["analyses"]["km_age"]["groups"]}
    for band in small_bands & set(km):
        g = km[band]
        assert g["median"] is None or (g["n"] is not None and g["n"] >= 10)
    # the same cell reads the same in every table: group sizes in Table 1, the KM and CIF tables
    n_row = next(r for r in t1["rows"] if r["label"] == "n")["counts"]
    for name in ("km_age", "cif_age"):
        sizes = {f"age_band={g['group']}": g["n"] for g in results["analyses"][name]["groups"]}
        assert sizes == {g: n_row[g] for g in sizes}
    assert run.results.model("cox_1y").subgroups is not None
