"""Issue 15 on data Regent did not write: OHDSI's Synthea OMOP folder (28 persons, CDM 5.4).

The shared folder is imported with ``import_omop``; a small survival study runs on it (time from
a first outpatient visit to an emergency visit; Table 1 by sex and by age band, Kaplan-Meier by
age band and by sex; age bands cut so that groups hold a few persons) with a real MLflow tracker.
The scanner finds nothing in any artifact: no count 1..k-1, nothing the margins or the markers
give away (here: both sexes' events are <10 and add up to the cohort's events, so those are
withheld too), no survival estimate for a group below k.  Skipped only when ../shared is absent.
"""

from __future__ import annotations

import json
import warnings
import zipfile
from pathlib import Path

import pytest
import yaml

from tests.disclosure.test_disclosure_scan import _mlflow_findings
from toolkit.disclosure.scan import scan_outputs

pytestmark = pytest.mark.slow

SYNTHEA = Path(__file__).resolve().parents[3] / "shared/data/omop_synthea27nj/Synthea27Nj_5.4.zip"


def test_a_small_survival_study_on_synthea_leaves_nothing_derivable(tmp_path: Path) -> None:
    if not SYNTHEA.is_file():
        pytest.skip("../shared/data (OHDSI Synthea OMOP folder) is not present")
    from toolkit.registry.importers.omop import import_omop
    from toolkit.study.runner import run_study
    from toolkit.tracking.mlflow_tracker import MLflowTracker

    with zipfile.ZipFile(SYNTHEA) as z:
        z.extractall(tmp_path / "cdm")
    registry = import_omop(tmp_path / "cdm", tmp_path / "synthea.duckdb")
    study = {
        "name": "synthea_er",
        "title": "Time to an emergency visit after a first outpatient visit",
        "registry": {"path": str(registry)},
        "cohort": {
            "name": "first_outpatient_visit",
            "entry": {"codes": ["VISIT:OP"], "occurrence": "first"},
            "outcome": {
                "name": "emergency visit",
                "codes": ["VISIT:ER"],
                "time_at_risk": {"start": "1d", "end": "end_of_observation"},
            },
            "subgroups": ["sex", "age_band"],
            "age_bands": [2, 6, 12],
        },
        "features": {"static": ["age", "sex"]},
        "analyses": [
            {"name": "t1_sex", "type": "table1", "by": "sex", "variables": ["age_band", "age"]},
            {"name": "t1_age", "type": "table1", "by": "age_band", "variables": ["sex", "age"]},
            {"name": "km_age", "type": "kaplan_meier", "by": "age_band", "times": [365, 1825]},
            {"name": "km_sex", "type": "kaplan_meier", "by": "sex", "times": [365, 1825]},
        ],
        "seed": 1,
    }
    (tmp_path / "study").mkdir()
    (tmp_path / "study" / "study.yaml").write_text(yaml.safe_dump(study, sort_keys=False))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # MLflow's own deprecation notices
        run_study(tmp_path / "study", out=tmp_path / "out", tracker=MLflowTracker(tmp_path / "mlruns"))
    findings = (
        scan_outputs(tmp_path / "out")
        + scan_outputs(tmp_path / "mlruns")
        + _mlflow_findings(tmp_path / "mlruns", min_runs=1)  # no model: the study's run
    )
    assert findings == []
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert 10 <= results["cohort"]["n"] <= 28
    sizes = next(r for r in results["analyses"]["t1_age"]["rows"] if r["label"] == "n")
    assert "<10" in sizes["cells"].values()  # a band of a few persons
    for name in ("km_age", "km_sex"):
        for g in results["analyses"][name]["groups"]:
            if g.get("suppressed"):
                assert g["median"] is None and all(a["survival"] is None for a in g["at"])
