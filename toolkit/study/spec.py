"""The study specification (``study.yaml``): registry, cohort, features, analyses, models,
validation, gates and disclosure settings.  ``regent study schema`` prints its JSON Schema.

A study that names a column, concept set, analysis input or model that does not exist fails
in :func:`validate_references` before any computation, naming the study.yaml key and the
available names.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from toolkit.cohort.spec import CohortSpec, check_cohort, parse_offset, resolve_concepts
from toolkit.errors import StudySpecError
from toolkit.features.windows import FeatureSpec
from toolkit.specs import Frozen, PositiveDuration, parse_model, read_yaml
from toolkit.study.dictionary import Variable
from toolkit.study.kinds import Analysis, column_problems
from toolkit.study.missing import MissingSpec
from toolkit.study.tripod import ReportStatements


class SyntheticRegistry(Frozen):
    patients: int = Field(5000, ge=1)
    sites: int = Field(3, ge=1, le=99)
    seed: int = 0
    notes: bool = Field(True, description="Generate clinical notes.")
    images: bool = Field(True, description="Generate DICOM images.")


class RegistrySource(Frozen):
    """Exactly one of: a registry file, a shipped dataset, or a synthetic registry."""

    path: str | None = Field(None, description="Registry file, relative to the study folder.")
    dataset: str | None = Field(None, description="A shipped dataset: gbsg2, whas500, lung, ...")
    synthetic: SyntheticRegistry | None = Field(None, description="Build the synthetic HF registry.")

    @model_validator(mode="after")
    def _one(self) -> RegistrySource:
        if sum(x is not None for x in (self.path, self.dataset, self.synthetic)) != 1:
            raise ValueError("give exactly one of 'path', 'dataset' or 'synthetic'")
        return self


class ModelSpecItem(Frozen):
    name: str
    type: Literal["cox", "xgboost_survival", "logistic", "xgboost"]
    horizon: PositiveDuration
    features: list[str] | None = Field(None, description="Default: every feature.")
    log: list[str] = Field(default_factory=list, description="Numeric features modelled on the log scale.")
    splines: list[str] = Field(
        default_factory=list,
        description="Continuous features entered as a cubic B-spline basis (cox, logistic); "
        "params.spline_knots sets the knots (default 4, at quantiles).",
    )
    params: dict[str, float | int | str | bool] = Field(default_factory=dict)
    search: dict[str, list[float | int | str | bool]] = Field(
        default_factory=dict,
        description="Hyperparameter grid, e.g. {penalty: [0.1, 1, 10]}: searched by inner "
        "cross-validation inside every training set (nested), never on the persons tested.",
    )
    search_folds: int = Field(3, ge=2, le=10, description="Inner folds of the search.")
    search_metric: Literal["brier_ipcw", "brier", "auroc", "c_harrell"] = Field(
        "brier_ipcw", description="What the search optimises (pooled inner out-of-fold)."
    )

    @property
    def horizon_days(self) -> float:
        return parse_offset(self.horizon)


class ExternalValidationSpec(Frozen):
    """A part of the cohort held out for external validation: by the values of a column (e.g.
    ``{by: site_id, values: [SITE03]}``) or by index date (``{index_after: 2021-01-01}``)."""

    by: str | None = Field(None, description="Column whose values pick the external persons.")
    values: list[str | int] = Field(default_factory=list, description="The held-out values of 'by'.")
    index_after: dt.date | None = Field(None, description="Persons indexed on or after this date.")

    @model_validator(mode="after")
    def _one(self) -> ExternalValidationSpec:
        if (self.by is None) == (self.index_after is None):
            raise ValueError("give either 'by' with 'values', or 'index_after'")
        if self.by is not None and not self.values:
            raise ValueError("'by' needs 'values': the values held out for external validation")
        return self


class ValidationSpec(Frozen):
    cv_folds: int = Field(5, ge=2, le=20)
    bootstrap: int = Field(
        200, ge=0, le=5000, description="Bootstrap replicates for CIs of out-of-fold and external metrics."
    )
    optimism_bootstrap: int = Field(
        40, ge=0, le=1000, description="Refits for Harrell's optimism correction (0 = none; rms uses 40)."
    )
    thresholds: list[Annotated[float, Field(gt=0, lt=1)]] = Field(
        default_factory=lambda: [0.05, 0.1, 0.2, 0.3, 0.5],
        description="Risk thresholds of the threshold table (sensitivity, specificity, PPV, NPV).",
    )
    external: ExternalValidationSpec | None = None
    ibs_from_zero: bool = Field(
        False,
        description="Integrate the Brier score over [0, h] (as riskRegression's crps) instead of "
        "[h/10, h]; the first reads about 10 % lower.",
    )


class GateSpec(Frozen):
    """Conditions a model must meet before it may be packaged as an agent."""

    model: str | None = Field(None, description="Which model the gates apply to (default: all).")
    c_index_lower_min: float | None = Field(None, description="Lower CI bound of the CV C-index.")
    auroc_lower_min: float | None = None
    min_events: int | None = None
    o_e_ratio_range: tuple[float, float] | None = None
    calibration_slope_range: tuple[float, float] | None = Field(
        None, description="The out-of-fold calibration slope (oof_calibration_slope) must lie in [low, high]."
    )
    subgroup_gap_max: float | None = Field(
        None, description="Largest gap across the levels of any declared subgroup, in subgroup_gap_metric."
    )
    subgroup_gap_metric: Literal[
        "c_harrell", "auroc", "auc_td", "brier", "brier_ipcw", "calibration_slope", "citl", "o_e_ratio", "ici"
    ] = "c_harrell"
    external_validation_required: bool = Field(
        False, description="The model must have been validated on a held-out split (validation.external)."
    )


class DisclosureSpec(Frozen):
    min_cell: int = Field(10, ge=1, description="Counts between 1 and min_cell-1 are suppressed.")
    rounding: int | None = Field(None, ge=1, description="Round released counts to this base.")
    enabled: bool = Field(True, description="Turning it off is stated in the report.")


class ReportSpec(ReportStatements):
    """The report's limitations and authors, and the author statements TRIPOD+AI asks for."""

    limitations: list[str] = Field(default_factory=list)
    authors: list[str] = Field(default_factory=list)


class StudySpec(Frozen):
    name: str
    title: str = ""
    question: str = ""
    registry: RegistrySource
    cohort: CohortSpec | str = Field(description="Inline cohort, or a file relative to the study folder.")
    features: FeatureSpec = Field(default_factory=FeatureSpec)
    analyses: list[Analysis] = Field(default_factory=list)
    models: list[ModelSpecItem] = Field(default_factory=list)
    validation: ValidationSpec = Field(default_factory=ValidationSpec)
    gates: list[GateSpec] = Field(default_factory=list)
    disclosure: DisclosureSpec = Field(default_factory=DisclosureSpec)
    report: ReportSpec = Field(default_factory=ReportSpec)
    dictionary: dict[str, Variable] = Field(
        default_factory=dict,
        description="Label, unit and level order of variables, used wherever the report and its "
        "figures name them (display only; computations keep the codes).",
    )
    missing: MissingSpec = Field(
        default_factory=MissingSpec,
        description="What regressions (cox, logistic, aft, fine_gray) do with incomplete persons.",
    )
    seed: int = 0


def load_study(path: Path | str) -> tuple[StudySpec, Path]:
    """Read ``study.yaml`` (a folder or the file); resolve the cohort file and concept sets.

    Returns the spec with an inline cohort and the study folder.
    """
    path = Path(path)
    file = path / "study.yaml" if path.is_dir() else path
    spec = parse_model(
        StudySpec, read_yaml(file, error=StudySpecError), source=str(file), error=StudySpecError
    )
    base = file.parent
    if isinstance(spec.cohort, str):
        from toolkit.cohort.spec import cohort_from_dict
        from toolkit.errors import CohortSpecError

        cfile = base / spec.cohort
        try:
            cohort = cohort_from_dict(
                read_yaml(cfile, error=CohortSpecError), source=str(cfile), base=cfile.parent
            )
        except CohortSpecError as exc:
            raise StudySpecError(f"{file}: cohort: {exc}") from None
    else:
        cohort = resolve_concepts(spec.cohort, base)
        try:
            check_cohort(cohort, str(file), prefix="cohort.")
        except StudySpecError:
            raise
        except Exception as exc:
            raise StudySpecError(str(exc)) from None
    return spec.model_copy(update={"cohort": cohort}), base


def validate_references(spec: StudySpec, *, source: str, cohort_columns: list[str]) -> None:
    """Check every name the study uses against what exists; raise naming key and choices."""
    assert isinstance(spec.cohort, CohortSpec)
    problems: list[str] = []
    feature_names = list(spec.features.static) + [w.name for w in spec.features.windows]
    for i, s in enumerate(spec.features.static):
        if s not in cohort_columns:
            problems.append(
                f"{source}: features.static[{i}]: unknown column {s!r}; available: {sorted(cohort_columns)}"
            )
    columns = sorted(set(cohort_columns) | set(feature_names))

    problems += column_problems(list(spec.analyses), columns, source=source)
    known = {*columns, "time", "event"}
    for name in spec.dictionary:
        if name not in known:
            problems.append(
                f"{source}: dictionary.{name}: unknown variable {name!r}; available: {sorted(known)}"
            )
    for i, m in enumerate(spec.models):
        for j, f in enumerate(m.log):
            if f not in (m.features or feature_names):
                problems.append(f"{source}: models[{i}].log[{j}]: {f!r} is not a feature of this model")
        for j, f in enumerate(m.features or []):
            if f not in feature_names:
                problems.append(
                    f"{source}: models[{i}].features[{j}]: unknown feature {f!r}; available: {feature_names}"
                )
        problems += _model_problems(m, i, feature_names, source)
    names = [a.name for a in spec.analyses] + [m.name for m in spec.models]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        problems.append(f"{source}: analyses/models: duplicate names {dupes}")
    model_names = [m.name for m in spec.models]
    for i, g in enumerate(spec.gates):
        if g.model is not None and g.model not in model_names:
            problems.append(
                f"{source}: gates[{i}].model: unknown model {g.model!r}; available: {model_names}"
            )
    if spec.models and spec.cohort.outcome is None:
        problems.append(f"{source}: models: a prediction model needs cohort.outcome")
    ext = spec.validation.external
    if spec.models and ext is not None and ext.by is not None and ext.by not in columns:
        problems.append(f"{source}: validation.external.by: unknown column {ext.by!r}; available: {columns}")
    for i, g in enumerate(spec.gates):
        if g.subgroup_gap_max is not None and not spec.cohort.subgroups:
            problems.append(f"{source}: gates[{i}].subgroup_gap_max: the cohort declares no subgroups")
    if problems:
        raise StudySpecError("\n".join(problems))


def _model_problems(m: ModelSpecItem, i: int, feature_names: list[str], source: str) -> list[str]:
    """Splines, parameters and search grids a model type does not take."""
    from toolkit.analysis.predict.models import MODELS

    cls = MODELS[m.type]
    allowed = sorted(cls.PARAMS | cls.COMMON)
    out = []
    for j, f in enumerate(m.splines):
        if not cls.linear:
            out.append(f"{source}: models[{i}].splines: {m.type} takes no splines (cox and logistic do)")
            break
        if f not in (m.features or feature_names):
            out.append(f"{source}: models[{i}].splines[{j}]: {f!r} is not a feature of this model")
    for key, what in (("params", m.params), ("search", m.search)):
        for k in what:
            if k not in allowed:
                out.append(
                    f"{source}: models[{i}].{key}.{k}: unknown parameter for {m.type}; available: {allowed}"
                )
    return out


def study_schema() -> dict[str, Any]:
    return StudySpec.model_json_schema()
