"""What a notebook user sees: result objects render as HTML tables, flows and figures."""

from __future__ import annotations

import pytest

from toolkit.study.runner import planned_steps


def test_study_run_and_its_parts_render(gbsg2_run) -> None:  # type: ignore[no-untyped-def]
    run, _, _ = gbsg2_run
    html = run._repr_html_()
    assert "CV C-index (95% CI)" in html and "cox_5y" in html and run.run_id in html
    assert f"/#/experiments/{run.experiment_id}/runs/{run.run_id}" in html  # a link into mlflow ui
    assert "class='consort'" in run.flow._repr_html_()
    assert run.figure("km_km_hormone_therapy")._repr_png_()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(KeyError, match="available: "):
        run.figure("km_nope")
    table = run.model_table()
    assert list(table["model"]) == ["cox_5y", "xgb_5y"]
    assert (table["C-index lower"] < table["C-index"]).all() and (
        table["C-index"] < table["C-index upper"]
    ).all()
    assert run.policy.min_cell == 10


def test_planned_steps_name_every_step_in_order(gbsg2_run) -> None:  # type: ignore[no-untyped-def]
    run, _, _ = gbsg2_run
    assert planned_steps(run.spec) == [
        "registry",
        "cohort",
        "features",
        "analysis table1_by_therapy",
        "analysis km_hormone_therapy",
        "analysis cox_adjusted",
        "model cox_5y",
        "model xgb_5y",
        "report",
    ]
