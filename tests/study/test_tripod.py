"""The TRIPOD+AI checklist: all 27 items, auto-filled from the run, flags naming what to add."""

from __future__ import annotations

from pathlib import Path

import pytest

from toolkit.study.results import Subgroups
from toolkit.study.spec import load_study
from toolkit.study.tripod import RULES, ReportStatements, checklist_items, tripod_checklist

REPO = Path(__file__).resolve().parents[2]


def test_the_data_file_holds_all_27_items_with_their_parts() -> None:
    rows = checklist_items()
    assert sorted({r["item"] for r in rows}) == list(range(1, 28))
    ids = [str(r["id"]) for r in rows]
    assert len(ids) == len(set(ids)) == 52
    assert {"3a", "3b", "3c", "12a", "12g", "18a", "18f", "20c", "23b", "27c"} <= set(ids)
    for r in rows:  # every row can be judged: a rule that exists or a statement key that exists
        assert r.get("rule") or r.get("statement"), r["id"]
        assert r.get("rule") is None or r["rule"] in RULES, r["id"]
        assert r.get("statement") is None or r["statement"] in ReportStatements.model_fields, r["id"]


def test_checklist_from_a_run_points_to_sections_and_flags_what_is_missing(gbsg2_run) -> None:  # type: ignore[no-untyped-def]
    run, _, _ = gbsg2_run
    c = tripod_checklist(run.spec, run.results)
    by_id = {i.id: i for i in c.items}
    assert c.applicable and len(c.items) == 52
    assert by_id["6b"].status == "addressed" and by_id["6b"].where == "#cohort"
    assert by_id["20b"].status == "addressed" and by_id["20b"].where == "#analysis-table1_by_therapy"
    assert by_id["26"].status == "addressed"  # the study declares limitations
    assert by_id["17"].status == "missing" and "report.ethics" in by_id["17"].note
    assert by_id["13"].status == "not_applicable"
    # the sample-size row computes events per parameter from the results
    assert "299 recurrence or death events over all follow-up" in by_id["10"].note
    assert by_id["10"].status == "partial"
    counts = c.counts()
    assert sum(counts.values()) == 52 and counts["missing"] == len(c.missing) > 0
    assert "TRIPOD+AI" in c._repr_html_()


def test_author_statements_fill_their_items(gbsg2_run) -> None:  # type: ignore[no-untyped-def]
    run, _, _ = gbsg2_run
    report = run.spec.report.model_copy(
        update={
            "ethics": "Approved by the ethics committee (ref 2024-17).",
            "sample_size": "All trial patients.",
        }
    )
    spec = run.spec.model_copy(update={"report": report})
    by_id = {i.id: i for i in tripod_checklist(spec, run.results).items}
    assert by_id["17"].status == "addressed" and "ref 2024-17" in by_id["17"].note
    assert by_id["10"].status == "addressed" and "299 recurrence or death events" in by_id["10"].note


def test_a_study_without_models_is_not_a_prediction_study(gbsg2_run) -> None:  # type: ignore[no-untyped-def]
    run, _, _ = gbsg2_run
    results = run.results.model_copy(update={"models": {}})
    c = tripod_checklist(run.spec.model_copy(update={"models": []}), results)
    assert not c.applicable


def test_unknown_report_key_is_an_error(tmp_path: Path) -> None:
    import yaml

    from toolkit.errors import StudySpecError

    data = yaml.safe_load((REPO / "studies/gbsg2_recurrence/study.yaml").read_text())
    data["report"]["ethic"] = "x"
    (tmp_path / "study.yaml").write_text(yaml.safe_dump(data))
    with pytest.raises(StudySpecError, match=r"report.ethic: unknown key"):
        load_study(tmp_path)


def test_report_has_checklist_model_card_and_predictors(gbsg2_run) -> None:  # type: ignore[no-untyped-def]
    _, _, root = gbsg2_run
    html = (root / "out" / "report.html").read_text()
    for anchor in ("summary", "predictors", "model-card", "statements", "tripod", "provenance"):
        assert f'id="{anchor}"' in html
    assert html.count('<tr class="row-') == 52
    assert "missing: add <code>report.intended_use</code>" in html  # the model card flags it too
    assert "<td>Hormone therapy: yes</td>" in html  # the Cox coefficients in the model card, by label


def test_subgroup_and_site_performance_are_recognised(gbsg2_run) -> None:  # type: ignore[no-untyped-def]
    run, _, _ = gbsg2_run
    empty = Subgroups(variables={}, gaps=[])
    models = {name: m.model_copy(update={"subgroups": empty}) for name, m in run.results.models.items()}
    by_id = {
        i.id: i for i in tripod_checklist(run.spec, run.results.model_copy(update={"models": models})).items
    }
    assert by_id["23a"].status == "partial" and by_id["12d"].status == "missing"
    by_site = Subgroups(variables={"site_id": [{"level": "S1", "n": 300}]}, gaps=[])
    models["cox_5y"] = models["cox_5y"].model_copy(update={"subgroups": by_site})
    by_id = {
        i.id: i for i in tripod_checklist(run.spec, run.results.model_copy(update={"models": models})).items
    }
    assert by_id["23a"].status == "addressed" and by_id["12d"].status == "addressed"
    assert by_id["23b"].note == "performance by site"
