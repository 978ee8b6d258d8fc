"""``Agent.load(path)``: a verified bundle as a callable with a typed result.

Used by the server, the CLI, notebooks and batch scoring.  Loading verifies every file hash
first: a bundle edited after packaging does not load.
"""

from __future__ import annotations

import json
import math
import pickle
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from toolkit.agents.bundle import MODEL_PICKLE, REFERENCE, verify_bundle
from toolkit.agents.contract import AgentContract, Impute, InputSpec
from toolkit.agents.scoring import RowScorer, verified_row_scorer
from toolkit.analysis.predict.models import RiskModel
from toolkit.analysis.predict.reference import ReferenceDistributions
from toolkit.errors import AgentError, InputValidationError, MissingDataError


@dataclass(frozen=True)
class Contribution:
    input: str
    value: Any
    contribution: float  # on the model's log-hazard scale
    direction: str  # "raises risk" | "lowers risk"


@dataclass(frozen=True)
class Prediction:
    agent: str
    version: str
    risk: float
    risk_group: str
    indicator: str
    horizon_days: float
    summary: str
    contributions: tuple[Contribution, ...]
    warnings: tuple[str, ...] = ()
    imputed: tuple[str, ...] = ()
    suggestion: str | None = None
    inputs: Mapping[str, Any] = field(default_factory=dict)
    #: input -> what monitoring counts about it: "missing", "imputed", "out_of_range" (outside the
    #: training range, or outside the valid range and taken as missing); unflagged inputs absent
    flags: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["contributions"] = [asdict(c) for c in self.contributions]
        d["warnings"] = list(self.warnings)
        d["imputed"] = list(self.imputed)
        d["inputs"] = dict(self.inputs)
        d["flags"] = {k: list(v) for k, v in self.flags.items()}
        return d


@dataclass(frozen=True)
class CheckedInputs:
    """Validated inputs: values (imputed ones included), card warnings, imputed names, flags."""

    values: dict[str, Any]
    warnings: list[str]
    imputed: list[str]
    flags: dict[str, tuple[str, ...]]


class _InvalidValue(InputValidationError):
    """A number that is not finite or lies outside the valid range (the contract's ``invalid``)."""

    def __init__(self, name: str, why: str, message: str, *, out_of_range: bool = False) -> None:
        super().__init__(f"{name}: {message}", fields=(name,))
        self.why = why
        self.out_of_range = out_of_range


def _plain(v: Any) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float | np.integer | np.floating) and not isinstance(v, bool | np.bool_)


class Agent:
    """A loaded, verified agent bundle."""

    def __init__(
        self,
        path: Path,
        manifest: dict[str, Any],
        contract: AgentContract,
        model: RiskModel,
        bundle_hash: str,
        reference: ReferenceDistributions | None = None,
    ) -> None:
        self.path = path
        self.manifest = manifest
        self.contract = contract
        self.model = model
        self.bundle_hash = bundle_hash
        #: the development distributions monitoring compares with (None: a bundle from before them)
        self.reference = reference
        # the pandas-free scorer for one patient (None: use the model's frame path)
        self._scorer: RowScorer | None = verified_row_scorer(model)

    @property
    def name(self) -> str:
        return self.contract.name

    @property
    def version(self) -> str:
        return str(self.manifest["version"])

    @classmethod
    def load(cls, path: Path | str) -> Agent:
        path = Path(path)
        bundle_hash = verify_bundle(path)
        manifest = json.loads((path / "manifest.json").read_text(encoding="utf-8"))
        from toolkit.agents.contract import load_contract

        contract = load_contract(path / "agent.yaml")
        with (path / MODEL_PICKLE).open("rb") as fh:
            model = pickle.load(fh)  # safe: every byte was just checked against SHA256SUMS
        if not isinstance(model, RiskModel):
            raise AgentError(f"{path}: {MODEL_PICKLE} is not a Regent risk model")
        reference = None
        if (path / REFERENCE).is_file():
            try:
                reference = ReferenceDistributions.model_validate_json((path / REFERENCE).read_bytes())
            except ValueError:
                raise AgentError(f"{path}: {REFERENCE} is not a reference-distributions file") from None
        return cls(path, manifest, contract, model, bundle_hash, reference)

    # --- inputs ------------------------------------------------------------------------
    def validate(self, inputs: Mapping[str, Any]) -> tuple[dict[str, Any], list[str], list[str]]:
        """Type, unit and range checks; imputation.  Returns (values, warnings, imputed names).

        Errors name the field and what was expected, never the value received.
        """
        checked = self.check_inputs(inputs)
        return checked.values, checked.warnings, checked.imputed

    def check_inputs(self, inputs: Mapping[str, Any]) -> CheckedInputs:
        """:meth:`validate` with the monitoring flags of each input (:attr:`Prediction.flags`)."""
        if not isinstance(inputs, Mapping):
            raise InputValidationError("inputs must be a JSON object of input name -> value")
        known = {i.name: i for i in self.contract.inputs}
        unknown = sorted(set(inputs) - set(known))
        if unknown:
            raise InputValidationError(
                f"unknown input(s) {unknown}; this agent takes: {sorted(known)}", fields=tuple(unknown)
            )
        values: dict[str, Any] = {}
        warnings: list[str] = []
        imputed: list[str] = []
        missing: list[str] = []
        reasons: list[str] = []
        flags: dict[str, tuple[str, ...]] = {}
        ranges = {i["name"]: i.get("training_range") for i in self.manifest["inputs"]}
        for spec in self.contract.inputs:
            raw = inputs.get(spec.name)
            unit = None
            if isinstance(raw, Mapping):
                extra = set(raw) - {"value", "unit"}
                if extra:
                    raise InputValidationError(
                        f"{spec.name}: expected a value or {{'value', 'unit'}}; got keys {sorted(extra)}",
                        fields=(spec.name,),
                    )
                unit = raw.get("unit")
                raw = raw.get("value")
            why = "was missing"
            flag: tuple[str, ...] = ("missing",)
            if raw is not None:
                try:
                    values[spec.name] = self._check(spec, raw, unit)
                except _InvalidValue as exc:
                    if spec.invalid != "missing":
                        raise
                    why = exc.why  # the contract takes an invalid value as missing
                    flag = ("missing", "out_of_range") if exc.out_of_range else flag
                else:
                    rng = ranges.get(spec.name)
                    v = values[spec.name]
                    if rng and _is_number(v) and not (rng[0] <= v <= rng[1]):
                        flags[spec.name] = ("out_of_range",)
                        warnings.append(
                            f"{spec.label or spec.name} lies outside the range seen in training "
                            "(1st–99th percentile); the estimate is less certain"
                        )
                    continue
            flags[spec.name] = flag
            if isinstance(spec.missing, Impute):
                flags[spec.name] = (*flag, "imputed")
                values[spec.name] = spec.missing.impute
                imputed.append(spec.name)
                warnings.append(
                    f"{spec.label or spec.name} {why}; imputed {_plain(spec.missing.impute)}"
                    + (f" {spec.unit}" if spec.unit and spec.unit != "a" else "")
                )
            else:
                missing.append(spec.name)
                if why != "was missing":
                    reasons.append(f"{spec.name} {why}")
        if missing:
            detail = f" ({'; '.join(reasons)})" if reasons else ""
            raise MissingDataError(f"required input(s) missing: {missing}{detail}", fields=tuple(missing))
        return CheckedInputs(values, warnings, imputed, flags)

    def _check(self, spec: InputSpec, raw: Any, unit: Any) -> Any:
        if unit is not None and spec.unit is not None and unit != spec.unit:
            raise InputValidationError(
                f"{spec.name}: unit must be {spec.unit!r}; got a different unit", fields=(spec.name,)
            )
        if spec.type in ("number", "integer"):
            if not _is_number(raw):
                raise InputValidationError(f"{spec.name}: expected a number", fields=(spec.name,))
            try:
                x = float(raw)
            except OverflowError:  # an integer too large for a float
                x = math.inf
            if not math.isfinite(x):
                raise _InvalidValue(spec.name, "was not a finite number", "expected a finite number")
            if spec.type == "integer" and not x.is_integer():
                raise InputValidationError(f"{spec.name}: expected a whole number", fields=(spec.name,))
            if spec.range is not None and not (spec.range[0] <= x <= spec.range[1]):
                rng = f"[{spec.range[0]}, {spec.range[1]}]" + (f" {spec.unit}" if spec.unit else "")
                raise _InvalidValue(
                    spec.name,
                    f"was outside the valid range {rng}",
                    f"value outside the valid range {rng}",
                    out_of_range=True,
                )
            return x
        if spec.type == "boolean":
            if isinstance(raw, bool) or (_is_number(raw) and raw in (0, 1)):
                return float(bool(raw))
            raise InputValidationError(f"{spec.name}: expected true or false", fields=(spec.name,))
        if not isinstance(raw, str) or raw not in (spec.levels or []):
            raise InputValidationError(f"{spec.name}: expected one of {spec.levels}", fields=(spec.name,))
        return raw

    # --- prediction ----------------------------------------------------------------------
    def _row(self, values: Mapping[str, Any]) -> pd.DataFrame:
        return pd.DataFrame([{f: values[f] for f in self.model.features_in_}])

    def _score(self, values: Mapping[str, Any]) -> tuple[float, dict[str, float]]:
        """(risk, {input: contribution}) for one patient's validated values."""
        if self._scorer is not None:
            return self._scorer.score(values)
        row = self._row(values)
        contrib = self.model.contributions(row).iloc[0]
        return float(self.model.predict_risk(row)[0]), {str(k): float(contrib[k]) for k in contrib.index}

    def predict(self, inputs: Mapping[str, Any], *, top: int = 3) -> Prediction:
        checked = self.check_inputs(inputs)
        values, warnings, imputed = checked.values, checked.warnings, checked.imputed
        risk, contrib = self._score(values)
        order = sorted(contrib, key=lambda k: -abs(contrib[k]))
        contributions = tuple(
            Contribution(k, values[k], float(contrib[k]), "raises risk" if contrib[k] > 0 else "lowers risk")
            for k in (order if top <= 0 else order[:top])
        )
        group = self.contract.group_of(risk)
        out = self.contract.output
        summary = out.summary_template.format(
            risk_pct=f"{100 * risk:.0f}%",
            group=group.label,
            horizon_label=out.horizon_label,
            outcome_label=out.outcome_label,
        )
        return Prediction(
            self.name,
            self.version,
            risk,
            group.label,
            group.indicator,
            out.horizon_days,
            summary[:139],
            contributions,
            tuple(warnings),
            tuple(imputed),
            group.suggestion,
            values,
            checked.flags,
        )

    __call__ = predict

    def explain(self, inputs: Mapping[str, Any]) -> Prediction:
        """Like :meth:`predict`, with the contribution of every input."""
        return self.predict(inputs, top=0)

    def predict_frame(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Batch scoring: one validated prediction per row (errors recorded per row)."""
        rows = []
        for rec in frame.to_dict("records"):
            try:
                # a frame marks a missing value with NaN (or None): both are missing here
                p = self.predict(
                    {
                        k: None if isinstance(v, float) and math.isnan(v) else v
                        for k, v in rec.items()
                        if k in {i.name for i in self.contract.inputs}
                    }
                )
                rows.append(
                    {
                        "risk": p.risk,
                        "risk_group": p.risk_group,
                        "warnings": "; ".join(p.warnings),
                        "error": None,
                    }
                )
            except InputValidationError as exc:
                rows.append({"risk": None, "risk_group": None, "warnings": None, "error": str(exc)})
        return pd.DataFrame(rows, index=frame.index)
