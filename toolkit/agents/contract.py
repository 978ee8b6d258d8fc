"""The agent contract (``agents/<name>/agent.yaml``): what an engineer deploys and a clinician
trusts.  ``regent agent schema`` prints its JSON Schema."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator

from toolkit.errors import AgentContractError, AgentError
from toolkit.specs import Frozen, load_model


class ModelSource(Frozen):
    """Which model: a registered MLflow model and alias (default ``<study name>.<model>``), or a run."""

    study: str = Field(description="The study folder, relative to the repository root.")
    model: str = Field(description="The model's name in study.yaml.")
    registered_model: str | None = None
    alias: str = "candidate"
    run_id: str | None = None


class FhirSource(Frozen):
    """Where an input comes from in FHIR R4."""

    resource: Literal["Patient", "Observation", "Condition", "MedicationStatement", "MedicationRequest"]
    field: Literal["age", "gender"] | None = Field(
        None, description="For Patient: age (from birthDate) or gender."
    )
    codes: list[str] = Field(
        default_factory=list, description="'system|code', e.g. 'http://loinc.org|33762-6'."
    )
    lookback_days: int | None = Field(None, ge=0)
    select: Literal["latest", "max", "min", "mean"] = "latest"
    present: str | float | None = Field(None, description="Value when a Condition/Medication is found.")
    absent: str | float | None = Field(None, description="Value when none is found.")
    values: dict[str, str] = Field(
        default_factory=dict, description="FHIR code -> input level (e.g. gender)."
    )

    @model_validator(mode="after")
    def _consistent(self) -> FhirSource:
        if self.resource == "Patient" and self.field is None:
            raise ValueError("a Patient source needs 'field' (age or gender)")
        if self.resource != "Patient" and not self.codes:
            raise ValueError(f"a {self.resource} source needs 'codes'")
        return self


class Impute(Frozen):
    impute: float | str


class InputSpec(Frozen):
    name: str
    label: str | None = None
    type: Literal["number", "integer", "category", "boolean"]
    unit: str | None = None
    range: tuple[float, float] | None = Field(
        None, description="Valid range; outside it the input is refused."
    )
    levels: list[str] | None = None
    fhir: FhirSource | None = None
    missing: Literal["refuse"] | Impute = "refuse"
    invalid: Literal["refuse", "missing"] = Field(
        "refuse",
        description="A value that is not a finite number or lies outside 'range': 'refuse' (422) "
        "or 'missing' (then 'missing' applies, and the card says why).",
    )

    @model_validator(mode="after")
    def _consistent(self) -> InputSpec:
        if self.type == "category" and not self.levels:
            raise ValueError("a category input needs 'levels'")
        if self.range is not None and self.range[0] > self.range[1]:
            raise ValueError("range must be [low, high]")
        return self


class RiskGroup(Frozen):
    label: str
    upper: float = Field(gt=0, le=1, description="Risks below this (and above the previous) fall here.")
    indicator: Literal["info", "warning", "critical"] = "info"
    suggestion: str | None = None


class OutputSpec(Frozen):
    horizon_days: float = Field(gt=0)
    horizon_label: str = Field(description="How the horizon reads on a card, e.g. '1-year'.")
    outcome_label: str = Field(description="e.g. 'all-cause death'.")
    risk_groups: list[RiskGroup] = Field(min_length=1)
    summary_template: str = Field(
        "{horizon_label} risk of {outcome_label}: {risk_pct} ({group})",
        description="Card summary; fields: risk_pct, group, horizon_label, outcome_label.",
    )

    @model_validator(mode="after")
    def _ordered(self) -> OutputSpec:
        uppers = [g.upper for g in self.risk_groups]
        if uppers != sorted(uppers) or uppers[-1] != 1.0:
            raise ValueError("risk_groups must have increasing 'upper' thresholds ending at 1.0")
        return self


class Owner(Frozen):
    name: str
    contact: str


class MonitoringSpec(Frozen):
    """Thresholds for ``regent agent monitor`` (docs/monitoring.md).

    A drift or rate check alerts when its value in a window passes the threshold; a calibration
    or discrimination check alerts only when the whole 95% confidence interval lies outside the
    acceptable band (a point estimate outside with an interval that reaches into the band is a
    'watch', not an alert), so chance variation in small windows does not page anyone.
    """

    window: str = Field("30d", pattern=r"^\d+[dwh]$", description="Default window: '30d', '2w', '12h'.")
    min_calls: int = Field(100, ge=1, description="Windows with fewer calls are reported, not judged.")
    psi: float = Field(0.2, gt=0, description="Input drift: population stability index above this.")
    ks: float | None = Field(
        None, gt=0, le=1, description="Input drift: binned Kolmogorov-Smirnov above this (off if null)."
    )
    prediction_psi: float = Field(0.2, gt=0, description="Prediction drift: PSI of the risk above this.")
    rate_increase: float = Field(
        0.10,
        gt=0,
        le=1,
        description="Missing, imputed and out-of-range rates: alert when a rate exceeds its "
        "development rate by more than this (absolute).",
    )
    override_rate: float | None = Field(
        0.5, gt=0, le=1, description="CDS feedback: share of overridden cards above this (off if null)."
    )
    min_feedback: int = Field(20, ge=1, description="Feedback rates are judged from this many replies.")
    o_e: tuple[float, float] = Field((0.8, 1.25), description="Observed/expected risk: [low, high].")
    calibration_slope: tuple[float, float] = Field((0.8, 1.2), description="[low, high].")
    calibration_intercept: tuple[float, float] = Field(
        (-0.3, 0.3), description="Calibration-in-the-large (logit scale, slope fixed at 1): [low, high]."
    )
    ici: float | None = Field(0.05, gt=0, description="Integrated calibration index above this.")
    c_index_min: float | None = Field(
        0.6, gt=0, lt=1, description="Discrimination: alert when the C-index's CI lies below this."
    )
    min_events: int = Field(
        20, ge=1, description="Calibration and discrimination are judged in windows with this many events."
    )
    card_notice: bool = Field(
        False,
        description="Cards say so while the agent is under an active calibration alert "
        "(the server reads the latest report from its monitoring_dir).",
    )
    clinical_owner: Owner | None = Field(
        None, description="Who acts on a calibration alert (default: the first owner)."
    )

    @model_validator(mode="after")
    def _bands(self) -> MonitoringSpec:
        for name in ("o_e", "calibration_slope", "calibration_intercept"):
            low, high = getattr(self, name)
            if low > high:
                raise ValueError(f"{name} must be [low, high]; got low > high")
        return self


class AgentContract(Frozen):
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$")
    version: str = Field(
        pattern=r"^\d+\.\d+$", description="Contract version; bundles are <version>.<model version>."
    )
    title: str
    description: str
    source: ModelSource
    inputs: list[InputSpec] = Field(min_length=1)
    output: OutputSpec
    hooks: list[Literal["patient-view", "order-sign"]] = Field(default=["patient-view"])
    intended_use: str
    target_population: str
    out_of_scope: list[str] = Field(default_factory=list)
    contraindications: list[str] = Field(default_factory=list)
    owners: list[Owner] = Field(min_length=1)
    monitoring: MonitoringSpec = Field(
        default_factory=MonitoringSpec, description="Monitoring thresholds (docs/monitoring.md)."
    )

    @property
    def clinical_owner(self) -> Owner:
        return self.monitoring.clinical_owner or self.owners[0]

    def input(self, name: str) -> InputSpec:
        for i in self.inputs:
            if i.name == name:
                return i
        raise AgentError(f"agent {self.name}: no input named {name!r}")

    def group_of(self, risk: float) -> RiskGroup:
        for g in self.output.risk_groups:
            if risk < g.upper or g.upper == 1.0:
                return g
        return self.output.risk_groups[-1]


def load_contract(path: Path | str) -> AgentContract:
    path = Path(path)
    file = path / "agent.yaml" if path.is_dir() else path
    return load_model(AgentContract, file, error=AgentContractError)


def contract_schema() -> dict[str, Any]:
    return AgentContract.model_json_schema()
