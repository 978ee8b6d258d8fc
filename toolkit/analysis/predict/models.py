"""Risk models with one estimator interface: absolute risk at a horizon, and explanations.

Every model is a scikit-learn style estimator (``__init__`` stores parameters, ``fit`` returns
self, fitted state ends in ``_``) over a pandas frame of raw features, with:

* ``fit(X, time, event)``: survival models use the times; binary models (``task == "binary"``)
  use the label at the horizon and are fitted on the persons *evaluable* at it only (persons
  censored before the horizon are left out; a competing event before it is a 0);
* ``predict_risk(X)``: absolute risk of the event by ``horizon`` days;
* ``predict_risk_at(X, times)`` (survival models only): absolute risk by each of ``times``;
* ``contributions(X)``: per-feature additive contributions on the model's link scale (Cox and
  logistic: ``beta_j * (x_j - mean_j)`` summed over a feature's design columns; XGBoost: its
  built-in SHAP values), and ``importance(X)``: their mean absolute value per feature.

Models:

=====================  ======================================================================
``cox``                Cox PH, absolute risk ``1 - exp(-H0(h) exp(lp))`` (ridge ``penalty``)
``xgboost_survival``   XGBoost ``survival:cox`` with a Breslow baseline hazard on its margins
``logistic``           penalised (ridge) logistic regression of the label at the horizon
``xgboost``            XGBoost ``binary:logistic`` classifier of the label at the horizon
=====================  ======================================================================

A :class:`Preprocessor` (median imputation, optional missing indicators, log transforms, B-spline
bases for declared continuous inputs, one-hot coding of text columns, standardisation) is fitted
inside ``fit``, and so is a declared hyperparameter search (:mod:`toolkit.analysis.predict.
search`), so cross-validation and the bootstrap never leak.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from toolkit.analysis.design import is_categorical
from toolkit.analysis.predict.distributed import current_trainer
from toolkit.analysis.predict.metrics import expit, horizon_label
from toolkit.analysis.survival.cox import baseline_cumhaz, cox_stats, newton_raphson
from toolkit.errors import AnalysisError, ConvergenceError

SPLINE_SEP = "~s"  # design columns of a spline basis are named ``<feature>~s1``, ``~s2``, ...


@dataclass
class Preprocessor:
    """Impute, code and scale raw features into a numeric matrix (fitted on training data)."""

    standardize: bool = True
    missing_indicators: bool = False
    log: tuple[str, ...] = ()  # numeric inputs modelled on the log scale (values must be > 0)
    splines: tuple[str, ...] = ()  # continuous inputs expanded into a cubic B-spline basis
    spline_knots: int = 4
    numeric_: list[str] = field(default_factory=list)
    categorical_: dict[str, list[str]] = field(default_factory=dict)
    medians_: dict[str, float] = field(default_factory=dict)
    means_: np.ndarray | None = None
    scales_: np.ndarray | None = None
    names_: list[str] = field(default_factory=list)
    ranges_: dict[str, tuple[float, float]] = field(default_factory=dict)
    with_missing_: list[str] = field(default_factory=list)
    spline_: dict[str, Any] = field(default_factory=dict)

    def fit(self, x: pd.DataFrame) -> Preprocessor:
        self.numeric_, self.categorical_, self.spline_ = [], {}, {}
        for c in x.columns:
            if is_categorical(x[c]):
                if c in self.splines:
                    raise AnalysisError(f"splines: feature {c!r} is categorical; splines need a number")
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
                if c in self.splines:
                    self.spline_[c] = self._fit_spline(c, col.fillna(med).to_numpy(float))
        self.with_missing_ = [c for c in self.numeric_ if self.missing_indicators and x[c].isna().any()]
        raw = self._raw(x)
        self.means_ = raw.mean(axis=0) if self.standardize else np.zeros(raw.shape[1])
        sd = raw.std(axis=0) if self.standardize else np.ones(raw.shape[1])
        self.scales_ = np.where(sd > 0, sd, 1.0)
        return self

    def _fit_spline(self, c: str, values: np.ndarray) -> Any:
        from sklearn.preprocessing import SplineTransformer

        if len(np.unique(values)) < self.spline_knots + 2:
            raise AnalysisError(
                f"splines: feature {c!r} has {len(np.unique(values))} distinct values; a spline with "
                f"{self.spline_knots} knots needs at least {self.spline_knots + 2} (model it linearly)"
            )
        # knots at quantiles; linear beyond the boundary knots; no constant column (the model has one)
        return SplineTransformer(
            n_knots=self.spline_knots, degree=3, knots="quantile", extrapolation="linear", include_bias=False
        ).fit(values[:, None])

    def _numeric(self, x: pd.DataFrame, c: str) -> pd.Series:
        col = x[c].astype(float)
        return pd.Series(np.log(col.where(col > 0)), index=x.index) if c in self.log else col

    def _raw(self, x: pd.DataFrame) -> np.ndarray:
        cols: list[np.ndarray] = []
        names: list[str] = []
        for c in self.numeric_:
            if c not in x.columns:
                raise AnalysisError(f"feature {c!r} is missing from the input")
            values = self._numeric(x, c).fillna(self.medians_[c]).to_numpy(float)
            name = f"log_{c}" if c in self.log else c
            if c in self.spline_:
                basis = np.asarray(self.spline_[c].transform(values[:, None]))
                cols.extend(basis.T)
                names.extend(f"{name}{SPLINE_SEP}{j + 1}" for j in range(basis.shape[1]))
            else:
                cols.append(values)
                names.append(name)
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
        base = name.split("=")[0].split(SPLINE_SEP)[0].removesuffix("_missing")
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
    task = "survival"  # "survival": fitted on (time, event); "binary": on the label at the horizon
    standardize = True
    linear = False  # a linear predictor over design columns: splines are allowed
    PARAMS: frozenset[str] = frozenset()
    COMMON = frozenset({"log", "seed", "spline_knots"})

    def __init__(
        self,
        *,
        horizon: float,
        features: Sequence[str] | None = None,
        splines: Sequence[str] = (),
        search: Mapping[str, Sequence[Any]] | None = None,
        search_folds: int = 3,
        search_metric: str = "brier_ipcw",
        **params: Any,
    ) -> None:
        self.horizon = float(horizon)
        self.features = list(features) if features is not None else None
        self.splines = tuple(splines)
        self.search = {k: list(v) for k, v in (search or {}).items()}
        self.search_folds = int(search_folds)
        self.search_metric = search_metric
        self.params = dict(params)
        allowed = self.PARAMS | self.COMMON
        for k in [*self.params, *self.search]:
            if k not in allowed:
                raise AnalysisError(f"{self.kind}: unknown parameter {k!r}; available: {sorted(allowed)}")
        if self.splines and not self.linear:
            raise AnalysisError(f"{self.kind}: splines apply to linear models (cox, logistic) only")
        if self.horizon <= 0:
            raise AnalysisError(f"{self.kind}: the horizon must be positive; got {horizon}")

    def get_params(self) -> dict[str, Any]:
        return {
            "horizon": self.horizon,
            "features": self.features,
            "splines": list(self.splines),
            "search": self.search,
            **self.params,
        }

    def _clone(self, extra: Mapping[str, Any]) -> RiskModel:
        return type(self)(
            horizon=self.horizon, features=self.features, splines=self.splines, **{**self.params, **extra}
        )

    def _x(self, x: pd.DataFrame) -> pd.DataFrame:
        cols = self.features_in_
        missing = [c for c in cols if c not in x.columns]
        if missing:
            raise AnalysisError(f"{self.kind}: features {missing} missing from the input")
        return x[cols]

    def fit(self, x: pd.DataFrame, time: np.ndarray, event: np.ndarray) -> RiskModel:
        time = np.asarray(time, float)
        event = np.asarray(event).astype(int)
        self.features_in_ = list(self.features) if self.features is not None else list(x.columns)
        self.best_params_: dict[str, Any] = {}
        self.search_results_: list[dict[str, Any]] = []
        if self.search:
            from toolkit.analysis.predict.search import select_params

            self.best_params_, self.search_results_ = select_params(
                self._clone,
                x,
                time,
                event,
                search=self.search,
                horizon=self.horizon,
                folds=self.search_folds,
                metric=self.search_metric,
                seed=int(self.params.get("seed", 0)),
            )
        self.fit_params_ = {**self.params, **self.best_params_}
        self.pre_ = Preprocessor(
            standardize=self.standardize,
            log=tuple(self.fit_params_.get("log", ())),
            splines=self.splines,
            spline_knots=int(self.fit_params_.get("spline_knots", 4)),
        )
        self.pre_.fit(self._x(x))
        z = self.pre_.transform(self._x(x))
        if self.task == "binary":
            label = horizon_label(time, event, self.horizon)
            keep = ~np.isnan(label)
            y = label[keep]
            if len(y) == 0 or y.min() == y.max():
                raise AnalysisError(
                    f"{self.kind}: the label at {self.horizon:g} days has a single class among the "
                    "evaluable persons; a binary model cannot be fitted"
                )
            self.n_fit_ = int(keep.sum())
            self._fit_binary(z[keep], y)
        else:
            self.n_fit_ = len(time)
            self._fit(z, time, (event == 1).astype(float))
        return self

    def _fit(self, z: np.ndarray, time: np.ndarray, event: np.ndarray) -> None:
        raise NotImplementedError

    def _fit_binary(self, z: np.ndarray, y: np.ndarray) -> None:
        raise NotImplementedError

    def predict_lp(self, x: pd.DataFrame) -> np.ndarray:
        raise NotImplementedError

    def predict_risk(self, x: pd.DataFrame) -> np.ndarray:
        raise NotImplementedError

    def predict_risk_at(self, x: pd.DataFrame, times: Sequence[float] | np.ndarray) -> np.ndarray:
        raise AnalysisError(f"{self.kind}: a binary model predicts risk at its horizon only")

    def design_contributions(self, x: pd.DataFrame) -> tuple[np.ndarray, list[str]]:
        raise NotImplementedError

    def contributions(self, x: pd.DataFrame) -> pd.DataFrame:
        """Per raw input, the additive contribution to the linear predictor (design columns summed)."""
        contrib, names = self.design_contributions(x)
        frame = pd.DataFrame(contrib, columns=names, index=x.index)
        grouped = frame.T.groupby([self.pre_.feature_of(n) for n in names], sort=False).sum().T
        return grouped[[c for c in self.features_in_ if c in grouped.columns]]

    def importance(self, x: pd.DataFrame) -> dict[str, float]:
        """Global importance: mean absolute contribution of each input over ``x``, largest first."""
        mean_abs = self.contributions(x).abs().mean(axis=0)
        return {str(k): float(v) for k, v in mean_abs.sort_values(ascending=False).items()}

    @property
    def training_ranges(self) -> Mapping[str, tuple[float, float]]:
        return self.pre_.ranges_


class _SurvivalBaseline:
    """Absolute risk from a linear predictor and a (coarse) baseline cumulative hazard."""

    base_times_: np.ndarray
    base_cumhaz_: np.ndarray

    def _h0(self, t: float) -> float:
        i = int(np.searchsorted(self.base_times_, t, side="right")) - 1
        return 0.0 if i < 0 else float(self.base_cumhaz_[i])

    def _risk_at(self, lp: np.ndarray, times: Sequence[float] | np.ndarray) -> np.ndarray:
        h0 = np.array([self._h0(float(t)) for t in times])
        return np.asarray(1.0 - np.exp(-h0[None, :] * np.exp(lp)[:, None]))


class CoxRiskModel(_SurvivalBaseline, RiskModel):
    """Cox PH as a predictor of absolute risk: ``1 - exp(-H0(h) * exp(lp))`` (Breslow/Efron H0).

    ``penalty`` adds a ridge term to stabilise fits with many features (0 = plain Cox).
    """

    kind = "cox"
    linear = True
    PARAMS = frozenset({"penalty", "ties"})

    def _fit(self, z: np.ndarray, time: np.ndarray, event: np.ndarray) -> None:
        if event.sum() == 0:
            raise AnalysisError("cox: no events in the training data")
        penalty = float(self.fit_params_.get("penalty", 0.0))
        ties = self.fit_params_.get("ties", "efron")

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

    def predict_lp(self, x: pd.DataFrame) -> np.ndarray:
        return np.asarray(self.pre_.transform(self._x(x)) @ self.coef_)

    def predict_risk(self, x: pd.DataFrame) -> np.ndarray:
        return np.asarray(1.0 - np.exp(-self._h0(self.horizon) * np.exp(self.predict_lp(x))))

    def predict_risk_at(self, x: pd.DataFrame, times: Sequence[float] | np.ndarray) -> np.ndarray:
        return self._risk_at(self.predict_lp(x), times)

    def design_contributions(self, x: pd.DataFrame) -> tuple[np.ndarray, list[str]]:
        z = self.pre_.transform(self._x(x))
        return z * self.coef_, list(self.pre_.names_)

    def coefficients(self) -> dict[str, float]:
        """Log hazard ratios per unit of each design column (undoing the standardisation)."""
        assert self.pre_.scales_ is not None
        return {
            n: float(b / s) for n, b, s in zip(self.pre_.names_, self.coef_, self.pre_.scales_, strict=True)
        }


XGB_PARAMS = frozenset(
    {
        "max_depth",
        "eta",
        "subsample",
        "colsample_bytree",
        "min_child_weight",
        "num_boost_round",
        "reg_lambda",
        "reg_alpha",
        "gamma",
        "nthread",
        "max_bin",
    }
)


class _XGBoost:
    """Shared XGBoost plumbing: parameters, the DMatrix of preprocessed inputs, SHAP values."""

    DEFAULTS: Mapping[str, Any] = {
        "max_depth": 3,
        "eta": 0.05,
        "subsample": 0.8,
        "colsample_bytree": 0.8,
        "min_child_weight": 5,
        "num_boost_round": 300,
        "reg_lambda": 1.0,
    }
    fit_params_: dict[str, Any]
    pre_: Preprocessor
    booster_: Any
    trained_on_: str  # "driver" (xgboost.train) or "spark" (xgboost.spark, distributed)

    def _train(self, z: np.ndarray, label: np.ndarray, objective: str, metric: str) -> Any:
        import xgboost as xgb

        params = {
            **self.DEFAULTS,
            **{k: v for k, v in self.fit_params_.items() if k not in ("log", "spline_knots")},
        }
        rounds = int(params.pop("num_boost_round"))
        seed = int(params.pop("seed", 0))
        dtrain = xgb.DMatrix(z, label=label, feature_names=self.pre_.names_, missing=np.nan)
        booster_params = {
            "objective": objective,
            "eval_metric": metric,
            "seed": seed,
            "nthread": int(params.pop("nthread", 1)),
            "verbosity": 0,
            **params,
        }
        trainer = current_trainer()
        if trainer is not None and trainer.wants(len(z)):  # a large matrix on the Spark engine
            self.booster_ = trainer.train(booster_params, z, label, rounds)
            self.booster_.feature_names = list(self.pre_.names_)
            self.trained_on_ = "spark"
        else:
            self.booster_ = xgb.train(booster_params, dtrain, num_boost_round=rounds)
            self.trained_on_ = "driver"
        return dtrain

    def _dmatrix(self, x: pd.DataFrame) -> Any:
        import xgboost as xgb

        raw = self.pre_.transform(self._x(x))  # type: ignore[attr-defined]
        return xgb.DMatrix(raw, feature_names=self.pre_.names_, missing=np.nan)

    def predict_lp(self, x: pd.DataFrame) -> np.ndarray:
        return np.asarray(self.booster_.predict(self._dmatrix(x), output_margin=True), float)

    def design_contributions(self, x: pd.DataFrame) -> tuple[np.ndarray, list[str]]:
        contrib = self.booster_.predict(self._dmatrix(x), pred_contribs=True)
        return np.asarray(contrib[:, :-1]), list(self.pre_.names_)


class XGBSurvivalModel(_XGBoost, _SurvivalBaseline, RiskModel):
    """XGBoost with the ``survival:cox`` objective, made absolute by a Breslow baseline hazard
    estimated on the training margins."""

    kind = "xgboost_survival"
    standardize = False
    PARAMS = XGB_PARAMS

    def _fit(self, z: np.ndarray, time: np.ndarray, event: np.ndarray) -> None:
        label = np.where(event == 1, time, -time)  # xgboost: negative = censored
        label = np.where(label == 0, 1e-6, label)
        dtrain = self._train(z, label, "survival:cox", "cox-nloglik")
        margin = self.booster_.predict(dtrain, output_margin=True)
        self.base_times_, self.base_cumhaz_ = coarse_baseline(
            *baseline_cumhaz(margin[:, None], time, event, np.ones(1), ties="breslow"), keep=(self.horizon,)
        )

    def predict_risk(self, x: pd.DataFrame) -> np.ndarray:
        return np.asarray(1.0 - np.exp(-self._h0(self.horizon) * np.exp(self.predict_lp(x))))

    def predict_risk_at(self, x: pd.DataFrame, times: Sequence[float] | np.ndarray) -> np.ndarray:
        return self._risk_at(self.predict_lp(x), times)


class LogisticRiskModel(RiskModel):
    """Ridge-penalised logistic regression of the event by the horizon (evaluable persons only).

    ``penalty`` is the ridge strength on standardised design columns (the intercept is not
    penalised): it maximises ``loglik - penalty/2 * ||beta||^2``; 0 = plain maximum likelihood.
    Continuous inputs named in ``splines`` enter as cubic B-spline bases.
    """

    kind = "logistic"
    task = "binary"
    linear = True
    PARAMS = frozenset({"penalty"})

    def _fit_binary(self, z: np.ndarray, y: np.ndarray) -> None:
        penalty = float(self.fit_params_.get("penalty", 1.0))
        if penalty < 0:
            raise AnalysisError(f"logistic: penalty must be >= 0; got {penalty}")
        beta = ridge_logistic(z, y, penalty)
        self.intercept_ = float(beta[0])
        self.coef_ = np.asarray(beta[1:], float)

    def predict_lp(self, x: pd.DataFrame) -> np.ndarray:
        return np.asarray(self.pre_.transform(self._x(x)) @ self.coef_ + self.intercept_)

    def predict_risk(self, x: pd.DataFrame) -> np.ndarray:
        return np.asarray(expit(self.predict_lp(x)))

    def design_contributions(self, x: pd.DataFrame) -> tuple[np.ndarray, list[str]]:
        z = self.pre_.transform(self._x(x))
        return z * self.coef_, list(self.pre_.names_)

    def coefficients(self) -> dict[str, float]:
        """Log odds ratios per unit of each design column (undoing the standardisation)."""
        assert self.pre_.scales_ is not None
        return {
            n: float(b / s) for n, b, s in zip(self.pre_.names_, self.coef_, self.pre_.scales_, strict=True)
        }


def ridge_logistic(z: np.ndarray, y: np.ndarray, penalty: float, *, max_iter: int = 100) -> np.ndarray:
    """(intercept, coefficients) maximising ``loglik - penalty/2 * ||coefficients||^2`` by Newton's
    method with step halving (the intercept is not penalised)."""
    x = np.column_stack([np.ones(len(y)), z])
    pen = np.full(x.shape[1], penalty)
    pen[0] = 0.0

    def objective(b: np.ndarray) -> float:
        eta = x @ b
        return float(y @ eta - np.logaddexp(0.0, eta).sum() - 0.5 * (pen * b) @ b)

    beta = np.zeros(x.shape[1])
    current = objective(beta)
    for _ in range(max_iter):
        mu = expit(x @ beta)
        grad = x.T @ (y - mu) - pen * beta
        hess = (x * (mu * (1 - mu))[:, None]).T @ x + np.diag(pen)
        try:
            step = np.linalg.solve(hess, grad)
        except np.linalg.LinAlgError:
            step = np.linalg.lstsq(hess, grad, rcond=None)[0]
        t = 1.0
        while t > 1e-8 and objective(beta + t * step) < current - 1e-12:
            t /= 2
        beta = beta + t * step
        new = objective(beta)
        if abs(new - current) < 1e-10 * (1 + abs(new)) and np.abs(t * step).max() < 1e-8:
            return beta
        current = new
    raise ConvergenceError(
        "logistic: the fit did not converge (coefficients diverge). Try: a penalty > 0; fewer "
        "features or spline knots; checking for a feature that separates the outcome"
    )


class XGBClassifierModel(_XGBoost, RiskModel):
    """XGBoost ``binary:logistic`` classifier of the event by the horizon (evaluable persons only);
    contributions are SHAP values on the log-odds scale."""

    kind = "xgboost"
    task = "binary"
    standardize = False
    PARAMS = XGB_PARAMS

    def _fit_binary(self, z: np.ndarray, y: np.ndarray) -> None:
        self._train(z, y, "binary:logistic", "logloss")

    def predict_risk(self, x: pd.DataFrame) -> np.ndarray:
        return np.asarray(expit(self.predict_lp(x)))


MODELS: dict[str, type[RiskModel]] = {
    CoxRiskModel.kind: CoxRiskModel,
    XGBSurvivalModel.kind: XGBSurvivalModel,
    LogisticRiskModel.kind: LogisticRiskModel,
    XGBClassifierModel.kind: XGBClassifierModel,
}


def make_model(
    kind: str,
    *,
    horizon: float,
    features: Sequence[str] | None = None,
    params: Mapping[str, Any] | None = None,
    splines: Sequence[str] = (),
    search: Mapping[str, Sequence[Any]] | None = None,
    search_folds: int = 3,
    search_metric: str = "brier_ipcw",
) -> RiskModel:
    if kind not in MODELS:
        raise AnalysisError(f"unknown model type {kind!r}; available: {sorted(MODELS)}")
    return MODELS[kind](
        horizon=horizon,
        features=features,
        splines=splines,
        search=search,
        search_folds=search_folds,
        search_metric=search_metric,
        **dict(params or {}),
    )
