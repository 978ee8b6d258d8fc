"""A study with deliberately small groups leaves no count between 1 and k-1 in any output.

The full runner with MLflow runs on a 300-person synthetic registry (with notes and images):
Table 1 by age band (the 85+ group has ~17 persons), Kaplan-Meier by age band, Cox, logistic
regression and a cross-validated risk model with subgroup tables.  Every artifact is scanned:
results.json, report.html, attrition.csv, data_quality.csv, every file in the MLflow artifact
store, the params and metrics of every MLflow run (parent, model and fold runs) and a model card.
The same study with disclosure control turned off shows the scan finds such counts.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

from tests.federated.conftest import REPO, make_study
from toolkit.disclosure import DisclosurePolicy
from toolkit.disclosure.scan import scan_html, scan_json, scan_markdown, scan_outputs, scan_text

pytestmark = pytest.mark.slow

SMALL_GROUPS = [
    {
        "name": "t1",
        "type": "table1",
        "by": "age_band",
        "variables": ["age", "sex", "smoking", "lvef", "diabetes", "copd"],
    },
    {"name": "km_age", "type": "kaplan_meier", "by": "age_band", "times": [90, 365, 1500]},
    {"name": "cox", "type": "cox", "covariates": ["age", "sex", "lvef"]},
    {"name": "logit", "type": "logistic", "outcome": "label_365d", "covariates": ["age", "copd"]},
]
MODEL = [{"name": "cox_1y", "type": "cox", "horizon": "365d", "features": ["age", "sex", "lvef", "copd"]}]
VALIDATION = {"cv_folds": 3, "bootstrap": 20, "optimism_bootstrap": 0}


@pytest.fixture(scope="module")
def small_registry(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from toolkit.registry.synth.heart_failure import SynthConfig, synthesize

    return synthesize(tmp_path_factory.mktemp("small") / "hf.duckdb", SynthConfig(300, 3, 5))


def _mlflow_findings(mlruns: Path, *, min_runs: int = 5) -> list[object]:
    from mlflow.tracking import MlflowClient

    from toolkit.tracking.mlflow_tracker import configure

    configure(mlruns)
    client = MlflowClient()
    found: list[object] = []
    runs = 0
    for exp in client.search_experiments():
        for r in client.search_runs([exp.experiment_id]):
            runs += 1
            data = {"params": r.data.params, "metrics": r.data.metrics, "tags": dict(r.data.tags)}
            found += list(scan_json(data, min_cell=10, file=f"mlflow run {r.info.run_name}"))
    assert runs >= min_runs  # by default: the study run, the model run and its fold runs
    return found


def test_no_count_between_1_and_k_minus_1_in_any_output(small_registry: Path, tmp_path: Path) -> None:
    from toolkit.agents.card import model_card_markdown
    from toolkit.agents.contract import load_contract
    from toolkit.study.runner import run_study
    from toolkit.tracking.mlflow_tracker import MLflowTracker

    study = make_study(tmp_path / "study", small_registry, SMALL_GROUPS, models=MODEL, validation=VALIDATION)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # MLflow's and xgboost's own deprecation notices
        run = run_study(
            study, out=tmp_path / "out", tracker=MLflowTracker(tmp_path / "mlruns"), use_cache=False
        )
    groups = {g["group"]: g for g in run.results.analyses["km_age"]["groups"]}
    assert groups["85+"]["n"] is None or groups["85+"]["n"] < 30  # the study really has a small group
    contract = load_contract(REPO / "agents/hf-mortality/agent.yaml")
    manifest = {
        "version": "test",
        "model": {"registered_model": "m", "model_version": 1, "type": "cox", "mlflow_run_id": run.run_id},
        "performance": dict(run.results.model("cox_1y").metrics),
        "gates": [],
    }
    card = model_card_markdown(
        contract.model_copy(update={"source": contract.source.model_copy(update={"model": "cox_1y"})}),
        manifest,
        run.results,
    )
    findings = (
        scan_outputs(tmp_path / "out")
        + scan_outputs(tmp_path / "mlruns")
        + _mlflow_findings(tmp_path / "mlruns")
        + list(scan_markdown(card, min_cell=10, file="model_card.md"))
    )
    assert findings == []
    assert (tmp_path / "out" / "report.html").exists() and (
        tmp_path / "out" / "artifacts" / "attrition.csv"
    ).exists()


def test_with_disclosure_control_off_the_scan_finds_small_counts_and_the_report_says_so(
    small_registry: Path, tmp_path: Path
) -> None:
    from toolkit.study.runner import run_study

    study = make_study(tmp_path / "study", small_registry, SMALL_GROUPS, disclosure={"enabled": False})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        run_study(study, out=tmp_path / "out", use_cache=False)
    findings = scan_outputs(tmp_path / "out")
    files = {f.file.split("/")[-1] for f in findings}
    assert {"results.json", "report.html", "attrition.csv"} <= files
    assert DisclosurePolicy(enabled=False).describe() in (tmp_path / "out" / "report.html").read_text()


def test_what_the_scanner_counts_and_what_it_does_not() -> None:
    # counts: keys naming persons or events, count phrases, n =, a number before a percentage
    assert [f.value for f in scan_json({"n": 4, "events": 12, "age": 3, "risk": 0.05}, min_cell=10)] == [4.0]
    assert [f.value for f in scan_json({"counts": {"F": 3, "M": 40}}, min_cell=10)] == [3.0]
    assert [f.value for f in scan_text("3 rows with missing values; 1.5 years; 2 (1.0%)", min_cell=10)] == [
        3.0,
        2.0,
    ]
    assert [f.value for f in scan_text("n = 7 at day 5, age 4", min_cell=10)] == [7.0]
    html = "<table><tr><th>group</th><th>n</th><th>median</th></tr><tr><td>A</td><td>4</td><td>3</td></tr></table>"
    assert [f.value for f in scan_html(html, min_cell=10)] == [4.0]
    # not counts: zero, times, years, risks, coefficients, versions
    assert list(scan_text("0 events at 3 days; HR 2.5; version 1.2; 2019", min_cell=10)) == []
    md = "| input | unit | range |\n|---|---|---|\n| age | a | 18–110 |"
    assert list(scan_markdown(md, min_cell=10)) == []
