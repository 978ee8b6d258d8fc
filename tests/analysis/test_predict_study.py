"""The predictive models through the study runner: new model types, nested search, external
validation by site, subgroups, the report section and the new gates."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from toolkit.agents.gate import check_gates
from toolkit.errors import GateError, StudySpecError
from toolkit.study.runner import run_study
from toolkit.study.spec import GateSpec, load_study

REPO = Path(__file__).resolve().parents[2]
WINDOWS = [
    {"name": "nt_probnp", "codes": ["LOINC:33762-6"], "window": ["-1d", "0d"], "agg": "last"},
    {"name": "lvef", "codes": ["LOINC:10230-1"], "window": ["-1d", "0d"], "agg": "last"},
    {"name": "creatinine", "codes": ["LOINC:2160-0"], "window": ["-1d", "0d"], "agg": "last"},
    {"name": "ckd", "codes": ["ICD10:N18*"], "window": ["all", "0d"], "agg": "present"},
]


def _study(tmp: Path, registry: Path, **edits: Any) -> Path:
    d = tmp / "study"
    d.mkdir(parents=True)
    shutil.copy(REPO / "studies/hf_mortality/cohort.yaml", d / "cohort.yaml")
    spec = {
        "name": "hf_predict",
        "registry": {"path": str(registry)},
        "cohort": "cohort.yaml",
        "features": {"static": ["age", "sex"], "windows": WINDOWS},
        "models": [
            {
                "name": "logit_1y",
                "type": "logistic",
                "horizon": "365d",
                "log": ["nt_probnp"],
                "splines": ["age"],
                "search": {"penalty": [0.1, 10.0]},
            },
            {"name": "xgbc_1y", "type": "xgboost", "horizon": "365d", "params": {"num_boost_round": 40}},
        ],
        "validation": {
            "cv_folds": 3,
            "bootstrap": 40,
            "optimism_bootstrap": 3,
            "thresholds": [0.1, 0.3],
            "external": {"by": "site_id", "values": ["SITE03"]},
        },
        "seed": 5,
    }
    spec.update(edits)
    (d / "study.yaml").write_text(yaml.safe_dump(spec))
    return d


@pytest.fixture(scope="module")
def predict_run(tmp_path_factory: pytest.TempPathFactory, hf_registry: Path):  # type: ignore[no-untyped-def]
    root = tmp_path_factory.mktemp("predict-study")
    return run_study(_study(root, hf_registry), out=root / "out"), root


def test_results_carry_validation_subgroups_and_external(predict_run) -> None:  # type: ignore[no-untyped-def]
    run, root = predict_run
    r = json.loads((root / "out" / "results.json").read_text())
    for name in ("logit_1y", "xgbc_1y"):
        m = r["models"][name]
        assert m["task"] == "binary" and m["type"] in ("logistic", "xgboost")
        metrics = m["metrics"]
        for key in (
            "c_harrell_lower",
            "auroc_lower",
            "oof_o_e_ratio",
            "oof_calibration_slope",
            "corrected_auroc",
        ):
            assert isinstance(metrics[key], float), key
        assert m["external"]["split"] == "site_id in ['SITE03']"
        assert isinstance(metrics["external_recal_slope"], float)
        assert set(m["subgroups"]["variables"]) == {"sex", "age_band", "site_id"}
        # development data exclude the external site, so its subgroup level is absent
        assert {c["level"] for c in m["subgroups"]["variables"]["site_id"]} == {"SITE01", "SITE02"}
        assert [t["threshold"] for t in m["thresholds"]] == [0.1, 0.3]
    assert r["models"]["logit_1y"]["search"]["best_params"]["penalty"] in (0.1, 10.0)
    assert any(n.startswith("age~s") for n in r["models"]["logit_1y"]["coefficients"])
    assert (root / "out" / "artifacts" / "dca_logit_1y.png").is_file()
    html = (root / "out" / "report.html").read_text()
    assert 'id="performance-logit_1y"' in html and "External validation on site_id" in html
    assert run.models["logit_1y"].predict_risk(run.frame).shape == (len(run.frame),)


def test_new_gates_pass_and_fail_with_reasons(predict_run) -> None:  # type: ignore[no-untyped-def]
    run, _ = predict_run
    r = run.results
    slope = r.model("logit_1y").metrics["oof_calibration_slope"]
    assert slope is not None
    ok = [
        GateSpec(calibration_slope_range=(slope - 0.1, slope + 0.1)),
        GateSpec(subgroup_gap_max=1.0),
        GateSpec(external_validation_required=True),
    ]
    assert all(o["passed"] for o in check_gates(ok, "logit_1y", r))
    with pytest.raises(GateError) as err:
        check_gates(
            [GateSpec(calibration_slope_range=(slope + 0.5, slope + 1.0), subgroup_gap_max=0.0)],
            "logit_1y",
            r,
        )
    msg = str(err.value)
    assert "failed 2 gate(s)" in msg
    assert "calibration_slope_range failed" in msg and "(short by 0.5)" in msg
    assert "subgroup_gap_max[c_harrell] failed" in msg and "c_harrell ranges from" in msg
    no_external = r.model_copy(
        update={"models": {"m": r.model("logit_1y").model_copy(update={"external": None})}}
    )
    with pytest.raises(GateError, match=r"declare validation\.external in study\.yaml"):
        check_gates([GateSpec(external_validation_required=True)], "m", no_external)


def test_spec_errors_name_the_key(tmp_path: Path, hf_registry: Path) -> None:
    bad_model = {"name": "m", "type": "xgboost", "horizon": "365d", "search": {"penalty": [1, 2]}}
    d = _study(tmp_path / "a", hf_registry, models=[bad_model])
    with pytest.raises(StudySpecError, match=r"models\[0\]\.search\.penalty: unknown parameter for xgboost"):
        run_study(d, out=tmp_path / "a" / "out")
    splines = {"name": "m", "type": "xgboost_survival", "horizon": "365d", "splines": ["age"]}
    d = _study(tmp_path / "b", hf_registry, models=[splines])
    with pytest.raises(StudySpecError, match=r"models\[0\]\.splines: xgboost_survival takes no splines"):
        run_study(d, out=tmp_path / "b" / "out")
    d = _study(tmp_path / "c", hf_registry, validation={"external": {"by": "hospital", "values": ["A"]}})
    with pytest.raises(StudySpecError, match=r"validation\.external\.by: unknown column 'hospital'"):
        run_study(d, out=tmp_path / "c" / "out")
    d = _study(tmp_path / "d", hf_registry, validation={"external": {"by": "site_id"}})
    with pytest.raises(StudySpecError, match="'by' needs 'values'"):
        load_study(d)
    d = _study(tmp_path / "e", hf_registry, validation={"external": {"by": "site_id", "values": ["SITE09"]}})
    with pytest.raises(StudySpecError, match=r"\['SITE09'\] do not occur in 'site_id'"):
        run_study(d, out=tmp_path / "e" / "out")
