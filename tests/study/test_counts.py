"""Counts that say what they count: every place that describes a horizon model (results.json,
the report's summary tiles, model card and subgroup table, TRIPOD+AI item 10, the MLflow model
run and model version, the agent's model card) gives the events the fit used and the events and
evaluable persons at the horizon, and each number equals what the cohort's own labels give."""

from __future__ import annotations

import html
import json
import re
from pathlib import Path
from typing import Any

import pandas as pd
from mlflow.tracking import MlflowClient

from toolkit.study.dictionary import dictionary_of
from toolkit.study.tripod import tripod_checklist
from toolkit.tracking.mlflow_tracker import configure

OUTCOME = "recurrence or death"  # gbsg2's cohort.outcome.name


def _text(path: Path) -> str:
    """The report as a reader sees it: tags, images and runs of white space gone."""
    raw = re.sub(r"<img[^>]*>", "", path.read_text(encoding="utf-8"))
    return html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", raw)))


def _truth(run: Any) -> dict[str, Any]:
    """What the cohort's labels say: label_1826d is 1 (outcome by 5 years), 0 or missing."""
    cohort = run.cohort.cohort
    label = cohort["label_1826d"]
    return {
        "n": len(cohort),
        "events": int((cohort["event"] == 1).sum()),
        "n_evaluable": int(label.notna().sum()),
        "events_at_horizon": int((label == 1).sum()),
    }


def test_results_json_counts_are_the_cohort_labels(gbsg2_run) -> None:  # type: ignore[no-untyped-def]
    run, _, root = gbsg2_run
    t = _truth(run)
    data = json.loads((root / "out" / "results.json").read_text())
    (h,) = data["cohort"]["horizons"]
    assert (h["n_evaluable"], h["events_at_horizon"]) == (t["n_evaluable"], t["events_at_horizon"])
    assert t["events_at_horizon"] < t["events"]  # the two counts the issue found conflated
    for name, m in data["models"].items():
        parameters = len(run.models[name].pre_.names_)
        assert m["task"] == "survival" and m["horizon_days"] == 1826
        assert (m["n"], m["events"]) == (t["n"], t["events"])
        assert (m["n_fit"], m["events_fit"]) == (t["n"], t["events"])  # a survival fit: all follow-up
        assert (m["n_evaluable"], m["events_at_horizon"]) == (t["n_evaluable"], t["events_at_horizon"])
        assert m["parameters"] == parameters == 9  # 5 numeric, hormone therapy, menopause, 2 grades
        assert m["events_per_parameter"] == round(t["events"] / parameters, 1)


def _subgroup_truth(run: Any, var: str) -> dict[str, tuple[int, int, int]]:
    frame = run.frame
    level = frame[var].astype("string").fillna("(missing)")
    out = {}
    for lv, part in frame.groupby(level, observed=True):
        lab = run.cohort.cohort.loc[part.index, "label_1826d"]  # the frame is the cohort, row for row
        out[str(lv)] = (int((part["event"] == 1).sum()), int(lab.notna().sum()), int((lab == 1).sum()))
    return out


def test_subgroup_cells_and_the_report_table_are_the_labels_per_level(gbsg2_run) -> None:  # type: ignore[no-untyped-def]
    run, _, root = gbsg2_run
    assert list(run.frame["person_id"]) == list(run.cohort.cohort["person_id"])  # row for row
    report = (root / "out" / "report.html").read_text(encoding="utf-8")
    d = dictionary_of(run.spec)
    for var, cells in run.results.models["cox_5y"].subgroups.variables.items():  # type: ignore[union-attr]
        truth = _subgroup_truth(run, var)
        for cell in cells:
            if cell.get("suppressed"):
                continue
            events, evaluable, at_h = truth[cell["level"]]
            assert (cell["events"], cell["n_evaluable"], cell["events_at_horizon"]) == (
                events,
                evaluable,
                at_h,
            )
            shown = f"{d.label(var)}: {d.level(var, cell['level'])}"  # the data dictionary's words
            row = re.search(
                rf"<td>{re.escape(html.escape(shown))}</td>\s*"
                r'<td class="num">([\d,]+)</td><td class="num">([\d,]+)</td>\s*'
                r'<td class="num">([\d,]+)</td><td class="num">([\d,]+)</td>',
                report,
            )
            assert row is not None, (var, cell["level"])
            assert [int(x.replace(",", "")) for x in row.groups()[1:]] == [events, evaluable, at_h]


def test_report_tiles_model_card_and_tripod_say_which_count_is_which(gbsg2_run) -> None:  # type: ignore[no-untyped-def]
    run, _, root = gbsg2_run
    t = _truth(run)
    text = _text(root / "out" / "report.html")
    ev, ev_h, n_eval = f"{t['events']:,}", f"{t['events_at_horizon']:,}", f"{t['n_evaluable']:,}"
    # summary tiles: the all-follow-up count and the horizon's, each labelled
    assert f"{ev} {OUTCOME} events over all follow-up" in text
    assert f"{ev_h} {OUTCOME} events by 1826 days, among {n_eval} persons evaluable at 1826 days" in text
    # model card and the model's performance card
    fit = f"Fitted on {ev} {OUTCOME} events over all follow-up in {t['n']:,} persons: 33.2 events per candidate parameter (9 parameters)."
    at_h = f"Evaluated at 1826 days on {ev_h} {OUTCOME} events by 1826 days among {n_eval} persons evaluable at 1826 days."
    assert text.count(fit) >= 4 and text.count(at_h) >= 4  # model card + performance card, two models
    assert "Events for fitting: outcome events over all follow-up" in text
    assert "evaluable at the horizon: persons whose status then is known" in text
    # TRIPOD+AI item 10 (sample size)
    note = {i.id: i for i in tripod_checklist(run.spec, run.results).items}["10"].note
    assert f"fitted on {ev} {OUTCOME} events over all follow-up" in note
    assert f"evaluated at 1826 days on {ev_h} {OUTCOME} events by 1826 days among {n_eval} persons" in note


def test_mlflow_model_runs_and_versions_carry_the_counts(gbsg2_run) -> None:  # type: ignore[no-untyped-def]
    run, mlruns, _ = gbsg2_run
    t = _truth(run)
    configure(mlruns)
    client = MlflowClient()
    for m in run.results.models.values():
        params = client.get_run(str(m.mlflow_run_id)).data.params
        assert params["events"] == params["events_fit"] == str(t["events"])
        assert params["events_at_horizon"] == str(t["events_at_horizon"])
        assert params["n_evaluable"] == str(t["n_evaluable"])
        assert params["parameters"] == "9" and params["events_per_parameter"] == "33.2"
        mv = client.get_model_version(str(m.registered_model), str(m.model_version))
        assert mv.tags["regent.count.events_at_horizon"] == str(t["events_at_horizon"])
        assert mv.tags["regent.count.events_fit"] == str(t["events"])
        assert f"among {t['n_evaluable']:,} persons evaluable at 1826 days" in mv.description


def test_the_agent_model_card_carries_the_counts(gbsg2_run, gbsg2_bundle: Path) -> None:  # type: ignore[no-untyped-def]
    run, _, _ = gbsg2_run
    t = _truth(run)
    card = (gbsg2_bundle / "model_card.md").read_text(encoding="utf-8")
    assert f"{t['events']:,} outcome events over all follow-up" in card
    assert f"events by 1826 days among {t['n_evaluable']:,} persons evaluable at 1826 days" in card
    assert f"- Evaluated at 1826 days on {t['events_at_horizon']:,} " in card


def test_binary_models_fit_on_the_horizon_label() -> None:
    """A logistic model's fit uses the events by the horizon among the evaluable, not all events."""
    import numpy as np

    from toolkit.analysis.predict.counts import fit_counts, horizon_counts
    from toolkit.disclosure import DisclosurePolicy

    rng = np.random.default_rng(5)
    time = rng.uniform(1, 800, 400)
    event = rng.integers(0, 2, 400)
    label = np.where((event == 1) & (time <= 365), 1.0, np.where(time >= 365, 0.0, np.nan))
    policy = DisclosurePolicy(min_cell=1)
    binary = fit_counts(time, event, 365, task="binary", parameters=4, policy=policy)
    survival = fit_counts(time, event, 365, task="survival", parameters=4, policy=policy)
    at_h = horizon_counts(time, event, 365, policy)
    assert binary["events_fit"] == at_h["events_at_horizon"] == int(np.nansum(label == 1))
    assert binary["n_fit"] == at_h["n_evaluable"] == int((~np.isnan(label)).sum())
    assert survival["events_fit"] == int((event == 1).sum()) > binary["events_fit"]
    assert binary["events_per_parameter"] == round(binary["events_fit"] / 4, 1)


def test_horizon_counts_are_withheld_when_a_part_is_small() -> None:
    from toolkit.analysis.predict.counts import label_counts, withhold_partition
    from toolkit.disclosure import DisclosurePolicy

    policy = DisclosurePolicy(min_cell=10)
    ok = pd.Series([1.0] * 20 + [0.0] * 30 + [None] * 10)
    assert label_counts(ok, policy) == {"n_evaluable": 50, "events_at_horizon": 20}
    # 5 evaluable persons without the event: n_evaluable - events would reveal them
    small = pd.Series([1.0] * 20 + [0.0] * 5 + [None] * 10)
    assert label_counts(small, policy) == {"n_evaluable": None, "events_at_horizon": None}
    # 3 not evaluable: n - n_evaluable would reveal them
    assert label_counts(pd.Series([1.0] * 20 + [0.0] * 30 + [None] * 3), policy)["n_evaluable"] is None
    cells = [
        {"level": "a", "n_evaluable": 40, "events_at_horizon": 12},
        {"level": "b", "n_evaluable": None, "events_at_horizon": None},
        {"level": "c", "suppressed": True},
    ]
    withhold_partition(cells, ("n_evaluable", "events_at_horizon"))
    assert cells[0]["n_evaluable"] is None and cells[0]["events_at_horizon"] is None
    assert cells[2] == {"level": "c", "suppressed": True}
