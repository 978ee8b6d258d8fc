"""``StudyResults``: the typed form of results.json.  Its JSON *is* the file on disk.

Every reader (gates, bundle, model card, report, TRIPOD+AI checklist, ``regent runs compare``,
the CLI) reads attributes of these models; ``regent study results-schema`` prints the JSON Schema
and docs/results.md's tables are generated from the field descriptions below
(:mod:`toolkit.study.results_doc`).

Writing keeps exactly the keys a run set: ``to_json()`` dumps with ``exclude_unset``, so an
optional block (``external``, ``search``, ``federated``, the MLflow keys of a model) appears only
when the run produced it, and a run's file round-trips through this model unchanged.  Analysis
entries stay plain JSON objects: each is the entry its kind's ``run`` returns, and each kind
documents its own keys (docs/results.md, one section per kind).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from toolkit.analysis.predict.reference import ReferenceDistributions
from toolkit.errors import StudySpecError

RESULTS_SCHEMA_VERSION = "1.1"

Number = float | int  # kept as written: pydantic's smart union leaves 299.0 a float and 5 an int
Json = dict[str, Any]


class ResultModel(BaseModel):
    """Base of the results models: immutable; an unknown key is a schema error."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class RegistryInfo(ResultModel):
    source: str = Field(
        description="Where the data came from: the study.yaml `path`, `dataset:<name>`, "
        "`synthetic:patients=<n>,sites=<s>,seed=<k>`, the `--registry` override, or `federated:<sites>`."
    )
    digest: str = Field(
        description="The registry's content digest, `sha256:…` (federated: the sites' combined)."
    )


class CodeVersion(ResultModel):
    git_sha: str = Field(description="Commit of the toolkit checkout, or `unknown`.")
    git_dirty: str = Field(description="`true`/`false` (tracked files modified) or `unknown`: a string.")
    package_version: str | None = Field(
        None, description="Only without git: the installed regent-toolkit version."
    )


class DisclosureInfo(ResultModel):
    min_cell: int = Field(description="Smallest count released (default 10).")
    rounding: int | None = Field(description="Released counts are rounded to this base; null = no rounding.")
    enabled: bool = Field(
        description="False only if the study turned disclosure control off (the report says so)."
    )


class Horizon(ResultModel):
    name: str = Field(description="The label column, e.g. `label_1826d`.")
    days: Number = Field(description="The horizon in days.")
    n_evaluable: int | None = Field(
        None, description="Cohort persons whose label is known (1 or 0): status at the horizon known."
    )
    events_at_horizon: int | None = Field(
        None, description="Cohort persons whose label is 1: the outcome by the horizon."
    )


class AttritionRow(ResultModel):
    step: str = Field(description="The attrition step, in order.")
    kind: str = Field(description="registry, entry, observation, age, inclusion, exclusion or washout.")
    n: int | None = Field(description="Persons remaining after the step.")
    removed: int | None = Field(description="Persons the step removed.")
    events: Number | None = Field(
        description="Outcome events remaining (null on `registry persons` and without an outcome)."
    )
    suppressed: dict[str, str] | None = Field(
        None,
        description="Only when a count of the row is withheld (null): column -> `small` (1..k-1) or "
        "`complementary` (withheld so that no small count can be derived).",
    )


class CohortInfo(ResultModel):
    name: str = Field(description="The cohort spec's `name`.")
    n: int | None = Field(description="Persons in the cohort (distinct person_id).")
    events: int | None = Field(description="Cohort rows with event == 1 (the outcome, not competing events).")
    horizons: list[Horizon] = Field(
        description="One per outcome horizon: `{name, days, n_evaluable, events_at_horizon}`, the counts "
        "from the cohort's label column (null when a part they split the persons into is 1..k-1)."
    )
    attrition: list[AttritionRow] = Field(description="One row per attrition step (docs/cohorts.md).")


class ValidationInfo(ResultModel):
    cv_folds: int = Field(description="Cross-validation folds.")
    bootstrap: int = Field(description="Bootstrap replicates behind the out-of-fold CIs.")
    optimism_bootstrap: int = Field(description="Refits for Harrell's optimism correction.")
    optimism_failed: int = Field(description="Optimism refits whose fit failed.")
    development: str = Field(
        description="The development data, in a sentence (all persons, or outside the external split)."
    )


class CalibrationDecile(ResultModel):
    group: int
    n: int | None
    predicted_risk: float | None
    observed_risk: float | None
    observed_lower: float | None
    observed_upper: float | None
    suppressed: bool | None = None


class CalibrationPoint(ResultModel):
    predicted_risk: float | None
    observed_risk: float | None


class ThresholdRow(ResultModel):
    threshold: float
    positive_fraction: float | None
    sensitivity: float | None
    specificity: float | None
    ppv: float | None
    npv: float | None
    net_benefit: float | None
    suppressed: bool | None = None
    n_positive: int | None = None


class DecisionPoint(ResultModel):
    threshold: float
    net_benefit: float | None
    treat_all: float | None
    treat_none: float | None


class SubgroupGap(ResultModel):
    variable: str
    metric: str
    gap: float | None
    highest: str | None
    lowest: str | None


class Subgroups(ResultModel):
    variables: dict[str, list[Json]] = Field(
        description="Per subgroup variable, cells `{level, n, events, n_evaluable, events_at_horizon, metrics, "
        "warnings}` or `{level, suppressed: true}`; `events` over all follow-up, `events_at_horizon` by the horizon "
        "among the `n_evaluable` (null in every cell of a variable when one cell's would be 1..k-1)."
    )
    gaps: list[SubgroupGap] = Field(
        description="The largest gap per variable and metric (highest - lowest level)."
    )


class ModelResult(ResultModel):
    """One prediction model: development, cross-validation, calibration, subgroups, external."""

    type: str = Field(description="`cox`, `xgboost_survival`, `logistic` or `xgboost`.")
    task: str = Field(description="`survival` (time and event) or `binary` (the 0/1 label at the horizon).")
    horizon_days: Number = Field(description="Prediction horizon in days.")
    features: list[str] = Field(description="Features used (default: every study feature).")
    n: int | None = Field(description="Development persons.")
    events: int | None = Field(
        description="Outcome events (event == 1) over all follow-up of the development persons, "
        "however late: not the events at the horizon (`events_at_horizon`)."
    )
    n_evaluable: int | None = Field(
        description="Persons whose status at the horizon is known (outcome by then, outcome-free at it, or "
        "a competing event before it): what every metric at the horizon rests on."
    )
    events_at_horizon: int | None = Field(
        None,
        description="Outcome events by the horizon among the `n_evaluable` persons (their label is 1): "
        "discrimination, calibration and net benefit at the horizon rest on these, not on `events`.",
    )
    n_fit: int | None = Field(
        None,
        description="Persons the fit uses: all development persons (survival), or the `n_evaluable` "
        "(binary: the 0/1 label at the horizon).",
    )
    events_fit: int | None = Field(
        None,
        description="Events the fit uses: `events` (survival: every event over follow-up) or "
        "`events_at_horizon` (binary).",
    )
    parameters: int | None = Field(
        None,
        description="Candidate parameters: design columns after coding (one per numeric input, per "
        "non-reference level, per spline basis column; no intercept).",
    )
    events_per_parameter: float | None = Field(
        None, description="`events_fit` / `parameters` (one decimal); null when `events_fit` is withheld."
    )
    validation: ValidationInfo = Field(description="How the model was validated.")
    metrics: dict[str, float | None] = Field(
        description="Flat numeric metrics (docs/results.md, `metrics` keys)."
    )
    folds: list[dict[str, float | int | None]] = Field(
        description="Per-fold point metrics and `fold` (0-based)."
    )
    calibration_outcome: str = Field(
        description="`binary` (nobody censored before h) or `pseudo` (pseudo-observations)."
    )
    calibration_deciles: list[CalibrationDecile] = Field(description="Per decile of out-of-fold risk.")
    calibration_curve: list[CalibrationPoint] = Field(
        description="Loess-smoothed calibration curve (out-of-fold)."
    )
    thresholds: list[ThresholdRow] = Field(
        description="Censoring-aware classification at each validation threshold."
    )
    decision_curve: list[DecisionPoint] = Field(description="Net benefit against treat-all and treat-none.")
    warnings: list[str] = Field(description="What could not be computed and why.")
    importance: dict[str, float] = Field(description="Input -> mean absolute contribution, largest first.")
    subgroups: Subgroups | None = Field(
        None, description="Metrics per level of each cohort subgroup variable."
    )
    external: Json | None = Field(
        None, description="Only with validation.external: the same on the held-out persons."
    )
    search: Json | None = Field(
        None, description="Only with a search grid: metric, inner_folds, grid, best_params, scores."
    )
    coefficients: dict[str, float] | None = Field(
        None, description="cox and logistic: design column -> coefficient."
    )
    reference: ReferenceDistributions | None = Field(
        None,
        description="Binned distributions of every input and of the predicted risk in the development "
        "data, every bin at least the minimum cell: what monitoring in service compares with "
        "(docs/monitoring.md); carried into agent bundles as reference.json.",
    )
    mlflow_run_id: str | None = Field(None, description="Only when tracked: the model's child run.")
    model_uri: str | None = Field(None, description="Only when tracked: the logged model's URI.")
    registered_model: str | None = Field(
        None, description="Only when tracked: the registered model, `<study>.<model>`."
    )
    model_version: int | None = Field(None, description="Only when tracked: its version.")


class DataQualityRow(ResultModel):
    modality: str
    issue: str
    count: int | None


class FederatedInfo(ResultModel):
    """How a federated run went: transport, sites, rounds, bytes, options, what was not run."""

    transport: str = Field(description="How sites were reached: `inprocess` or `flower`.")
    sites: list[str] = Field(description="The sites, in order.")
    rounds: int = Field(description="Request/reply rounds the run took.")
    bytes_sent: int = Field(description="Bytes the coordinator sent (all sites).")
    bytes_received: int = Field(description="Bytes the sites answered.")
    seconds: Number = Field(description="Wall time of the run.")
    exact: bool = Field(description="Whether exact per-time counts were asked for (else shared bins).")
    time_base_days: Number = Field(description="Binned mode: the base grid of follow-up times, days.")
    value_base_sd: Number = Field(description="Binned mode: the base grid of Table 1 values, in pooled SDs.")
    timeout_s: Number = Field(description="How long the coordinator waited for a round's replies.")
    mode: str = Field(description="`binned` or `exact`.")
    time_bins: dict[str, list[Number]] = Field(
        description="Binned mode: shared bin edges per analysis, in days."
    )
    analyses_not_run: list[Json] = Field(
        description="Analyses the federated run did not compute, with the reason."
    )
    models_not_run: list[Json] = Field(description="Models it did not fit, with the reason.")


class StudyResults(ResultModel):
    """results.json: everything a study run released, after disclosure control."""

    schema_version: str = Field(description="Version of this schema.")
    study: str = Field(description="`name` from study.yaml.")
    title: str = Field(description="`title` from study.yaml (may be empty).")
    mlflow_run_id: str | None = Field(description="The MLflow run of this study; null when not tracked.")
    registry: RegistryInfo = Field(description="The registry the run read.")
    spec_hash: str = Field(description="First 16 hex digits of a SHA-256 over the whole study spec.")
    code_version: CodeVersion = Field(description="The code that ran.")
    seed: int = Field(description="The study seed (CV folds, XGBoost).")
    disclosure: DisclosureInfo = Field(description="The disclosure policy every count passed through.")
    cohort: CohortInfo = Field(description="The cohort: size, events, horizons and attrition (below).")
    analyses: dict[str, Json] = Field(
        description="Each analysis' entry, keyed by name; its keys are its kind's."
    )
    models: dict[str, ModelResult] = Field(description="Each prediction model, keyed by name.")
    data_quality: list[DataQualityRow] = Field(
        description="Notes and images the feature step could not use as they were."
    )
    federated: FederatedInfo | None = Field(
        None, description="Only in a federated run: how it went (docs/privacy.md)."
    )

    def to_json(self) -> Json:
        """The dict written as results.json (only the keys the run set)."""
        return self.model_dump(mode="json", exclude_unset=True)

    def model(self, name: str) -> ModelResult:
        """A model by name; the error names the models there are."""
        found = self.models.get(name)
        if found is None:
            raise StudySpecError(
                f"results of study {self.study!r} have no model {name!r}; available: {sorted(self.models)}"
            )
        return found


def read_results(path: Path | str) -> StudyResults:
    """Read a results.json (or the folder that holds one) into :class:`StudyResults`."""
    from pydantic import ValidationError

    from toolkit.specs import validation_message

    p = Path(path)
    p = p / "results.json" if p.is_dir() else p
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise StudySpecError(f"{p}: not a readable results.json ({type(exc).__name__})") from None
    try:
        return StudyResults.model_validate(data)
    except ValidationError as exc:
        raise StudySpecError(validation_message(str(p), exc)) from None
