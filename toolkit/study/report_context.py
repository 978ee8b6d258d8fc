"""What the report's own sections need beyond results.json: predictor definitions, the TRIPOD+AI
checklist, the author statements and model-card details (all derived from the spec and results)."""

from __future__ import annotations

from typing import Any

from toolkit.study.counts import count, days, model_counts
from toolkit.study.results import StudyResults
from toolkit.study.spec import StudySpec
from toolkit.study.tripod import SECTION_TITLES, STATUS_LABEL, ReportStatements, tripod_checklist

MODEL_TYPES = {
    "cox": "Cox proportional hazards; risk = 1 − exp(−H0(horizon) · exp(linear predictor))",
    "xgboost_survival": "gradient-boosted trees with a Cox objective (XGBoost); Breslow baseline hazard for absolute risk",
}

STATEMENT_LABELS = {
    "abstract": "Abstract",
    "background": "Background",
    "intended_use": "Intended use",
    "out_of_scope": "Out-of-scope uses",
    "health_inequalities": "Health inequalities",
    "data_source": "Data source",
    "data_dates": "Data dates",
    "setting": "Setting",
    "treatments": "Treatments",
    "data_preparation": "Data preparation",
    "outcome_assessment": "Outcome assessment",
    "predictors": "Choice of predictors",
    "predictor_assessment": "Predictor assessment",
    "sample_size": "Sample size",
    "fairness": "Fairness",
    "ethics": "Ethics",
    "funding": "Funding",
    "conflicts": "Conflicts of interest",
    "protocol": "Protocol",
    "registration": "Registration",
    "data_sharing": "Data sharing",
    "code_sharing": "Code sharing",
    "patient_involvement": "Patient and public involvement",
    "interpretation": "Interpretation",
    "input_data_handling": "Poor or missing inputs in use",
    "user_requirements": "Users and expertise",
    "next_steps": "Next steps",
}


def _codes(f: Any, concept_sets: dict[str, Any]) -> str:
    if f.codes:
        return ", ".join(f.codes)
    codes = concept_sets.get(f.concept)
    listed = f" ({', '.join(codes)})" if isinstance(codes, list) else ""
    return f"concept set {f.concept}{listed}"


def _window(w: Any) -> str:
    start = "any time before" if w.start == "all" else f"from day {w.start_days:g}"
    return f"{start} to day {w.end_days:g}"


AGG_TEXT = {
    "present": "recorded at least once (yes/no)",
    "count": "number of records",
    "last": "last value",
    "first": "first value",
    "mean": "mean value",
    "min": "lowest value",
    "max": "highest value",
    "sum": "sum of values",
    "slope": "slope of values per day",
}


def predictor_rows(spec: StudySpec) -> list[dict[str, str]]:
    """One row per predictor: its name, where it comes from and how it is computed."""
    sets = dict(getattr(spec.cohort, "concept_sets", {}) or {})
    rows = [
        {"name": s, "source": "cohort / registry", "definition": "value at index (static attribute)"}
        for s in spec.features.static
    ]
    for w in spec.features.windows:
        definition = f"{AGG_TEXT.get(w.agg, w.agg)} of {_codes(w, sets)}, {_window(w.window)}"
        if w.value is not None and w.value.unit:
            definition += f", unit {w.value.unit}"
        if w.transform:
            definition += f"; {w.transform}-transformed"
        rows.append({"name": w.name, "source": "registry events", "definition": definition})
    return rows


def report_context(spec: StudySpec, results: StudyResults) -> dict[str, Any]:
    outcome = getattr(spec.cohort, "outcome", None)
    outcome_name = outcome.name if outcome is not None else "outcome"
    statements = [
        {"key": k, "label": STATEMENT_LABELS.get(k, k), "text": getattr(spec.report, k)}
        for k in ReportStatements.model_fields
        if getattr(spec.report, k)
    ]
    return {
        "predictors": predictor_rows(spec),
        "checklist": tripod_checklist(spec, results),
        "status_label": STATUS_LABEL,
        "section_titles": {
            **SECTION_TITLES,
            **{f"#analysis-{name}": name for name in results.analyses},
        },
        "statements": statements,
        "outcome_name": outcome_name,
        "subgroups": list(getattr(spec.cohort, "subgroups", []) or []),
        "model_specs": {m.name: m for m in spec.models},
        "model_types": MODEL_TYPES,
        # what each horizon model's numbers rest on, in the words every place uses (study/counts.py)
        "model_counts": {name: model_counts(m, outcome_name) for name, m in results.models.items()},
        "horizon_counts": [
            {"days": days(h.days), "events": count(h.events_at_horizon), "evaluable": count(h.n_evaluable)}
            for h in results.cohort.horizons
            if "n_evaluable" in h.model_fields_set
        ],
    }
