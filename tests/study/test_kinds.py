"""The analysis-kind registry: every kind declared once, everything else generated from it.

The two kinds added through the registry alone (``aft``, and ``logrank``'s ``rho``) are checked
end to end against R's survreg/survdiff values stored by tests/_scripts/make_aft_reference.R.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from pydantic import TypeAdapter
from typer.testing import CliRunner

from toolkit.cli.analyze import analyze_app
from toolkit.errors import StudySpecError
from toolkit.study.kinds import KINDS, Analysis, column_problems, kind_of, not_federated, protocols

REPO = Path(__file__).resolve().parents[2]
DATA = REPO / "tests" / "data" / "survival"
REF = json.loads((DATA / "aft_reference.json").read_text())
runner = CliRunner()


def _json(*args: str) -> dict[str, Any]:
    res = runner.invoke(analyze_app, [*args, "--json", "--no-disclosure"])
    assert res.exit_code == 0, res.output
    out: dict[str, Any] = json.loads(res.stdout)
    return out


def test_every_kind_declares_all_it_needs() -> None:
    templates = REPO / "toolkit" / "study" / "templates" / "kinds"
    for kind in KINDS.values():
        assert kind.spec.model_fields["type"].annotation.__args__ == (kind.type,)  # type: ignore[union-attr]
        assert kind.template is not None and (templates / kind.template).is_file(), kind.type
        assert (kind.protocol is None) != (kind.not_federated is None), kind.type
        if kind.command is not None:
            assert kind.text is not None, kind.type  # a command prints the entry as text


def test_the_study_union_and_the_cli_are_generated_from_the_registry() -> None:
    parse = TypeAdapter(Analysis)
    for t, kind in KINDS.items():
        fields = {"type": t, "name": "x"}
        if "covariates" in kind.spec.model_fields:
            fields["covariates"] = ["age"]
        for required in ("by", "tau", "variables", "outcome"):
            if kind.spec.model_fields.get(required) and kind.spec.model_fields[required].is_required():
                fields[required] = (
                    ["age"] if required == "variables" else ("365d" if required == "tau" else "age")
                )
        assert type(parse.validate_python(fields)) is kind.spec
    commands = {c.name for c in analyze_app.registered_commands}
    assert commands == {k.command.name for k in KINDS.values() if k.command is not None}
    assert {"aft", "logrank", "km", "cox"} <= commands


def test_reference_checks_come_from_each_kinds_columns() -> None:
    parse = TypeAdapter(Analysis)
    a = parse.validate_python({"type": "aft", "name": "w", "covariates": ["age", "bmii"]})
    problems = column_problems([a], ["age", "time", "event"], source="study.yaml")
    assert problems == [
        "study.yaml: analyses[0].covariates[1]: unknown column 'bmii'; available: ['age', 'event', 'time']"
    ]
    with pytest.raises(StudySpecError, match="no analysis kind 'nope'"):
        kind_of(type("X", (), {"type": "nope"})())


def test_federated_runs_learn_each_kinds_protocol_or_reason() -> None:
    assert protocols()["logrank"] == "event_counts" and protocols()["cox"] == "cox"
    assert "aft" not in protocols() and "survreg" not in not_federated()["aft"]  # a reason, in words
    assert set(protocols()) | set(not_federated()) == set(KINDS)


@pytest.mark.parametrize("case", REF["aft"], ids=[c["id"] for c in REF["aft"]])
def test_regent_analyze_aft_matches_survreg(case: dict[str, Any]) -> None:
    args = ["aft", "--data", str(DATA / REF["datasets"][case["dataset"]]), "--dist", case["dist"]]
    if case["covariates"]:
        args += ["--covariates", ",".join(case["covariates"])]
    out = _json(*args)
    assert list(out) == ["type", "dist", "n", "events", "loglik", "scale", "coefficients", "missing_data"]
    assert out["n"] == case["n"] and out["events"] == case["events"]
    assert [c["term"] for c in out["coefficients"]] == case["terms"]
    assert [c["coef"] for c in out["coefficients"]] == pytest.approx(case["coef"], rel=1e-9, abs=1e-12)
    assert [c["se"] for c in out["coefficients"]] == pytest.approx(case["se"], rel=1e-9)
    assert out["loglik"] == pytest.approx(case["loglik"], rel=1e-12)


@pytest.mark.parametrize("case", [c for c in REF["fh_logrank"] if not c["subset"]], ids=lambda c: c["id"])
def test_regent_analyze_logrank_rho_matches_survdiff(case: dict[str, Any]) -> None:
    args = ["logrank", "--data", str(DATA / REF["datasets"][case["dataset"]]), "--by", case["by"]]
    args += ["--rho", str(case["rho"])] + (["--strata", case["strata"]] if case["strata"] else [])
    out = _json(*args)
    assert out["chisq"] == pytest.approx(case["chisq"], rel=1e-9)
    weighted = "weighted_" if case["rho"] else ""  # weighted sums are not released as counts
    assert [g[weighted + "observed"] for g in out["groups"]] == pytest.approx(case["observed"], rel=1e-9)
    assert [g[weighted + "expected"] for g in out["groups"]] == pytest.approx(case["expected"], rel=1e-9)
    assert out.get("rho", 0) == case["rho"]
    if case["rho"]:
        frame = pd.read_csv(DATA / REF["datasets"][case["dataset"]]).dropna(subset=[case["by"]])
        counts = frame[frame["event"] == 1].groupby(frame[case["by"]].astype(str)).size()
        assert [g["events"] for g in out["groups"]] == [int(counts.get(g["group"], 0)) for g in out["groups"]]


def test_the_study_step_runs_the_new_kinds() -> None:
    import pandas as pd

    from toolkit.disclosure import DisclosurePolicy
    from toolkit.study.kinds import run_analysis

    frame = pd.read_csv(DATA / "lung.csv")
    parse = TypeAdapter(Analysis)
    aft = parse.validate_python({"type": "aft", "name": "weibull_age", "covariates": ["age"]})
    fh = parse.validate_python({"type": "logrank", "name": "peto", "by": "sex", "rho": 1})
    entry, plots = run_analysis(aft, frame, DisclosurePolicy(min_cell=10))
    assert entry["type"] == "aft" and plots == {}
    entry, _ = run_analysis(fh, frame, DisclosurePolicy(min_cell=10))
    assert entry["rho"] == 1
    text = KINDS["logrank"].text
    assert text is not None and text(entry).startswith("Fleming-Harrington G^1 test")


def test_results_docs_are_generated_from_the_typed_results_and_name_every_kind() -> None:
    from toolkit.study.results_doc import generated

    page = (REPO / "docs" / "results.md").read_text()
    assert generated() in page, (
        "docs/results.md is stale: run python -m toolkit.study.results_doc docs/results.md"
    )
    for t in KINDS:
        assert f"### `{t}`" in page, f"docs/results.md has no section for the analysis kind {t!r}"
