"""What a tracked run says about itself: run names, the model run's count parameters, and the
description and tags of a registered model version (read by data scientists in MLflow).

Everything here is released: the counts come from a :class:`ModelResult` built under the
study's disclosure policy, never from raw data.
"""

from __future__ import annotations

from typing import Any

from toolkit.disclosure import COUNT_KEYS
from toolkit.study.counts import model_counts
from toolkit.study.plan import StudyPlan, spec_hash
from toolkit.study.results import ModelResult
from toolkit.study.tracker import ModelVersionInfo

#: (tag, point, lower, upper) of the metrics a model version carries with their 95% CIs
KEY_METRICS = (
    ("c_index", "c_harrell_mean", "c_harrell_lower", "c_harrell_upper"),
    ("auroc", "auroc_mean", "auroc_lower", "auroc_upper"),
    ("brier", "brier_mean", "brier_lower", "brier_upper"),
    (
        "calibration_slope",
        "oof_calibration_slope",
        "oof_calibration_slope_lower",
        "oof_calibration_slope_upper",
    ),
    ("o_e_ratio", "oof_o_e_ratio", "oof_o_e_ratio_lower", "oof_o_e_ratio_upper"),
)
#: what each key metric is, for the description
METRIC_LABELS = {
    "c_index": "C-index (cross-validation folds)",
    "auroc": "AUROC at the horizon (folds)",
    "brier": "Brier score at the horizon (folds)",
    "calibration_slope": "calibration slope (out-of-fold)",
    "o_e_ratio": "observed/expected risk (out-of-fold)",
}
COUNT_PARAMS = (
    "n",
    "events",
    "n_fit",
    "events_fit",
    "parameters",
    "events_per_parameter",
    "n_evaluable",
    "events_at_horizon",
)
FEATURES_TAG_LIMIT = 4000  # MLflow keeps model version tag values to 5,000 characters
DESCRIPTION_LIMIT = 5000


def run_name(plan: StudyPlan) -> str:
    """The tracked run's name: the study and the first 8 digits of its spec hash, so the runs of
    one spec share a name and a changed spec reads as a new one (``hf_mortality-3f2a9c1b``)."""
    return f"{plan.name}-{plan.spec_hash[:8]}"


def cohort_hash(plan: StudyPlan) -> str:
    """Hash of the resolved cohort spec (defaults left out, as the study's spec hash)."""
    return spec_hash(plan.cohort.model_dump(mode="json", exclude_defaults=True))


def released_model(plan: StudyPlan, raw: dict[str, Any]) -> ModelResult:
    """A model step's result as results.json will hold it (counts under the plan's policy)."""
    from toolkit.study.publish import clean

    return ModelResult.model_validate(clean(plan.policy.scrub(raw, COUNT_KEYS)))


def model_run_params(m: ModelResult) -> dict[str, Any]:
    """The counts a model's MLflow run logs as parameters (released; ``withheld`` for null)."""
    values = m.model_dump()
    return {k: ("withheld" if values.get(k) is None else values[k]) for k in COUNT_PARAMS}


def metric_text(metrics: dict[str, float | None], point: str, lower: str, upper: str) -> str | None:
    value = metrics.get(point)
    if value is None:
        return None
    lo, hi = metrics.get(lower), metrics.get(upper)
    ci = f" (95% CI {lo:.3f}–{hi:.3f})" if lo is not None and hi is not None else ""
    return f"{value:.3f}{ci}"


def model_version_info(plan: StudyPlan, name: str, m: ModelResult) -> ModelVersionInfo:
    """Description and tags of the model version a study model is registered as."""
    outcome = plan.cohort.outcome.name if plan.cohort.outcome is not None else "outcome"
    metrics = {
        tag: text
        for tag, point, lower, upper in KEY_METRICS
        if (text := metric_text(m.metrics, point, lower, upper)) is not None
    }
    counts = model_counts(m, outcome)
    features = ", ".join(m.features)
    if len(features) > FEATURES_TAG_LIMIT:
        features = features[: FEATURES_TAG_LIMIT - 40].rsplit(", ", 1)[0] + f", … ({len(m.features)} in all)"
    tags = {
        "regent.study": plan.name,
        "regent.spec_hash": plan.spec_hash,
        "regent.cohort_spec_hash": cohort_hash(plan),
        "regent.model": name,
        "regent.model_type": m.type,
        "regent.horizon_days": f"{m.horizon_days:g}",
        **{f"regent.metric.{k}": v for k, v in metrics.items()},
        **{f"regent.count.{k}": str(v) for k, v in model_run_params(m).items()},
        "regent.features": features,
    }
    title = plan.spec.title or plan.name
    lines = [
        f"{title}: `{name}`, a {m.type} model of the risk of {outcome} within {m.horizon_days:g} days "
        f"(study `{plan.name}`, spec hash `{plan.spec_hash}`, cohort spec hash `{cohort_hash(plan)}`).",
        "",
        *(f"- {METRIC_LABELS[k]}: {v}" for k, v in metrics.items()),
        "",
        *counts.lines(),
        "",
        f"Features ({len(m.features)}): {', '.join(m.features)}.",
    ]
    description = "\n".join(lines)
    if len(description) > DESCRIPTION_LIMIT:
        description = description[: DESCRIPTION_LIMIT - 1] + "…"
    return ModelVersionInfo(description, tags, tuple(m.features))


def experiment_description(plan: StudyPlan) -> str:
    """The experiment's description (MLflow shows it above the runs)."""
    spec = plan.spec
    parts = [f"**{spec.title or spec.name}** (Regent study `{spec.name}`)."]
    if spec.question:
        parts.append(spec.question.strip())
    parts.append(
        "One run per `regent study run`, named `<study>-<spec hash>`; a nested run per model and per "
        "fold. Compare two runs with `regent runs compare RUN_A RUN_B`."
    )
    return "\n\n".join(parts)
