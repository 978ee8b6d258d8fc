"""Risk models with one estimator interface: absolute risk at a horizon, and explanations.

Every model is a scikit-learn style estimator (``__init__`` stores parameters, ``fit`` returns
self, fitted state ends in ``_``) over a pandas frame of raw features, with:

* ``fit(X, time, event)`` (survival models) or ``fit(X, time, event)`` using the horizon label
  for binary models (persons censored before the horizon are left out of a binary fit);
* ``predict_risk(X)``: absolute risk of the event by ``horizon`` days;
* ``contributions(X)``: per-feature additive contributions on the model's link scale
  (Cox: ``beta_j * (x_j - mean_j)``; XGBoost: its built-in SHAP values).

A :class:`Preprocessor` (median imputation, optional missing indicators, one-hot coding of
text columns, standardisation) is fitted inside ``fit`` so cross-validation never leaks.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from toolkit.analysis.design import is_categorical
from toolkit.analysis.survival.cox import baseline_cumhaz, cox_stats, newton_raphson
from toolkit.errors import AnalysisError


@dataclass
class Preprocessor:
    """Impute, code and scale raw features into a numeric matrix (fitted on training data)."""

    standardize: bool = True
    missing_indicators: bool = False
    log: tuple[str, ...] = ()  # numeric inputs modelled on the log scale (values must be > 0)
    numeric_: list[str] = field(default_factory=list)
    categorical_: dict[str, list[str]] = field(default_factory=dict)
    medians_: dict[str, float] = field(default_factory=dict)
    means_: np.ndarray | None = None
    scales_: np.ndarray | None = None
    names_: list[str] = field(default_factory=list)
    ranges_: dict[str, tuple[float, float]] = field(default_factory=dict)
    with_missing_: list[str] = field(default_factory=list)

    def fit(self, x: pd.DataFrame) -> Preprocessor:
        self.numeric_, self.categorical_ = [], {}
        for c in x.columns:
            if is_categorical(x[c]):
                levels = sorted(x[c].dropna().astype(str).unique())
                self.categorical_[c] = levels
            else:
                self.numeric_.append(c)
                col = self._numeric(x, c)
                med = float(col.median()) if col.notna().any() else 0.0
                self.medians_[c] = med
                raw_col = x[c].astype(float)
                if raw_col.notna().any():
                    # percentiles, not min/max: an extreme is one patient's value
                    self.ranges_[c] = (float(raw_col.quantile(0.01)), float(raw_col.quantile(0.99)))
        self.with_missing_ = [c for c in self.numeric_ if self.missing_indicators and x[c].isna().any()]
        raw = self._raw(x)
        self.means_ = raw.mean(axis=0) if self.standardize else np.zeros(raw.shape[1])
        sd = raw.std(axis=0) if self.standardize else np.ones(raw.shape[1])
        self.scales_ = np.where(sd > 0, sd, 1.0)
        return self

    def _numeric(self, x: pd.DataFrame, c: str) -> pd.Series:
        col = x[c].astype(float)
        return pd.Series(np.log(col.where(col > 0)), index=x.index) if c in self.log else col

    def _raw(self, x: pd.DataFrame) -> np.ndarray:
        cols: list[np.ndarray] = []
        names: list[str] = []
        for c in self.numeric_:
            if c not in x.columns:
                raise AnalysisError(f"feature {c!r} is missing from the input")
            cols.append(self._numeric(x, c).fillna(self.medians_[c]).to_numpy(float))
            names.append(f"log_{c}" if c in self.log else c)
        for c in self.with_missing_:
            cols.append(x[c].isna().to_numpy(dtype=float))
            names.append(f"{c}_missing")
        for c, levels in self.categorical_.items():
            s = x[c].astype("string")
            for level in levels[1:]:
                cols.append((s == level).fillna(False).to_numpy(dtype=float))
                names.append(f"{c}={level}")
        self.names_ = names
        return np.column_stack(cols) if cols else np.zeros((len(x), 0))

    def transform(self, x: pd.DataFrame) -> np.ndarray:
        if self.means_ is None or self.scales_ is None:
            raise AnalysisError("Preprocessor used before fit")
        return (self._raw(x) - self.means_) / self.scales_

    def feature_of(self, name: str) -> str:
        """The raw input a design column comes from (``tgrade=II`` -> ``tgrade``)."""
        base = name.split("=")[0].removesuffix("_missing")
        return base.removeprefix("log_") if base.startswith("log_") and base[4:] in self.log else base


BASELINE_GRID_DAYS = 7.0


def coarse_baseline(
    times: np.ndarray, cumhaz: np.ndarray, *, keep: tuple[float, ...] = ()
) -> tuple[np.ndarray, np.ndarray]:
    """The baseline cumulative hazard on a weekly grid (plus the ``keep`` times, e.g. the horizon,
    where it is exact), so a fitted model carries no individual event times."""
    if len(times) == 0:
        return np.zeros(1), np.zeros(1)
    grid = np.arange(0.0, float(times[-1]) + BASELINE_GRID_DAYS, BASELINE_GRID_DAYS)
    grid = np.unique(np.concatenate([grid, np.asarray(keep, float)]))
    idx = np.searchsorted(times, grid, side="right") - 1
    return grid, np.where(idx >= 0, cumhaz[np.maximum(idx, 0)], 0.0)


class RiskModel:
    """Base of all risk models."""

    kind = "base"
    task = "survival"

    def __init__(self, *, horizon: float, features: Sequence[str] | None = None, **params: Any) -> None:
        self.horizon = float(horizon)
        self.features = list(features) if features is not None else None
        self.params = dict(params)

    def get_params(self) -> dict[str, Any]:
        return {"horizon": self.horizon, "features": self.features, **self.params}

    def _x(self, x: pd.DataFrame) -> pd.DataFrame:
        cols = self.features_in_
        missing = [c for c in cols if c not in x.columns]
        if missing:
            raise AnalysisError(f"{self.kind}: features {missing} missing from the input")
        return x[cols]

    def fit(self, x: pd.DataFrame, time: np.ndarray, event: np.ndarray) -> RiskModel:
        self.features_in_ = list(self.features) if self.features is not None else list(x.columns)
        self.pre_ = Preprocessor(standardize=self.standardize, log=tuple(self.params.get("log", ())))
        self.pre_.fit(self._x(x))
        z = self.pre_.transform(self._x(x))
        self._fit(z, np.asarray(time, float), (np.asarray(event).astype(int) == 1).astype(float))
        return self

    standardize = True

    def _fit(self, z: np.ndarray, time: np.ndarray, event: np.ndarray) -> None:
        raise NotImplementedError

    def predict_lp(self, x: pd.DataFrame) -> np.ndarray:
        raise NotImplementedError

    def predict_risk(self, x: pd.DataFrame) -> np.ndarray:
        raise NotImplementedError

    def design_contributions(self, x: pd.DataFrame) -> tuple[np.ndarray, list[str]]:
        raise NotImplementedError

    def contributions(self, x: pd.DataFrame) -> pd.DataFrame:
        """Per raw input, the additive contribution to the linear predictor (design columns summed)."""
        contrib, names = self.design_contributions(x)
        frame = pd.DataFrame(contrib, columns=names, index=x.index)
        grouped = frame.T.groupby([self.pre_.feature_of(n) for n in names], sort=False).sum().T
        return grouped[[c for c in self.features_in_ if c in grouped.columns]]

    @property
    def training_ranges(self) -> Mapping[str, tuple[float, float]]:
        return self.pre_.ranges_


class CoxRiskModel(RiskModel):
    """Cox PH as a predictor of absolute risk: ``1 - exp(-H0(h) * exp(lp))`` (Breslow/Efron H0).

    ``penalty`` adds a ridge term to stabilise fits with many features (0 = plain Cox).
    """

    kind = "cox"

    def _fit(self, z: np.ndarray, time: np.ndarray, event: np.ndarray) -> None:
        if event.sum() == 0:
            raise AnalysisError("cox: no events in the training data")
        penalty = float(self.params.get("penalty", 0.0))
        ties = self.params.get("ties", "efron")

        def fn(b: np.ndarray):
            s = cox_stats(z, time, event, None, b, ties=ties)
            if penalty:
                s = type(s)(
                    s.loglik - 0.5 * penalty * float(b @ b),
                    s.score - penalty * b,
                    s.information + penalty * np.eye(len(b)),
                )
            return s

        self.coef_, _, _ = newton_raphson(fn, z.shape[1], what="Cox risk model")
        self.base_times_, self.base_cumhaz_ = coarse_baseline(
            *baseline_cumhaz(z, time, event, self.coef_, ties=ties), keep=(self.horizon,)
        )

    def _h0(self, t: float) -> float:
        i = int(np.searchsorted(self.base_times_, t, side="right")) - 1
        return 0.0 if i < 0 else float(self.base_cumhaz_[i])

    def predict_lp(self, x: pd.DataFrame) -> np.ndarray:
        return np.asarray(self.pre_.transform(self._x(x)) @ self.coef_)

    def predict_risk(self, x: pd.DataFrame) -> np.ndarray:
        return np.asarray(1.0 - np.exp(-self._h0(self.horizon) * np.exp(self.predict_lp(x))))

    def design_contributions(self, x: pd.DataFrame) -> tuple[np.ndarray, list[str]]:
        z = self.pre_.transform(self._x(x))
        return z * self.coef_, list(self.pre_.names_)

    def coefficients(self) -> dict[str, float]:
        """Log hazard ratios per unit of each design column (undoing the standardisation)."""
        assert self.pre_.scales_ is not None
        return {
            n: float(b / s) for n, b, s in zip(self.pre_.names_, self.coef_, self.pre_.scales_, strict=True)
        }


class XGBSurvivalModel(RiskModel):
    """XGBoost with the ``survival:cox`` objective, made absolute by a Breslow baseline hazard
    estimated on the training margins."""

    kind = "xgboost_survival"
    standardize = False
    DEFAULTS: Mapping[str, Any] = {
        "max_depth": 3,
        "eta": 0.05,
        "subsample": 0.8,
        "colsample_bytree": 0.8,
        "min_child_weight": 5,
        "num_boost_round": 300,
        "reg_lambda": 1.0,
    }

    def _fit(self, z: np.ndarray, time: np.ndarray, event: np.ndarray) -> None:
        import xgboost as xgb

        params = {**self.DEFAULTS, **{k: v for k, v in self.params.items() if k != "log"}}
        rounds = int(params.pop("num_boost_round"))
        seed = int(params.pop("seed", 0))
        label = np.where(event == 1, time, -time)  # xgboost: negative = censored
        label = np.where(label == 0, 1e-6, label)
        dtrain = xgb.DMatrix(z, label=label, feature_names=self.pre_.names_, missing=np.nan)
        booster_params = {
            "objective": "survival:cox",
            "eval_metric": "cox-nloglik",
            "seed": seed,
            "nthread": int(params.pop("nthread", 1)),
            "verbosity": 0,
            **params,
        }
        self.booster_ = xgb.train(booster_params, dtrain, num_boost_round=rounds)
        margin = self.booster_.predict(dtrain, output_margin=True)
        self.base_times_, self.base_cumhaz_ = coarse_baseline(
            *baseline_cumhaz(margin[:, None], time, event, np.ones(1), ties="breslow"), keep=(self.horizon,)
        )

    def _dmatrix(self, x: pd.DataFrame):
        import xgboost as xgb

        raw = self.pre_.transform(self._x(x))
        return xgb.DMatrix(raw, feature_names=self.pre_.names_, missing=np.nan)

    def predict_lp(self, x: pd.DataFrame) -> np.ndarray:
        return np.asarray(self.booster_.predict(self._dmatrix(x), output_margin=True), float)

    def predict_risk(self, x: pd.DataFrame) -> np.ndarray:
        i = int(np.searchsorted(self.base_times_, self.horizon, side="right")) - 1
        h0 = 0.0 if i < 0 else float(self.base_cumhaz_[i])
        return np.asarray(1.0 - np.exp(-h0 * np.exp(self.predict_lp(x))))

    def design_contributions(self, x: pd.DataFrame) -> tuple[np.ndarray, list[str]]:
        contrib = self.booster_.predict(self._dmatrix(x), pred_contribs=True)
        return np.asarray(contrib[:, :-1]), list(self.pre_.names_)


MODELS: dict[str, type[RiskModel]] = {
    CoxRiskModel.kind: CoxRiskModel,
    XGBSurvivalModel.kind: XGBSurvivalModel,
}


def make_model(
    kind: str,
    *,
    horizon: float,
    features: Sequence[str] | None = None,
    params: Mapping[str, Any] | None = None,
) -> RiskModel:
    if kind not in MODELS:
        raise AnalysisError(f"unknown model type {kind!r}; available: {sorted(MODELS)}")
    return MODELS[kind](horizon=horizon, features=features, **dict(params or {}))
