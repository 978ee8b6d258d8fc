from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from toolkit.agents.bundle import verify_bundle
from toolkit.agents.gate import check_gates
from toolkit.agents.load import Agent
from toolkit.errors import GateError, InputValidationError, IntegrityError, MissingDataError
from toolkit.study.spec import GateSpec

REPO = Path(__file__).resolve().parents[2]
PATIENT = json.loads((REPO / "agents/gbsg2-recurrence/patient.json").read_text())


def test_bundle_verifies_loads_and_predicts(gbsg2_bundle: Path) -> None:
    assert gbsg2_bundle.name == "gbsg2-recurrence-1.0.1"
    verify_bundle(gbsg2_bundle)
    files = {p.relative_to(gbsg2_bundle).as_posix() for p in gbsg2_bundle.rglob("*") if p.is_file()}
    assert {
        "manifest.json",
        "agent.yaml",
        "model_card.md",
        "report.html",
        "SHA256SUMS",
        "model/MLmodel",
        "model/artifacts/risk_model.pkl",
    } <= files
    agent = Agent.load(gbsg2_bundle)
    p = agent.predict(PATIENT)
    assert 0 < p.risk < 1 and p.horizon_days == 1826
    assert p.risk_group in {"lower risk", "intermediate risk", "high risk"}
    assert len(p.contributions) == 3 and len(p.summary) < 140
    # more nodes, larger tumour, higher grade: higher risk
    worse = agent.predict({**PATIENT, "positive_nodes": 20, "tumor_size": 60, "tumor_grade": "III"})
    assert worse.risk > p.risk


def test_any_changed_byte_is_caught_naming_the_file(gbsg2_bundle: Path, tmp_path: Path) -> None:
    for rel in ("manifest.json", "model/artifacts/risk_model.pkl", "model_card.md", "model/MLmodel"):
        copy = tmp_path / rel.replace("/", "_")
        shutil.copytree(gbsg2_bundle, copy)
        target = copy / rel
        data = bytearray(target.read_bytes())
        data[len(data) // 2] ^= 0x01
        target.write_bytes(bytes(data))
        with pytest.raises(IntegrityError, match=f"file {rel} has changed"):
            verify_bundle(copy)
        with pytest.raises(IntegrityError, match=f"file {rel} has changed"):
            Agent.load(copy)
    copy = tmp_path / "extra"
    shutil.copytree(gbsg2_bundle, copy)
    (copy / "notes.txt").write_text("x")
    with pytest.raises(IntegrityError, match=r"notes\.txt was added"):
        verify_bundle(copy)
    (copy / "notes.txt").unlink()
    (copy / "report.html").unlink()
    with pytest.raises(IntegrityError, match=r"report\.html is listed in SHA256SUMS but missing"):
        verify_bundle(copy)


@pytest.mark.parametrize(
    ("patch", "field", "message"),
    [
        ({"tumor_size": "25"}, "tumor_size", "expected a number"),
        ({"tumor_size": True}, "tumor_size", "expected a number"),
        ({"tumor_size": {"value": 2.5, "unit": "cm"}}, "tumor_size", "unit must be 'mm'"),
        ({"tumor_size": 500}, "tumor_size", r"outside the valid range \[1.0, 200.0\] mm"),
        ({"positive_nodes": 2.5}, "positive_nodes", "whole number"),
        ({"tumor_grade": "IV"}, "tumor_grade", r"expected one of \['I', 'II', 'III'\]"),
        ({"tumour_size": 3}, "tumour_size", "unknown input"),
    ],
)
def test_input_validation_names_the_field(
    gbsg2_bundle: Path, patch: dict[str, Any], field: str, message: str
) -> None:
    agent = Agent.load(gbsg2_bundle)
    with pytest.raises(InputValidationError, match=message) as info:
        agent.predict({**PATIENT, **patch})
    assert field in info.value.fields
    assert "500" not in str(info.value) and "2.5" not in str(info.value)  # no values echoed


def test_missing_inputs_refused_or_imputed(gbsg2_bundle: Path) -> None:
    agent = Agent.load(gbsg2_bundle)
    with pytest.raises(MissingDataError) as info:
        agent.predict({k: v for k, v in PATIENT.items() if k not in ("tumor_size", "age_years")})
    assert set(info.value.fields) == {"tumor_size", "age_years"}
    p = agent.predict({k: v for k, v in PATIENT.items() if k != "estrogen_receptor"})
    assert p.imputed == ("estrogen_receptor",) and any("imputed" in w for w in p.warnings)
    p = agent.predict({**PATIENT, "progesterone_receptor": 2500})
    assert any("outside the range seen in training" in w for w in p.warnings)


def test_batch_scoring_parquet(gbsg2_bundle: Path, tmp_path: Path) -> None:
    agent = Agent.load(gbsg2_bundle)
    frame = pd.DataFrame([PATIENT, {**PATIENT, "tumor_grade": "IV"}, {**PATIENT, "tumor_size": 40}])
    frame.to_parquet(tmp_path / "p.parquet")
    out = agent.predict_frame(pd.read_parquet(tmp_path / "p.parquet"))
    assert out["error"].isna().tolist() == [True, False, True]
    assert out["risk"].iloc[2] > out["risk"].iloc[0]


def test_failing_gate_is_refused_with_the_shortfall(gbsg2_run) -> None:  # type: ignore[no-untyped-def]
    run, _, _ = gbsg2_run
    lower = run.results.model("cox_5y").metrics["c_harrell_lower"]
    with pytest.raises(
        GateError, match=r"gate c_index_lower_min failed: value .* vs required 0.9 \(short by"
    ):
        check_gates([GateSpec(model="cox_5y", c_index_lower_min=0.9)], "cox_5y", run.results)
    passed = check_gates([GateSpec(model="cox_5y", c_index_lower_min=lower - 0.01)], "cox_5y", run.results)
    assert passed[0]["passed"]


def _arrays(obj: Any, seen: set[int] | None = None) -> list[np.ndarray]:
    """Every numpy array reachable from obj's attributes (a fitted model's whole state)."""
    seen = seen or set()
    if id(obj) in seen:
        return []
    seen.add(id(obj))
    if isinstance(obj, np.ndarray):
        return [obj]
    if isinstance(obj, pd.DataFrame | pd.Series):
        return [obj.to_numpy()]
    if isinstance(obj, dict):
        return [a for v in obj.values() for a in _arrays(v, seen)]
    if isinstance(obj, list | tuple):
        return [a for v in obj for a in _arrays(v, seen)]
    if hasattr(obj, "__dict__"):
        return _arrays(vars(obj), seen)
    return []


def test_bundle_holds_no_patient_level_data(gbsg2_bundle: Path, gbsg2_run) -> None:  # type: ignore[no-untyped-def]
    run, _, _ = gbsg2_run
    with (gbsg2_bundle / "model/artifacts/risk_model.pkl").open("rb") as fh:
        model = pickle.load(fh)
    n = len(run.frame)
    grid_ids = {id(model.base_times_), id(model.base_cumhaz_)}
    for arr in _arrays(model):
        if id(arr) not in grid_ids:
            assert arr.shape[0] < n / 4, f"an array of {arr.shape[0]} rows: per-patient data in the model"
    # the baseline hazard lives on a weekly grid (plus the horizon), not at individual event times
    steps = np.diff(np.setdiff1d(model.base_times_, [model.horizon]))
    assert np.allclose(steps, 7.0)
    # no registry row (its set of covariate values) appears in any text file of the bundle
    rows = run.frame[["tumor_size", "positive_nodes", "progesterone_receptor", "estrogen_receptor"]]
    texts = [
        p.read_text(errors="ignore")
        for p in gbsg2_bundle.rglob("*")
        if p.suffix in (".json", ".md", ".yaml", ".html")
    ]
    for _, r in rows.iterrows():
        needle = ", ".join(str(v) for v in r.tolist())
        assert not any(needle in t for t in texts)
