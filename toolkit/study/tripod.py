"""The TRIPOD+AI checklist (Collins et al., BMJ 2024;385:e078378), filled in from a study run.

The 27 items (52 rows with their sub-items) live in ``data/tripod_ai.yaml``.  Each row is checked
by a rule that looks at the study spec and ``results.json`` and says where the report addresses it,
and/or by an author statement under ``report:`` in study.yaml (ethics, funding, intended use, ...)
that Regent cannot know.  What is neither found nor stated is flagged with what to add::

    from toolkit.study.tripod import tripod_checklist
    checklist = tripod_checklist(run.spec, run.results)
    checklist          # in a notebook: the table, missing items first in colour
    checklist.missing  # the rows still to write
"""

from __future__ import annotations

import html
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any, Literal

import yaml
from pydantic import Field

from toolkit.specs import Frozen
from toolkit.study.results import ModelResult, StudyResults

Status = Literal["addressed", "partial", "missing", "not_applicable"]


class ReportStatements(Frozen):
    """What only the authors can say; each key fills a TRIPOD+AI item and the model card."""

    abstract: str | None = Field(None, description="TRIPOD+AI 2: a structured abstract.")
    background: str | None = Field(
        None, description="3a: healthcare context, rationale, existing models (with references)."
    )
    intended_use: str | None = Field(
        None, description="3b: target population, purpose in the care pathway, intended users."
    )
    out_of_scope: str | None = Field(None, description="Model card: uses the model is not meant for.")
    health_inequalities: str | None = Field(None, description="3c: known inequalities between groups.")
    data_source: str | None = Field(None, description="5a: why these data, how representative.")
    data_dates: str | None = Field(None, description="5b: accrual start and end, end of follow-up.")
    setting: str | None = Field(None, description="6a: care setting, number and location of centres.")
    treatments: str | None = Field(None, description="6c: treatments received and how handled.")
    data_preparation: str | None = Field(None, description="7: quality checks, similarity across groups.")
    outcome_assessment: str | None = Field(None, description="8b/8c: outcome assessors and blinding.")
    predictors: str | None = Field(None, description="9a: how the candidate predictors were chosen.")
    predictor_assessment: str | None = Field(None, description="9c: predictor assessors and blinding.")
    sample_size: str | None = Field(None, description="10: how the study size was arrived at.")
    fairness: str | None = Field(None, description="14: approaches to model fairness.")
    ethics: str | None = Field(None, description="17: ethics committee, consent or waiver.")
    funding: str | None = Field(None, description="18a: funding and the funders' role.")
    conflicts: str | None = Field(None, description="18b: conflicts of interest.")
    protocol: str | None = Field(None, description="18c: where the protocol is, or 'none prepared'.")
    registration: str | None = Field(None, description="18d: registry and number, or 'not registered'.")
    data_sharing: str | None = Field(None, description="18e: availability of the data.")
    code_sharing: str | None = Field(None, description="18f: availability of the code.")
    patient_involvement: str | None = Field(None, description="19: patient and public involvement.")
    interpretation: str | None = Field(None, description="25: overall interpretation.")
    input_data_handling: str | None = Field(None, description="27a: handling poor or missing inputs in use.")
    user_requirements: str | None = Field(None, description="27b: user interaction and expertise needed.")
    next_steps: str | None = Field(None, description="27c: next steps for research.")


@dataclass(frozen=True)
class ChecklistItem:
    id: str
    item: int
    section: str
    topic: str
    requirement: str
    status: Status
    where: str | None  # an anchor in the report, e.g. "#cohort"
    note: str

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


STATUS_LABEL = {
    "addressed": "addressed",
    "partial": "partly addressed",
    "missing": "missing",
    "not_applicable": "not applicable",
}

SECTION_TITLES = {
    "#top": "title",
    "#summary": "Summary",
    "#question": "Study question",
    "#cohort": "Cohort",
    "#predictors": "Predictors",
    "#models": "Prediction models",
    "#model-card": "Model card",
    "#statements": "Author statements",
    "#limitations": "Limitations",
    "#provenance": "Provenance",
}


@dataclass(frozen=True)
class Checklist:
    """The filled-in TRIPOD+AI checklist; ``applicable`` is False for studies without a model."""

    items: tuple[ChecklistItem, ...]
    applicable: bool

    @property
    def missing(self) -> list[ChecklistItem]:
        return [i for i in self.items if i.status == "missing"]

    def counts(self) -> dict[str, int]:
        out = dict.fromkeys(STATUS_LABEL, 0)
        for i in self.items:
            out[i.status] += 1
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "guideline": "TRIPOD+AI (Collins et al., BMJ 2024;385:e078378)",
            "applicable": self.applicable,
            "counts": self.counts(),
            "items": [i.to_dict() for i in self.items],
        }

    def _repr_html_(self) -> str:
        c = self.counts()
        rows = "".join(
            f"<tr><td>{html.escape(i.id)}</td><td>{html.escape(i.topic)}</td>"
            f"<td>{STATUS_LABEL[i.status]}</td><td>{html.escape(i.note)}</td></tr>"
            for i in sorted(self.items, key=lambda i: i.status != "missing")
        )
        return (
            f"<p>TRIPOD+AI: {c['addressed']} addressed, {c['partial']} partly, {c['missing']} missing, "
            f"{c['not_applicable']} not applicable (of {len(self.items)} rows, 27 items).</p>"
            f"<table><tr><th>item</th><th>topic</th><th>status</th><th>where / what to add</th></tr>{rows}</table>"
        )


@cache
def checklist_items() -> tuple[dict[str, Any], ...]:
    """The 27 TRIPOD+AI items with their sub-items, as stored in ``data/tripod_ai.yaml``."""
    text = (resources.files("toolkit.study") / "data" / "tripod_ai.yaml").read_text(encoding="utf-8")
    return tuple(yaml.safe_load(text))


# --- rules: (spec, results) -> (status, where, note) or None when the rule finds nothing ---------
Verdict = tuple[Status, str | None, str]
Rule = Callable[[Any, StudyResults], Verdict | None]


def _models(results: StudyResults) -> dict[str, ModelResult]:
    return dict(results.models)


def _model_has(results: StudyResults, *keys: str) -> bool:
    """Whether any model's results hold one of ``keys`` (a block the run produced)."""
    return any(any(getattr(m, k, None) is not None for k in keys) for m in results.models.values())


def _subgroup_variables(m: ModelResult) -> list[str]:
    """The variables a model's performance is reported by (``subgroups.variables`` in results)."""
    return [str(k) for k, v in m.subgroups.variables.items() if v] if m.subgroups else []


def _by_site(results: StudyResults) -> bool:
    return any("site_id" in _subgroup_variables(m) for m in _models(results).values())


def _has_subgroups(results: StudyResults) -> bool:
    return any(_subgroup_variables(m) for m in _models(results).values())


def _r_title(spec: Any, results: StudyResults) -> Verdict | None:
    if not spec.title:
        return None
    words = ("predict", "model", "risk", "score")
    if _models(results) and not any(w in spec.title.lower() for w in words):
        return "partial", "#top", "the title does not say that a prediction model is developed"
    return "addressed", "#top", "the report's title"


def _r_summary(spec: Any, results: StudyResults) -> Verdict | None:
    return (
        "partial",
        "#summary",
        "the summary gives cohort, outcome and performance; the abstract is the authors'",
    )


def _r_question(spec: Any, results: StudyResults) -> Verdict | None:
    return ("partial", "#question", "the study question") if spec.question else None


def _r_population(spec: Any, results: StudyResults) -> Verdict | None:
    return (
        "partial",
        "#cohort",
        "the cohort definition gives the population; the intended use is the authors'",
    )


def _r_objectives(spec: Any, results: StudyResults) -> Verdict | None:
    if not spec.question:
        return None
    return "addressed", "#question", "the study question; development with internal validation"


def _r_data_source(spec: Any, results: StudyResults) -> Verdict | None:
    return "partial", "#provenance", f"registry {results.registry.source} (digest recorded)"


def _r_eligibility(spec: Any, results: StudyResults) -> Verdict | None:
    return (
        "addressed",
        "#cohort",
        "every entry, inclusion and exclusion criterion is a step of the cohort flow",
    )


def _r_preparation(spec: Any, results: StudyResults) -> Verdict | None:
    return "partial", "#models", "pre-processing (imputation, scaling) inside each training fold"


def _r_outcome(spec: Any, results: StudyResults) -> Verdict | None:
    out = getattr(spec.cohort, "outcome", None)
    if out is None:
        return None
    hz = ", ".join(h.name.removeprefix("label_") for h in results.cohort.horizons)
    return "addressed", "#cohort", f"outcome '{out.name}'" + (f", horizon {hz}" if hz else "")


def _r_predictors_listed(spec: Any, results: StudyResults) -> Verdict | None:
    return "partial", "#predictors", "the candidate predictors are listed; why these is the authors'"


def _r_predictor_definitions(spec: Any, results: StudyResults) -> Verdict | None:
    return "addressed", "#predictors", "each predictor with its codes, time window and aggregation"


def _r_sample_size(spec: Any, results: StudyResults) -> Verdict | None:
    from toolkit.study.counts import model_counts

    models = _models(results)
    if not models:
        return None
    out = getattr(spec.cohort, "outcome", None)
    outcome = out.name if out is not None else "outcome"
    parts = []
    for name, m in models.items():
        c = model_counts(m, outcome)
        parts.append(f"{name}: {c.fit[0].lower()}{c.fit[1:-1]}; {c.horizon[0].lower()}{c.horizon[1:-1]}")
    return "partial", "#model-card", "; ".join(parts) or "events per model reported"


def _r_missing_data(spec: Any, results: StudyResults) -> Verdict | None:
    return (
        "addressed",
        "#models",
        "missing values per variable in Table 1; median imputation inside each fold",
    )


def _r_data_use(spec: Any, results: StudyResults) -> Verdict | None:
    k = spec.validation.cv_folds
    return "addressed", "#models", f"{k}-fold cross-validation for evaluation; final fit on all data"


def _r_predictor_handling(spec: Any, results: StudyResults) -> Verdict | None:
    logs = sorted({f for m in spec.models for f in m.log})
    note = "numeric predictors standardised, categories as indicators"
    return "addressed", "#model-card", note + (f"; log scale: {', '.join(logs)}" if logs else "")


def _r_model_building(spec: Any, results: StudyResults) -> Verdict | None:
    return "addressed", "#model-card", "model types and fixed hyperparameters (no tuning); cross-validation"


def _r_cluster(spec: Any, results: StudyResults) -> Verdict | None:
    if _by_site(results):
        return "addressed", "#models", "performance by site"
    return None


def _r_measures(spec: Any, results: StudyResults) -> Verdict | None:
    if _model_has(results, "decision_curve", "decision_curves", "net_benefit"):
        return "addressed", "#models", "discrimination, calibration and decision curves"
    return (
        "partial",
        "#models",
        "C-index, AUROC, Brier, O/E and calibration; no decision curve (clinical utility)",
    )


def _r_no_updating(spec: Any, results: StudyResults) -> Verdict | None:
    return "not_applicable", None, "no model updating or recalibration was done"


def _r_prediction_object(spec: Any, results: StudyResults) -> Verdict | None:
    if _model_has(results, "registered_model"):
        return (
            "addressed",
            "#model-card",
            "each model is an MLflow pyfunc, registered with the alias 'candidate'",
        )
    return "partial", "#model-card", "fitted models are kept with the run; track the run to register them"


def _r_no_imbalance(spec: Any, results: StudyResults) -> Verdict | None:
    return "not_applicable", None, "no resampling or class-imbalance method is used"


def _r_fairness(spec: Any, results: StudyResults) -> Verdict | None:
    if _has_subgroups(results):
        return "partial", "#models", "performance by subgroup is reported"
    return None


def _r_model_output(spec: Any, results: StudyResults) -> Verdict | None:
    hz = sorted({int(m.horizon_days) for m in _models(results).values()})
    return "addressed", "#model-card", f"absolute risk at {', '.join(f'{h} days' for h in hz)}; no threshold"


def _r_training_vs_evaluation(spec: Any, results: StudyResults) -> Verdict | None:
    return (
        "addressed",
        "#models",
        "internal validation: evaluation folds come from the same data and criteria",
    )


def _r_code_version(spec: Any, results: StudyResults) -> Verdict | None:
    sha = results.code_version.git_sha[:10]
    return "partial", "#provenance", f"Regent code version {sha}; study.yaml saved with the run"


def _r_flow(spec: Any, results: StudyResults) -> Verdict | None:
    return "addressed", "#cohort", "cohort flow with persons and events at every step"


def _r_table1(spec: Any, results: StudyResults) -> Verdict | None:
    for name, a in results.analyses.items():
        if a.get("type") == "table1":
            return "addressed", f"#analysis-{name}", f"Table 1 ({name})"
    return None


def _r_external_only(spec: Any, results: StudyResults) -> Verdict | None:
    return "not_applicable", None, "development with internal validation; no separate evaluation data"


def _r_numbers(spec: Any, results: StudyResults) -> Verdict | None:
    if _models(results):
        return "addressed", "#models", "persons and events for each model and each fold"
    return None


def _r_model_specification(spec: Any, results: StudyResults) -> Verdict | None:
    models = _models(results)
    if not models:
        return None
    if all(m.coefficients is not None for m in models.values()) and _model_has(results, "registered_model"):
        return "addressed", "#model-card", "coefficients listed; the full model is registered in MLflow"
    if _model_has(results, "registered_model"):
        return "addressed", "#model-card", "the full model object is registered in MLflow"
    return (
        "partial",
        "#model-card",
        "coefficients listed for Cox models; track the run to register the models",
    )


def _r_performance(spec: Any, results: StudyResults) -> Verdict | None:
    if not _models(results):
        return None
    if _has_subgroups(results):
        return "addressed", "#models", "cross-validated estimates with 95% CIs, overall and by subgroup"
    return "partial", "#models", "cross-validated estimates with 95% CIs; no subgroup performance"


def _r_limitations(spec: Any, results: StudyResults) -> Verdict | None:
    return ("addressed", "#limitations", "the limitations section") if spec.report.limitations else None


RULES: dict[str, Rule] = {
    "title": _r_title,
    "summary": _r_summary,
    "question": _r_question,
    "population": _r_population,
    "objectives": _r_objectives,
    "data_source": _r_data_source,
    "eligibility": _r_eligibility,
    "preparation": _r_preparation,
    "outcome": _r_outcome,
    "predictors_listed": _r_predictors_listed,
    "predictor_definitions": _r_predictor_definitions,
    "sample_size": _r_sample_size,
    "missing_data": _r_missing_data,
    "data_use": _r_data_use,
    "predictor_handling": _r_predictor_handling,
    "model_building": _r_model_building,
    "cluster_heterogeneity": _r_cluster,
    "measures": _r_measures,
    "no_updating": _r_no_updating,
    "prediction_object": _r_prediction_object,
    "no_imbalance": _r_no_imbalance,
    "fairness": _r_fairness,
    "model_output": _r_model_output,
    "training_vs_evaluation": _r_training_vs_evaluation,
    "code_version": _r_code_version,
    "flow": _r_flow,
    "table1": _r_table1,
    "external_only": _r_external_only,
    "numbers_per_analysis": _r_numbers,
    "model_specification": _r_model_specification,
    "performance": _r_performance,
    "limitations": _r_limitations,
}

# what to add when a rule-only row finds nothing
FIXES = {
    "title": "add `title:` naming the population, the outcome and that a prediction model is developed",
    "question": "add `question:` (the healthcare context)",
    "objectives": "add `question:` stating the objective (development and internal validation)",
    "outcome": "add `cohort.outcome` with `horizons`",
    "table1": "add a `table1` analysis of the predictors",
    "limitations": "add `report.limitations`",
    "cluster_heterogeneity": "add `site_id` to `cohort.subgroups` so performance is reported by site",
    "performance": "add a model",
    "numbers_per_analysis": "add a model",
    "model_specification": "add a model",
    "sample_size": "add a model",
}


def _judge(row: dict[str, Any], spec: Any, results: StudyResults) -> Verdict:
    rule, key = row.get("rule"), row.get("statement")
    found = RULES[rule](spec, results) if rule else None
    stated = getattr(spec.report, key, None) if key else None
    if stated:
        note = f"authors: {stated}" if found is None else f"{found[2]}; authors: {stated}"
        return "addressed", "#statements", note
    if found is not None:
        if found[0] == "partial" and key:
            return "partial", found[1], f"{found[2]} — to complete, add `report.{key}` to study.yaml"
        return found
    if key:
        return "missing", None, f"add `report.{key}` to study.yaml"
    if rule == "cluster_heterogeneity" and "site_id" in getattr(spec.cohort, "subgroups", []):
        return "missing", None, "performance by site (subgroup `site_id`) is not in the results"
    return "missing", None, FIXES.get(str(rule), "not found in the report")


def tripod_checklist(spec: Any, results: StudyResults) -> Checklist:
    """Fill in TRIPOD+AI from a study spec and its ``results.json``."""
    items = []
    for row in checklist_items():
        status, where, note = _judge(row, spec, results)
        items.append(
            ChecklistItem(
                id=str(row["id"]),
                item=int(row["item"]),
                section=row["section"],
                topic=row["topic"],
                requirement=row["requirement"],
                status=status,
                where=where,
                note=note,
            )
        )
    return Checklist(tuple(items), applicable=bool(_models(results)))
