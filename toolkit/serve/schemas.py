"""Request and response models: per-agent input models generated from the agent contract (for
OpenAPI and MCP tool schemas), the prediction, and CDS Hooks 2.0 requests and cards."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, create_model

from toolkit.agents.contract import AgentContract, Impute, InputSpec


class Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def _quantity_model(spec: InputSpec, number: Any) -> type[BaseModel]:
    return create_model(
        f"{_camel(spec.name)}Quantity",
        __base__=Model,
        value=(number, ...),
        unit=(Literal[spec.unit], Field(description="Must be the contract's unit.")),  # type: ignore[arg-type]
    )


def _camel(name: str) -> str:
    return "".join(p.capitalize() for p in name.replace("-", "_").split("_"))


def _field(spec: InputSpec) -> tuple[Any, Any]:
    desc = spec.label or spec.name
    bounds: dict[str, Any] = {}
    if spec.type in ("number", "integer"):
        if spec.range is not None:
            bounds = {"ge": spec.range[0], "le": spec.range[1]}
            desc += f"; valid range {spec.range[0]}–{spec.range[1]}"
        base = int if spec.type == "integer" else float  # strict: no strings; a float accepts 3
        number = Annotated[base, Field(strict=True, allow_inf_nan=False, **bounds)]  # type: ignore[valid-type]
        tp: Any = number
        if spec.unit:
            desc += f" ({spec.unit})"
            tp = number | _quantity_model(spec, number)
    elif spec.type == "boolean":
        tp = StrictBool | Literal[0, 1]
    else:
        tp = Literal[tuple(spec.levels or ())]
    imputable = isinstance(spec.missing, Impute)
    if imputable:
        desc += f"; when missing, {spec.missing.impute} is imputed and the card says so"  # type: ignore[union-attr]
        return tp | None, Field(None, description=desc)
    return tp, Field(..., description=desc)


def inputs_model(contract: AgentContract) -> type[BaseModel]:
    """The pydantic model of one patient's inputs for ``contract`` (unknown keys refused)."""
    fields = {spec.name: _field(spec) for spec in contract.inputs}
    return create_model(f"{_camel(contract.name)}Inputs", __base__=Model, **fields)  # type: ignore[call-overload]


def request_model(contract: AgentContract) -> type[BaseModel]:
    """``{"inputs": {...}}``: the REST body of /predict and /explain."""
    return create_model(
        f"{_camel(contract.name)}Request", __base__=Model, inputs=(inputs_model(contract), ...)
    )


class ContributionOut(Model):
    input: str
    value: Any
    contribution: float = Field(description="On the model's log-hazard scale.")
    direction: Literal["raises risk", "lowers risk"]


class PredictionOut(Model):
    agent: str
    version: str
    risk: float = Field(ge=0, le=1, description="Absolute risk of the outcome by the horizon.")
    risk_group: str
    indicator: Literal["info", "warning", "critical"]
    horizon_days: float
    summary: str = Field(max_length=139)
    contributions: list[ContributionOut]
    warnings: list[str]
    imputed: list[str]
    suggestion: str | None
    inputs: dict[str, Any]
    flags: dict[str, list[str]] = Field(
        default_factory=dict,
        description="Input -> 'missing', 'imputed', 'out_of_range' (outside the training range, or "
        "outside the valid range and taken as missing); inputs without a flag are left out.",
    )


class ErrorOut(Model):
    error: str
    fields: list[str] = Field(default_factory=list)
    missing: list[str] = Field(default_factory=list)
    error_id: str | None = Field(None, description="On a 500: the id of the log line (and debug file).")


# --- CDS Hooks 2.0 -------------------------------------------------------------------------------
class FhirAuthorization(BaseModel):
    model_config = ConfigDict(frozen=True, extra="allow")
    access_token: str
    token_type: Literal["Bearer"]
    expires_in: int
    scope: str
    subject: str


class HookRequest(BaseModel):
    """A CDS Hooks 2.0 service request.  Unknown top-level fields are ignored (forward compatible)."""

    model_config = ConfigDict(frozen=True, extra="ignore")
    hook: str = Field(max_length=64)
    hookInstance: uuid.UUID = Field(description="A UUID for this hook call (stored in the audit log).")
    fhirServer: str | None = None
    fhirAuthorization: FhirAuthorization | None = None
    context: dict[str, Any]
    prefetch: dict[str, Any] | None = None
    extension: dict[str, Any] | None = None


class Link(Model):
    label: str
    url: str
    type: Literal["absolute", "smart"] = "absolute"


class Source(Model):
    label: str
    url: str | None = None


class Suggestion(Model):
    label: str
    uuid: str
    isRecommended: bool = False


class CodingOut(Model):
    system: str
    code: str
    display: str


class Card(Model):
    uuid: str
    summary: str = Field(max_length=139)
    indicator: Literal["info", "warning", "critical"]
    detail: str
    source: Source
    suggestions: list[Suggestion] | None = None
    selectionBehavior: Literal["at-most-one", "any"] | None = None
    links: list[Link] | None = None
    overrideReasons: list[CodingOut] | None = None


class CardsOut(Model):
    cards: list[Card]


class Service(Model):
    hook: str
    title: str
    description: str
    id: str
    prefetch: dict[str, str]


class Discovery(Model):
    services: list[Service]


class Coding(BaseModel):
    model_config = ConfigDict(frozen=True, extra="allow")
    system: str | None = None
    code: str | None = None


class OverrideReason(BaseModel):
    model_config = ConfigDict(frozen=True, extra="allow")
    reason: Coding | None = None
    userComment: str | None = Field(None, description="Free text: never stored (only its presence).")


class AcceptedSuggestion(BaseModel):
    model_config = ConfigDict(frozen=True, extra="allow")
    id: uuid.UUID


class FeedbackItem(BaseModel):
    model_config = ConfigDict(frozen=True, extra="allow")
    card: uuid.UUID = Field(description="The uuid of the card the feedback is about.")
    outcome: Literal["accepted", "overridden"]
    outcomeTimestamp: dt.datetime
    acceptedSuggestions: list[AcceptedSuggestion] | None = None
    overrideReason: OverrideReason | None = None


class FeedbackRequest(Model):
    feedback: list[FeedbackItem] = Field(min_length=1, max_length=100)


class FeedbackOut(Model):
    """An empty object: the feedback was recorded."""
